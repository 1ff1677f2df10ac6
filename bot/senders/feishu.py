"""Outbound Feishu: messages, cards and pictures through lark-oapi's async API, without ever
blocking the event loop.

lark-oapi's `a*` methods fetch the tenant token synchronously (requests) when its cache is cold,
so the client is built with `enable_set_token` and every call gets a token fetched on a worker
thread (`TokenManager` caches it process-wide until 10 minutes before expiry; Feishu hands every
instance the same token, so there is no refresh storm to share through the database). Its async
download loses the file name (httpx lower-cases the header the SDK looks up), so downloads use
the synchronous call on a worker thread.

Limits: 5 messages a second per chat or user, 50 a second and 1000 a minute per app; a 429 /
99991400 pauses that chat (or the app) for as long as `x-ogw-ratelimit-reset` says and hands
the message back to the outbox for a later retry.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import lark_oapi as lark
from lark_oapi.api.im.v1 import (
    CreateImageRequest,
    CreateImageRequestBody,
    CreateMessageRequest,
    CreateMessageRequestBody,
    GetMessageResourceRequest,
)
from lark_oapi.core.token import TokenManager

from bot.feishu_cards import digest_card
from bot.senders.base import DeliveryError
from bot.senders.ratelimit import Limit, Pacer, SlidingWindow
from storage.models import Outbox

log = logging.getLogger(__name__)
T = TypeVar("T")

CHANNEL = "feishu"
RATE_LIMITED = {99991400, 230020}  # app-wide; per chat or user
TOKEN_INVALID = {99991661, 99991663}
# Retrying cannot help: bad receive id, bot not in the chat, bot disabled, user out of range.
PERMANENT = {230001, 230002, 230006, 230013, 230099}
MAX_INLINE_WAIT = 2.0  # longer waits go back to the outbox instead of holding a delivery
APP_KEY = "app"


def receive_id_type(recipient: str) -> str:
    """Feishu ids say what they are: oc_ a chat, ou_ an open_id, on_ a union_id."""
    return {"oc_": "chat_id", "ou_": "open_id", "on_": "union_id"}.get(recipient[:3], "open_id")


def _header(headers: dict[str, str], name: str) -> str | None:
    # requests keeps the server's case, httpx lower-cases: look it up either way.
    return next((v for k, v in headers.items() if k.lower() == name), None)


class _TokenRejected(Exception):
    """The cached tenant token was refused: fetch a new one and try once more."""


class FeishuApi:
    def __init__(self, app_id: str, app_secret: str, domain: str) -> None:
        self.app_id = app_id
        self.client = (
            lark.Client.builder()
            .app_id(app_id)
            .app_secret(app_secret)
            .domain(domain)
            .enable_set_token(True)
            .timeout(10)
            .log_level(lark.LogLevel.WARNING)
            .build()
        )
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="feishu-api")
        self.pacer = Pacer()
        self._per_chat = SlidingWindow(Limit(5, 1.0))
        self._per_app = SlidingWindow(Limit(50, 1.0))
        self._per_app_minute = SlidingWindow(Limit(1000, 60.0))
        self.bot_open_id: str | None = None

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def token(self) -> str:
        try:
            return await self._in_thread(TokenManager.get_self_tenant_token, self.client.config)
        except Exception as exc:  # requests errors, ObtainAccessTokenException
            raise DeliveryError(f"feishu tenant token: {exc}") from exc

    def _forget_token(self) -> None:
        TokenManager.cache.set(f"self_tenant_token:{self.app_id}", "", 0)

    async def _option(self) -> lark.RequestOption:
        return lark.RequestOption.builder().tenant_access_token(await self.token()).build()

    async def warm(self) -> None:
        """At start-up: the token, and the bot's own open_id (to see when a group @-mentions it)."""
        try:
            request = (
                lark.BaseRequest.builder()
                .http_method(lark.HttpMethod.GET)
                .uri("/open-apis/bot/v3/info")
                .token_types({lark.AccessTokenType.TENANT})
                .build()
            )
            response = await self.client.arequest(request, await self._option())
            info = json.loads(response.raw.content or b"{}") if response.raw else {}
            self.bot_open_id = (info.get("bot") or {}).get("open_id") or None
        except Exception as exc:  # the service runs on; mentions fall back to the bot type
            log.warning("feishu warm-up failed: %s", exc)

    async def _call(
        self, what: str, key: str | None, call: Callable[[lark.RequestOption], Awaitable[Any]]
    ) -> Any:
        """One API call with the token, the limits, and the errors turned into DeliveryError."""
        slots = [(self._per_app, APP_KEY), (self._per_app_minute, APP_KEY)]
        if key:
            slots.append((self._per_chat, key))
        for attempt in (1, 2):
            wait = await self.pacer.acquire(slots, max_wait=MAX_INLINE_WAIT)
            if wait:
                raise DeliveryError(
                    f"feishu {what}: rate limit, wait {wait:.1f}s", retry_after=wait
                )
            try:
                response = await call(await self._option())
                self._check(what, key, response)
                return response
            except _TokenRejected:
                self._forget_token()
                if attempt == 2:
                    raise DeliveryError(f"feishu {what}: token refused twice") from None
            except DeliveryError:
                raise
            except Exception as exc:  # httpx errors, a non-JSON error page
                raise DeliveryError(f"feishu {what}: {type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")

    def _check(self, what: str, key: str | None, response: Any) -> None:
        if response.success():
            return
        code, raw = response.code, response.raw
        status = raw.status_code if raw else None
        if code in TOKEN_INVALID:
            raise _TokenRejected
        if code in RATE_LIMITED or status == 429:
            reset = _header(raw.headers if raw else {}, "x-ogw-ratelimit-reset")
            wait = float(reset) if reset and reset.replace(".", "", 1).isdigit() else 1.0
            until = self.pacer.now() + wait
            if code == 230020 and key:
                self._per_chat.pause(key, until)
            else:
                self._per_app.pause(APP_KEY, until)
            raise DeliveryError(f"feishu {what}: rate limited ({code})", retry_after=wait)
        reason = f"feishu {what}: {code} {response.msg}"
        raise DeliveryError(reason, permanent=code in PERMANENT)

    async def send(self, recipient: str, msg_type: str, content: dict[str, Any], uuid: str) -> str:
        """One message; `uuid` makes Feishu drop a repeat within an hour (a retried delivery)."""
        request = (
            CreateMessageRequest.builder()
            .receive_id_type(receive_id_type(recipient))
            .request_body(
                CreateMessageRequestBody.builder()
                .receive_id(recipient)
                .msg_type(msg_type)
                .content(json.dumps(content, ensure_ascii=False))
                .uuid(uuid)
                .build()
            )
            .build()
        )
        response = await self._call(
            "send", recipient, lambda option: self.client.im.v1.message.acreate(request, option)
        )
        return str(response.data.message_id) if response.data else ""

    async def upload_image(self, path: Path) -> str:
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise DeliveryError(f"feishu image {path}: {exc}", permanent=True) from exc

        def upload(option: lark.RequestOption) -> Awaitable[Any]:
            body = CreateImageRequestBody.builder().image_type("message").image(io.BytesIO(data))
            request = CreateImageRequest.builder().request_body(body.build()).build()
            return self.client.im.v1.image.acreate(request, option)

        response = await self._call("image upload", None, upload)
        return str(response.data.image_key)

    async def download(self, message_id: str, file_key: str, kind: str) -> tuple[str, bytes]:
        """A file or picture a user sent: (file name, content)."""

        async def fetch(option: lark.RequestOption) -> Any:
            request = (
                GetMessageResourceRequest.builder()
                .message_id(message_id)
                .file_key(file_key)
                .type(kind)
                .build()
            )
            return await self._in_thread(self.client.im.v1.message_resource.get, request, option)

        response = await self._call("download", None, fetch)
        return response.file_name or file_key, response.file.read()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class FeishuSender:
    """Delivers outbox rows: payload `card` (a ready card), `digest` (data for a digest card),
    `image_path` (a picture, e.g. the leaderboard chart), otherwise the row's text."""

    channel = CHANNEL

    def __init__(self, api: FeishuApi) -> None:
        self.api = api

    async def deliver(self, message: Outbox) -> None:
        payload = message.payload or {}
        # Stable per row: a retry after a partial failure is dropped by Feishu, not shown twice.
        uuid = hashlib.sha1(message.key.encode()).hexdigest()
        image_key = None
        if payload.get("image_path"):
            image_key = await self.api.upload_image(Path(payload["image_path"]))
        if payload.get("digest"):
            card = digest_card(payload["digest"], image_key)
            await self.api.send(message.recipient, "interactive", card, uuid)
            return
        if image_key:
            await self.api.send(message.recipient, "image", {"image_key": image_key}, f"{uuid}-i")
        if payload.get("card"):
            await self.api.send(message.recipient, "interactive", payload["card"], uuid)
        elif message.text:
            await self.api.send(message.recipient, "text", {"text": message.text}, uuid)
