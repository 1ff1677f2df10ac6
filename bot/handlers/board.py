"""The public leaderboard (龙虎榜): the page `GET /board/{id}` and its JSON
`GET /api/campaigns/{id}/leaderboard[?phase=key][&top=N]`.

Public means masked: display names only (王*文), never a full name or a mobile number, and
disqualified streamers are left out. The page embeds the same JSON `public_board` gives the API
and then refreshes from the API, so both always show the same thing.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from datetime import datetime
from functools import cache, partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from bot.clock import SHANGHAI
from bot.keys import CAMPAIGNS, CLOCK, DATABASE
from bot.rules.scoring import fmt_metric, metric_label
from config.campaign import Campaign, Phase
from storage.db import DatabaseUnavailable
from storage.leaderboard import GroupBoard, Leaderboard, compute_leaderboard

Running = dict[tuple[str, str | None], "asyncio.Future[Leaderboard]"]
BOARDS_RUNNING = web.AppKey("boards_running", Running)  # (campaign, phase) → its computation

CACHE_SECONDS = 30  # browsers and proxies may reuse a board briefly; figures change slowly
PAGE_TOP = 20  # entries per group on the page: a phone screen, not the whole field
MAX_TOP = 500
TEMPLATE = Path(__file__).resolve().parent.parent / "static" / "board.html"
NOT_FOUND_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>没有找到这个赛事</title>
<style>body{margin:0;padding:64px 24px;text-align:center;background:#f3f3f3;color:#333;
font:16px/1.6 -apple-system,"PingFang SC","Microsoft YaHei",sans-serif}
h1{font-size:20px;color:#e8463a}a{color:#e8463a}</style></head>
<body><h1>没有找到这个赛事</h1>
<p>榜单链接可能有误，或赛事已下线。<br>请重新扫描组委会发布的二维码。</p>
<p><a href="/">打开赛事助手</a></p></body></html>
"""
BUSY_PAGE = NOT_FOUND_PAGE.replace("没有找到这个赛事", "榜单暂时打不开").replace(
    "榜单链接可能有误，或赛事已下线。<br>请重新扫描组委会发布的二维码。",
    "系统有点忙，请稍后刷新页面。",
)


def setup(app: web.Application) -> None:
    app[BOARDS_RUNNING] = {}
    app.router.add_get("/board/{id}", board_page)
    app.router.add_get("/api/campaigns/{id}/leaderboard", leaderboard_api)


def _error(status: int, reason: str, **extra: Any) -> web.Response:
    return web.json_response({"error": reason, **extra}, status=status)


async def _compute(request: web.Request, campaign: Campaign, phase: str | None) -> Leaderboard:
    """The board, computed once for every viewer who asks while it is being computed: a popular
    page then costs one computation at a time, not one database thread per viewer. A viewer who
    leaves does not cancel it for the others. Raises DatabaseUnavailable."""
    running = request.app[BOARDS_RUNNING]
    key = (campaign.id, phase)
    board = running.get(key)
    if board is None:
        now = request.app[CLOCK].now()
        board = asyncio.ensure_future(
            request.app[DATABASE].run(
                lambda session: compute_leaderboard(session, campaign, now, phase_key=phase),
                read_only=True,
            )
        )
        running[key] = board
        board.add_done_callback(partial(_finished, running, key))
    return await asyncio.shield(board)


def _finished(running: Running, key: tuple[str, str | None], board: asyncio.Future[Any]) -> None:
    del running[key]
    if not board.cancelled():
        board.exception()  # every viewer may have left: retrieved, so never logged as lost


def _unavailable(page: bool) -> web.Response:
    if page:
        return web.Response(text=BUSY_PAGE, status=503, content_type="text/html")
    return _error(503, "database unavailable, try again shortly")


async def load_board(
    request: web.Request, campaign_id: str
) -> tuple[Campaign, Leaderboard] | web.Response:
    """The campaign and its board for `?phase=`, or the JSON error to answer (404, 400, 503)."""
    campaign = request.app[CAMPAIGNS].get(campaign_id)
    if campaign is None:
        return _error(404, "unknown campaign", campaign=campaign_id)
    phase = request.query.get("phase") or None
    phases = [p.key for p in campaign.phases]
    if phase is not None and phase not in phases:
        return _error(400, "unknown phase", phase=phase, phases=phases)
    try:
        return campaign, await _compute(request, campaign, phase)
    except DatabaseUnavailable:
        return _unavailable(page=False)


def _phase(phase: Phase | None) -> dict[str, str] | None:
    if phase is None:
        return None
    return {
        "key": phase.key,
        "name": phase.name,
        "kind": phase.kind,
        "start": phase.start.astimezone(SHANGHAI).isoformat(),
        "end": phase.end.astimezone(SHANGHAI).isoformat(),
    }


