"""Benchmark: WeChat safe-mode (AES) webhook throughput and latency, against a hello-world ceiling.

wrk on loopback sends signed, encrypted text pushes (a user and a MsgId each) to /wechat of a real
`run_bot.py serve` on a fresh SQLite file, and the same requests to a bare aiohttp hello-world
JSON server; req/s, p50, p99 and their ratio. See bench/README.md and docs/performance.md.

    .venv/bin/python -m bench.webhook [--connections 50 200] [--duration 12] [--runs 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from wechatpy.crypto import WeChatCrypto

from bot.dispatcher import BUSY, OOPS
from config.settings import ROOT

# Tencent's sample token and EncodingAESKey (as in tests/channel/test_wechat.py), a made-up appid.
TOKEN = "spamtest"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID = "wxbench00000000001"
ACCOUNT = "gh_bench0000001"
FIRST_MSG_ID = 6054768590064713729
FIRST_TIME = 1764547200  # 2025-12-01
BENCH_DIR = ROOT / "data" / "bench"
LUA = Path(__file__).with_name("webhook.lua")
TARGET_RATIO = 0.25  # of the ceiling's req/s
TARGET_P99_MS = 100.0  # at 200 connections
CRYPTO = WeChatCrypto(TOKEN, AES_KEY, APPID)


def _sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def push(user: str, text: str, msg_id: int, created: int) -> tuple[str, str]:
    """A signed, encrypted safe-mode text push as WeChat sends it: (path with query, body)."""
    xml = (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
        f"<FromUserName><![CDATA[{user}]]></FromUserName><CreateTime>{created}</CreateTime>"
        f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{text}]]></Content>"
        f"<MsgId>{msg_id}</MsgId></xml>"
    )
    timestamp, nonce = str(created), str(msg_id % 1_000_000_007)
    sealed = CRYPTO.encrypt_message(xml, nonce, timestamp)
    encrypted = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]>", sealed)
    signature = re.search(r"<MsgSignature><!\[CDATA\[(.*?)\]\]>", sealed)
    assert encrypted and signature
    query = (
        f"signature={_sign(TOKEN, timestamp, nonce)}&timestamp={timestamp}&nonce={nonce}"
        f"&encrypt_type=aes&msg_signature={signature[1]}"
    )
    body = (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
        f"<Encrypt><![CDATA[{encrypted[1]}]]></Encrypt></xml>"
    )
    return f"/wechat?{query}", body


def write_requests(path: Path, count: int, text: str) -> None:
    """`count` pushes, each from a user of its own with a MsgId of its own: "path<TAB>body"."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for n in range(count):
            target, body = push(f"obench{n:09d}", text, FIRST_MSG_ID + n, FIRST_TIME + n)
            out.write(f"{target}\t{body}\n")


def read_reply(xml: str) -> str:
    """The text of an encrypted passive reply (decrypted and its signature checked)."""
    fields = {k: re.search(rf"<{k}>(?:<!\[CDATA\[)?(.*?)(?:\]\]>)?</{k}>", xml) for k in
              ("MsgSignature", "TimeStamp", "Nonce")}  # fmt: skip
    assert all(fields.values()), xml[:200]
    plain = CRYPTO.decrypt_message(xml, *(m[1] for m in fields.values() if m))
    content = re.search(r"<Content><!\[CDATA\[(.*)\]\]></Content>", plain, re.S)
    assert content, plain[:200]
    return content[1]


# Servers ------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env() -> dict[str, str]:
    """This environment without the bot's settings (the benchmark sets those it wants)."""
    prefixes = ("DATABASE_URL", "BOT_", "WECHAT_", "FEISHU_", "WECOM_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def wait_until_up(url: str, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server at {url} did not start") from None
            time.sleep(0.1)


@contextmanager
def server(kind: str, db_path: Path, log_path: Path) -> Iterator[tuple[str, int]]:
    """`bot`: `run_bot.py serve` on a fresh SQLite file; `ceiling`: hello-world. (URL, pid)."""
    port = free_port()
    # No WECHAT_SECRET (nor any other channel): every reply is passive, nothing goes out.
    env = clean_env() | {
        "DATABASE_URL": f"sqlite:///{db_path}",
        "BOT_ENV": "dev",
        "WECHAT_TOKEN": TOKEN,
        "WECHAT_APPID": APPID,
        "WECHAT_ENCODING_AES_KEY": AES_KEY,
    }
    if kind == "bot":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
        command = [sys.executable, "run_bot.py", "serve", "--port", str(port)]
        probe = f"http://127.0.0.1:{port}/healthz"
    else:
        command = [sys.executable, "-m", "bench.webhook", "--ceiling-port", str(port)]
        probe = f"http://127.0.0.1:{port}/"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            wait_until_up(probe, proc)
            yield f"http://127.0.0.1:{port}", proc.pid
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def ceiling(port: int) -> None:
    """The ceiling: reads the body, answers a small JSON; no logging, nothing else."""

    async def hello(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"hello": "world"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hello)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=lambda *_: None)


