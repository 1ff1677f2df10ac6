"""The WeChat Official Account channel (公众号): the push protocol at GET|POST /wechat.

- Every request carries `signature` = sha1(sorted(token, timestamp, nonce)): a wrong one gets
  403 and nothing is read. `encrypt_type=aes` (compatible and safe mode) adds `msg_signature`
  over the ciphertext; the reply is encrypted back. GET answers the URL check with `echostr`.
- Bodies are bounded; XML passes defusedxml first (no DTD, so no XXE or entity expansion; a
  bounded depth) and anything malformed gets 400 without being processed.
- WeChat retries a push 3 times when no answer comes within 5 s. A delivery id (MsgId; for
  events sender + CreateTime + event) goes to the dispatcher, which changes state once and
  answers every retry from the stored replies. When the flows take longer than DEADLINE, the
  push is answered `success` and the replies follow by customer-service message; retries of
  such a push answer `success` too (a marker row tells every instance).
- Text goes to the flows, a picture as `Incoming(image=MediaId)` (a 战报 screenshot), other
  types get a hint; subscribe/SCAN with a QR scene start sign-up, CLICK menu keys are keywords.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Collection, Coroutine, Mapping
from typing import Any
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as defused
from aiohttp import web
from defusedxml import DefusedXmlException
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.replies import TextReply
from wechatpy.utils import check_signature

from bot.clock import Clock
from bot.dispatcher import BUSY, Dispatcher, Prelude
from bot.keys import CAMPAIGNS, CLOCK, DATABASE, DISPATCHER, SENDERS, SETTINGS
from bot.messages import Event, Incoming, Reply
from bot.rules.markdown_split import split_markdown
from bot.senders.wechat import CHANNEL, WeChatSender
from bot.wechat_api import WeChatAPI
from config.settings import Settings
from storage.db import Database, DatabaseUnavailable
from storage.deliveries import answered, record_answer, touch_user

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # WeChat pushes are a few hundred bytes
MAX_DEPTH = 5  # <xml><SendPicsInfo><PicList><item><PicMd5Sum> is the deepest WeChat sends
DEADLINE = 4.0  # seconds: WeChat gives up (and retries) after 5
PASSIVE_LIMIT = 2048  # bytes of a text reply WeChat still shows
SUCCESS = "success"
MAX_DELIVERY_ID = 128 - len("deferred:")  # processed_event.event_id, with the marker's prefix
# Besides messages, these open WeChat's 48-hour customer-service window.
WINDOW_EVENTS = frozenset({"subscribe", "subscribe_scan", "scan", "click"})
TRUNCATED = "\n……（内容太长，只显示了一部分）"
HINT_TAIL = "回复「帮助」查看可用的关键词。"
HINTS = {
    "voice": "暂时听不懂语音哦，请发文字。",
    "location": "暂时看不懂位置哦，请发文字。",
    "link": "暂时打不开链接卡片哦，请把链接文字复制后发过来。",
    "video": "暂时看不了视频哦，作品请发视频链接或分享文字。",
    "shortvideo": "暂时看不了视频哦，作品请发视频链接或分享文字。",
}
OTHER_HINT = "暂时看不懂这类消息哦，请发文字。"


class Malformed(Exception):
    """A push we will not process: the reason goes to the log, the sender gets 400."""


def check_xml(text: str) -> None:
    """Refuse what WeChat never sends: a DTD (entities: XXE, billion laughs) or deep nesting.
    The C parser builds the tree (a body is at most MAX_BODY), then an iterative walk checks
    the depth: five times cheaper than a Python loop over parse events, on every push twice."""
    try:
        root = defused.fromstring(text, forbid_dtd=True)
    except (DefusedXmlException, ParseError) as exc:
        raise Malformed(f"refused XML: {exc!r}") from exc
    if root.tag != "xml":
        raise Malformed(f"root element {root.tag!r}, not <xml>")
    pending = [(root, 1)]
    while pending:
        element, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise Malformed(f"XML nested deeper than {MAX_DEPTH}")
        pending.extend((child, depth + 1) for child in element)


def _string(value: Any, name: str, *, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise Malformed(f"{name} is not a string of at most {limit} characters")
    return value


def delivery_id(message: Any) -> str:
    """What identifies one push across WeChat's retries (events have no MsgId)."""
    if message.type != "event" and message.id:
        delivery = f"m:{message.id}"
    else:
        delivery = f"e:{message.source}:{message.time}:{message._data.get('Event', '')}"
    if len(delivery) > MAX_DELIVERY_ID:
        raise Malformed(f"delivery id longer than {MAX_DELIVERY_ID}")
    return delivery


