"""The database layer itself, on SQLite and PostgreSQL: readers never hold up writers; grouped
units share a transaction, and one unit's failure or busy user stays its own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import datetime

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import ProgrammingError
from sqlmodel import Session, select

from bot.clock import FrozenClock
from storage.db import Database, DatabaseUnavailable
from storage.models import ChannelUser


def test_a_long_read_does_not_hold_up_a_write(db: Database, clock: FrozenClock) -> None:
    """A reader (the board takes a second at 50,000 streamers) reads without the write lock:
    a message written meanwhile commits at once. Here the reader stays in its transaction until
    the write is done, which could never happen if it held the lock (SQLite's BEGIN IMMEDIATE)."""
    reading, written = threading.Event(), threading.Event()
    outcome: list[bool] = []

    def read(session: Session) -> None:
        session.exec(select(ChannelUser)).all()
        reading.set()
        outcome.append(written.wait(timeout=10))

    reader = threading.Thread(target=lambda: db.run_sync(read, read_only=True))
    reader.start()
    assert reading.wait(timeout=10)
    visit = ChannelUser(channel="web", user_id="u1", last_inbound_at=clock.now())
    db.run_sync(lambda s: s.add(visit))
    written.set()
    reader.join(timeout=20)
    assert outcome == [True], "the write waited for the reader"
    assert db.run_sync(lambda s: len(s.exec(select(ChannelUser)).all()), read_only=True) == 1


def test_a_reader_never_commits(db: Database, clock: FrozenClock) -> None:
    visit = ChannelUser(channel="web", user_id="u1", last_inbound_at=clock.now())
    db.run_sync(lambda s: s.add(visit), read_only=True)
    assert db.run_sync(lambda s: s.exec(select(ChannelUser)).all()) == []


def _visit(user: str, now: datetime) -> Callable[[Session], str]:
    def work(session: Session) -> str:
        session.add(ChannelUser(channel="web", user_id=user, last_inbound_at=now))
        return user

    return work


def _visitors(db: Database) -> list[str]:
    rows = db.run_sync(lambda s: s.exec(select(ChannelUser.user_id)).all(), read_only=True)
    return sorted(rows)


async def test_units_arriving_together_share_one_transaction(
    db: Database, clock: FrozenClock
) -> None:
    commits: list[int] = []
    event.listen(db.engine, "commit", lambda _conn: commits.append(1))
    users = [f"u{n:02d}" for n in range(20)]
    results = await asyncio.gather(*(db.run_grouped(_visit(u, clock.now())) for u in users))
    assert results == users
    assert _visitors(db) == users
    assert len(commits) < len(users) // 2  # the first units start at once, alone


async def test_a_failing_unit_fails_alone(db: Database, clock: FrozenClock) -> None:
    def broken(session: Session) -> str:
        _visit("u-broken", clock.now())(session)
        raise ValueError("a bug in one flow")

    units = [_visit("u1", clock.now()), broken, _visit("u2", clock.now())]
    results = await asyncio.gather(*(db.run_grouped(u) for u in units), return_exceptions=True)
    assert results[0] == "u1" and results[2] == "u2"
    assert isinstance(results[1], ValueError)
    assert _visitors(db) == ["u1", "u2"]


async def test_a_units_own_database_error_is_not_an_outage(
    db: Database, clock: FrozenClock
) -> None:
    """A bad statement (OperationalError, like an outage) fails its unit alone: the database
    still answers, so the other units run and their callers hear nothing of it."""

    def bad_statement(session: Session) -> str:
        session.execute(text("SELECT no_such_column FROM channel_user"))
        return "never"

    units = [_visit("u1", clock.now()), bad_statement, _visit("u2", clock.now())]
    results = await asyncio.gather(*(db.run_grouped(u) for u in units), return_exceptions=True)
    assert results[0] == "u1" and results[2] == "u2"
    assert isinstance(results[1], (DatabaseUnavailable, ProgrammingError))
    assert _visitors(db) == ["u1", "u2"]


async def test_a_user_busy_on_another_instance_does_not_hold_up_the_group(
    db: Database, clock: FrozenClock
) -> None:
    """PostgreSQL: another instance holds u1 (its advisory lock); u2's message, grouped with
    u1's, is answered meanwhile, and u1's once the other instance lets go."""
    if db.is_sqlite:
        pytest.skip("per-user advisory locks are PostgreSQL's (SQLite has one writer)")

    def message_of(user: str) -> Callable[[Session], str]:
        def work(session: Session) -> str:
            db.lock_user(session, f"web:{user}")
            return _visit(user, clock.now())(session)

        return work

    holding, release = threading.Event(), threading.Event()

    def other_instance(session: Session) -> None:
        db.lock_user(session, "web:u1")
        holding.set()
        release.wait(timeout=20)

    other = threading.Thread(target=lambda: db.run_sync(other_instance))
    other.start()
    assert holding.wait(timeout=10)
    first = asyncio.ensure_future(db.run_grouped(message_of("u1")))
    second = db.run_grouped(message_of("u2"))
    try:
        assert await asyncio.wait_for(second, timeout=10) == "u2"
        assert not first.done()
    finally:
        release.set()
    assert await asyncio.wait_for(first, timeout=10) == "u1"
    other.join(timeout=10)
    assert _visitors(db) == ["u1", "u2"]


async def test_a_unit_sees_the_writes_of_the_units_before_it(
    db_url: str, clock: FrozenClock
) -> None:
    """A unit's Core reads (the leaderboard's, the dedup lookup) see what the units before it
    in its group wrote through the ORM, as they would after those committed."""
    one_lane = Database(db_url, workers=1)  # one group in flight, on PostgreSQL too
    one_lane.create_all()
    started, go = threading.Event(), threading.Event()

    def first(session: Session) -> str:
        started.set()
        go.wait(timeout=10)
        return "first"

    def count(session: Session) -> int:
        visitors = session.connection().execute(text("SELECT count(*) FROM channel_user"))
        return int(visitors.scalar_one())

    try:
        running = asyncio.ensure_future(one_lane.run_grouped(first))
        assert await asyncio.to_thread(started.wait, 10)
        grouped = [
            asyncio.ensure_future(one_lane.run_grouped(unit))
            for unit in (_visit("u1", clock.now()), count)
        ]
        await asyncio.sleep(0)  # both queued, behind the running group
        go.set()
        assert await asyncio.gather(running, *grouped) == ["first", "u1", 1]
    finally:
        go.set()
        one_lane.close()
