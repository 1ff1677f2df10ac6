"""The one clock. It can start at a given instant (`--now`) and then runs on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Clock:
    """Wall time, optionally shifted so that it started at `start` (a rehearsal)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._offset = timedelta(0)
        if start is not None:
            self._offset = _aware(start) - datetime.now(UTC)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def local(self) -> datetime:
        return self.now().astimezone(SHANGHAI)


class FrozenClock(Clock):
    """A clock that moves only when told to: for tests."""

    def __init__(self, start: datetime) -> None:
        super().__init__()
        self._now = _aware(start)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = _aware(when)

    def advance(self, delta: timedelta) -> None:
        self._now += delta


def _aware(when: datetime) -> datetime:
    """Naive instants are Asia/Shanghai, the campaigns' time zone."""
    return when if when.tzinfo else when.replace(tzinfo=SHANGHAI)


def parse_instant(text: str) -> datetime:
    """An ISO-8601 instant for `--now`; without an offset it is Asia/Shanghai."""
    return _aware(datetime.fromisoformat(text)).astimezone(UTC)