def translate(message: Any) -> Incoming | str | None:
    """An Incoming for the flows, a hint for a type we cannot read, or None (nothing to say)."""
    user = _string(message.source, "FromUserName", limit=64)
    raw_type = str(message._data.get("MsgType", "")).lower()
    base = {"channel": CHANNEL, "user": user, "message_id": delivery_id(message)}
    if message.type == "text":
        return Incoming(text=_string(message.content or "", "Content", limit=MAX_BODY), **base)
    if message.type == "image":
        return Incoming(image=_string(message.media_id, "MediaId", limit=256), **base)
    if raw_type != "event":
        return HINTS.get(raw_type, OTHER_HINT) + HINT_TAIL
    event = getattr(message, "event", "")
    if event in ("subscribe_scan", "scan"):
        scene = _string(message.scene_id or "", "EventKey", limit=128)
        kind = "subscribe" if event == "subscribe_scan" else "scan"
        return Incoming(event=Event(kind, scene=scene), **base)
    if event == "subscribe":
        return Incoming(event=Event("subscribe"), **base)
    if event == "click":
        return Incoming(
            event=Event("click", key=_string(message.key or "", "EventKey", limit=128)), **base
        )
    if event == "templatesendjobfinish" and message._data.get("Status") != "success":
        log.warning("WeChat template message to %s failed: %s", user, message._data.get("Status"))
    return None  # unsubscribe, menu links, location reports, job reports: nothing to answer


def pack(texts: list[str], limit: int = PASSIVE_LIMIT) -> list[str]:
    """Texts (a blank line between them) as few messages of at most `limit` bytes as whole
    lines allow."""
    return split_markdown("\n\n".join(texts), limit)


def cdata(text: str) -> str:
    """Safe inside wechatpy's <![CDATA[…]]>: a `]]>` in user text would end the section."""
    return text.replace("]]>", "]]]]><![CDATA[>")


def _deferred_by(marker: list[dict[str, Any]]) -> str | None:
    return next((r.get("deferred_by") for r in marker), None)


def _deferred_key(delivery: str) -> str:
    return f"deferred:{delivery}"


