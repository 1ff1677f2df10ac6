"""A loopback fake of a WeCom group robot webhook (`POST /cgi-bin/webhook/send?key=KEY`), as
the official robot docs describe it: JSON `{msgtype, text|markdown|image}`, answers
`{"errcode": 0, "errmsg": "ok"}`; markdown content at most 4096 bytes (40058 otherwise), an image
as base64 with its md5, at most 20 messages a minute per robot (45009 beyond), an unknown key
93000. The minute is measured on the clock it is given, so tests control it.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

MARKDOWN_BYTES = 4096
TEXT_BYTES = 2048
PER_MINUTE = 20


def _answer(code: int = 0, message: str = "ok") -> web.Response:
    return web.json_response({"errcode": code, "errmsg": message})


@dataclass
class FakeRobot:
    keys: set[str]
    now: Callable[[], float]
    received: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    refused: list[int] = field(default_factory=list)
    _times: dict[str, list[float]] = field(default_factory=dict)
    _failures: list[int] = field(default_factory=list)
    _fail_at: dict[int, int] = field(default_factory=dict)

    def fail_next(self, *codes: int) -> None:
        self._failures += codes

    def fail_at(self, accepted: int, code: int) -> None:
        """Refuse once with `code` the call that comes after `accepted` accepted messages."""
        self._fail_at[accepted] = code

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/cgi-bin/webhook/send", self.send)
        return app

    def markdown(self, key: str) -> list[str]:
        return [
            m["markdown"]["content"]
            for m in self.received.get(key, [])
            if m["msgtype"] == "markdown"
        ]

    def _refuse(self, code: int, message: str) -> web.Response:
        self.refused.append(code)
        return _answer(code, message)

    async def send(self, request: web.Request) -> web.Response:
        key = request.query.get("key", "")
        if key not in self.keys:
            return self._refuse(93000, "invalid webhook url")
        accepted = sum(len(v) for v in self.received.values())
        if self._failures or accepted in self._fail_at:
            code = self._failures.pop(0) if self._failures else self._fail_at.pop(accepted)
            return self._refuse(code, "scripted failure")
        try:
            body = await request.json()
        except ValueError:
            return self._refuse(40035, "invalid json")
        recent = [t for t in self._times.get(key, []) if t > self.now() - 60]
        if len(recent) >= PER_MINUTE:
            return self._refuse(45009, "api freq out of limit")
        problem = _check(body)
        if problem:
            return self._refuse(*problem)
        self._times[key] = [*recent, self.now()]
        self.received.setdefault(key, []).append(body)
        return _answer()


def _check(body: Any) -> tuple[int, str] | None:
    kind = body.get("msgtype") if isinstance(body, dict) else None
    if kind == "markdown":
        content = body.get("markdown", {}).get("content", "")
        if not content:
            return 44004, "empty content"
        if len(content.encode()) > MARKDOWN_BYTES:
            return 40058, "markdown.content exceed max length 4096"
        return None
    if kind == "text":
        content = body.get("text", {}).get("content", "")
        if len(content.encode()) > TEXT_BYTES:
            return 40058, "text.content exceed max length 2048"
        return None
    if kind == "image":
        image = body.get("image", {})
        data = base64.b64decode(image.get("base64", ""))
        if hashlib.md5(data).hexdigest() != image.get("md5"):
            return 301019, "media md5 not match"
        return None
    return 40008, "invalid message type"
