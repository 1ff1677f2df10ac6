"""Delivering the outbox: claim due rows, hand each to its channel's sender, record the outcome.

A row goes pending → sending (claimed under a lease) → sent; a failure puts it back to pending
with exponential backoff, and after `max_attempts` (or a permanent error) it is dead: organizers
see dead letters in the digest. A platform's "slow down" (`DeliveryError.retry_after`) does not
count as an attempt; it pauses that channel.

Claims are one statement: `UPDATE … WHERE id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)
RETURNING …`, so on PostgreSQL every instance may run a worker and no row is claimed twice; on
SQLite the write lock (`BEGIN IMMEDIATE`) makes the same statement atomic.

Exactly once? A row exists once (its unique key) and is claimed by one worker at a time, so it is
never lost and never delivered concurrently. The edge is a crash after the platform accepted a
message and before its row was marked sent: when the lease runs out the row is delivered again.
That window is at most two chunks (`concurrency` messages each, marked sent in one transaction
right after they were accepted, while the next chunk goes out): at-least-once at the platform,
exactly-once in the outbox. docs/jobs.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import update
from sqlmodel import Session, col, select

from bot.clock import Clock
from bot.senders.base import DeliveryError, Sender
from storage.db import Database
from storage.models import Outbox

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)  # longer than any delivery: senders time out well before
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)
CONCURRENCY = 32  # deliveries in flight per channel; two chunks: the resend window after a crash
POLL_SECONDS = 1.0
# Messages a second per channel (PLATFORM-NOTES): Feishu 1000/min per app; WeChat publishes no
# rate for customer-service messages, 20/s stays well clear. WeCom's limit is per robot (20/min):
# its sender keeps it and hands rows back with `retry_after`, so no channel-wide cap here.
DEFAULT_RATE_LIMITS: dict[str, float] = {"wechat": 20.0, "feishu": 15.0}


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed try: 30 s, 1 min, 2 min, … at most an hour."""
    return min(BACKOFF_BASE * 2 ** max(attempts - 1, 0), BACKOFF_CAP)


