"""Reminders through the real command line and server, with real kill -9s: each recipient gets
exactly one reminder, none is lost, and a re-run adds nothing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, create_engine, func, insert, select
from sqlmodel import col

from bot.clock import parse_instant
from config.settings import ROOT
from storage.db import Database
from storage.models import Outbox, Registration

PY = sys.executable
FANOUT = 10_000
# 利通 第一期: 探店 videos close 2024-10-15 23:59:59; a day before, everyone below 1 video is due.
VIDEO_DAY = "2024-10-15T09:00:00+08:00"


def env_for(db_url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": db_url, "BOT_ENV": "dev", **extra}


def start(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PY, str(ROOT / "run_bot.py"), *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def serving(db_url: str, now: str, **env: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    proc = start("serve", "--port", str(port), "--now", now, env=env_for(db_url, **env))
    try:
        wait_for(lambda: healthy(port) or proc.poll() is not None, "the server")
        assert proc.poll() is None, "the server exited"
        yield port, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=30)


def get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.load(response)


def say(port: int, user: str, text: str) -> str:
    body = json.dumps({"user": user, "text": text}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/dev/messages", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return "\n".join(r["text"] for r in json.load(response)["replies"])


def remind(db_url: str, now: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, str(ROOT / "run_bot.py"), "remind", "--campaign", "litong-2024", "--now", now],
        capture_output=True,
        text=True,
        timeout=300,
        env=env_for(db_url),
        cwd=ROOT,
    )


def kill_9(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_reminders_once_in_the_dev_outbox_and_a_rerun_adds_nothing(db_url: str) -> None:
    """Done when: with --now a day before 利通's registration closes, everyone concerned (their
    sign-up unfinished) has the reminder once in /dev/outbox; running remind again adds nothing."""
    with serving(db_url, "2024-09-10T12:00:00+08:00") as (port, _server):
        for user in ("a", "b", "c"):
            first = say(port, user, "报名")
            if "多个赛事" in first:
                say(port, user, "我在利通带好货·第一期")
        say(port, "b", "王小文")
        assert get(port, "/dev/outbox") == []  # the server's own sweep: not due yet at noon

        day_before = "2024-09-11T00:30:00+08:00"
        result = remind(db_url, day_before)
        assert result.returncode == 0, result.stderr
        assert "3 reminder(s) enqueued for litong-2024" in result.stdout
        # Delivered by the command or by the server's worker, whichever claimed them first.
        wait_for(lambda: {r["status"] for r in get(port, "/dev/outbox")} == {"sent"}, "delivery")
        listed = get(port, "/dev/outbox")
        assert sorted(r["recipient"] for r in listed) == ["a", "b", "c"]
        assert {(r["kind"], r["status"]) for r in listed} == {("deadline", "sent")}
        assert "报名将于2024年9月11日 23:59截止" in listed[0]["text"]

        again = remind(db_url, day_before)
        assert again.returncode == 0 and "0 reminder(s) enqueued" in again.stdout
        assert len(get(port, "/dev/outbox")) == 3


def add_streamers(db: Database, count: int) -> None:
    now = parse_instant("2024-09-08T10:00:00+08:00")
    rows = [
        {
            "campaign_id": "litong-2024",
            "channel": "web",
            "user_id": f"s{i:05d}",
            "name": f"选手{i}",
            "mobile": f"139{i:08d}",
            "age": 25,
            "identity": "电商从业者",
            "platform": "抖音",
            "handle": f"h{i}",
            "fans": 100,
            "past_sales": Decimal(0),
            "group_key": "rookie",
            "status": "approved",
            "pledged_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(count)
    ]
    db.run_sync(lambda s: s.execute(insert(Registration), rows))


def counts(engine: Engine) -> dict[str, int]:
    """Outbox rows by status, read without taking SQLite's write lock (Database would)."""
    with engine.connect() as conn:
        query = select(Outbox.status, func.count()).group_by(col(Outbox.status))
        return {status: n for status, n in conn.execute(query).all()}


def test_kill_9_mid_fan_out_then_restart_leaves_exactly_one_each(db_url: str) -> None:
    db = Database(db_url)
    db.create_all()
    add_streamers(db, FANOUT)
    reader = create_engine(db_url)
    try:
        # 1. kill -9 while the reminders are being written.
        proc = start("remind", "--campaign", "litong-2024", "--now", VIDEO_DAY, env=env_for(db_url))
        wait_for(lambda: sum(counts(reader).values()) >= 1000, "the fan-out to begin", 120)
        kill_9(proc)
        written = sum(counts(reader).values())
        assert 0 < written < FANOUT, f"the kill missed the fan-out ({written} rows)"

        # 2. A second run finishes writing; kill -9 it while it delivers.
        proc = start(
            "remind", "--campaign", "litong-2024", "--now", "2024-10-15T09:01:00+08:00",
            env=env_for(db_url),
        )  # fmt: skip
        wait_for(lambda: counts(reader).get("sent", 0) > 0, "deliveries to begin", 120)
        kill_9(proc)
        at_kill = counts(reader)
        assert sum(at_kill.values()) == FANOUT and 0 < at_kill.get("sent", 0) < FANOUT, at_kill

        # 3. The server, restarted after the lease ran out, delivers the rest; nothing twice.
        with serving(db_url, "2024-10-15T09:10:00+08:00") as (port, _server):
            wait_for(lambda: counts(reader) == {"sent": FANOUT}, "every reminder sent", 120)
            listed = get(port, "/dev/outbox")
    finally:
        with reader.connect() as conn:
            rows = list(conn.execute(select(Outbox.recipient, Outbox.kind)).all())
        reader.dispose()
        db.close()
    assert len(rows) == FANOUT
    assert {r.recipient for r in rows} == {f"s{i:05d}" for i in range(FANOUT)}
    assert {r.kind for r in rows} == {"deadline"}
    assert len(listed) == FANOUT and {r["status"] for r in listed} == {"sent"}