class WeChatChannel:
    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        db: Database,
        dispatcher: Dispatcher,
        sender: WeChatSender | None,
    ) -> None:
        self.token = settings.wechat_token or ""
        self.crypto = _crypto(settings)
        self.clock = clock
        self.db = db
        self.dispatcher = dispatcher
        self.sender = sender  # None: no credentials, so no late replies; wait for the flows
        self.deadline = DEADLINE
        self._running: set[str] = set()  # deliveries answered `success`, replies still to come
        self._tasks: set[asyncio.Task[None]] = set()

    # HTTP --------------------------------------------------------------------------------
    def _signed(self, query: Mapping[str, str]) -> bool:
        try:
            check_signature(
                self.token,
                query.get("signature", ""),
                query.get("timestamp", ""),
                query.get("nonce", ""),
            )
        except InvalidSignatureException:
            return False
        return True

    async def verify(self, request: web.Request) -> web.Response:
        """The URL check of the WeChat console: echo `echostr` when the signature holds."""
        if not self._signed(request.query):
            return web.Response(status=403, text="bad signature")
        return web.Response(text=request.query.get("echostr", ""))

    async def receive(self, request: web.Request) -> web.Response:
        query = request.query
        if not self._signed(query):
            return web.Response(status=403, text="bad signature")
        body = await request.read()
        if len(body) > MAX_BODY:
            return web.Response(status=413, text="body too large")
        aes = query.get("encrypt_type", "raw").lower() == "aes"
        try:
            message = parse_message(self._open(body, query, aes=aes))
            what = translate(message)
        except InvalidSignatureException:
            return web.Response(status=403, text="bad msg_signature")
        except Exception as exc:  # parse and decrypt errors come as many types (see notes)
            log.warning("refused a WeChat push: %r", exc)
            return web.Response(status=400, text="bad request")
        text = await self._answer(message, what)
        return self._render(message, text, query, aes=aes)

    def _open(self, body: bytes, query: Mapping[str, str], *, aes: bool) -> str:
        """The push's message XML, decrypted in compatible and safe mode."""
        text = body.decode("utf-8")
        check_xml(text)
        if not aes:
            return text
        if self.crypto is None:
            raise Malformed("encrypted push, but WECHAT_ENCODING_AES_KEY or WECHAT_APPID unset")
        plain = self.crypto.decrypt_message(
            text, query.get("msg_signature", ""), query.get("timestamp", ""), query.get("nonce", "")
        )
        check_xml(plain)
        return str(plain)

    def _render(
        self, message: Any, text: str, query: Mapping[str, str], *, aes: bool
    ) -> web.Response:
        if not text:
            return web.Response(text=SUCCESS)
        reply = TextReply(
            source=cdata(message.target or ""),
            target=cdata(message.source),
            content=cdata(text),
            time=int(self.clock.now().timestamp()),
        ).render()
        if aes and self.crypto is not None:
            reply = self.crypto.encrypt_message(
                reply, query.get("nonce", ""), query.get("timestamp")
            )
        return web.Response(text=reply, content_type="application/xml")

    # Answering ---------------------------------------------------------------------------
    async def _answer(self, message: Any, what: Incoming | str | None) -> str:
        """The passive reply's text; empty answers `success`."""
        if what is None:
            return ""
        delivery = delivery_id(message)
        opens_window = message.type != "event" or message.event in WINDOW_EVENTS
        now = self.clock.now()

        handling = uuid.uuid4().hex  # this handling of the push, as a deferral marker names it

        def note(session: Session) -> bool:
            """True for a retry of a push that another handling answered `success` (its
            replies come by customer-service message); not for that handling itself."""
            if opens_window:
                touch_user(session, CHANNEL, message.source, now)
            marker = answered(session, CHANNEL, _deferred_key(delivery))
            return marker is not None and _deferred_by(marker) != handling

        if delivery in self._running:
            return ""  # a retry of a push whose replies come by customer-service message
        if isinstance(what, Incoming):
            # One transaction for the push: the note first, then the flows (or nothing, for a
            # retry whose replies come by customer-service message: `note` says so).
            return await self._dispatch(what, delivery, note, handling)
        try:
            deferred = await self.db.run(note)
        except DatabaseUnavailable:
            return BUSY  # WeChat's retry may find the database back
        return "" if deferred else what

    async def _dispatch(
        self, incoming: Incoming, delivery: str, note: Prelude, handling: str
    ) -> str:
        if self.sender is None:
            chunks = pack(
                _texts(await self.dispatcher.handle(incoming, prelude=note)),
                PASSIVE_LIMIT - len(TRUNCATED.encode()),
            )
            return chunks[0] + TRUNCATED if len(chunks) > 1 else "".join(chunks)
        task = asyncio.create_task(self.dispatcher.handle(incoming, prelude=note))
        done, _ = await asyncio.wait({task}, timeout=self.deadline)
        if done:
            chunks = pack(_texts(task.result()))
            if len(chunks) <= 1:
                return "".join(chunks)
        # Too slow, or too long for one passive reply: answer now, send the replies in order.
        self._running.add(delivery)
        self._spawn(self._reply_later(task, incoming, delivery))
        try:
            await self.db.run(lambda s: self._mark(s, delivery, handling))
        except IntegrityError:  # another instance deferred the same push at the same moment
            log.info("WeChat delivery %s already marked by another instance", delivery)
        except DatabaseUnavailable:  # only retries reaching another instance miss the marker
            log.warning("could not mark WeChat delivery %s as answered later", delivery)
        return ""

    def _mark(self, session: Session, delivery: str, handling: str) -> None:
        """The push is answered later, by `handling`: retries answer `success`. The first
        handling to defer keeps the mark (a retry deferred again must not send twice)."""
        if answered(session, CHANNEL, _deferred_key(delivery)) is None:
            marker = [{"deferred_by": handling}]
            record_answer(session, CHANNEL, _deferred_key(delivery), marker, self.clock.now())

    async def _reply_later(
        self, task: asyncio.Task[list[Reply]], incoming: Incoming, delivery: str
    ) -> None:
        assert self.sender is not None
        try:
            replies = await task
            await self.sender.reply_later(
                incoming.user, pack(_texts(replies)), key=f"wechat:reply:{delivery}"
            )
        except Exception:  # a lost reply must show in the log
            log.exception("late WeChat reply to %s lost", incoming.user)
        finally:
            self._running.discard(delivery)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the late replies under way (at shutdown, before the database closes)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _texts(replies: list[Reply]) -> list[str]:
    return [r.render_text() for r in replies]


