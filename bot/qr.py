"""Registration QR codes, per campaign and recommending unit (`run_bot.py qr`).

A code carries the scene `<campaign>[:<unit>]` (bot/rules/scene.py). With WeChat credentials it
is a parametric QR code from the WeChat API (temporary for 30 days unless permanent): scanning
it follows the account and starts sign-up with campaign and unit filled in. With `--web`, or
without credentials, it encodes the web sign-up page `{BOT_PUBLIC_BASE_URL}/?scene=<scene>`.
With `--board` it encodes the public leaderboard page `{BOT_PUBLIC_BASE_URL}/board/<campaign>`
instead (a web code always: there is nothing to follow or sign up for).
The PNG is a printable poster: the code, the campaign's name and the unit, where the machine has
a font with Chinese characters; without one, the code and its scene or URL only (the caller
says so).
"""

from __future__ import annotations

import asyncio
import textwrap
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from urllib.parse import quote

import segno
from matplotlib import font_manager, ft2font
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bot.clock import Clock
from bot.rules.formatting import fmt_when
from bot.rules.scene import make_scene
from bot.wechat_api import TEMPORARY_QR_SECONDS, WeChatAPIError, command_line_api
from config.campaign import Campaign, Unit
from config.settings import Settings


class QRError(Exception):
    """Why no code was made (unknown campaign or unit, WeChat refused): exit 1 with it."""


@dataclass(frozen=True)
class QRTarget:
    campaign: Campaign
    unit: Unit | None
    scene: str


def resolve(campaigns: dict[str, Campaign], campaign_id: str, unit_key: str | None) -> QRTarget:
    campaign = campaigns.get(campaign_id)
    if campaign is None:
        known = ", ".join(sorted(campaigns)) or "none"
        raise QRError(f"unknown campaign {campaign_id!r} (known: {known})")
    unit = campaign.unit(unit_key) if unit_key else None
    if unit_key and unit is None:
        known = ", ".join(u.key for u in campaign.units) or "none"
        raise QRError(f"campaign {campaign.id!r} has no unit {unit_key!r} (known: {known})")
    return QRTarget(campaign, unit, make_scene(campaign.id, unit.key if unit else None))


def web_url(base_url: str, scene: str) -> str:
    """The web sign-up page that starts sign-up with this scene."""
    return f"{base_url.rstrip('/')}/?scene={quote(scene, safe=':')}"


def board_url(base_url: str, campaign_id: str) -> str:
    """The campaign's public leaderboard page (bot/handlers/board.py)."""
    return f"{base_url.rstrip('/')}/board/{quote(campaign_id, safe='')}"


@cache
def cjk_font() -> Path | None:
    """A font file with Chinese characters, if the machine has one (`fc-list :lang=zh`)."""
    for entry in font_manager.fontManager.ttflist:
        if entry.name.startswith("Last Resort"):
            continue  # a placeholder box for every character, not a font to read
        try:
            if ft2font.FT2Font(entry.fname).get_char_index(ord("报")):
                return Path(entry.fname)
        except (OSError, RuntimeError):
            continue
    return None


def write_poster(
    content: str, out: Path, *, title: str, subtitle: str | None, action: str, footer: str
) -> bool:
    """The code with its captions as a PNG; False when the Chinese captions had to be left out.

    `footer` is printed in any font, so it stays ASCII (a scene or a URL)."""
    matrix = [
        [bool(module) for module in row]
        for row in segno.make(content, error="m").matrix_iter(border=4)
    ]
    figure = Figure(figsize=(6, 8), dpi=200, facecolor="white")
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.1, 0.22, 0.8, 0.6))
    axes.imshow(matrix, cmap="binary", interpolation="nearest")
    axes.set_axis_off()
    font = cjk_font()
    if font is not None:
        figure.text(
            0.5, 0.9, textwrap.fill(title, 16), ha="center", va="center", font=font, fontsize=20
        )
        if subtitle is not None:
            figure.text(0.5, 0.19, subtitle, ha="center", font=font, fontsize=14)
        figure.text(0.5, 0.13, action, ha="center", font=font, fontsize=16)
    figure.text(0.5, 0.05, footer, ha="center", fontsize=10, color="#555555")
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png")
    return font is not None


def generate(
    settings: Settings,
    campaigns: dict[str, Campaign],
    clock: Clock,
    *,
    campaign_id: str,
    unit_key: str | None,
    out: Path,
    permanent: bool = False,
    web: bool = False,
    board: bool = False,
) -> list[str]:
    """Make the code and write the poster; returns what to tell the operator. Raises QRError."""
    if board and (unit_key or permanent):
        # The board is one public page per campaign: a unit or a WeChat lifetime means nothing.
        raise QRError("--board makes a code to the public leaderboard: no --unit or --permanent")
    target = resolve(campaigns, campaign_id, unit_key)
    wechat = not web and not board and bool(settings.wechat_appid and settings.wechat_secret)
    lines = []
    if board:
        content = board_url(settings.public_base_url, target.campaign.id)
    elif wechat:
        try:
            with command_line_api(settings, clock) as api:
                content = asyncio.run(api.qrcode_url(target.scene, permanent=permanent))
        except WeChatAPIError as exc:
            raise QRError(f"WeChat did not make the QR code: {exc}") from exc
        if permanent:
            lines.append("WeChat QR code, permanent (an account may have 100,000 of them)")
        else:
            until = clock.now() + timedelta(seconds=TEMPORARY_QR_SECONDS)
            lines.append(f"WeChat QR code, temporary: scannable until {fmt_when(until)}")
    else:
        content = web_url(settings.public_base_url, target.scene)
        if not web:
            lines.append("no WECHAT_APPID/WECHAT_SECRET: a QR code to the web sign-up page")
        if permanent:
            lines.append("--permanent applies to WeChat codes only; a web code never expires")
    if board:
        subtitle, action, footer = "实时排名 · 每分钟更新", "扫码查看龙虎榜", content
        lines.append(f"wrote {out}: the public leaderboard -> {content}")
    else:
        subtitle = f"推荐单位：{target.unit.name}" if target.unit else None
        action = "微信扫一扫，关注并报名" if wechat else "扫码打开报名页面"
        footer = target.scene
        lines.append(f"wrote {out}: scene {target.scene} -> {content}")
    captioned = write_poster(
        content, out, title=target.campaign.name, subtitle=subtitle, action=action, footer=footer
    )
    if not captioned:
        lines.append(
            "note: no font with Chinese characters here (fc-list :lang=zh is empty), so the "
            f'poster shows the code and "{footer}" only; install fonts-noto-cjk for the captions'
        )
    return lines
