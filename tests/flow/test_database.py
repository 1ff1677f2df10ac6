"""The database layer itself, on SQLite and PostgreSQL: readers never hold up writers."""

from __future__ import annotations

import threading

from sqlmodel import Session, select

from bot.clock import FrozenClock
from storage.db import Database
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