def _crypto(settings: Settings) -> WeChatCrypto | None:
    key, appid = settings.wechat_encoding_aes_key, settings.wechat_appid
    if not key:
        return None
    if not appid:
        raise ValueError("WECHAT_ENCODING_AES_KEY needs WECHAT_APPID (safe mode checks it)")
    try:
        return WeChatCrypto(settings.wechat_token or "", key, appid)
    except (ValueError, AssertionError) as exc:
        raise ValueError(
            "WECHAT_ENCODING_AES_KEY must be the 43-character EncodingAESKey from the console"
        ) from exc


# The custom menu (自定义菜单): (button, sub-buttons); each leaf is a chat keyword, sent back to
# us as a CLICK with the keyword as its key. Keywords the router does not know are left out.
MENU_LAYOUT: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("参赛", ("报名", "报备", "战报", "作品")),
    ("查询", ("排名", "我的", "我的报备", "修改报名")),
    ("帮助", ()),
)


def build_menu(keywords: Collection[str]) -> dict[str, Any]:
    """The menu for WeChat's menu/create API (at most 3 buttons of at most 5 sub-buttons)."""

    def click(word: str) -> dict[str, str]:
        return {"type": "click", "name": word, "key": word}

    buttons: list[dict[str, Any]] = []
    for name, words in MENU_LAYOUT:
        known = [click(w) for w in words if w in keywords]
        if known:
            buttons.append({"name": name, "sub_button": known})
        elif not words and name in keywords:
            buttons.append(click(name))
    return {"button": buttons}


WECHAT = web.AppKey("wechat", WeChatChannel)


def setup(app: web.Application) -> None:
    """Routes only when WECHAT_TOKEN is set (/wechat is 404 otherwise); the outbound sender
    whenever WECHAT_APPID and WECHAT_SECRET are set."""
    settings = app[SETTINGS]
    if settings.wechat_token:
        _crypto(settings)  # a wrong key stops the start, not the first encrypted push
        app.router.add_get("/wechat", _verify)
        app.router.add_post("/wechat", _receive)
    if settings.wechat_token or (settings.wechat_appid and settings.wechat_secret):
        app.cleanup_ctx.append(_wechat)


async def _wechat(app: web.Application) -> AsyncIterator[None]:
    settings, db, clock = app[SETTINGS], app[DATABASE], app[CLOCK]
    sender = None
    if settings.wechat_appid and settings.wechat_secret:
        api = WeChatAPI(
            settings.wechat_appid, settings.wechat_secret, settings.wechat_api_base, db, clock
        )
        sender = WeChatSender(api, db, clock, app[CAMPAIGNS])
        app[SENDERS][CHANNEL] = sender
    channel = WeChatChannel(settings, clock, db, app[DISPATCHER], sender)
    app[WECHAT] = channel
    yield
    await channel.drain()


async def _verify(request: web.Request) -> web.Response:
    return await request.app[WECHAT].verify(request)


async def _receive(request: web.Request) -> web.Response:
    return await request.app[WECHAT].receive(request)
