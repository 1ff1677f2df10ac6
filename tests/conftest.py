"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL comes from TEST_DATABASE_URL (default: the local server, database `test`); each test
gets its own schema. Where the server is absent the PostgreSQL half skips with the reason, except
when REQUIRE_POSTGRES or CI is set: there an absent server fails the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.clock import SHANGHAI, FrozenClock
from config.campaign import Campaign, campaign_files, load_campaigns
from config.settings import ROOT
from storage.db import Database

PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_PG = bool(os.environ.get("REQUIRE_POSTGRES") or os.environ.get("CI"))
_pg_error: str | None = None


def _postgres_error() -> str | None:
    """Why PostgreSQL cannot be used, or None when it answers (checked once)."""
    global _pg_error
    if _pg_error is None:
        try:
            engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.execute(text("select 1"))
            engine.dispose()
            _pg_error = ""
        except Exception as exc:
            _pg_error = f"PostgreSQL at {make_url(PG_URL).render_as_string()} unreachable: {exc}"
    return _pg_error or None


@pytest.fixture(scope="session")
def all_campaigns() -> dict[str, Campaign]:
    return load_campaigns(campaign_files(ROOT / "config" / "campaigns"))


@contextmanager
def database_url(kind: str, tmp: Path) -> Iterator[str]:
    """A SQLite file under `tmp`, or a fresh PostgreSQL schema dropped afterwards (skipped where
    the server is absent, failed then under REQUIRE_POSTGRES or CI)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'bot.sqlite3'}"
        return
    error = _postgres_error()
    if error:
        if REQUIRE_PG:
            pytest.fail(f"{error} (REQUIRE_POSTGRES/CI set: PostgreSQL tests must run)")
        pytest.skip(error)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """The database layer itself over `db_url`, tables created."""
    database = Database(db_url)
    database.create_all()
    yield database
    database.close()


def shanghai(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)  # type: ignore[misc]


@pytest.fixture
def clock() -> FrozenClock:
    """Inside 利通 第一期's registration phase unless a test moves it."""
    return FrozenClock(shanghai(2024, 9, 8, 10, 0))
