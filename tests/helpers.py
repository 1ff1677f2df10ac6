"""Test helpers: an app over a real database, and a chat driver that speaks to it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

from aiohttp.test_utils import TestClient

from bot.clock import Clock
from bot.dispatcher import Dispatcher
from bot.keys import DISPATCHER
from bot.messages import Event, Incoming
from config.campaign import Campaign
from config.settings import ROOT, Settings

Campaigns = dict[str, Campaign]


def settings_for(db_url: str, **extra: Any) -> Settings:
    return Settings(DATABASE_URL=db_url, BOT_ENV=extra.pop("env", "dev"), **extra)


class Chat:
    """Drives the dispatcher as one channel would: say() returns the reply texts."""

    def __init__(self, dispatcher: Dispatcher, channel: str = "web") -> None:
        self.dispatcher = dispatcher
        self.channel = channel

    async def say(self, user: str, text: str, **kw: Any) -> list[str]:
        incoming = Incoming(channel=self.channel, user=user, text=text, **kw)
        return [r.render_text() for r in await self.dispatcher.handle(incoming)]

    async def last(self, user: str, text: str) -> str:
        return (await self.say(user, text))[-1]

    async def scan(self, user: str, scene: str) -> list[str]:
        incoming = Incoming(channel=self.channel, user=user, event=Event("scan", scene=scene))
        return [r.render_text() for r in await self.dispatcher.handle(incoming)]

    async def run(self, user: str, *texts: str) -> str:
        """Several messages in a row; the last reply text."""
        reply = ""
        for text in texts:
            reply = "\n".join(await self.say(user, text))
        return reply


def chat_of(client: TestClient) -> Chat:
    return Chat(client.server.app[DISPATCHER])


def only(campaigns: dict[str, Campaign], *ids: str) -> dict[str, Campaign]:
    return {i: campaigns[i] for i in ids}


# The answers of a complete 利通 sign-up, after the campaign is known.
def litong_answers(name: str, mobile: str, fans: str, sales: str, age: str = "25") -> list[str]:
    return [name, mobile, age, "电商从业者", "抖音", f"{name}_live", fans, sales, "同意", "确认"]


async def make_client(
    aiohttp_client: Any, db_url: str, clock: Clock, campaigns: Campaigns
) -> TestClient:
    from bot.app import create_app

    return await aiohttp_client(create_app(settings_for(db_url), clock=clock, campaigns=campaigns))


# A real server process, for crash, restart and browser tests.
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(db_url: str, port: int, now: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": db_url, "BOT_ENV": "dev"}
    # What the server says, for a start that fails; open as long as the server runs.
    log = tempfile.TemporaryFile()  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run_bot.py"), "serve", "--port", str(port), "--now", now],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    deadline = time.monotonic() + 60  # a loaded two-core machine starts slowly
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    log.seek(0)
    said = log.read().decode(errors="replace")[-3000:]
    raise AssertionError(f"server did not start (exit {proc.returncode}):\n{said}")


def say(port: int, user: str, text: str) -> str:
    body = json.dumps({"user": user, "text": text}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/dev/messages", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return "\n".join(r["text"] for r in json.load(response)["replies"])
