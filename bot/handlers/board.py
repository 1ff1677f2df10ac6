"""The public leaderboard (龙虎榜) over HTTP: `GET /api/campaigns/{id}/leaderboard[?phase=key]`.

Public means masked: display names only (王*文), never a full name or a mobile number, and
disqualified streamers are left out. `load_board` and `public_board` are the parts a page
(`/board/{id}`) renders too, so both always show the same thing.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.clock import SHANGHAI
from bot.keys import CAMPAIGNS, CLOCK, DATABASE
from bot.rules.scoring import metric_label
from config.campaign import Campaign
from storage.leaderboard import Leaderboard, compute_leaderboard

CACHE_SECONDS = 30  # browsers and proxies may reuse a board briefly; figures change slowly


def setup(app: web.Application) -> None:
    app.router.add_get("/api/campaigns/{id}/leaderboard", leaderboard_api)


def _error(status: int, reason: str, **extra: Any) -> web.Response:
    return web.json_response({"error": reason, **extra}, status=status)


async def load_board(
    request: web.Request, campaign_id: str
) -> tuple[Campaign, Leaderboard] | web.Response:
    """The campaign and its board for `?phase=`, or the JSON error to answer (404, 400)."""
    campaign = request.app[CAMPAIGNS].get(campaign_id)
    if campaign is None:
        return _error(404, "unknown campaign", campaign=campaign_id)
    phase = request.query.get("phase") or None
    phases = [p.key for p in campaign.phases]
    if phase is not None and phase not in phases:
        return _error(400, "unknown phase", phase=phase, phases=phases)
    now = request.app[CLOCK].now()
    board = await request.app[DATABASE].run(
        lambda session: compute_leaderboard(session, campaign, now, phase_key=phase)
    )
    return campaign, board


def public_board(campaign: Campaign, board: Leaderboard, phase: str | None) -> dict[str, Any]:
    return {
        "campaign": campaign.id,
        "name": campaign.name,
        "phase": phase,
        "updated_at": board.updated_at.astimezone(SHANGHAI).isoformat(),
        "metrics": [
            {"key": m.key, "label": metric_label(m.key, m.label), "weight": m.weight}
            for m in campaign.scoring.metrics
        ],
        "groups": [
            {
                "key": group.key,
                "name": group.name,
                "entries": [
                    {
                        "rank": e.rank,
                        "streamer_id": e.registration_id,
                        "display_name": e.display_name,
                        "score": e.score,
                        "breakdown": {k: round(v, 2) for k, v in e.breakdown.items()},
                        "metrics": {k: round(v, 2) for k, v in e.metrics.items()},
                    }
                    for e in group.entries
                    if e.rank is not None
                ],
            }
            for group in board.groups
        ],
    }


async def leaderboard_api(request: web.Request) -> web.Response:
    loaded = await load_board(request, request.match_info["id"])
    if isinstance(loaded, web.Response):
        return loaded
    campaign, board = loaded
    body = public_board(campaign, board, request.query.get("phase") or None)
    return web.json_response(body, headers={"Cache-Control": f"public, max-age={CACHE_SECONDS}"})