class Pacer:
    """At most `rate` deliveries a second on one channel, evenly spaced."""

    def __init__(
        self,
        rate: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval = 1 / rate
        self._monotonic = monotonic
        self._sleep = sleep
        self._next = 0.0

    async def wait(self) -> None:
        now = self._monotonic()
        turn = max(now, self._next)
        self._next = turn + self.interval  # claimed before sleeping: concurrent callers queue
        if turn > now:
            await self._sleep(turn - now)


Outcome = tuple[Outbox, DeliveryError | None]


class OutboxWorker:
    def __init__(
        self,
        db: Database,
        senders: Mapping[str, Sender],
        clock: Clock,
        *,
        max_attempts: int = 6,
        batch: int = 500,
        rate_limits: Mapping[str, float] | None = None,
        lease: timedelta = LEASE,
        concurrency: int = CONCURRENCY,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.db = db
        self.senders = senders  # read on every run: senders registered later are picked up
        self.clock = clock
        self.max_attempts = max_attempts
        self.batch = batch
        self.lease = lease
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.stats: Counter[str] = Counter()  # sent | retried | deferred | dead
        self._pacers = {c: Pacer(r) for c, r in (rate_limits or {}).items() if r > 0}
        self._stop = asyncio.Event()

    async def run_once(self) -> int:
        """One claim-and-deliver round on every channel; the number of rows claimed."""
        claimed = await asyncio.gather(*(self._run_channel(c) for c in list(self.senders)))
        return sum(claimed)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """A delivery loop per channel until `stop`; a claimed chunk is finished first."""
        self._stop = stop
        loops: dict[str, asyncio.Task[None]] = {}
        while not stop.is_set():
            for channel in list(self.senders):
                if channel not in loops:
                    loops[channel] = asyncio.create_task(self._channel_loop(channel))
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_seconds)
        await asyncio.gather(*loops.values())

    async def _channel_loop(self, channel: str) -> None:
        while not self._stop.is_set():
            try:
                claimed = await self._run_channel(channel)
            except Exception:  # the database is away: try again after a pause, never die
                log.exception("outbox delivery on %s failed", channel)
                claimed = 0
            if not claimed:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.poll_seconds)

    # One channel ------------------------------------------------------------------------
    def _claim_limit(self, channel: str) -> int:
        """No more than the channel's rate lets us deliver within half a lease."""
        pacer = self._pacers.get(channel)
        if pacer is None:
            return self.batch
        return max(1, min(self.batch, int(self.lease.total_seconds() / 2 / pacer.interval)))

    async def _run_channel(self, channel: str) -> int:
        sender = self.senders.get(channel)
        if sender is None:
            return 0
        limit = self._claim_limit(channel)
        rows = await self.db.run(partial(self._claim, channel, limit, self.clock.now()))
        # A chunk's outcome is written while the next chunk is out: the database and the
        # platform work at the same time. At most two chunks are unrecorded at any moment.
        recording: asyncio.Future[None] | None = None
        for start in range(0, len(rows), self.concurrency):
            if self._stop.is_set():
                await _settled(recording)
                await self._release(rows[start:], self.clock.now())
                break
            chunk = rows[start : start + self.concurrency]
            errors = await asyncio.gather(*(self._deliver(sender, channel, r) for r in chunk))
            outcomes = list(zip(chunk, errors, strict=True))
            await _settled(recording)
            recording = asyncio.ensure_future(
                self.db.run(partial(self._record, outcomes, self.clock.now()))
            )
            waits = [e.retry_after for e in errors if e is not None and e.retry_after is not None]
            if waits:  # the platform asked us to slow down: the rest waits too
                await _settled(recording)
                await self._release(rows[start + len(chunk) :], self.clock.now(), max(waits))
                break
        await _settled(recording)
        return len(rows)

    def _claim(self, channel: str, limit: int, now: datetime, session: Session) -> list[Outbox]:
        # A row whose lease ran out max_attempts times keeps killing its worker: give up on it.
        session.execute(
            update(Outbox)
            .where(
                Outbox.channel == channel,
                Outbox.status == "sending",
                Outbox.next_attempt_at <= now,
                Outbox.attempts >= self.max_attempts,
            )
            .values(status="dead", last_error="delivery never finished (lease expired)")
        )
        due = (
            select(Outbox.id)
            .where(
                Outbox.channel == channel,
                col(Outbox.status).in_(("pending", "sending")),
                Outbox.next_attempt_at <= now,
            )
            .order_by(col(Outbox.next_attempt_at), col(Outbox.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claimed = session.scalars(
            update(Outbox)
            .where(col(Outbox.id).in_(due))
            .values(
                status="sending", attempts=Outbox.attempts + 1, next_attempt_at=now + self.lease
            )
            .returning(Outbox)
            .execution_options(synchronize_session=False)
        ).all()
        return sorted(claimed, key=lambda row: row.id or 0)

    async def _deliver(self, sender: Sender, channel: str, row: Outbox) -> DeliveryError | None:
        pacer = self._pacers.get(channel)
        if pacer is not None:
            await pacer.wait()
        try:
            await sender.deliver(row)
        except DeliveryError as error:
            return error
        except Exception as exc:  # a sender's bug must not stop the others: retry, then dead
            log.exception("sender %s failed on outbox row %s", channel, row.id)
            return DeliveryError(f"{type(exc).__name__}: {exc}")
        return None

    def _record(self, outcomes: Sequence[Outcome], now: datetime, session: Session) -> None:
        sent = [row.id for row, error in outcomes if error is None]
        if sent:
            session.execute(
                update(Outbox)
                .where(col(Outbox.id).in_(sent))
                .values(status="sent", sent_at=now, last_error=None)
            )
            self.stats["sent"] += len(sent)
        for row, error in outcomes:
            if error is None:
                continue
            values = self._after_failure(row, error, now)
            self.stats["dead" if values["status"] == "dead" else "retried"] += 1
            session.execute(
                update(Outbox)
                .where(
                    Outbox.id == row.id,
                    Outbox.status == "sending",
                    Outbox.attempts == row.attempts,  # our claim, not a later one
                )
                .values(**values)
            )

    def _after_failure(self, row: Outbox, error: DeliveryError, now: datetime) -> dict[str, object]:
        reason = error.reason[:500]
        if error.permanent or (error.retry_after is None and row.attempts >= self.max_attempts):
            log.warning("outbox row %s is dead after %s tries: %s", row.id, row.attempts, reason)
            return {"status": "dead", "last_error": reason}
        if error.retry_after is not None:  # rate limited: not the message's fault
            wait = timedelta(seconds=error.retry_after)
            return {
                "status": "pending",
                "attempts": row.attempts - 1,
                "next_attempt_at": now + wait,
                "last_error": reason,
            }
        return {
            "status": "pending",
            "next_attempt_at": now + backoff(row.attempts),
            "last_error": reason,
        }

    async def _release(self, rows: Sequence[Outbox], now: datetime, wait: float = 0) -> None:
        """Hand claimed rows back untried (shutting down, or the channel must wait)."""
        if not rows:
            return
        self.stats["deferred"] += len(rows)
        ids = [row.id for row in rows]

        def release(session: Session) -> None:
            session.execute(
                update(Outbox)
                .where(col(Outbox.id).in_(ids), Outbox.status == "sending")
                .values(
                    status="pending",
                    attempts=Outbox.attempts - 1,
                    next_attempt_at=now + timedelta(seconds=wait),
                )
            )

        await self.db.run(release)


async def _settled(recording: asyncio.Future[None] | None) -> None:
    if recording is not None:
        await recording
