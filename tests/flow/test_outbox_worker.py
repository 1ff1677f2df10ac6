"""The outbox worker over the real database (SQLite and PostgreSQL): delivery, retries with
backoff, dead letters, platform rate limits, leases after a crash, several workers at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlmodel import Session, col, select

from bot.clock import FrozenClock
from bot.outbox_worker import LEASE, OutboxWorker, Pacer, backoff
from bot.senders.base import DeliveryError
from storage.db import Database
from storage.models import Outbox
from storage.outbox import enqueue


class Recorder:
    """A sender that records what it delivers; `fail` decides per row whether it raises."""

    def __init__(
        self, channel: str = "web", fail: Callable[[Outbox], Exception | None] | None = None
    ) -> None:
        self.channel = channel
        self.fail = fail
        self.delivered: list[str] = []
        self.calls = 0

    async def deliver(self, message: Outbox) -> None:
        self.calls += 1
        await asyncio.sleep(0)  # let other deliveries interleave, as real I/O would
        error = self.fail(message) if self.fail else None
        if error is not None:
            raise error
        self.delivered.append(message.recipient)


def fill(db: Database, clock: FrozenClock, count: int, channel: str = "web") -> None:
    def work(session: Session) -> None:
        for i in range(count):
            enqueue(
                session,
                key=f"test:{channel}:{i}",
                channel=channel,
                recipient=f"u{i}",
                kind="test",
                text=f"第{i}条",
                now=clock.now(),
            )

    db.run_sync(work)


def rows(db: Database) -> list[Outbox]:
    return db.run_sync(lambda s: list(s.exec(select(Outbox).order_by(col(Outbox.id)))))


async def test_delivers_each_due_row_once(db: Database, clock: FrozenClock) -> None:
    fill(db, clock, 5)
    fill(db, clock, 2, channel="nowhere")  # no sender for it (yet): it waits
    sender = Recorder()
    worker = OutboxWorker(db, {"web": sender}, clock)
    assert await worker.run_once() == 5
    assert await worker.run_once() == 0
    assert sorted(sender.delivered) == [f"u{i}" for i in range(5)]
    by_channel = Counter((r.channel, r.status) for r in rows(db))
    assert by_channel == {("web", "sent"): 5, ("nowhere", "pending"): 2}
    assert {(r.attempts, r.sent_at) for r in rows(db) if r.channel == "web"} == {(1, clock.now())}
    assert worker.stats == {"sent": 5}


async def test_failures_back_off_then_go_dead(db: Database, clock: FrozenClock) -> None:
    fill(db, clock, 1)
    sender = Recorder(fail=lambda _m: DeliveryError("HTTP 502"))
    worker = OutboxWorker(db, {"web": sender}, clock, max_attempts=3)
    assert await worker.run_once() == 1
    [row] = rows(db)
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "HTTP 502")
    assert row.next_attempt_at == clock.now() + backoff(1)
    assert await worker.run_once() == 0  # not due yet
    clock.advance(backoff(1))
    assert await worker.run_once() == 1
    clock.advance(backoff(2))
    assert await worker.run_once() == 1
    [row] = rows(db)
    assert (row.status, row.attempts) == ("dead", 3)
    clock.advance(timedelta(days=1))
    assert await worker.run_once() == 0  # dead letters stay dead
    assert sender.calls == 3 and worker.stats == {"retried": 2, "dead": 1}


@pytest.mark.parametrize(
    ("attempts", "wait"),
    [
        (1, timedelta(seconds=30)),
        (2, timedelta(minutes=1)),
        (5, timedelta(minutes=8)),
        (20, timedelta(hours=1)),
    ],
)
def test_backoff_doubles_up_to_an_hour(attempts: int, wait: timedelta) -> None:
    assert backoff(attempts) == wait


async def test_permanent_errors_and_sender_bugs(db: Database, clock: FrozenClock) -> None:
    fill(db, clock, 2)

    def fail(message: Outbox) -> Exception:
        if message.recipient == "u0":
            return DeliveryError("blocked by the user", permanent=True)
        return KeyError("a bug in the sender")

    worker = OutboxWorker(db, {"web": Recorder(fail=fail)}, clock)
    assert await worker.run_once() == 2
    first, second = rows(db)
    assert (first.status, first.last_error) == ("dead", "blocked by the user")
    assert second.status == "pending" and "KeyError" in (second.last_error or "")


async def test_rate_limited_channel_waits_without_spending_attempts(
    db: Database, clock: FrozenClock
) -> None:
    fill(db, clock, 4)
    limited = {"on": True}

    def fail(_message: Outbox) -> Exception | None:
        return DeliveryError("429", retry_after=60) if limited["on"] else None

    sender = Recorder(fail=fail)
    worker = OutboxWorker(db, {"web": sender}, clock, concurrency=1)
    assert await worker.run_once() == 4
    assert sender.calls == 1  # the rest of the batch was handed back untried
    assert {(r.status, r.attempts) for r in rows(db)} == {("pending", 0)}
    assert rows(db)[0].next_attempt_at == clock.now() + timedelta(seconds=60)
    limited["on"] = False
    clock.advance(timedelta(seconds=59))
    assert await worker.run_once() == 0
    clock.advance(timedelta(seconds=1))
    assert await worker.run_once() == 4
    assert len(sender.delivered) == 4 and {r.status for r in rows(db)} == {"sent"}


async def test_a_crashed_delivery_is_retried_after_its_lease(
    db: Database, clock: FrozenClock
) -> None:
    fill(db, clock, 3)
    crashed = OutboxWorker(db, {"web": Recorder()}, clock)
    claimed = db.run_sync(lambda s: crashed._claim("web", 2, clock.now(), s))  # then kill -9
    assert [r.status for r in rows(db)] == ["sending", "sending", "pending"]
    assert len(claimed) == 2

    sender = Recorder()
    worker = OutboxWorker(db, {"web": sender}, clock)
    assert await worker.run_once() == 1  # leased rows are someone else's for now
    clock.advance(LEASE)
    assert await worker.run_once() == 2
    assert sorted(sender.delivered) == ["u0", "u1", "u2"]
    assert [(r.status, r.attempts) for r in rows(db)] == [("sent", 2), ("sent", 2), ("sent", 1)]


async def test_a_row_that_keeps_killing_its_worker_goes_dead(
    db: Database, clock: FrozenClock
) -> None:
    fill(db, clock, 1)
    worker = OutboxWorker(db, {"web": Recorder()}, clock, max_attempts=2)
    for _ in range(2):
        db.run_sync(lambda s: worker._claim("web", 1, clock.now(), s))
        clock.advance(LEASE)
    assert await worker.run_once() == 0
    [row] = rows(db)
    assert (row.status, row.attempts) == ("dead", 2)
    assert "lease expired" in (row.last_error or "")


async def test_concurrent_workers_deliver_each_row_exactly_once(
    db_url: str, clock: FrozenClock
) -> None:
    databases = [Database(db_url) for _ in range(3)]
    databases[0].create_all()
    fill(databases[0], clock, 300)
    senders = [Recorder() for _ in databases]
    workers = [
        OutboxWorker(d, {"web": s}, clock, batch=40, concurrency=8)
        for d, s in zip(databases, senders, strict=True)
    ]

    async def drain(worker: OutboxWorker) -> None:
        while await worker.run_once():
            pass

    await asyncio.gather(*(drain(w) for w in workers))
    delivered = [u for s in senders for u in s.delivered]
    assert sorted(delivered) == sorted(f"u{i}" for i in range(300))
    assert sum(1 for s in senders if s.delivered) >= 2  # they really shared the work
    assert {r.status for r in rows(databases[0])} == {"sent"}
    for d in databases:
        d.close()


async def test_a_slow_channel_claims_only_what_it_can_send_within_half_a_lease(
    db: Database, clock: FrozenClock
) -> None:
    fill(db, clock, 5)
    sender = Recorder()
    # 1 message a minute: half a 5-minute lease holds 2 (the first goes at once, no waiting).
    worker = OutboxWorker(db, {"web": sender}, clock, rate_limits={"web": 1 / 60})
    worker._pacers["web"] = Pacer(1 / 60, monotonic=lambda: 0.0, sleep=_no_sleep)
    assert await worker.run_once() == 2
    assert Counter(r.status for r in rows(db)) == {"sent": 2, "pending": 3}


async def _no_sleep(_seconds: float) -> None:
    return None


async def test_pacer_spaces_deliveries_evenly() -> None:
    now = [100.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(4, monotonic=lambda: now[0], sleep=sleep)
    for _ in range(5):
        await pacer.wait()
    assert slept == [0.25, 0.25, 0.25, 0.25]
    now[0] += 10  # idle: no debt builds up, no burst either
    await pacer.wait()
    assert len(slept) == 4


async def test_run_forever_delivers_and_stops_cleanly(db: Database, clock: FrozenClock) -> None:
    fill(db, clock, 3)
    stop = asyncio.Event()
    got_all = asyncio.Event()
    sender = Recorder()
    original = sender.deliver

    async def deliver(message: Outbox) -> None:
        await original(message)
        if len(sender.delivered) == 3:
            got_all.set()

    sender.deliver = deliver  # type: ignore[method-assign]
    senders: dict[str, Recorder] = {}
    worker = OutboxWorker(db, senders, clock, poll_seconds=0.01)
    task = asyncio.create_task(worker.run_forever(stop))
    senders["web"] = sender  # a sender registered after the worker started is picked up
    await asyncio.wait_for(got_all.wait(), 10)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert {r.status for r in rows(db)} == {"sent"}


async def test_stopping_hands_back_claimed_rows_untried(db: Database, clock: FrozenClock) -> None:
    fill(db, clock, 3)
    stop = asyncio.Event()
    sender = Recorder()
    worker = OutboxWorker(db, {"web": sender}, clock, concurrency=1, poll_seconds=0.01)
    original = sender.deliver

    async def deliver(message: Outbox) -> None:
        await original(message)
        stop.set()  # shutdown begins while the first row is out

    sender.deliver = deliver  # type: ignore[method-assign]
    await asyncio.wait_for(worker.run_forever(stop), 10)
    assert [(r.status, r.attempts) for r in rows(db)] == [
        ("sent", 1),
        ("pending", 0),
        ("pending", 0),
    ]