def timeline(campaign: Campaign, now: datetime) -> dict[str, Any]:
    """Where the campaign stands: `state` before | running | between | after, the phase running
    now and the next one to start (either may be None). Phases overlap (利通), so the headline is
    a running competition phase if any, and among equals the one that ends first: its
    countdown is the nearest that matters."""
    running = [p for p in campaign.phases if p.contains(now)]
    current = min(running, key=lambda p: (p.kind != "competition", p.end), default=None)
    upcoming = min(
        (p for p in campaign.phases if p.start > now), key=lambda p: p.start, default=None
    )
    if current is not None:
        state = "running"
    elif upcoming is None:
        state = "after"
    else:
        state = "before" if all(p.start > now for p in campaign.phases) else "between"
    return {"state": state, "current": _phase(current), "next": _phase(upcoming)}


def public_board(
    campaign: Campaign, board: Leaderboard, phase: str | None, top: int | None = None
) -> dict[str, Any]:
    """What the public may see. `updated_at` is the app clock's now (the board was computed
    then): the page counts phase deadlines down from it, so a rehearsal clock (`--now`) works."""
    return {
        "campaign": campaign.id,
        "name": campaign.name,
        "phase": phase,
        "updated_at": board.updated_at.astimezone(SHANGHAI).isoformat(),
        "timeline": timeline(campaign, board.updated_at),
        "metrics": [
            {"key": m.key, "label": metric_label(m.key, m.label), "weight": m.weight}
            for m in campaign.scoring.metrics
        ],
        "groups": [_public_group(campaign, group, top) for group in board.groups],
    }


def _public_group(campaign: Campaign, group: GroupBoard, top: int | None) -> dict[str, Any]:
    ranked = [e for e in group.entries if e.rank is not None]
    return {
        "key": group.key,
        "name": group.name,
        "ranked": len(ranked),  # all of them, while `top` cuts the entries
        "entries": [
            {
                "rank": e.rank,
                "streamer_id": e.registration_id,
                "display_name": e.display_name,
                "score": e.score,
                "breakdown": {k: round(v, 2) for k, v in e.breakdown.items()},
                "deductions": round(e.deductions, 2),  # score = sum(breakdown) - deductions
                "metrics": {k: round(v, 2) for k, v in e.metrics.items()},
                # the weighted metrics as the chat's 排名 writes them (1.2万元, 4.0小时)
                "shown": {
                    m.key: fmt_metric(m.key, e.metrics[m.key]) for m in campaign.scoring.metrics
                },
            }
            for e in ranked[:top]
        ],
    }


def _top(request: web.Request) -> int | web.Response | None:
    raw = request.query.get("top")
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_TOP:
        return _error(400, "bad top", top=raw, allowed=f"1..{MAX_TOP}")
    return int(raw)


async def leaderboard_api(request: web.Request) -> web.Response:
    top = _top(request)
    if isinstance(top, web.Response):
        return top
    loaded = await load_board(request, request.match_info["id"])
    if isinstance(loaded, web.Response):
        return loaded
    campaign, board = loaded
    body = public_board(campaign, board, request.query.get("phase") or None, top)
    return web.json_response(body, headers={"Cache-Control": f"public, max-age={CACHE_SECONDS}"})


@cache
def _template() -> str:
    return TEMPLATE.read_text(encoding="utf-8")


def _script_json(value: Any) -> str:
    """JSON safe inside <script>: no `</script>` or `<!--` can end or bend the element."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


async def board_page(request: web.Request) -> web.Response:
    """The phone page: the first board is embedded (one round trip on a slow network), then
    its script refreshes from the API. An unknown campaign gets a page, not JSON or a 500."""
    campaign = request.app[CAMPAIGNS].get(request.match_info["id"])
    if campaign is None:
        return web.Response(text=NOT_FOUND_PAGE, status=404, content_type="text/html")
    try:
        board = await _compute(request, campaign, None)
    except DatabaseUnavailable:
        return _unavailable(page=True)
    config = {
        "api": f"/api/campaigns/{quote(campaign.id, safe='')}/leaderboard?top={PAGE_TOP}",
        "board": public_board(campaign, board, None, PAGE_TOP),
    }
    values = {
        "title": html.escape(campaign.title),
        "name": html.escape(campaign.name),
        "data": _script_json(config),
    }
    # One pass: a value that happens to contain "{{data}}" is never substituted again.
    page = re.sub(r"\{\{(\w+)\}\}", lambda m: values[m[1]], _template())
    return web.Response(
        text=page,
        content_type="text/html",
        headers={"Cache-Control": f"public, max-age={CACHE_SECONDS}"},
    )
