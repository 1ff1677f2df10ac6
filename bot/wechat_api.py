"""A thin async face of wechatpy's API client.

wechatpy is synchronous (requests), so every call runs on a thread. `WECHAT_API_BASE` points
every call at another host (tests use a loopback fake). The access token lives in the database
(`AccessToken`), shared by every instance and refreshed by one at a time; a call the platform
rejects for its token is refreshed and retried a bounded number of times (wechatpy's own retry
recurses without bound).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar

import requests
from sqlmodel import Session
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from bot.clock import Clock
from config.settings import Settings
from storage.db import Database
from storage.models import AccessToken

log = logging.getLogger(__name__)
T = TypeVar("T")

TIMEOUT = 10  # seconds per HTTP call
TOKEN_ERRORS = frozenset({40001, 40014, 42001})  # invalid / malformed / expired access token
TOKEN_RETRIES = 1  # refresh-and-retry rounds after a token error
REFRESH_MARGIN = timedelta(minutes=5)  # refresh a little early: clocks and queues drift
LEASE = timedelta(seconds=2 * TIMEOUT + 5)  # outlives one token call; a dead holder's lapses
LEASE_POLL_SECONDS = 0.2
TEMPORARY_QR_SECONDS = 30 * 86400  # WeChat's maximum for a temporary QR code


class WeChatAPIError(Exception):
    """A failed call: `errcode` is WeChat's code, None for network and HTTP failures."""

    def __init__(self, errcode: int | None, errmsg: str) -> None:
        super().__init__(f"WeChat API error {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class SharedToken:
    """The access token in the database: read by every instance, refreshed by one at a time,
    so instances never invalidate each other's tokens with parallel refreshes.

    The refresher holds a lease (a row of its own, `<key>:lease`) while it asks WeChat, not a
    transaction: on SQLite a transaction held through a slow token call would stall every
    write of the bot. Others wait for the lease to go, then read the new token."""

    def __init__(
        self, db: Database, clock: Clock, key: str, fetch: Callable[[], tuple[str, int]]
    ) -> None:
        self.db = db
        self.clock = clock
        self.key = key
        self.lease_key = f"{key}:lease"
        self.fetch = fetch  # -> (token, expires_in seconds)

    def _fresh(self, row: AccessToken | None, now: datetime) -> bool:
        return row is not None and row.expires_at - now > REFRESH_MARGIN

    def get(self) -> str:
        row = self.db.run_sync(lambda session: session.get(AccessToken, self.key))
        if row is not None and self._fresh(row, self.clock.now()):
            return row.token
        return self.refresh(stale=None)

    def refresh(self, *, stale: str | None) -> str:
        """A valid token: the stored one if another instance already replaced `stale` (or it
        is still fresh), else a newly fetched one."""
        holder = uuid.uuid4().hex  # names this caller's lease
        give_up = time.monotonic() + LEASE.total_seconds()
        while True:
            token, leased = self.db.run_sync(lambda session: self._claim(session, stale, holder))
            if token is not None:
                return token
            if leased:
                break
            if time.monotonic() > give_up:
                raise WeChatAPIError(None, "another instance is still refreshing the token")
            time.sleep(LEASE_POLL_SECONDS)
        try:
            token, expires_in = self.fetch()
        except BaseException:
            self.db.run_sync(lambda session: self._release(session, holder))
            raise
        now = self.clock.now()
        row = AccessToken(
            key=self.key,
            token=token,
            expires_at=now + timedelta(seconds=expires_in),
            updated_at=now,
        )

        def store(session: Session) -> str:
            # With the lease's release: no one may find neither the token nor the lease. A
            # lease lapsed meanwhile and taken by another: its token will be newer than ours
            # (WeChat's newest token voids the older ones), so ours is not stored.
            if not self._release(session, holder):
                stored = session.get(AccessToken, self.key)
                return stored.token if stored is not None else token
            session.merge(row)
            return token

        token = self.db.run_sync(store)
        log.info("refreshed the WeChat access token %s", self.key)
        return token

    def _claim(self, session: Session, stale: str | None, holder: str) -> tuple[str | None, bool]:
        """(a usable stored token, False) or (None, whether `holder` now holds the lease)."""
        self.db.lock_user(session, self.key)
        now = self.clock.now()
        row = session.get(AccessToken, self.key)
        if row is not None and row.token != stale and self._fresh(row, now):
            return row.token, False
        lease = session.get(AccessToken, self.lease_key)
        if lease is not None and lease.expires_at > now:
            return None, False
        session.merge(
            AccessToken(key=self.lease_key, token=holder, expires_at=now + LEASE, updated_at=now)
        )
        return None, True

    def _release(self, session: Session, holder: str) -> bool:
        """Give up `holder`'s lease; False when it is no longer theirs."""
        # Under the key's lock, like _claim: it reads token and lease in two statements.
        self.db.lock_user(session, self.key)
        lease = session.get(AccessToken, self.lease_key)
        if lease is None or lease.token != holder:
            return False
        session.delete(lease)
        return True


class _Client(WeChatClient):  # type: ignore[misc]
    """wechatpy's client at our base URL, using the token the current call holds, never
    retrying on its own."""

    def __init__(self, appid: str, secret: str, base: str, local: threading.local) -> None:
        super().__init__(appid, secret, timeout=TIMEOUT, auto_retry=False)
        self.API_BASE_URL = f"{base}/cgi-bin/"
        self._local = local

    @property
    def access_token(self) -> str:
        return str(self._local.token)


class WeChatAPI:
    def __init__(self, appid: str, secret: str, base: str, db: Database, clock: Clock) -> None:
        self.appid = appid
        self.secret = secret
        self.base = base.rstrip("/")
        self._local = threading.local()
        self.client = _Client(appid, secret, self.base, self._local)
        self.tokens = SharedToken(db, clock, f"wechat:{appid}", self._fetch_token)

    def _fetch_token(self) -> tuple[str, int]:
        try:
            response = self.client._http.get(
                f"{self.base}/cgi-bin/token",
                params={
                    "grant_type": "client_credential",
                    "appid": self.appid,
                    "secret": self.secret,
                },
                timeout=TIMEOUT,
            )
            response.raise_for_status()
            result = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise WeChatAPIError(None, f"token request failed: {exc}") from exc
        if result.get("errcode"):
            raise WeChatAPIError(int(result["errcode"]), str(result.get("errmsg", "")))
        return str(result["access_token"]), int(result.get("expires_in", 7200))

    def call_sync(self, operation: Callable[[Any], T]) -> T:
        """Run `operation(client)` with a shared token; a rejected token is refreshed and the
        call retried at most TOKEN_RETRIES times. Raises WeChatAPIError."""
        token = self.tokens.get()
        for attempt in range(TOKEN_RETRIES + 1):
            self._local.token = token
            try:
                return operation(self.client)
            except WeChatClientException as exc:
                code = int(exc.errcode) if exc.errcode is not None else None
                if code in TOKEN_ERRORS and attempt < TOKEN_RETRIES:
                    log.info("WeChat rejected the access token (%s); refreshing", code)
                    token = self.tokens.refresh(stale=token)
                    continue
                raise WeChatAPIError(code, str(exc.errmsg or exc.response)) from exc
            except requests.RequestException as exc:
                raise WeChatAPIError(None, f"network: {exc}") from exc
        raise AssertionError("unreachable")

    async def call(self, operation: Callable[[Any], T]) -> T:
        """`call_sync` on a thread, so the event loop never waits on WeChat."""
        return await asyncio.to_thread(self.call_sync, operation)

    async def send_text(self, openid: str, text: str) -> None:
        """A customer-service message (allowed within 48 hours of the user's last message)."""
        await self.call(lambda c: c.message.send_text(openid, text))

    async def send_template(
        self, openid: str, template_id: str, data: dict[str, Any], url: str | None = None
    ) -> None:
        await self.call(lambda c: c.message.send_template(openid, template_id, data, url=url))

    async def qrcode_url(self, scene: str, *, permanent: bool) -> str:
        """The content of a parametric QR code carrying `scene` (what the code encodes)."""
        data: dict[str, Any] = {
            "action_name": "QR_LIMIT_STR_SCENE" if permanent else "QR_STR_SCENE",
            "action_info": {"scene": {"scene_str": scene}},
        }
        if not permanent:
            data["expire_seconds"] = TEMPORARY_QR_SECONDS
        result = await self.call(lambda c: c.qrcode.create(data))
        return str(result["url"])

    async def create_menu(self, menu: dict[str, Any]) -> None:
        await self.call(lambda c: c.menu.create(menu))


@contextmanager
def command_line_api(settings: Settings, clock: Clock) -> Iterator[WeChatAPI]:
    """The API for a CLI command: the same database (and so the same shared token) as the
    serving instances. Raises WeChatAPIError when the credentials are not set."""
    if not (settings.wechat_appid and settings.wechat_secret):
        raise WeChatAPIError(None, "WECHAT_APPID and WECHAT_SECRET are not set")
    db = Database(settings.database_url)
    try:
        db.create_all()
        yield WeChatAPI(
            settings.wechat_appid, settings.wechat_secret, settings.wechat_api_base, db, clock
        )
    finally:
        db.close()
