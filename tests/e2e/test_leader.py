"""Two `serve` processes on one database: exactly one runs the jobs, each digest is sent once, and
after a kill -9 of the leader the other takes over within a minute."""

from __future__ import annotations

import shutil
import time
from contextlib import ExitStack
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from bot.clock import parse_instant
from bot.jobs import APPLICATION_NAME
from config.settings import ROOT
from storage.db import Database
from storage.models import Filing, Outbox, Registration
from tests.e2e.test_fanout_crash import kill_9, serving, wait_for

NOW = "2024-09-12T20:59:52+08:00"  # the demo campaign's digest goes out at 21:00


@pytest.fixture
def campaigns_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "campaigns"
    directory.mkdir()
    shutil.copy(ROOT / "config/campaigns/demo.yaml", directory)
    return directory


def leader_pid(db_url: str, reader: Engine) -> int | None:
    """Which process holds the jobs lock, as the operating system or PostgreSQL sees it."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        lock = Path(f"{url.database}.jobs.lock")
        if not lock.exists():
            return None
        inode = lock.stat().st_ino
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(inode):
                return int(fields[4])
        return None
    with reader.connect() as conn:
        name = conn.execute(
            text(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE :app"
            ),
            {"app": f"{APPLICATION_NAME}:%"},
        ).scalar()
    return int(name.rsplit(":", 1)[1]) if name else None


def outbox(reader: Engine) -> list[tuple[str, str, str]]:
    """(key, recipient, status) of every outbox row."""
    with reader.connect() as conn:
        rows = conn.execute(select(Outbox.key, Outbox.recipient, Outbox.status)).all()
    return [(key, recipient, status) for key, recipient, status in rows]


def test_one_leader_each_digest_once_and_failover(db_url: str, campaigns_dir: Path) -> None:
    db = Database(db_url)
    db.create_all()
    reader = create_engine(db_url)
    env = {"BOT_CAMPAIGNS_DIR": str(campaigns_dir)}
    with ExitStack() as stack:
        servers = [stack.enter_context(serving(db_url, NOW, **env))[1] for _ in range(2)]
        pids = {p.pid: p for p in servers}
        wait_for(lambda: leader_pid(db_url, reader) in pids, "a leader", 30)
        leader = leader_pid(db_url, reader)

        # Both instances up at 21:00: the digest is written and delivered once.
        wait_for(lambda: any(s == "sent" for _k, _r, s in outbox(reader)), "the digest", 60)
        [(key, recipient, status)] = outbox(reader)
        assert key.startswith("digest:demo:20240912T1300:web:organizer")
        assert (recipient, status) == ("organizer", "sent")

        # kill -9 the leader: the other takes over within a minute.
        assert leader is not None
        killed_at = time.monotonic()
        kill_9(pids[leader])
        survivor = next(pid for pid in pids if pid != leader)
        wait_for(lambda: leader_pid(db_url, reader) == survivor, "the takeover", 60)
        assert time.monotonic() - killed_at < 60

        # The new leader runs the jobs: a stream about to start gets its reminder, once.
        add_stream_soon(db)
        wait_for(lambda: len(outbox(reader)) == 2, "the new leader's reminder", 60)
        wait_for(lambda: {s for _k, _r, s in outbox(reader)} == {"sent"}, "its delivery", 60)
        keys = [k for k, _r, _s in outbox(reader)]
        assert len(keys) == len(set(keys)) == 2
        assert any(k.startswith("stream_start:demo:") for k in keys)
    reader.dispose()
    db.close()


def add_stream_soon(db: Database) -> None:
    """An approved stream starting 20 minutes after the rehearsal's 21:00."""
    start = parse_instant("2024-09-12T21:20:00+08:00")

    def write(session: Session) -> None:
        reg = Registration(
            campaign_id="demo",
            channel="web",
            user_id="streamer",
            name="王小文",
            mobile="13812345678",
            age=25,
            identity="电商从业者",
            platform="抖音",
            handle="wxw",
            fans=100,
            past_sales=Decimal(0),
            group_key="rookie",
            status="approved",
            pledged_at=start,
            created_at=start,
            updated_at=start,
        )
        session.add(reg)
        session.flush()
        assert reg.id is not None
        session.add(
            Filing(
                campaign_id="demo",
                registration_id=reg.id,
                phase_key="competition",
                start_at=start,
                end_at=start + timedelta(hours=1),
                minutes=60,
                platform="抖音",
                venue="演示电商中心直播间",
                status="approved",
                created_at=start,
                updated_at=start,
            )
        )

    db.run_sync(write)
