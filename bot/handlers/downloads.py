"""Signed, expiring download links for organizer exports: `GET /exports/<campaign>/<what>.xlsx`.

The link (bot/exporting.py) carries its expiry and an HMAC over campaign, sheet and expiry; the
file is built on a database worker thread when the link is opened, so it is current and the event
loop never waits. A wrong or expired link gets a short page saying how to get a new one.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from bot.exporting import EXPORTS, XLSX_TYPE, export_filename, export_xlsx, link_valid
from bot.keys import CAMPAIGNS, CLOCK, DATABASE, SETTINGS

EXPIRED = "下载链接无效或已过期。请在聊天中向机器人发送「导出」获取新的链接。"


def setup(app: web.Application) -> None:
    app.router.add_get("/exports/{campaign}/{what}.xlsx", download)


def _refuse(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain", charset="utf-8")


async def download(request: web.Request) -> web.Response:
    campaign = request.app[CAMPAIGNS].get(request.match_info["campaign"])
    what = request.match_info["what"]
    if campaign is None or what not in EXPORTS:
        return _refuse(404, "没有这个导出。")
    now = request.app[CLOCK].now()
    expires, sig = request.query.get("expires", ""), request.query.get("sig", "")
    if not link_valid(request.app[SETTINGS].secret_key, campaign.id, what, expires, sig, now):
        return _refuse(403, EXPIRED)
    data = await request.app[DATABASE].run(
        lambda s: export_xlsx(s, campaign, what, now), read_only=True
    )
    name = export_filename(campaign, what, now)
    return web.Response(
        body=data,
        content_type=XLSX_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{campaign.id}-{what}.xlsx"; '
            f"filename*=UTF-8''{quote(name)}",
            "Cache-Control": "no-store",
        },
    )
