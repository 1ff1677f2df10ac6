"""A loopback fake of Feishu: the open API the bot calls and the events Feishu pushes, in
Feishu's wire formats (open.feishu.cn docs: tenant_access_token/internal, bot/v3/info,
im/v1/messages, im/v1/images, im/v1/messages/:id/resources/:key, the event schema 2.0 with
Encrypt Key and X-Lark-Signature, card.action.trigger, and the long-connection endpoint with its
protobuf frames). Serve `FakeFeishu().app()` with pytest-aiohttp and point FEISHU_DOMAIN at it.

The fake checks what the real API checks that matters to us (app credentials, the bearer token,
receive_id_type, JSON-string content), records what it accepted, and can be told to refuse:
`limit_next(n, reset)` answers the next n message creates with 429 / 99991400 and an
`x-ogw-ratelimit-reset`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import WSMsgType, web
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

APP_ID = "cli_fake_app"
APP_SECRET = "fake-app-secret"
VERIFICATION_TOKEN = "fake-verification-token"
ENCRYPT_KEY = "fake-encrypt-key"
BOT_OPEN_ID = "ou_bot0000000000000000000000000000"
TENANT_KEY = "tenant_fake"
RECEIVE_ID_TYPES = {"open_id", "user_id", "union_id", "email", "chat_id"}


def _error(code: int, msg: str, status: int = 400, **headers: str) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status, headers=headers)


# What Feishu sends -----------------------------------------------------------------------------
def encrypt(encrypt_key: str, plaintext: str) -> str:
    """Feishu's Encrypt Key scheme: AES-256-CBC, key sha256(encrypt_key), a random IV first."""
    key = hashlib.sha256(encrypt_key.encode()).digest()
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext.encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + encryptor.update(data) + encryptor.finalize()).decode()


def signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode() + body).hexdigest()


