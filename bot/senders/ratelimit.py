"""Sliding-window rate limits for outbound platform calls (5 per second per Feishu chat, 20 a
minute per WeCom robot, ...). Times are monotonic seconds passed in by the caller, so the
arithmetic is plain and testable; `Pacer` adds the waiting on the event loop."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    count: int
    per_seconds: float


class SlidingWindow:
    """At most `limit.count` events in any `limit.per_seconds`, per key; plus a pause a platform
    asked for (429 with a reset time) that holds the key until it is over."""

    def __init__(self, limit: Limit) -> None:
        self.limit = limit
        self._events: dict[str, deque[float]] = {}
        self._paused_until: dict[str, float] = {}

    def wait_for(self, key: str, now: float, n: int = 1) -> float:
        """Seconds until `n` more events fit for `key` (0 when they fit now)."""
        if n > self.limit.count:
            raise ValueError(f"{n} events can never fit a limit of {self.limit.count}")
        events = self._events.get(key, deque())
        while events and events[0] <= now - self.limit.per_seconds:
            events.popleft()
        wait = max(0.0, self._paused_until.get(key, 0.0) - now)
        excess = len(events) + n - self.limit.count
        if excess > 0:
            wait = max(wait, events[excess - 1] + self.limit.per_seconds - now)
        return wait

    def record(self, key: str, now: float) -> None:
        self._events.setdefault(key, deque()).append(now)

    def pause(self, key: str, until: float) -> None:
        self._paused_until[key] = max(self._paused_until.get(key, 0.0), until)


class Pacer:
    """Waits on the event loop until every window has room, then records the call in all."""

    def __init__(self, time: Callable[[], float] | None = None) -> None:
        self._time = time

    def now(self) -> float:
        return self._time() if self._time else asyncio.get_running_loop().time()

    async def acquire(
        self, slots: list[tuple[SlidingWindow, str]], *, max_wait: float = float("inf")
    ) -> float:
        """0 once the call is recorded; else the wait it would need, when above `max_wait`
        (the caller hands the message back for a later retry instead of holding on)."""
        while True:
            now = self.now()
            wait = max((w.wait_for(key, now) for w, key in slots), default=0.0)
            if wait <= 0:
                # No await between the check and the record: no other sender can slip in.
                for window, key in slots:
                    window.record(key, now)
                return 0.0
            if wait > max_wait:
                return wait
            await asyncio.sleep(wait)
