"""A loopback fake of the WeChat API: the endpoints the bot calls, in WeChat's wire format
(JSON bodies, `access_token` in the query, `errcode`/`errmsg` answers). Serve `FakeWeChat().app()`
with pytest-aiohttp and point WECHAT_API_BASE at it.

It checks what the real API checks that matters to us (credentials, the token, field presence
and WeChat's length limits), records what it accepted, and can be told to fail: `fail(path,
errcode…)` answers the next calls of a path with those codes, `expire_tokens()` makes every
issued token stale (42001), `close_window(openid)` answers customer-service messages to that
user with 45015 (outside the 48-hour window).
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from aiohttp import web

APPID = "wx2c2769f8efd9abc2"
SECRET = "fake-app-secret"
TEMPORARY_MAX = 30 * 86400


def _error(code: int, message: str) -> web.Response:
    return web.json_response({"errcode": code, "errmsg": message})


def _ok(**extra: Any) -> web.Response:
    return web.json_response({"errcode": 0, "errmsg": "ok", **extra})


class FakeWeChat:
    def __init__(self, appid: str = APPID, secret: str = SECRET) -> None:
        self.appid = appid
        self.secret = secret
        self.tokens_issued: list[str] = []
        self.valid_tokens: set[str] = set()
        self.custom: list[dict[str, Any]] = []  # customer-service messages accepted
        self.templates: list[dict[str, Any]] = []
        self.qrcodes: list[dict[str, Any]] = []
        self.menus: list[dict[str, Any]] = []
        self.calls: list[str] = []  # every API path called, token fetches included
        self._failures: dict[str, list[int]] = defaultdict(list)
        self._closed_windows: set[str] = set()

    # Scripting ---------------------------------------------------------------------------
    def fail(self, path: str, *codes: int) -> None:
        self._failures[path].extend(codes)

    def expire_tokens(self) -> None:
        self.valid_tokens.clear()

    def close_window(self, openid: str) -> None:
        self._closed_windows.add(openid)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/cgi-bin/token", self.token)
        app.router.add_post("/cgi-bin/message/custom/send", self.custom_send)
        app.router.add_post("/cgi-bin/message/template/send", self.template_send)
        app.router.add_post("/cgi-bin/qrcode/create", self.qrcode_create)
        app.router.add_post("/cgi-bin/menu/create", self.menu_create)
        return app

    # Endpoints ---------------------------------------------------------------------------
    async def token(self, request: web.Request) -> web.Response:
        self.calls.append(request.path)
        query = request.query
        if query.get("grant_type") != "client_credential":
            return _error(40002, "invalid grant_type")
        if query.get("appid") != self.appid:
            return _error(40013, "invalid appid")
        if query.get("secret") != self.secret:
            return _error(40125, "invalid appsecret")
        token = f"FAKE-TOKEN-{len(self.tokens_issued) + 1}"
        self.tokens_issued.append(token)
        self.valid_tokens.add(token)
        return web.json_response({"access_token": token, "expires_in": 7200})

    async def _call(self, request: web.Request) -> dict[str, Any] | web.Response:
        """The JSON body of an authorised call, or the error WeChat would answer."""
        self.calls.append(request.path)
        token = request.query.get("access_token")
        if not token:
            return _error(41001, "access_token missing")
        if token not in self.valid_tokens:
            code = 42001 if token in self.tokens_issued else 40001
            return _error(code, "access_token expired" if code == 42001 else "invalid credential")
        if self._failures[request.path]:
            return _error(self._failures[request.path].pop(0), "scripted failure")
        try:
            body = json.loads(await request.read())
        except ValueError:
            return _error(47001, "data format error")
        return body if isinstance(body, dict) else _error(47001, "data format error")

    async def custom_send(self, request: web.Request) -> web.Response:
        body = await self._call(request)
        if isinstance(body, web.Response):
            return body
        content = body.get("text", {}).get("content")
        if body.get("msgtype") != "text" or not isinstance(content, str) or not body.get("touser"):
            return _error(47001, "data format error")
        if body["touser"] in self._closed_windows:
            return _error(45015, "response out of time limit or subscription is canceled")
        self.custom.append({"touser": body["touser"], "text": content})
        return _ok()

    async def template_send(self, request: web.Request) -> web.Response:
        body = await self._call(request)
        if isinstance(body, web.Response):
            return body
        if not body.get("touser") or not body.get("template_id"):
            return _error(47001, "data format error")
        if not isinstance(body.get("data"), dict):
            return _error(47001, "data format error")
        self.templates.append(body)
        return _ok(msgid=len(self.templates))

    async def qrcode_create(self, request: web.Request) -> web.Response:
        body = await self._call(request)
        if isinstance(body, web.Response):
            return body
        action = body.get("action_name")
        scene = body.get("action_info", {}).get("scene", {}).get("scene_str")
        if action not in ("QR_STR_SCENE", "QR_LIMIT_STR_SCENE"):
            return _error(40053, "invalid action info")
        if not isinstance(scene, str) or not 1 <= len(scene) <= 64:
            return _error(40053, "invalid action info")
        expire = body.get("expire_seconds", 60)
        if action == "QR_STR_SCENE" and not 60 <= expire <= TEMPORARY_MAX:
            return _error(40009, "invalid expire_seconds")
        self.qrcodes.append(body)
        number = len(self.qrcodes)
        answer: dict[str, Any] = {
            "ticket": f"gQFAKE{number}",
            "url": f"http://weixin.qq.com/q/fake{number}",
        }
        if action == "QR_STR_SCENE":
            answer["expire_seconds"] = expire
        return web.json_response(answer)

    async def menu_create(self, request: web.Request) -> web.Response:
        body = await self._call(request)
        if isinstance(body, web.Response):
            return body
        buttons = body.get("button")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
            return _error(40016, "invalid button size")
        for button in buttons:
            if len(button.get("name", "").encode()) > 16:
                return _error(40018, "invalid button name size")
            subs = button.get("sub_button", [])
            if len(subs) > 5:
                return _error(40023, "invalid sub button size")
            for leaf in subs or [button]:
                if leaf.get("type") != "click" or not leaf.get("key"):
                    return _error(40019, "invalid button key size")
                if len(leaf["name"].encode()) > 60 or len(leaf["key"].encode()) > 128:
                    return _error(40027, "invalid sub button name size")
        self.menus.append(body)
        return _ok()
