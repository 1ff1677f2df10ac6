"""Benchmark: a reminder fan-out to 50,000 streamers through the outbox, delivered over HTTP to a
loopback fake channel (rate limits off); enqueue and delivery timed, memory sampled, several runs,
the median printed. See bench/README.md and docs/performance.md.

    .venv/bin/python -m bench.fanout [--backend sqlite|postgres|both] [--streamers 50000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.leaderboard import PG_URL
from bench.seed import seed_campaign
from bot import reminders
from bot.clock import FrozenClock, parse_instant
from bot.outbox_worker import OutboxWorker
from bot.senders.base import DeliveryError
from config.campaign import campaign_files, load_campaigns
from config.settings import ROOT
from storage.db import Database
from storage.models import Outbox

TARGET_SECONDS = 60.0
PG_SCHEMA = "bench_fanout"
QUALIFIED = "SELECT count(*) FROM registration WHERE disqualified_reason IS NULL"
# 利通 第一期: 探店 videos close 2024-10-15 23:59:59; a day before, everyone is due a reminder.
VIDEO_DAY = parse_instant("2024-10-15T09:00:00+08:00")


class LoopbackChannel:
    """The fake platform, in a process of its own (as a platform would be): an HTTP endpoint on
    127.0.0.1 that counts what it is sent, by outbox key, and reports the counts at the end."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()

    async def serve(self, port: int) -> None:
        app = web.Application()
        app.router.add_post("/send", self.send)
        app.router.add_get("/received", self.report)
        app.router.add_post("/received", self.drain)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()  # until the benchmark terminates the process

    async def send(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received[body["key"]] += 1
        return web.json_response({"errcode": 0})

    async def report(self, _request: web.Request) -> web.Response:
        return web.json_response(dict(self.received))

    async def drain(self, _request: web.Request) -> web.Response:
        """The counts so far, and a fresh start for the next run."""
        received, self.received = self.received, Counter()
        return web.json_response(dict(received))


@contextmanager
def loopback_channel() -> Iterator[str]:
    """Start the fake platform; its /send URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "bench.fanout", "--channel-port", str(port)]
    proc = subprocess.Popen(command, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/received", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait()


class LoopbackSender:
    """A sender speaking to the loopback channel, as a platform sender would: one POST each."""

    channel = "web"

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.session = session

    async def deliver(self, message: Outbox) -> None:
        body = {"key": message.key, "to": message.recipient, "text": message.text}
        async with self.session.post(self.url, json=body) as response:
            if response.status != 200:
                raise DeliveryError(f"HTTP {response.status}")


class RssSampler:
    """Peak resident memory while running, from /proc (what `top` shows), every 20 ms."""

    def __init__(self) -> None:
        self.peak = self.baseline = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _rss() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Run:
    enqueue: float
    deliver: float
    rss_growth_mb: float

    @property
    def total(self) -> float:
        return self.enqueue + self.deliver


async def fan_out(db: Database, base: str) -> Run:
    litong = load_campaigns(campaign_files(ROOT / "config" / "campaigns"))["litong-2024"]
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM outbox"))
    clock = FrozenClock(VIDEO_DAY)
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        worker = OutboxWorker(db, {"web": LoopbackSender(f"{base}/send", session)}, clock)
        with RssSampler() as memory:
            started = time.perf_counter()
            added = await reminders.enqueue_due(db, litong, clock.now())
            enqueued = time.perf_counter()
            while await worker.run_once():
                pass
            delivered = time.perf_counter()
        async with session.post(f"{base}/received") as response:
            received: dict[str, int] = await response.json()
    with db.engine.connect() as conn:  # bench.seed disqualifies about 0.1%
        due = conn.execute(text(QUALIFIED)).scalar_one()
    assert added == due, (added, due)
    assert len(received) == due and set(received.values()) == {1}
    return Run(enqueued - started, delivered - enqueued, (memory.peak - memory.baseline) / 2**20)


def pg_url(base: str) -> str:
    """A fresh schema of its own, so the benchmark never touches other data."""
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{PG_SCHEMA}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{PG_SCHEMA}"'))
    admin.dispose()
    url = make_url(base).update_query_dict({"options": f"-csearch_path={PG_SCHEMA}"})
    return url.render_as_string(hide_password=False)


def prepare(url: str, streamers: int) -> Database:
    litong = load_campaigns(campaign_files(ROOT / "config" / "campaigns"))["litong-2024"]
    db = Database(url)
    db.drop_all()
    db.create_all()
    seed_campaign(db, litong, streamers=streamers, reports=0)
    return db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--streamers", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--sqlite-path", type=Path, default=ROOT / "data" / "bench" / "fanout.sqlite3"
    )
    parser.add_argument("--postgres-url", default=PG_URL)
    parser.add_argument("--channel-port", type=int, help=argparse.SUPPRESS)  # the fake platform
    args = parser.parse_args()
    if args.channel_port:
        asyncio.run(LoopbackChannel().serve(args.channel_port))
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    failed = False
    for backend in backends:
        url = f"sqlite:///{args.sqlite_path}" if backend == "sqlite" else pg_url(args.postgres_url)
        db = prepare(url, args.streamers)
        with loopback_channel() as base:
            runs = [asyncio.run(fan_out(db, base)) for _ in range(args.runs)]
        db.close()
        median = statistics.median(r.total for r in runs)
        failed |= median >= TARGET_SECONDS
        print(f"{backend}: {args.streamers:,} streamers, {args.runs} runs")
        for r in runs:
            print(
                f"  enqueue {r.enqueue:.1f} s + deliver {r.deliver:.1f} s = {r.total:.1f} s, "
                f"memory +{r.rss_growth_mb:.0f} MB"
            )
        print(f"  median {median:.1f} s (target < {TARGET_SECONDS:.0f} s)")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
