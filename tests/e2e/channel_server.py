"""A real `run_bot.py serve` process with every channel on, for the e2e fuzz and security tests
(tests/e2e/test_fuzz_channels.py, tests/e2e/test_security.py).

- Campaigns come from a temporary directory: 利通 第一期 with an organizer on WeChat, Feishu and
  the web and a Feishu organizer group for its digests; optionally the demo campaign too.
- WeChat: WECHAT_TOKEN, WECHAT_ENCODING_AES_KEY and WECHAT_APPID are Tencent's sample credentials
  (tests/channel/test_wechat.py); no WECHAT_SECRET, so every push is answered passively, after
  its flow ran: nothing happens after the answer.
- Feishu: events at /feishu/events, encrypted and signed (tests/fakes/feishu_api.py); its open
  API is FakeFeishu served on a loopback thread, so replies and digest cards are recorded.
- The process's stderr (its log, at INFO, with aiohttp's access log) goes to a file.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from sqlalchemy import Engine, create_engine, text

from config.settings import ROOT
from tests.channel.test_wechat import AES_KEY, TOKEN, WeChatServers
from tests.fakes.feishu_api import (
    APP_SECRET,
    ENCRYPT_KEY,
    VERIFICATION_TOKEN,
    FakeFeishu,
    Pusher,
    Sent,
)
from tests.fakes.wechat_api import APPID
from tests.helpers import free_port

NOW = "2024-09-08T10:00:00+08:00"  # 利通 第一期's registration phase
FEISHU_APP = "cli_e2e_channels"
PUSHER = Pusher(app_id=FEISHU_APP)  # signs and encrypts events as Feishu does
ORG_WECHAT = "oOrganizerWx000000000000001"
ORG_FEISHU = "ou_organizer000000000000000000001"
ORG_WEB = "organizer"
ORG_GROUP = "oc_organizers0000000000000000001"
# The tables a request can change: a refused request must leave every count as it was.
STATE_TABLES = (
    "registration",
    "conversation",
    "processed_event",
    "channel_user",
    "outbox",
    "audit_log",
    "filing",
    "deduction",
    "bound_group",
)


# Campaigns -----------------------------------------------------------------------------------
def write_campaigns(directory: Path, *, with_demo: bool) -> Path:
    """利通 第一期 with organizers on every channel (and the demo, unchanged, if asked)."""
    directory.mkdir(parents=True, exist_ok=True)
    source = ROOT / "config" / "campaigns"
    litong = yaml.safe_load((source / "litong-2024.yaml").read_text(encoding="utf-8"))
    litong["organizers"] = {"web": [ORG_WEB], "wechat": [ORG_WECHAT], "feishu": [ORG_FEISHU]}
    litong["organizer_groups"] = {"feishu": [ORG_GROUP]}
    (directory / "litong-2024.yaml").write_text(
        yaml.safe_dump(litong, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    if with_demo:
        demo = (source / "demo.yaml").read_text(encoding="utf-8")
        (directory / "demo.yaml").write_text(demo, encoding="utf-8")
    return directory


# Feishu's open API on a thread ---------------------------------------------------------------
class ThreadedServer:
    """An aiohttp app served on 127.0.0.1 by its own event loop on a daemon thread."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner = web.AppRunner(app, access_log=None)
        self.port = 0

    def start(self) -> int:
        self.thread.start()

        async def up() -> int:
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            return int(self.runner.addresses[0][1])

        self.port = asyncio.run_coroutine_threadsafe(up(), self.loop).result(timeout=10)
        return self.port

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


