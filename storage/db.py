"""Engines and transactions, for SQLite (default) and PostgreSQL (several instances).

Every unit of work runs in one transaction on a worker thread (`Database.run`), so the event
loop never waits on the database. SQLite has one writer: write transactions start with
`BEGIN IMMEDIATE` (a read-then-write transaction that starts deferred fails at once with
"database is locked" when another writer got there first), and a busy timeout makes writers
queue instead of failing. On PostgreSQL the same work takes a per-user advisory lock so two
instances handle one user's messages one after another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.types import DateTime, TypeDecorator
from sqlmodel import Session, SQLModel, create_engine

log = logging.getLogger(__name__)
T = TypeVar("T")
SQLITE_BUSY_MS = 30_000
READ_ONLY = "bot_read_only"  # an execution option: the transaction only reads


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
        """Serialise one user's work across instances (SQLite's single writer already does)."""
        if not self.is_sqlite:
            session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": key})

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

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.engine.dispose()
