"""Video rules (作品): when links may be submitted and how many each phase asks for."""

from __future__ import annotations

from datetime import datetime

from bot.rules.formatting import fmt_when
from config.campaign import Campaign, Phase


def video_phases(campaign: Campaign) -> list[Phase]:
    """Phases that take videos: video phases, and others that set a video deadline or minimum."""
    return [
        p
        for p in campaign.phases
        if p.kind == "video" or p.video_deadline is not None or p.min_videos is not None
    ]


def closes_at(phase: Phase) -> datetime:
    return phase.video_deadline or phase.end


def open_video_phase(campaign: Campaign, now: datetime) -> Phase | None:
    return next((p for p in video_phases(campaign) if p.start <= now <= closes_at(p)), None)


def window_refusal(campaign: Campaign, now: datetime) -> str | None:
    """Why no video may be submitted now, naming the window; None when one is open."""
    phases = video_phases(campaign)
    if not phases:
        return f"「{campaign.title}」没有短视频作品环节。"
    if open_video_phase(campaign, now):
        return None
    past = [p for p in phases if closes_at(p) < now]
    upcoming = sorted((p for p in phases if p.start > now), key=lambda p: p.start)
    parts = []
    if past:
        last = max(past, key=closes_at)
        parts.append(f"「{last.name}」的作品提交已于{fmt_when(closes_at(last))}截止")
    if upcoming:
        parts.append(
            f"下一次作品提交将于{fmt_when(upcoming[0].start)}开始（「{upcoming[0].name}」）"
        )
    return "；".join(parts) + "。"


def required_videos(campaign: Campaign, phase: Phase) -> int:
    return phase.min_videos or campaign.videos.min_count


def progress_text(submitted: int, required: int, pending: int = 0) -> str:
    """Progress toward the minimum; `pending` of the submitted wait for an organizer's check."""
    note = f"（其中{pending}个待组委会核实）" if pending else ""
    if not required:
        return f"已提交{submitted}个作品{note}。"
    if submitted < required:
        return f"已提交 {submitted}/{required}{note}，还差{required - submitted}个。"
    counted = f"已提交{submitted}个" if submitted > required else f"已提交 {submitted}/{required}"
    if submitted - pending < required:  # met only once the pending ones pass
        return f"{counted}{note}，核实通过后即达到要求（至少{required}个）。"
    if submitted > required:
        return f"{counted}{note}，已达到要求（至少{required}个）。"
    return f"{counted}{note}，已达到要求。"