@dataclass
class Pusher:
    """Builds the HTTP requests Feishu's event subscription makes."""

    token: str = VERIFICATION_TOKEN
    encrypt_key: str | None = ENCRYPT_KEY
    app_id: str = APP_ID

    def request(
        self, event: dict[str, Any], timestamp: int, *, nonce: str | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """(body, headers): encrypted and signed when an Encrypt Key is set."""
        plain = json.dumps(event, ensure_ascii=False)
        if self.encrypt_key:
            body = json.dumps({"encrypt": encrypt(self.encrypt_key, plain)}).encode()
        else:
            body = plain.encode()
        nonce = nonce or uuid.uuid4().hex
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-Lark-Request-Timestamp": str(timestamp),
            "X-Lark-Request-Nonce": nonce,
            "X-Request-Id": uuid.uuid4().hex,
        }
        if self.encrypt_key:
            headers["X-Lark-Signature"] = signature(str(timestamp), nonce, self.encrypt_key, body)
        return body, headers

    def challenge(self, challenge: str) -> dict[str, Any]:
        return {"challenge": challenge, "token": self.token, "type": "url_verification"}

    def _header(self, event_type: str, event_id: str | None) -> dict[str, Any]:
        return {
            "event_id": event_id or uuid.uuid4().hex,
            "token": self.token,
            "create_time": "1725760800000",
            "event_type": event_type,
            "tenant_key": TENANT_KEY,
            "app_id": self.app_id,
        }

    def message(
        self,
        user: str,
        content: dict[str, Any],
        *,
        message_type: str = "text",
        chat_id: str | None = None,
        mentions: list[dict[str, Any]] | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        """im.message.receive_v1: p2p unless a group chat_id is given."""
        return {
            "schema": "2.0",
            "header": self._header("im.message.receive_v1", event_id),
            "event": {
                "sender": {
                    "sender_id": {"union_id": f"on_{user}", "user_id": user, "open_id": user},
                    "sender_type": "user",
                    "tenant_key": TENANT_KEY,
                },
                "message": {
                    "message_id": f"om_{uuid.uuid4().hex}",
                    "root_id": "",
                    "parent_id": "",
                    "create_time": "1725760800000",
                    "update_time": "1725760800000",
                    "chat_id": chat_id or f"oc_p2p_{user}",
                    "chat_type": "group" if chat_id else "p2p",
                    "message_type": message_type,
                    "content": json.dumps(content, ensure_ascii=False),
                    "mentions": mentions or [],
                    "user_agent": "Mozilla/5.0 Lark/7.20",
                },
            },
        }

    def text(self, user: str, text: str, **kw: Any) -> dict[str, Any]:
        return self.message(user, {"text": text}, **kw)

    def group_text(self, user: str, chat_id: str, text: str, **kw: Any) -> dict[str, Any]:
        """`@bot text` in a group, as Feishu writes it: a placeholder and a mention."""
        mention = {
            "key": "@_user_1",
            "id": {"union_id": "on_bot", "user_id": "", "open_id": BOT_OPEN_ID},
            "name": "赛事助手",
            "tenant_key": TENANT_KEY,
        }
        return self.text(user, f"@_user_1 {text}", chat_id=chat_id, mentions=[mention], **kw)

    def bot_added(self, operator: str, chat_id: str) -> dict[str, Any]:
        return {
            "schema": "2.0",
            "header": self._header("im.chat.member.bot.added_v1", None),
            "event": {
                "chat_id": chat_id,
                "operator_id": {
                    "union_id": f"on_{operator}",
                    "user_id": operator,
                    "open_id": operator,
                },
                "external": False,
                "operator_tenant_key": TENANT_KEY,
                "name": "组委会工作群",
                "i18n_names": {"zh_cn": "组委会工作群"},
            },
        }

    def card_action(
        self,
        operator: str,
        value: dict[str, Any],
        *,
        chat_id: str | None = None,
        form_value: dict[str, Any] | None = None,
        name: str | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        action: dict[str, Any] = {"value": value, "tag": "button"}
        if form_value is not None:
            action["form_value"] = form_value
        if name:
            action["name"] = name
        return {
            "schema": "2.0",
            "header": self._header("card.action.trigger", event_id),
            "event": {
                "operator": {
                    "tenant_key": TENANT_KEY,
                    "user_id": operator,
                    "open_id": operator,
                    "union_id": f"on_{operator}",
                },
                "token": f"c-{uuid.uuid4().hex}",
                "action": action,
                "host": "im_message",
                "context": {
                    "open_message_id": f"om_{uuid.uuid4().hex}",
                    "open_chat_id": chat_id or f"oc_p2p_{operator}",
                },
            },
        }


# The open API ----------------------------------------------------------------------------------
@dataclass
class Sent:
    receive_id_type: str
    receive_id: str
    msg_type: str
    content: dict[str, Any]
    uuid: str | None

    @property
    def text(self) -> str:
        """What a person reads: the text, or a card's texts and button labels."""
        if self.msg_type == "text":
            return str(self.content["text"])
        return "\n".join(_card_texts(self.content))


def _card_texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["content"]] if isinstance(node.get("content"), str) else []
        for key, value in node.items():
            if key != "value":
                found += _card_texts(value)
        return found
    if isinstance(node, list):
        return [t for item in node for t in _card_texts(item)]
    return []


@dataclass
class FakeFeishu:
    app_id: str = APP_ID
    app_secret: str = APP_SECRET
    sent: list[Sent] = field(default_factory=list)
    images: list[bytes] = field(default_factory=list)
    files: dict[tuple[str, str], tuple[str, bytes]] = field(default_factory=dict)
    tokens: list[str] = field(default_factory=list)
    uuids_seen: set[str] = field(default_factory=set)
    ws_acks: list[dict[str, Any]] = field(default_factory=list)
    _limited: list[str] = field(default_factory=list)
    _sockets: list[web.WebSocketResponse] = field(default_factory=list)
    _connected: asyncio.Event = field(default_factory=asyncio.Event)
    _acked: asyncio.Condition = field(default_factory=asyncio.Condition)
    _seq: int = 0

    # Scripting ---------------------------------------------------------------------------
    def limit_next(self, count: int, reset_seconds: int) -> None:
        self._limited += [str(reset_seconds)] * count

    def add_file(self, message_id: str, file_key: str, name: str, data: bytes) -> None:
        self.files[(message_id, file_key)] = (name, data)

    def to(self, receive_id: str) -> list[Sent]:
        return [s for s in self.sent if s.receive_id == receive_id]

    def app(self) -> web.Application:
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_post("/open-apis/auth/v3/tenant_access_token/internal", self.token)
        app.router.add_get("/open-apis/bot/v3/info", self.bot_info)
        app.router.add_post("/open-apis/im/v1/messages", self.create_message)
        app.router.add_post("/open-apis/im/v1/images", self.create_image)
        app.router.add_get(
            "/open-apis/im/v1/messages/{message_id}/resources/{file_key}", self.resource
        )
        app.router.add_post("/callback/ws/endpoint", self.ws_endpoint)
        app.router.add_get("/ws", self.ws)
        return app

    def _authorized(self, request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        return auth.startswith("Bearer ") and auth.removeprefix("Bearer ") in self.tokens

    # Endpoints ---------------------------------------------------------------------------
    async def token(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("app_id") != self.app_id or body.get("app_secret") != self.app_secret:
            return web.json_response({"code": 10014, "msg": "app secret invalid"})
        token = f"t-{uuid.uuid4().hex}"
        self.tokens.append(token)
        return web.json_response(
            {"code": 0, "msg": "ok", "tenant_access_token": token, "expire": 7200}
        )

    async def bot_info(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(99991663, "Invalid access token for authorization.")
        bot = {
            "activate_status": 2,
            "app_name": "赛事助手",
            "avatar_url": "https://s1-imfile.feishucdn.com/avatar.png",
            "ip_white_list": [],
            "open_id": BOT_OPEN_ID,
        }
        return web.json_response({"code": 0, "msg": "ok", "bot": bot})

    async def create_message(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(99991663, "Invalid access token for authorization.")
        if self._limited:
            reset = self._limited.pop(0)
            return _error(
                99991400,
                "request trigger frequency limit",
                status=429,
                **{"x-ogw-ratelimit-limit": "5", "x-ogw-ratelimit-reset": reset},
            )
        id_type = request.query.get("receive_id_type")
        if id_type not in RECEIVE_ID_TYPES:
            return _error(99992402, "field validation failed: receive_id_type")
        body = await request.json()
        content = body.get("content")
        if not isinstance(content, str):
            return _error(230001, "invalid content: must be a JSON string")
        message_uuid = body.get("uuid")
        message_id = f"om_{uuid.uuid4().hex}"
        if message_uuid not in self.uuids_seen:  # Feishu drops a repeat uuid within an hour
            if message_uuid:
                self.uuids_seen.add(message_uuid)
            self.sent.append(
                Sent(
                    id_type, body["receive_id"], body["msg_type"], json.loads(content), message_uuid
                )
            )
        data = {
            "message_id": message_id,
            "root_id": "",
            "parent_id": "",
            "msg_type": body["msg_type"],
            "create_time": "1725760800000",
            "update_time": "1725760800000",
            "deleted": False,
            "updated": False,
            "chat_id": body["receive_id"] if id_type == "chat_id" else "oc_p2p",
            "sender": {"id": self.app_id, "id_type": "app_id", "sender_type": "app"},
            "body": {"content": content},
            "mentions": [],
            "upper_message_id": "",
        }
        return web.json_response({"code": 0, "msg": "success", "data": data})

    async def create_image(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(99991663, "Invalid access token for authorization.")
        form = await request.post()
        image = form.get("image")
        if form.get("image_type") != "message" or not hasattr(image, "file"):
            return _error(234001, "Invalid request param.")
        self.images.append(image.file.read())  # type: ignore[union-attr]
        key = f"img_v3_{len(self.images):04d}"
        return web.json_response({"code": 0, "msg": "success", "data": {"image_key": key}})

    async def resource(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(99991663, "Invalid access token for authorization.")
        found = self.files.get((request.match_info["message_id"], request.match_info["file_key"]))
        if request.query.get("type") not in ("file", "image") or found is None:
            return _error(234003, "File not in msg.")
        name, data = found
        disposition = f"attachment; filename=\"file\"; filename*=UTF-8''{quote(name)}"
        return web.Response(
            body=data,
            content_type="application/octet-stream",
            headers={"Content-Disposition": disposition},
        )

    # Long connection ----------------------------------------------------------------------
    async def ws_endpoint(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("AppID") != self.app_id or body.get("AppSecret") != self.app_secret:
            return web.json_response({"code": 1000040344, "msg": "invalid app credentials"})
        url = f"ws://{request.host}/ws?device_id=fake-device&service_id=7"
        config = {
            "ReconnectCount": -1,
            "ReconnectInterval": 120,
            "ReconnectNonce": 0,
            "PingInterval": 120,
        }
        return web.json_response(
            {"code": 0, "msg": "ok", "data": {"URL": url, "ClientConfig": config}}
        )

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        from lark_oapi.ws.pb.pbbp2_pb2 import Frame

        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.append(socket)
        self._connected.set()
        async for message in socket:
            if message.type != WSMsgType.BINARY:
                continue
            frame = Frame()
            frame.ParseFromString(message.data)
            headers = {h.key: h.value for h in frame.headers}
            if frame.method == 1:  # a data frame coming back: the client's answer to an event
                async with self._acked:
                    self.ws_acks.append({"headers": headers, **json.loads(frame.payload)})
                    self._acked.notify_all()
        return socket

    async def wait_connected(self, timeout: float = 10) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def push(self, event: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
        """Send an event over the long connection; the client's answer frame."""
        from lark_oapi.ws.pb.pbbp2_pb2 import Frame

        self._seq += 1
        frame = Frame()
        frame.SeqID, frame.LogID, frame.service, frame.method = self._seq, self._seq, 7, 1
        message_id = uuid.uuid4().hex
        for key, value in (
            ("type", "event"),
            ("message_id", message_id),
            ("trace_id", uuid.uuid4().hex),
            ("sum", "1"),
            ("seq", "0"),
        ):
            header = frame.headers.add()
            header.key, header.value = key, value
        frame.payload = json.dumps(event, ensure_ascii=False).encode()
        await self._sockets[-1].send_bytes(frame.SerializeToString())
        async with self._acked:
            await asyncio.wait_for(
                self._acked.wait_for(
                    lambda: any(a["headers"].get("message_id") == message_id for a in self.ws_acks)
                ),
                timeout,
            )
        return next(a for a in self.ws_acks if a["headers"]["message_id"] == message_id)

    async def close(self) -> None:
        for socket in self._sockets:
            await socket.close()
