"""Filing rules (报备): pure checks over campaign config; each violation names its rule."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from bot.rules.formatting import fmt_minutes, fmt_when
from config.campaign import Campaign, Phase

# A stream's report is plausible up to this many times the filed duration.
PLAUSIBLE_FACTOR = 2
# Shorter than this is no stream, whatever a campaign leaves open.
MIN_STREAM_MINUTES = 10


def phases_for_start(campaign: Campaign, start: datetime) -> list[Phase]:
    """The competition phases a stream starting then belongs to (利通's activities overlap)."""
    return [p for p in campaign.phases_of("competition") if p.contains(start)]


def start_refusal(campaign: Campaign, now: datetime, start: datetime) -> str | None:
    """Why a stream may not start then, or None."""
    if start <= now:
        return f"开播时间{fmt_when(start)}已经过去了，请选择以后的时间。"
    notice = campaign.filing.min_notice_hours
    if notice and start - now < timedelta(hours=notice):
        hours = (start - now).total_seconds() / 3600
        return f"本赛事要求至少提前{notice:g}小时报备（你选的时间距现在只有{hours:.0f}小时）。"
    if not phases_for_start(campaign, start):
        windows = "；".join(
            f"「{p.name}」{fmt_when(p.start)}至{fmt_when(p.end)}"
            for p in campaign.phases_of("competition")
            if p.end > now
        )
        where = f"比赛时间为：{windows}" if windows else "本赛事的比赛阶段都已结束"
        return f"开播时间{fmt_when(start)}不在比赛阶段内。{where}。"
    return None


def minutes_range(campaign: Campaign, phase: Phase) -> tuple[int | None, int | None]:
    """A phase's own minimum (e.g. 双十一 每场不低于2小时) overrides the campaign's."""
    return phase.min_stream_minutes or campaign.filing.min_minutes, campaign.filing.max_minutes


def duration_refusal(
    campaign: Campaign,
    phase: Phase,
    start: datetime,
    minutes: int,
    own: Iterable[tuple[datetime, datetime]],
) -> str | None:
    """Why a stream of `minutes` from `start` is not allowed, or None."""
    low, high = minutes_range(campaign, phase)
    if minutes < MIN_STREAM_MINUTES:
        return f"直播时长太短了，每场至少{MIN_STREAM_MINUTES}分钟。"
    if low and minutes < low:
        return (
            f"「{phase.name}」要求每场不少于{fmt_minutes(low)}（你填的是{fmt_minutes(minutes)}）。"
        )
    if high and minutes > high:
        return f"本赛事要求每场不超过{fmt_minutes(high)}（你填的是{fmt_minutes(minutes)}）。"
    end = start + timedelta(minutes=minutes)
    if end > phase.end:
        return (
            f"直播将在{fmt_when(end)}结束，超出了「{phase.name}」的结束时间{fmt_when(phase.end)}。"
        )
    return overlap_refusal(start, end, own)


def overlap_refusal(
    start: datetime, end: datetime, own: Iterable[tuple[datetime, datetime]]
) -> str | None:
    """One's own active filings may not overlap [start, end)."""
    for other_start, other_end in own:
        if start < other_end and other_start < end:
            return (
                f"与你已报备的直播（{fmt_when(other_start)}至{fmt_when(other_end)}）时间重叠，"
                "请换个时间，或先取消那场报备。"
            )
    return None


def products_refusal(campaign: Campaign, products: list[str]) -> str | None:
    need = campaign.filing.min_products
    if len(products) < need:
        return f"本赛事要求每场至少带{need}款产品（你选了{len(products)}款）。"
    return None


def report_minutes_refusal(filed_minutes: int, minutes: int) -> str | None:
    """A reported duration must be plausible for the filing."""
    limit = max(filed_minutes * PLAUSIBLE_FACTOR, filed_minutes + 60)
    if minutes > limit:
        return (
            f"实际时长{fmt_minutes(minutes)}比报备的{fmt_minutes(filed_minutes)}长太多了，请核对。"
        )
    return None
