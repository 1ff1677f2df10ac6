"""The web channel: the chat page, its JSON endpoint, the campaign API, health, and the /dev
endpoints (BOT_ENV=dev only) that drive the same flows as every other channel."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlmodel import select

from bot.keys import CAMPAIGNS, DATABASE, DISPATCHER, SETTINGS
from bot.messages import Event, Incoming
from storage.models import Outbox

CHANNEL = "web"
STATIC = Path(__file__).resolve().parent.parent / "static"
COOKIE = "bot_uid"
EVENT_TYPES = {"scan", "subscribe", "click"}


def setup(app: web.Application) -> None:
    app.router.add_get("/", chat_page)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/api/chat", chat)
    app.router.add_get("/api/campaigns", campaigns)
    if app[SETTINGS].dev:
        app.router.add_post("/dev/messages", dev_messages)
        app.router.add_get("/dev/outbox", dev_outbox)


def bad_request(reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=400)


async def _json_object(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return bad_request("body must be JSON")
    if not isinstance(body, dict):
        return bad_request("body must be a JSON object")
    return body


def incoming_from(body: dict[str, Any], user: str) -> Incoming | str:
    """An Incoming from a `{text}` or `{event: {type, scene|key}}` body, or the reason it is wrong."""
    text, event = body.get("text"), body.get("event")
    if (text is None) == (event is None):
        return "give exactly one of 'text' or 'event'"
    if text is not None:
        if not isinstance(text, str):
            return "'text' must be a string"
        return Incoming(channel=CHANNEL, user=user, text=text)
    if not isinstance(event, dict) or event.get("type") not in EVENT_TYPES:
        return f"'event' must be an object with 'type' one of {sorted(EVENT_TYPES)}"
    scene, key = event.get("scene"), event.get("key")
    if any(v is not None and not isinstance(v, str) for v in (scene, key)):
        return "'event.scene' and 'event.key' must be strings"
    if event["type"] == "click" and not key:
        return "a click event needs 'key'"
    return Incoming(
        channel=CHANNEL, user=user, event=Event(type=event["type"], scene=scene, key=key)
    )


def _valid_user(user: Any) -> bool:
    return isinstance(user, str) and 0 < len(user) <= 128 and user.isprintable()


async def dev_messages(request: web.Request) -> web.Response:
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    if not _valid_user(body.get("user")):
        return bad_request("'user' must be a non-empty string of at most 128 characters")
    incoming = incoming_from(body, body["user"])
    if isinstance(incoming, str):
        return bad_request(incoming)
    replies = await request.app[DISPATCHER].handle(incoming)
    return web.json_response({"replies": [r.as_json() for r in replies]})


async def dev_outbox(request: web.Request) -> web.Response:
    def read(session: Any) -> list[dict[str, Any]]:
        rows = session.exec(select(Outbox).where(Outbox.channel == CHANNEL).order_by(Outbox.id))
        return [
            {
                "id": row.id,
                "recipient": row.recipient,
                "kind": row.kind,
                "text": row.text,
                "campaign": row.campaign_id,
                "status": row.status,
                "created_at": row.created_at.isoformat(),
            }
            for row in rows
        ]

    return web.json_response(await request.app[DATABASE].run(read, read_only=True))


def _sign(secret: str, uid: str) -> str:
    message = uid.encode("utf-8", "surrogatepass")
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


def web_user(request: web.Request) -> tuple[str, bool]:
    """The browser's identity from its signed cookie, or a new one (and whether it is new)."""
    secret = request.app[SETTINGS].secret_key
    cookie = request.cookies.get(COOKIE, "")
    uid, _, sig = cookie.partition(".")
    # A cookie is whatever a client sends: compare_digest refuses non-ASCII str, and aiohttp
    # hands undecodable bytes over as surrogates.
    if uid and sig.isascii() and hmac.compare_digest(sig, _sign(secret, uid)):
        return uid, False
    return f"w{secrets.token_hex(8)}", True


async def chat(request: web.Request) -> web.Response:
    """The chat page's endpoint. In dev the page may name its user (to try `organizer`)."""
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    settings = request.app[SETTINGS]
    user, new = web_user(request)
    if settings.dev and body.get("user") is not None:
        if not _valid_user(body["user"]):
            return bad_request("'user' must be a non-empty string of at most 128 characters")
        user, new = body["user"], False
    payload = {k: v for k, v in body.items() if k != "user"}
    incoming = incoming_from(payload, user)
    if isinstance(incoming, str):
        return bad_request(incoming)
    replies = await request.app[DISPATCHER].handle(incoming)
    # The page shows choices as buttons, so it gets the text without the numbered options.
    response = web.json_response({"user": user, "replies": [r.to_dict() for r in replies]})
    if new:
        signed = f"{user}.{_sign(settings.secret_key, user)}"
        response.set_cookie(COOKIE, signed, max_age=180 * 86400, httponly=True, samesite="Lax")
    return response


async def chat_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "chat.html")


async def healthz(request: web.Request) -> web.Response:
    try:
        await request.app[DATABASE].run(
            lambda session: session.exec(select(1)).one(), read_only=True
        )
    except Exception as exc:  # the probe reports, it never raises
        return web.json_response({"status": "degraded", "database": str(exc)[:200]}, status=503)
    return web.json_response({"status": "ok", "campaigns": len(request.app[CAMPAIGNS])})


async def campaigns(request: web.Request) -> web.Response:
    return web.json_response(
        [
            {
                "id": c.id,
                "name": c.name,
                "phases": [
                    {
                        "key": p.key,
                        "name": p.name,
                        "kind": p.kind,
                        "start": p.start.isoformat(),
                        "end": p.end.isoformat(),
                    }
                    for p in c.phases
                ],
                "groups": [{"key": g.key, "name": g.name} for g in c.groups],
            }
            for c in request.app[CAMPAIGNS].values()
        ]
    )