# Load ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Result:
    target: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors, non-2xx and timeouts (wrk)
    wraps: int
    load: float  # 1-minute load average when the run ended


def wrk(url: str, requests: Path, connections: int, duration: int, threads: int) -> dict[str, int]:
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
        "-s", str(LUA), f"{url}/wechat", "--", str(requests), str(threads),
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")
    return {k: int(v) for k, v in (item.split("=") for item in line.split()[1:])}


def _result(target: str, connections: int, raw: dict[str, int]) -> Result:
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Result(
        target=target,
        connections=connections,
        rps=raw["requests"] / (raw["duration_us"] / 1e6),
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        errors=errors,
        wraps=raw["wraps"],
        load=os.getloadavg()[0],
    )


def sanity(url: str, text: str) -> str:
    """One push outside the wrk list; its reply must decrypt to a real answer (not an error)."""
    target, body = push("obench-check", text, FIRST_MSG_ID - 1, FIRST_TIME - 1)
    request = urllib.request.Request(url + target, data=body.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        reply = read_reply(response.read().decode())
    assert reply not in (BUSY, OOPS) and reply.strip(), reply
    return reply


def stored(db_path: Path) -> tuple[int, int, int]:
    """What the bot wrote: processed deliveries, conversations, and deliveries answered with
    the busy or failure text (must be 0)."""
    with sqlite3.connect(db_path) as conn:
        replies = conn.execute("SELECT replies FROM processed_event WHERE channel = 'wechat'")
        events = failed = 0
        for (raw,) in replies:
            events += 1
            failed += any(r.get("text") in (BUSY, OOPS) for r in json.loads(raw))
        (conversations,) = conn.execute("SELECT count(*) FROM conversation").fetchone()
    return events, conversations, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--duration", type=int, default=12, help="seconds per wrk run (<= 60)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--text", default="报名", help="the message every user sends")
    parser.add_argument("--requests", type=int, default=60_000, help="distinct pushes prepared")
    parser.add_argument("--ceiling-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ceiling_port:
        ceiling(args.ceiling_port)
        return
    duration = min(args.duration, 60)
    tag = hashlib.sha1(args.text.encode()).hexdigest()[:8]
    requests = BENCH_DIR / f"webhook-requests-{args.requests}-{tag}.tsv"
    if not requests.exists():
        started = time.perf_counter()
        write_requests(requests, args.requests, args.text)
        print(f"prepared {args.requests:,} pushes in {time.perf_counter() - started:.1f} s")
    db_path = BENCH_DIR / "webhook.sqlite3"
    results: list[Result] = []
    for run in range(1, args.runs + 1):
        for connections in args.connections:
            for target in ("ceiling", "bot"):
                log = BENCH_DIR / f"webhook-{target}.log"
                with server(target, db_path, log) as (url, _pid):
                    if target == "bot":
                        reply = sanity(url, args.text)
                    raw = wrk(url, requests, connections, duration, args.threads)
                    time.sleep(1)  # let the requests wrk left in flight finish
                result = _result(target, connections, raw)
                results.append(result)
                note = ""
                if target == "bot":
                    events, conversations, failed = stored(db_path)
                    busy = log.read_text(errors="replace").count("database busy")
                    note = (
                        f"; stored {events:,} deliveries, {conversations:,} conversations, "
                        f"{failed} failed replies, {busy} busy retries; first reply line: "
                        f"{reply.splitlines()[0]!r}"
                    )
                print(
                    f"run {run} {target:7} c={connections:3}: {result.rps:8.0f} req/s  "
                    f"p50 {result.p50_ms:7.1f} ms  p99 {result.p99_ms:7.1f} ms  errors "
                    f"{result.errors}  wraps {result.wraps}  load {result.load:.2f}{note}",
                    flush=True,
                )
    failed = False
    print(f"medians over {args.runs} runs ({os.cpu_count()} CPUs, wrk -t{args.threads}):")
    for connections in args.connections:
        med = {
            target: [r for r in results if (r.target, r.connections) == (target, connections)]
            for target in ("ceiling", "bot")
        }
        rps = {t: statistics.median(r.rps for r in rs) for t, rs in med.items()}
        p50 = {t: statistics.median(r.p50_ms for r in rs) for t, rs in med.items()}
        p99 = {t: statistics.median(r.p99_ms for r in rs) for t, rs in med.items()}
        ratio = rps["bot"] / rps["ceiling"]
        miss = ratio < TARGET_RATIO or (connections >= 200 and p99["bot"] >= TARGET_P99_MS)
        failed |= miss
        for t in ("ceiling", "bot"):
            print(f"  c={connections:3} {t:7}: {rps[t]:8.0f} req/s  p50 {p50[t]:7.1f} ms  "
                  f"p99 {p99[t]:7.1f} ms")  # fmt: skip
        print(f"  c={connections:3} webhook/ceiling = {ratio:.1%} (target >= {TARGET_RATIO:.0%}"
              f"{f', p99 < {TARGET_P99_MS:.0f} ms' if connections >= 200 else ''}): "
              f"{'MISSED' if miss else 'met'}")  # fmt: skip
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