# The server ----------------------------------------------------------------------------------
def wait_for(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Response:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Server:
    port: int
    db_url: str
    env: dict[str, str]
    log_path: Path
    feishu: FakeFeishu
    engine: Engine
    proc: subprocess.Popen[bytes]

    # HTTP ------------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        url = f"http://127.0.0.1:{self.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        request = urllib.request.Request(url, body, dict(headers or {}), method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Response(int(response.status), response.read(), dict(response.headers))
        except urllib.error.HTTPError as error:
            return Response(int(error.code), error.read(), dict(error.headers))

    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: bytes, **kw: Any) -> Response:
        return self.request("POST", path, body=body, **kw)

    # State -----------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {
                table: int(conn.execute(text(f"select count(*) from {table}")).scalar_one())
                for table in STATE_TABLES
            }

    def rows(self, query: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(query), params).all())

    def settle(self, quiet: float = 0.5, timeout: float = 20) -> dict[str, int]:
        """Wait until background work (Feishu events run after their answer) has stopped:
        the row counts and the fake's messages unchanged for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        seen = (self.counts(), len(self.feishu.sent))
        since = time.monotonic()
        while time.monotonic() - since < quiet:
            if time.monotonic() > deadline:
                raise AssertionError("the server did not settle")
            time.sleep(0.1)
            now = (self.counts(), len(self.feishu.sent))
            if now != seen:
                seen, since = now, time.monotonic()
        return seen[0]

    # The log ---------------------------------------------------------------------------------
    def log(self, since: int = 0) -> str:
        return self.log_path.read_bytes()[since:].decode("utf-8", errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size


def channel_env(db_url: str, campaigns: Path, feishu_base: str, **extra: str) -> dict[str, str]:
    """The process environment: nothing inherited that configures the bot."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BOT_", "WECHAT_", "FEISHU_", "DATABASE_URL"))
    }
    return {
        **inherited,
        "DATABASE_URL": db_url,
        "BOT_CAMPAIGNS_DIR": str(campaigns),
        "BOT_SECRET_KEY": f"e2e-{uuid.uuid4().hex}",  # production refuses the dev default
        "WECHAT_TOKEN": TOKEN,
        "WECHAT_ENCODING_AES_KEY": AES_KEY,
        "WECHAT_APPID": APPID,
        "FEISHU_APP_ID": FEISHU_APP,
        "FEISHU_APP_SECRET": APP_SECRET,
        "FEISHU_VERIFICATION_TOKEN": VERIFICATION_TOKEN,
        "FEISHU_ENCRYPT_KEY": ENCRYPT_KEY,
        "FEISHU_DOMAIN": feishu_base,
        **extra,
    }


@contextmanager
def serving(
    db_url: str, tmp: Path, *, with_demo: bool = False, now: str = NOW, **env: str
) -> Iterator[Server]:
    """`run_bot.py serve` with WeChat and Feishu on; `env` adds or overrides variables
    (BOT_ENV=dev for the /dev endpoints; production is the default)."""
    fake = FakeFeishu(app_id=FEISHU_APP)
    feishu = ThreadedServer(fake.app())
    feishu_port = feishu.start()
    try:
        campaigns = write_campaigns(tmp / "campaigns", with_demo=with_demo)
        full_env = channel_env(db_url, campaigns, f"http://127.0.0.1:{feishu_port}", **env)
        port = free_port()
        log_path = tmp / "server.log"
        with log_path.open("wb") as log:
            command = ["serve", "--port", str(port), "--now", now]
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / "run_bot.py"), *command],
                env=full_env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        engine = create_engine(db_url)
        server = Server(port, db_url, full_env, log_path, fake, engine, proc)
        try:

            def up() -> bool:
                if proc.poll() is not None:
                    raise AssertionError(f"the server exited:\n{server.log()}")
                return _listening(port) and server.get("/healthz").status == 200

            wait_for(up, "the server")
            wait_for(lambda: bool(fake.tokens), "the Feishu warm-up")  # token and bot id
            yield server
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=30)
            engine.dispose()
    finally:
        feishu.stop()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def run_cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    """A `run_bot.py` command against the server's database, with the server's environment."""
    return subprocess.run(
        [sys.executable, str(ROOT / "run_bot.py"), *args],
        env=server.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


# Talking to it ---------------------------------------------------------------------------------
@asynccontextmanager
async def wechat_of(server: Server, mode: str = "safe") -> AsyncIterator[WeChatServers]:
    """tests/channel/test_wechat.py's WeChat impersonation, over real HTTP to the process."""
    async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{server.port}") as session:
        yield WeChatServers(session, mode)  # type: ignore[arg-type]  (it only posts)


def feishu_say(server: Server, user: str, text: str, *, chat_id: str | None = None) -> str:
    """A p2p text (or `@bot text` in a group) pushed as Feishu pushes it; what the bot then sent
    through the fake open API (its answer runs after the 200, in the background)."""
    before = len(server.feishu.sent)
    event = PUSHER.group_text(user, chat_id, text) if chat_id else PUSHER.text(user, text)
    body, headers = PUSHER.request(event, int(time.time()))
    response = server.post("/feishu/events", body, headers=headers)
    assert response.status == 200, response.text
    wait_for(lambda: len(server.feishu.sent) > before, "the Feishu answer")
    server.settle(quiet=0.3)
    sent: list[Sent] = server.feishu.sent[before:]
    return "\n".join(s.text for s in sent)
