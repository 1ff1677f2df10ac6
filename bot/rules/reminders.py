"""When reminders and digests are due: pure functions of the campaign and the instant.

Misfire policy (docs/jobs.md): every reminder has a window and is sent only inside it.
- A deadline reminder with offset `o` is due in [deadline − o, deadline). When several offsets'
  windows hold the instant (the bot was down), only the smallest is due: one timely reminder
  instead of a burst. Once the deadline passes nothing is sent.
- Before a stream: [start − before_stream, start). After it: [end + after_stream, end + 1 day).
- Progress nudges: once, from the middle of a phase until the first deadline reminder's window.
- A digest is due from its cron fire time for `DIGEST_GRACE` (an hour); later it is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from apscheduler.triggers.cron import CronTrigger

from bot.clock import SHANGHAI
from bot.rules.videos import closes_at, required_videos, video_phases
from config.campaign import Campaign, Phase, parse_offset

DeadlineKind = Literal["registration", "filing", "video"]
REPORT_WINDOW = timedelta(days=1)  # "report your figures" is useful for a day after a stream
DIGEST_GRACE = timedelta(hours=1)
_LOOKBACK = (timedelta(hours=1), timedelta(days=1), timedelta(days=32), timedelta(days=367))


@dataclass(frozen=True)
class Deadline:
    """A moment streamers must act before: registration closes, the last filing of a
    competition phase, a video deadline. Phases closing at the same instant share one."""

    kind: DeadlineKind
    at: datetime
    phases: tuple[Phase, ...]
    required: int = 0  # streams (filing) or videos (video) each streamer must reach

    @property
    def start(self) -> datetime:
        return min(p.start for p in self.phases)

    @property
    def name(self) -> str:
        return "、".join(f"「{p.name}」" for p in self.phases)

    @property
    def phase_keys(self) -> tuple[str, ...]:
        return tuple(p.key for p in self.phases)

    @property
    def stamp(self) -> str:
        """The deadline in idempotency keys: a moved deadline is a new reminder."""
        return self.at.astimezone(UTC).strftime("%Y%m%dT%H%M%S")


def filing_cutoff(campaign: Campaign, phase: Phase) -> datetime:
    """The last moment a stream of `phase` can still be filed (the notice the campaign asks)."""
    return phase.end - timedelta(hours=campaign.filing.min_notice_hours)


def deadlines(campaign: Campaign) -> list[Deadline]:
    found: list[tuple[DeadlineKind, datetime, Phase, int]] = []
    for phase in campaign.phases_of("registration"):
        found.append(("registration", phase.end, phase, 0))
    for phase in campaign.phases_of("competition"):
        found.append(("filing", filing_cutoff(campaign, phase), phase, phase.min_streams or 0))
    for phase in video_phases(campaign):
        found.append(("video", closes_at(phase), phase, required_videos(campaign, phase)))
    merged: dict[tuple[str, datetime], Deadline] = {}
    for kind, at, phase, required in found:
        same = merged.get((kind, at))
        if same is None:
            merged[(kind, at)] = Deadline(kind, at, (phase,), required)
        else:
            merged[(kind, at)] = Deadline(
                kind, at, (*same.phases, phase), max(same.required, required)
            )
    return sorted(merged.values(), key=lambda d: (d.at, d.kind))


def offsets(campaign: Campaign) -> list[timedelta]:
    return [parse_offset(o) for o in campaign.reminders.deadline_offsets]


def due_offset(at: datetime, offsets: Iterable[timedelta], now: datetime) -> timedelta | None:
    """The reminder due now for a deadline at `at`: the smallest offset whose window
    [at − offset, at) holds `now`; None when none does."""
    holding = [o for o in offsets if o > timedelta(0) and at - o <= now < at]
    return min(holding, default=None)


def progress_due(deadline: Deadline, offsets: Iterable[timedelta], now: datetime) -> bool:
    """A nudge toward the minimum from the middle of the phase until the deadline reminders
    take over (they carry the progress too): never two messages about one deadline at once."""
    if not deadline.required or deadline.kind == "registration":
        return False
    middle = deadline.start + (deadline.at - deadline.start) / 2
    return middle <= now < deadline.at - max(offsets, default=timedelta(0))


def before_stream_window(before: timedelta, now: datetime) -> tuple[datetime, datetime]:
    """Streams starting in (now, now + before] are due a reminder."""
    return now, now + before


def after_stream_window(after: timedelta, now: datetime) -> tuple[datetime, datetime]:
    """Streams that ended in (now − after − REPORT_WINDOW, now − after] are due one."""
    return now - after - REPORT_WINDOW, now - after


def _latest(trigger: CronTrigger, since: datetime, now: datetime) -> datetime | None:
    fire, latest = trigger.get_next_fire_time(None, since), None
    while fire is not None and fire <= now:
        latest = fire
        fire = trigger.get_next_fire_time(fire, fire)
    return latest.astimezone(UTC) if latest is not None else None


def last_fire(cron: str, now: datetime) -> datetime | None:
    """The latest fire time of a crontab (Asia/Shanghai) at or before `now`."""
    trigger = CronTrigger.from_crontab(cron, timezone=SHANGHAI)
    for back in _LOOKBACK:
        latest = _latest(trigger, now - back, now)
        if latest is not None:
            return latest
    return None


def digest_due(cron: str, now: datetime, grace: timedelta = DIGEST_GRACE) -> datetime | None:
    """The period (fire time) of the digest due now: a fire time at most `grace` ago."""
    return _latest(CronTrigger.from_crontab(cron, timezone=SHANGHAI), now - grace, now)


def fmt_left(delta: timedelta) -> str:
    """Time left, rounded down to the minute: '1天2小时', '2小时', '45分钟'."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days}天" if days else "", f"{hours}小时" if hours else ""]
    if not days:
        parts.append(f"{minutes}分钟" if minutes or not hours else "")
    return "".join(parts)


def fmt_offset(offset: timedelta) -> str:
    """An offset as it goes into keys: '1d', '2h', '30m', '1d12h'."""
    minutes = int(offset.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    text = (f"{days}d" if days else "") + (f"{hours}h" if hours else "")
    return text + (f"{minutes}m" if minutes or not text else "")
