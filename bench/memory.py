"""Benchmark: resident memory of a serving instance with a 50,000-streamer campaign.

`run_bot.py serve` (SQLite) on a seeded copy of the database: VmRSS and VmHWM after start-up and
after each kind of traffic, latencies of that traffic, and how long a chat message waits while a
leaderboard is being computed. See bench/README.md and docs/performance.md.

    .venv/bin/python -m bench.memory [--streamers 50000] [--reports 200000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

from bench.leaderboard import prepare
from bench.webhook import clean_env, free_port, wait_until_up
from config.campaign import campaign_files, load_campaigns
from config.settings import ROOT

BENCH_DIR = ROOT / "data" / "bench"
CAMPAIGN = "jiangxi-2020"
NOW = "2020-11-20T12:00:00+08:00"  # inside its competition phase: 排名 computes the board
TIMEOUT = aiohttp.ClientTimeout(total=120)


def memory(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB, from /proc/<pid>/status."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    rss, hwm = (int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM"))
    return rss, hwm


@contextmanager
def serve(db_path: Path) -> Iterator[tuple[str, int]]:
    """`run_bot.py serve` on `db_path` with the clock at NOW; (base URL, pid)."""
    port = free_port()
    env = clean_env() | {"DATABASE_URL": f"sqlite:///{db_path}", "BOT_ENV": "dev"}
    command = [sys.executable, "run_bot.py", "serve", "--port", str(port), "--now", NOW]
    with (BENCH_DIR / "memory-server.log").open("wb") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            wait_until_up(f"http://127.0.0.1:{port}/healthz", proc)
            yield f"http://127.0.0.1:{port}", proc.pid
        finally:
            proc.terminate()
            proc.wait(timeout=60)


async def timed(work: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await work()
    return time.perf_counter() - started


async def batch(count: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> list[float]:
    """`one(n)` for n < count, `concurrency` at a time; each one's seconds."""
    gate = asyncio.Semaphore(concurrency)

    async def run(n: int) -> float:
        async with gate:
            return await timed(lambda: one(n))

    return list(await asyncio.gather(*(run(n) for n in range(count))))


def _ms(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"


async def traffic(
    base: str, pid: int, run: int, streamers: list[int], rounds: dict[str, int]
) -> list[tuple[str, float, float, str]]:
    """The traffic, phase by phase; after each, (phase, VmRSS, VmHWM, latencies)."""
    seen: list[tuple[str, float, float, str]] = [("start-up", *memory(pid), "")]

    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:

        async def say(user: str, text: str) -> None:
            body = {"user": user, "text": text}
            async with http.post(f"{base}/dev/messages", json=body) as response:
                assert response.status == 200, await response.text()
                replies = (await response.json())["replies"]
                assert replies and "出了点问题" not in replies[0]["text"], replies

        async def board(query: str) -> None:
            url = f"{base}/api/campaigns/{CAMPAIGN}/leaderboard{query}"
            async with http.get(url) as response:
                assert response.status == 200, await response.text()
                await response.read()

        # New users: the menu, and sign-up started (a conversation row written) and answered.
        texts = ("帮助", "报名", "张三")
        chat = await batch(rounds["chat"], 10, lambda n: say(f"mem{run}-{n // 3}", texts[n % 3]))
        seen.append((f"{rounds['chat']} chat messages (帮助/报名/answer)", *memory(pid), _ms(chat)))
        # Seeded streamers: 我的 and 排名 (the group's whole board, in the chat transaction).
        mine = await batch(rounds["mine"], 4, lambda n: say(f"bench{streamers[n]}", "我的"))
        rank = await batch(
            rounds["rank"], 2, lambda n: say(f"bench{streamers[n % len(streamers)]}", "排名")
        )
        seen.append((f"{rounds['mine']} 我的 + {rounds['rank']} 排名", *memory(pid),
                     f"我的 {_ms(mine)}; 排名 {_ms(rank)}"))  # fmt: skip
        top = await batch(rounds["board"], 2, lambda _n: board("?top=20"))
        full = await batch(rounds["full"], 1, lambda _n: board(""))
        seen.append((f"{rounds['board']} board API ?top=20 + {rounds['full']} full board",
                     *memory(pid), f"top=20 {_ms(top)}; full {_ms(full)}"))  # fmt: skip

        # Contention: 帮助 (a transaction that writes nothing, yet on SQLite takes the write lock,
        # BEGIN IMMEDIATE) alone; then five at once, 0.3 s into a board computation, three times.
        alone = [await timed(lambda n=n: say(f"idle{run}-{n}", "帮助")) for n in range(10)]
        during: list[float] = []
        for k in range(3):
            waiting = asyncio.create_task(board("?top=20"))
            await asyncio.sleep(0.3)
            during += await batch(5, 5, lambda n, k=k: say(f"busy{run}-{k}-{n}", "帮助"))
            await waiting
        seen.append(("contention probe", *memory(pid),
                     f"帮助 alone {_ms(alone)}; 0.3 s into a board computation "
                     f"{_ms(during)}, max {max(during) * 1000:.0f} ms"))  # fmt: skip
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streamers", type=int, default=50_000)
    parser.add_argument("--reports", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chat", type=int, default=300, help="new-user chat messages")
    parser.add_argument("--rank", type=int, default=10, help="排名 messages")
    parser.add_argument("--board", type=int, default=10, help="board API calls with ?top=20")
    parser.add_argument("--full", type=int, default=3, help="board API calls, whole board")
    args = parser.parse_args()
    rounds = {"chat": args.chat, "mine": 0, "rank": args.rank,
              "board": args.board, "full": args.full}  # fmt: skip
    campaign = load_campaigns(campaign_files(ROOT / "config" / "campaigns"))[CAMPAIGN]
    seeded = BENCH_DIR / f"memory-seed-{args.streamers}-{args.reports}.sqlite3"
    db = prepare(f"sqlite:///{seeded}", campaign, args.streamers, args.reports, reseed=False)
    db.close()
    first = 1  # bench.seed numbers registrations from 1 in a fresh database
    streamers = list(range(first, first + args.streamers, args.streamers // 100 or 1))[:100]
    rounds["mine"] = len(streamers)
    working = BENCH_DIR / "memory.sqlite3"
    empty = BENCH_DIR / "memory-empty.sqlite3"
    runs: list[list[tuple[str, float, float, str]]] = []
    for run in range(1, args.runs + 1):
        for path in (working, empty):
            for suffix in ("-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        empty.unlink(missing_ok=True)
        with serve(empty) as (_base, pid):
            time.sleep(2)
            baseline = memory(pid)
        shutil.copyfile(seeded, working)
        with serve(working) as (base, pid):
            time.sleep(2)
            seen = asyncio.run(traffic(base, pid, run, streamers, rounds))
        runs.append([("start-up, empty database", *baseline, ""), *seen])
        print(f"run {run} (load {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs):")
        for phase, rss, hwm, note in runs[-1]:
            print(f"  {phase:45} VmRSS {rss:6.1f} MiB  VmHWM {hwm:6.1f} MiB  {note}", flush=True)
    print(f"medians over {args.runs} runs ({args.streamers:,} streamers, "
          f"{args.reports:,} reports):")  # fmt: skip
    for i, (phase, *_rest) in enumerate(runs[0]):
        rss = statistics.median(r[i][1] for r in runs)
        hwm = statistics.median(r[i][2] for r in runs)
        print(f"  {phase:45} VmRSS {rss:6.1f} MiB  VmHWM {hwm:6.1f} MiB")


if __name__ == "__main__":
    main()
