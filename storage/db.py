"""Engines and transactions, for SQLite (default) and PostgreSQL (several instances).

Every unit of work runs in one transaction on a worker thread (`Database.run`), so the event
loop never waits on the database. SQLite has one writer: write transactions start with
`BEGIN IMMEDIATE` (a read-then-write transaction that starts deferred fails at once with
"database is locked" when another writer got there first), and a busy timeout makes writers
queue instead of failing. On PostgreSQL the same work takes a per-user advisory lock so two
instances handle one user's messages one after another.

Messages' flow steps are many small writes: `run_grouped` lets those that arrive together share
one transaction on one thread (group commit), so the hand-off to a thread and the transaction are
paid once per group instead of once per message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.types import DateTime, TypeDecorator
from sqlmodel import Session, SQLModel, create_engine

log = logging.getLogger(__name__)
T = TypeVar("T")
SQLITE_BUSY_MS = 30_000
READ_ONLY = "bot_read_only"  # an execution option: the transaction only reads
NO_WAIT = "bot_no_wait"  # a Session.info key: lock_user raises UserBusy instead of waiting
MAX_GROUP = 64  # units of work in one grouped transaction
Outcome = tuple[bool, Any]  # (True, result) or (False, exception)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC out; stored as naive UTC so SQLite and PostgreSQL agree."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


class DatabaseUnavailable(Exception):
    """The database did not answer; callers tell the user to try again shortly."""


class UserBusy(Exception):
    """A grouped unit found its user locked by another instance (PostgreSQL): waiting would
    hold up the whole group, so it waits elsewhere."""


class Database:
    def __init__(self, url: str, *, workers: int = 4) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite and self.url.database not in (None, "", ":memory:"):
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine = self._writer_engine(url)
        # Readers: a snapshot that cannot write. SQLite: a deferred BEGIN (see the listener);
        # PostgreSQL: a read-only transaction, one snapshot for all its queries.
        options: dict[str, Any] = {READ_ONLY: True}
        if not self.is_sqlite:
            options |= {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        self.reader = self.engine.execution_options(**options)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="db")
        # Groups in flight at once: one on SQLite (one writer anyway); on PostgreSQL as many as
        # the pool has threads, so a slow message holds up its own group only.
        self._lanes = 1 if self.is_sqlite else workers
        self._grouper = ThreadPoolExecutor(max_workers=self._lanes, thread_name_prefix="db-group")
        self._queued: list[tuple[Callable[[Session], Any], asyncio.Future[Any]]] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()  # groups, and units waiting for a busy user

    def _writer_engine(self, url: str) -> Engine:
        if not self.is_sqlite:
            return create_engine(
                url, pool_pre_ping=True, pool_size=8, max_overflow=8, hide_parameters=True
            )
        # hide_parameters: an error's log line must not carry names and mobile numbers.
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            hide_parameters=True,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let us issue BEGIN ourselves (pysqlite would begin deferred, too late to lock).
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # A reader (the board page and API, exports) takes a snapshot, never the write lock, so
            # a second-long computation does not hold up every message meanwhile.
            reader = conn.get_execution_options().get(READ_ONLY, False)
            conn.exec_driver_sql("BEGIN" if reader else "BEGIN IMMEDIATE")

        return engine

    def create_all(self) -> None:
        """The tables and the triggers that keep `report_totals` (idempotent). On PostgreSQL
        instances starting at once take turns."""
        import storage.models  # noqa: F401  (registers the tables)
        from storage import report_totals

        with self.engine.begin() as connection:
            if not self.is_sqlite:
                connection.execute(text("SELECT pg_advisory_xact_lock(7300)"))
            SQLModel.metadata.create_all(connection)
            report_totals.install(connection)

    def drop_all(self) -> None:
        import storage.models  # noqa: F401

        SQLModel.metadata.drop_all(self.engine)

    @contextmanager
    def session(self, *, read_only: bool = False) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on an exception.
        `read_only`: a snapshot that writes nothing (on SQLite it leaves the write lock free)."""
        if not read_only:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                yield session
            return
        with Session(self.reader, expire_on_commit=False) as session:
            session.begin()
            try:
                yield session
            finally:
                session.rollback()  # a reader never commits, whatever it was handed

    def lock_user(self, session: Session, key: str) -> None:
        """Serialise one user's work across instances (SQLite's single writer already does).
        In grouped work a user busy on another instance raises UserBusy: waiting would hold up
        the group, and two instances' groups could wait for each other."""
        if self.is_sqlite:
            return
        if not session.info.get(NO_WAIT):
            session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": key})
            return
        locked = session.execute(text("SELECT pg_try_advisory_xact_lock(hashtext(:k))"), {"k": key})
        if not locked.scalar_one():
            raise UserBusy(key)

    def run_sync(
        self, work: Callable[[Session], T], *, attempts: int = 3, read_only: bool = False
    ) -> T:
        """Run `work` in a transaction, retrying when the database was briefly unavailable."""
        for attempt in range(1, attempts + 1):
            try:
                with self.session(read_only=read_only) as session:
                    return work(session)
            except OperationalError as exc:
                if attempt == attempts:
                    raise DatabaseUnavailable(str(exc.orig)) from exc
                log.warning("database busy or unreachable (try %s): %s", attempt, exc.orig)
                time.sleep(0.2 * attempt)
            except DBAPIError as exc:
                if not exc.connection_invalidated or attempt == attempts:
                    raise
                time.sleep(0.2 * attempt)
        raise AssertionError("unreachable")

    async def run(self, work: Callable[[Session], T], *, read_only: bool = False) -> T:
        """`run_sync` on a worker thread, so the event loop stays free."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, partial(self.run_sync, work, read_only=read_only)
        )

    async def run_grouped(self, work: Callable[[Session], T]) -> T:
        """`run` for a message's small write: the units queued while the groups in flight run
        (up to MAX_GROUP) form the next group, run one after another in one transaction, each
        in a savepoint, committed once; each caller gets its own result or exception after the
        commit. A unit sees the writes of the units before it, as it would have once those
        committed.

        A unit that raises is rolled back to its savepoint and fails alone. When the database
        itself does not answer every caller gets DatabaseUnavailable. On PostgreSQL a unit whose
        user is locked by another instance waits for that user on the general pool, not holding
        up its group."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued.append((work, future))
        self._start_groups()
        return cast(T, await future)

    def _start_groups(self) -> None:
        while self._queued and self._in_flight < self._lanes:
            group, self._queued = self._queued[:MAX_GROUP], self._queued[MAX_GROUP:]
            group = [(work, future) for work, future in group if not future.done()]  # cancelled
            if group:
                self._in_flight += 1
                self._spawn(self._run_and_answer(group))

    async def _run_and_answer(
        self, group: list[tuple[Callable[[Session], Any], asyncio.Future[Any]]]
    ) -> None:
        loop = asyncio.get_running_loop()
        handed: set[asyncio.Future[Any]] = set()  # to a task that waits for a busy user
        try:
            works = [work for work, _ in group]
            try:
                outcomes = await loop.run_in_executor(self._grouper, self._run_group, works)
            except Exception as exc:  # the executor is shut down: the service is stopping
                outcomes = [(False, exc)] * len(group)
            for (work, future), (ok, value) in zip(group, outcomes, strict=True):
                if future.done():  # its caller was cancelled meanwhile
                    continue
                if isinstance(value, UserBusy):
                    handed.add(future)
                    self._spawn(self._wait_for_user(work, future))
                else:
                    _settle(future, ok, value)
        finally:
            for _, future in group:
                if not future.done() and future not in handed:
                    future.cancel()  # this task was cancelled: the loop is stopping
            self._in_flight -= 1
            self._start_groups()

    def _run_group(self, works: list[Callable[[Session], Any]]) -> list[Outcome]:
        try:
            return self.run_sync(partial(_in_turn, works))
        except DatabaseUnavailable as exc:
            if len(works) == 1 or not self._answers():
                return [(False, exc)] * len(works)
            # A unit's own statement failed like an outage would (SQLite: "no such column").
            log.warning("a group of %d units failed (%s): each runs alone", len(works), exc)
        except Exception as exc:  # the commit failed, or a unit broke the transaction itself
            if len(works) == 1:
                return [(False, exc)]
            log.warning("a group of %d units failed (%r): each runs alone", len(works), exc)
        return [outcome for work in works for outcome in self._run_group([work])]

    def _answers(self) -> bool:
        """Whether a write transaction begins and answers (SQLite: the write lock is free). A
        unit's own OperationalError, such as a bad statement, must not pass for an outage."""
        try:
            self.run_sync(lambda s: s.execute(text("SELECT 1")), attempts=1)
        except Exception:
            return False
        return True

    async def _wait_for_user(
        self, work: Callable[[Session], Any], future: asyncio.Future[Any]
    ) -> None:
        try:
            result = await self.run(work)
        except Exception as exc:
            _settle(future, False, exc)
        else:
            _settle(future, True, result)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        self._grouper.shutdown(wait=True)
        self._executor.shutdown(wait=True)
        self.engine.dispose()


def _in_turn(works: list[Callable[[Session], Any]], session: Session) -> list[Outcome]:
    """Grouped units one after another, each in a savepoint (which also flushes the writes of
    the units before it, so Core reads see them), none waiting for a user's lock. A unit's
    exception rolls back its savepoint only; a lost connection or a broken transaction ends
    the group (run_sync retries it)."""
    session.info[NO_WAIT] = True
    outcomes: list[Outcome] = []
    for work in works:
        try:
            with session.begin_nested():
                outcomes.append((True, work(session)))
        except (OperationalError, InterfaceError):
            raise
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise
            outcomes.append((False, exc))
        except Exception as exc:
            outcomes.append((False, exc))
    return outcomes


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    elif isinstance(value, StopIteration):  # a future refuses it
        future.set_exception(RuntimeError(repr(value)))
    else:
        future.set_exception(value)
