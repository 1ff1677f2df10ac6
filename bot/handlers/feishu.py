"""The Feishu channel: events at POST /feishu/events (or over the long connection), through
lark-oapi's EventDispatcherHandler.

Feishu wants 200 within 3 s (the challenge within 1 s) and redelivers after 15 s, 5 min, 1 h and
6 h otherwise. So a request is checked (decrypted, token, signature over the raw body, timestamp
freshness), the event is recorded in the database (`InboundEvent`) and handed to a background
task, and 200 goes back at once; an event whose process died before its work was done is run
again by a sweep five minutes later (`recover`). The task runs
the dispatcher (the event id is the message id, so a redelivery changes nothing: the dispatcher
keeps processed ids in the database and nothing deletes them) and sends its replies through the
outbox (one row per reply, keyed by the event id, so they are sent once) with the Feishu sender.
A card button click gets the updated card in its HTTP answer.

The SDK answers 500 to any failure, which Feishu redelivers: auth failures are therefore checked
here first (401/403), and anything else the SDK refuses is logged and answered 200.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import hmac
import json
import logging
import re
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from typing import Any

import lark_oapi as lark
from aiohttp import web
from lark_oapi.api.im.v1 import P2ImChatMemberBotAddedV1, P2ImMessageReceiveV1
from lark_oapi.api.im.v1.model import MentionEvent
from lark_oapi.core.const import (
    LARK_REQUEST_NONCE,
    LARK_REQUEST_SIGNATURE,
    LARK_REQUEST_TIMESTAMP,
    X_REQUEST_ID,
)
from lark_oapi.core.utils import AESCipher
from lark_oapi.event.callback.model.p2_card_action_trigger import (
    P2CardActionTrigger,
    P2CardActionTriggerResponse,
)
from sqlmodel import Session, col, delete, select

from bot import review
from bot.clock import Clock
from bot.dispatcher import KeyedLocks
from bot.engine import normalise
from bot.feishu_cards import (
    Card,
    ReviewClick,
    ReviewDecision,
    ReviewItem,
    clicked_text,
    reply_card,
    review_card,
    review_click,
)
from bot.feishu_ws import LongConnection
from bot.flows import groups
from bot.importing import import_stats
from bot.keys import CAMPAIGNS, CLOCK, DATABASE, DISPATCHER, SENDERS, SETTINGS
from bot.messages import Incoming, Reply
from bot.organizers import organizer_campaigns
from bot.senders.base import DeliveryError
from bot.senders.feishu import CHANNEL, FeishuApi, FeishuSender
from config.settings import Settings
from storage.db import DatabaseUnavailable
from storage.deliveries import answered, record_answer
from storage.models import AuditLog, InboundEvent, Outbox
from storage.outbox import enqueue

log = logging.getLogger(__name__)

MAX_SKEW_SECONDS = 300  # a signed request older (or newer) than this is a replay
CARD_ANSWER_SECONDS = 2.5  # Feishu waits 3 s for a card click's answer
REPLY_LEASE = timedelta(minutes=2)  # the outbox worker leaves a reply alone while we send it
SHUTDOWN_SECONDS = 20.0
REVIEW_WORD = "审核"
MAX_REVIEW_CARDS = 20  # 4 a second per chat at most: a longer queue is the text list's job
# The SDK reads these by exact case; aiohttp's headers are case-insensitive.
SDK_HEADERS = (LARK_REQUEST_TIMESTAMP, LARK_REQUEST_NONCE, LARK_REQUEST_SIGNATURE, X_REQUEST_ID)

UNSUPPORTED = "暂时只能看懂文字和图片哦。请直接发文字，或回复「帮助」查看可以做什么。"
NOT_ORGANIZER_FILE = (
    "收到文件。只有组委会成员可以发送平台数据文件（XLSX/CSV）导入；选手请发文字或图片。"
)
MANY_CAMPAIGNS_FILE = (
    "你负责多个赛事，看不出这个文件属于哪一个：请把文件发到该赛事已绑定的组委会群里，"
    "或用命令行 import-stats 导入。"
)
DOWNLOAD_FAILED = "文件没能下载下来，请稍后再发一次。"

# The events recorded before answering (InboundEvent), by the kind they are stored as.
Inbound = P2ImMessageReceiveV1 | P2ImChatMemberBotAddedV1
INBOUND_KINDS: dict[str, type[Inbound]] = {
    "message": P2ImMessageReceiveV1,
    "bot_added": P2ImChatMemberBotAddedV1,
}
INBOX_RETRY_AFTER = timedelta(minutes=5)  # not done by then (nor under way here): lost
INBOX_SWEEP_SECONDS = 30.0
INBOX_BATCH = 100
INBOX_KEEP = timedelta(hours=24)  # done rows also answer redeliveries (Feishu: up to 6 h)


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class FeishuChannel:
    def __init__(self, app: web.Application, settings: Settings) -> None:
        if not (settings.feishu_app_id and settings.feishu_app_secret):
            raise ValueError("FEISHU_APP_ID and FEISHU_APP_SECRET are both needed")
        if settings.feishu_mode == "webhook" and not settings.feishu_verification_token:
            raise ValueError("FEISHU_VERIFICATION_TOKEN is needed for Feishu events (webhook)")
        self.app = app
        self.settings = settings
        self.encrypt_key = settings.feishu_encrypt_key or ""
        self.token = settings.feishu_verification_token or ""
        self.api = FeishuApi(
            settings.feishu_app_id, settings.feishu_app_secret, settings.feishu_domain
        )
        self.sender = FeishuSender(self.api)
        # Feishu signs with real time; the app's clock may be a rehearsal (--now).
        self.wall: Clock = Clock()
        self.handler = (
            lark.EventDispatcherHandler.builder(self.encrypt_key, self.token)
            .register_p2_im_message_receive_v1(self._on_message)
            .register_p2_im_chat_member_bot_added_v1(self._on_bot_added)
            .register_p2_card_action_trigger(self._on_card_action)
            .build()
        )
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="feishu-events")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._inflight: set[str] = set()  # event ids being worked on in this process
        self._order = KeyedLocks()  # one chat's replies go out in the order its messages came
        self.connection: LongConnection | None = None

    # Lifecycle --------------------------------------------------------------------------------
    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        self._loop = asyncio.get_running_loop()
        self.spawn(self.api.warm())
        sweeper = asyncio.create_task(self._sweep_inbox())
        if self.settings.feishu_mode == "ws":
            self.connection = LongConnection(
                self.settings.feishu_app_id or "",
                self.settings.feishu_app_secret or "",
                self.settings.feishu_domain,
                self.handler,
            )
            await asyncio.to_thread(self.connection.start)
        yield
        sweeper.cancel()
        if self.connection is not None:
            await asyncio.to_thread(self.connection.stop)
        await self.drain()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.api.close()

    async def drain(self, timeout: float = SHUTDOWN_SECONDS) -> None:
        """Wait for the background work (replies being sent) to finish."""
        while self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            if pending:
                log.warning("feishu: %d background task(s) still running at shutdown", len(pending))
                return

    def spawn(self, work: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        """Run `work` on the app's loop as a tracked task; callable from any thread."""
        result: concurrent.futures.Future[Any] = concurrent.futures.Future()
        loop = self._loop
        if loop is None:
            work.close()
            result.set_exception(RuntimeError("feishu channel not started"))
            return result

        def start() -> None:
            task = loop.create_task(work)
            self._tasks.add(task)

            def finished(t: asyncio.Task[Any]) -> None:
                self._tasks.discard(t)
                if t.cancelled():
                    result.cancel()
                elif t.exception() is not None:
                    log.error("feishu background task failed", exc_info=t.exception())
                    result.set_exception(t.exception())  # type: ignore[arg-type]
                else:
                    result.set_result(t.result())

            task.add_done_callback(finished)

        try:
            if asyncio.get_running_loop() is loop:
                start()
                return result
        except RuntimeError:  # another thread: no running loop there
            pass
        loop.call_soon_threadsafe(start)
        return result

    # HTTP -------------------------------------------------------------------------------------
    async def events(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {name: request.headers[name] for name in SDK_HEADERS if name in request.headers}
        try:
            challenge = self.authenticate(body, headers)
        except Refused as refused:
            log.warning("feishu event refused (%s): %s", refused.status, refused.reason)
            return web.json_response({"msg": refused.reason}, status=refused.status)
        raw = lark.RawRequest()
        raw.uri = request.path
        raw.body = body
        raw.headers = headers
        if challenge:
            # Decrypt and echo, nothing else: done on the loop, well within Feishu's 1 s.
            response = self.handler.do(raw)
        else:
            loop = asyncio.get_running_loop()
            response = await loop.run_in_executor(self._executor, self.handler.do, raw)
        if response.status_code != 200:
            # Not ours to fix by redelivery (an event type we do not subscribe to, say).
            log.warning("feishu event not handled: %s", (response.content or b"")[:200])
            return web.json_response({"msg": "ignored"})
        return web.Response(
            body=response.content, status=200, content_type="application/json", charset="utf-8"
        )

    def authenticate(self, body: bytes, headers: dict[str, str]) -> bool:
        """Checks the SDK would answer with a 500; True for a url_verification challenge."""
        try:
            outer = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise Refused(400, "body must be JSON") from None
        if not isinstance(outer, dict):
            raise Refused(400, "body must be a JSON object")
        event = outer
        if "encrypt" in outer:
            if not self.encrypt_key:
                raise Refused(400, "encrypted event but FEISHU_ENCRYPT_KEY is not set")
            try:
                event = json.loads(AESCipher(self.encrypt_key).decrypt_str(outer["encrypt"]))
            except (ValueError, TypeError, UnicodeDecodeError):
                raise Refused(400, "cannot decrypt") from None
            if not isinstance(event, dict):
                raise Refused(400, "decrypted event must be a JSON object")
        challenge = event.get("type") == "url_verification"
        header = event.get("header")
        token = header.get("token") if isinstance(header, dict) else event.get("token")
        if not (
            isinstance(token, str) and hmac.compare_digest(token.encode(), self.token.encode())
        ):
            raise Refused(403, "invalid verification token")
        if challenge:
            return True
        timestamp = headers.get(LARK_REQUEST_TIMESTAMP)
        if self.encrypt_key:
            nonce = headers.get(LARK_REQUEST_NONCE)
            signature = headers.get(LARK_REQUEST_SIGNATURE)
            if not (timestamp and nonce and signature):
                raise Refused(401, "missing signature headers")
            signed = (timestamp + nonce + self.encrypt_key).encode() + body
            if not hmac.compare_digest(hashlib.sha256(signed).hexdigest(), signature):
                raise Refused(401, "signature verification failed")
        if timestamp is not None:
            if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
                raise Refused(401, "bad timestamp")
            skew = abs(self.wall.now().timestamp() - int(timestamp))
            if skew > MAX_SKEW_SECONDS:
                raise Refused(401, f"stale request ({skew:.0f}s off)")
        return False

    # SDK handlers: called on a worker thread (webhook) or the long-connection thread ----------
    def _on_message(self, data: P2ImMessageReceiveV1) -> None:
        self._accept("message", data)

    def _on_bot_added(self, data: P2ImChatMemberBotAddedV1) -> None:
        self._accept("bot_added", data)

    def _accept(self, kind: str, data: Inbound) -> None:
        """Before Feishu gets its 200: record the event, then work on it in the background.
        A redelivery of a recorded event starts nothing (the sweep re-runs a lost one)."""
        event_id = data.header.event_id if data.header else None
        if not event_id:
            return
        row = InboundEvent(
            channel=CHANNEL,
            event_id=event_id,
            kind=kind,
            body=lark.JSON.marshal(data),
            received_at=self.app[CLOCK].now(),
        )

        def record(session: Session) -> bool:
            if session.get(InboundEvent, (CHANNEL, event_id)) is not None:
                return False
            session.add(row)
            return True

        try:
            fresh = self.app[DATABASE].run_sync(record)
        except DatabaseUnavailable:
            log.warning("feishu: event %s not recorded (database unavailable)", event_id)
            fresh = True  # still worth a try: the dispatcher answers "busy" at worst
        if fresh:
            self.spawn(self._run(kind, event_id, data))

    async def _run(self, kind: str, event_id: str, data: Inbound) -> None:
        self._inflight.add(event_id)
        try:
            if isinstance(data, P2ImMessageReceiveV1):
                await self._message(data)
            else:
                await self._bot_added(data)
        except DatabaseUnavailable:
            log.warning(
                "feishu %s event %s: database unavailable, the sweep retries", kind, event_id
            )
            return  # not done: run again once the database is back
        except Exception:
            # A bug, not a lost process: running it again would fail again.
            log.exception("feishu %s event %s failed", kind, event_id)
        finally:
            self._inflight.discard(event_id)
        await self._done(event_id)

    async def _done(self, event_id: str) -> None:
        def done(session: Session) -> None:
            row = session.get(InboundEvent, (CHANNEL, event_id))
            if row is not None:
                row.done_at = self.app[CLOCK].now()
                session.add(row)

        await self.app[DATABASE].run(done)

    async def recover(self) -> int:
        """Run again the events a dead process recorded but never finished; returns how many.
        Each is claimed (its time moved on) so no other instance takes it meanwhile."""
        now = self.app[CLOCK].now()

        def claim(session: Session) -> list[InboundEvent]:
            session.exec(
                delete(InboundEvent).where(
                    col(InboundEvent.done_at) < now - INBOX_KEEP  # dedup needs ≥ 8 h
                )
            )
            rows = session.exec(
                select(InboundEvent)
                .where(
                    col(InboundEvent.done_at).is_(None),
                    InboundEvent.received_at <= now - INBOX_RETRY_AFTER,
                )
                .order_by(col(InboundEvent.received_at))
                .limit(INBOX_BATCH)
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                row.received_at = now
                session.add(row)
            return list(rows)

        rows = await self.app[DATABASE].run(claim)
        lost = [row for row in rows if row.event_id not in self._inflight]  # still under way here
        for row in lost:
            log.warning("feishu: running lost event %s again", row.event_id)
            try:
                data = lark.JSON.unmarshal(row.body, INBOUND_KINDS[row.kind])
            except Exception:  # unreadable (written by another version): never retried
                log.exception("feishu: lost event %s cannot be read back", row.event_id)
                await self._done(row.event_id)
                continue
            self.spawn(self._run(row.kind, row.event_id, data))
        return len(lost)

    async def _sweep_inbox(self) -> None:
        while True:
            await asyncio.sleep(INBOX_SWEEP_SECONDS)
            try:
                await self.recover()
            except Exception:  # the sweep must outlive any one bad round
                log.exception("feishu: inbox sweep failed; trying again later")

    def _on_card_action(self, data: P2CardActionTrigger) -> P2CardActionTriggerResponse:
        """A button: a choice is answered like a typed message (replies follow as messages);
        通过 / 驳回 is decided here and answered with the updated card, within Feishu's 3 s."""
        event = data.event
        action = event.action if event else None
        operator = event.operator.open_id if event and event.operator else None
        if action is None or not operator or data.header is None or not data.header.event_id:
            return P2CardActionTriggerResponse({})
        click = review_click(action.value, action.form_value)
        if click is not None:
            chat_id = event.context.open_chat_id if event and event.context else None
            return self._answer_review(operator, chat_id, click)
        clicked = clicked_text(action.value)
        if clicked is not None:
            text, chat_id = clicked
            incoming = Incoming(
                channel=CHANNEL,
                user=operator,
                text=text,
                message_id=data.header.event_id,
                chat_id=chat_id,
            )
            self.spawn(self._converse(incoming))
        return P2CardActionTriggerResponse({})

    def _answer_review(
        self, operator: str, chat_id: str | None, click: ReviewClick
    ) -> P2CardActionTriggerResponse:
        if not click["approve"] and not click["reason"]:
            return _toast("error", "请先在输入框写明驳回理由，再点「驳回」。")
        future = self.spawn(self._review(operator, chat_id, click))
        try:
            return future.result(timeout=CARD_ANSWER_SECONDS)
        except concurrent.futures.TimeoutError:
            # The decision still completes; the card shows it when the organizer looks again.
            return _toast("info", "正在处理，请稍后查看审核结果。")
        except Exception:
            log.exception("feishu review click failed")
            return _toast("error", "抱歉，审核没有完成，请稍后再试。")

    async def _review(
        self, operator: str, chat_id: str | None, click: ReviewClick
    ) -> P2CardActionTriggerResponse:
        incoming = Incoming(channel=CHANNEL, user=operator, chat_id=chat_id)
        campaigns, now = self.app[CAMPAIGNS], self.app[CLOCK].now()

        def work(session: Session) -> tuple[review.Outcome, ReviewDecision | None]:
            ref = click["item"]["ref"]
            outcome = review.decide(
                session, campaigns, incoming, ref, click["approve"], click["reason"], now
            )
            decided = _latest_decision(session, outcome) if outcome.ok else None
            return outcome, decided

        outcome, decided = await self.app[DATABASE].run(work)
        response: dict[str, Any] = {
            "toast": {"type": "success" if outcome.ok else "error", "content": outcome.text}
        }
        if decided is not None:
            response["card"] = {"type": "raw", "data": review_card(click["item"], decided)}
        return P2CardActionTriggerResponse(response)

    # The work, on the app's loop ------------------------------------------------------------
    async def _message(self, data: P2ImMessageReceiveV1) -> None:
        event, header = data.event, data.header
        if event is None or header is None or event.message is None or event.sender is None:
            return
        message, sender = event.message, event.sender
        if sender.sender_type != "user" or sender.sender_id is None:
            return  # another bot, or the system
        user = sender.sender_id.open_id
        if not user or not header.event_id:
            return
        chat_id = message.chat_id if message.chat_type != "p2p" else None
        mentions = message.mentions or []
        kind = message.message_type
        # In a group the bot answers when @-mentioned; a file cannot carry a mention, so files
        # are looked at (organizers importing statistics into their bound group) and otherwise
        # ignored without a word.
        if chat_id and kind != "file" and not self._mentions_bot(mentions):
            return
        base = Incoming(channel=CHANNEL, user=user, message_id=header.event_id, chat_id=chat_id)
        try:
            content = json.loads(message.content or "{}")
        except (json.JSONDecodeError, RecursionError):
            content = {}
        if not isinstance(content, dict):  # Feishu sends an object; anything else reads as empty
            content = {}
        if kind in ("text", "post"):
            text = message_text(kind, content, mentions, self.api.bot_open_id)
            await self._converse(replace(base, text=text))
        elif kind == "image" and isinstance(content.get("image_key"), str):
            await self._converse(replace(base, image=content["image_key"]))
        elif kind == "file" and isinstance(content.get("file_key"), str) and message.message_id:
            replies = await self._import_upload(base, message.message_id, content["file_key"])
            if replies:
                await self._answer(base, replies)
        else:
            await self._answer(base, [Reply(UNSUPPORTED)])

    def _mentions_bot(self, mentions: list[MentionEvent]) -> bool:
        bot = self.api.bot_open_id
        if bot:
            return any(m.id is not None and m.id.open_id == bot for m in mentions)
        # Bot id not known (warm-up failed): a mention of a bot, or any mention when the event
        # does not say (without the all-messages permission Feishu only sends @bot messages).
        return any(m.mentioned_type in ("bot", None) for m in mentions)

    async def _bot_added(self, data: P2ImChatMemberBotAddedV1) -> None:
        event, header = data.event, data.header
        if event is None or header is None or not event.chat_id or not header.event_id:
            return
        operator = event.operator_id.open_id if event.operator_id else None
        base = Incoming(
            channel=CHANNEL,
            user=operator or event.chat_id,
            message_id=header.event_id,
            chat_id=event.chat_id,
        )
        await self._answer(base, [groups.intro(self.app[CAMPAIGNS])])

    async def _converse(self, incoming: Incoming) -> None:
        async with self._order.hold(_recipient(incoming)):
            replies = await self.app[DISPATCHER].handle(incoming)
            messages = [_rendered(r, incoming.chat_id) for r in replies]
            if normalise(incoming.text) == REVIEW_WORD:
                messages += await self._review_cards(incoming)
            await self._deliver(await self._stage(incoming, messages))

    async def _answer(self, incoming: Incoming, replies: list[Reply]) -> None:
        async with self._order.hold(_recipient(incoming)):
            messages = [_rendered(r, incoming.chat_id) for r in replies]
            await self._deliver(await self._stage(incoming, messages))

    async def _review_cards(self, incoming: Incoming) -> list[tuple[str, Card | None]]:
        """Feishu's form of the review queue: after the list, one card per waiting item with
        通过 / 驳回 (the text command answered who may see it; this adds nothing for others)."""
        campaigns = self.app[CAMPAIGNS]

        def items(session: Session) -> list[ReviewItem]:
            found = []
            for campaign in organizer_campaigns(session, campaigns, incoming):
                for _word, waiting, _total in review.review_queue(session, campaign).sections:
                    found += [
                        ReviewItem(ref=i.ref, line=i.line, campaign=campaign.title) for i in waiting
                    ]
            return found[:MAX_REVIEW_CARDS]

        return [
            (f"待审核：{item['ref']} {item['line']}", review_card(item))
            for item in await self.app[DATABASE].run(items)
        ]

    async def _import_upload(
        self, incoming: Incoming, message_id: str, file_key: str
    ) -> list[Reply]:
        """A statistics file from an organizer: downloaded, imported, the report answered.
        Recorded as processed with its answer, so a redelivery imports nothing twice. Nothing
        is answered to a file in a group that is not an organizer's import."""
        db, campaigns = self.app[DATABASE], self.app[CAMPAIGNS]
        done = await db.run(lambda session: _processed(session, incoming))
        if done is not None:
            return done
        found = await db.run(lambda s: groups.import_targets(s, campaigns, incoming))
        if len(found) != 1:
            if incoming.chat_id:
                return []
            return [Reply(MANY_CAMPAIGNS_FILE if found else NOT_ORGANIZER_FILE)]
        campaign = found[0]
        try:
            name, data = await self.api.download(message_id, file_key, "file")
        except DeliveryError as exc:
            log.warning("feishu download failed: %s", exc)
            return [Reply(DOWNLOAD_FAILED)]

        def apply(session: Session) -> list[Reply]:
            done = _processed(session, incoming)
            if done is not None:
                return done
            now = self.app[CLOCK].now()
            report = import_stats(session, campaign, name, data, f"{CHANNEL}:{incoming.user}", now)
            replies = [Reply(report.render())]
            stored = [r.to_dict() for r in replies]
            record_answer(session, CHANNEL, incoming.message_id or "", stored, now)
            return replies

        return await db.run(apply)

    # Replies: outbox rows first (sent once by construction), then sent right away -------------
    async def _stage(
        self, incoming: Incoming, messages: list[tuple[str, Card | None]]
    ) -> list[Outbox]:
        recipient = _recipient(incoming)
        now = self.app[CLOCK].now()

        def stage(session: Session) -> list[Outbox]:
            keys = []
            for i, (text, card) in enumerate(messages):
                key = f"{CHANNEL}:reply:{incoming.message_id}:{i}"
                added = enqueue(
                    session,
                    key=key,
                    channel=CHANNEL,
                    recipient=recipient,
                    kind="reply",
                    text=text,
                    now=now,
                    payload={"card": card} if card else None,
                )
                if added:
                    keys.append(key)
            if not keys:
                return []
            rows = list(session.exec(select(Outbox).where(col(Outbox.key).in_(keys))))
            for row in rows:
                row.next_attempt_at = now + REPLY_LEASE
                session.add(row)
            return sorted(rows, key=lambda r: keys.index(r.key))

        return await self.app[DATABASE].run(stage)

    async def _deliver(self, rows: list[Outbox]) -> None:
        """Send in order; on a failure the row and the rest stay for the outbox worker."""
        for position, row in enumerate(rows):
            try:
                await self.sender.deliver(row)
            except DeliveryError as exc:
                log.warning("feishu reply %s not sent: %s", row.key, exc.reason)
                await self._record(rows[position:], exc)
                return
            await self._record([row], None)

    async def _record(self, rows: list[Outbox], error: DeliveryError | None) -> None:
        now = self.app[CLOCK].now()
        ids = [row.id for row in rows]

        def record(session: Session) -> None:
            stored = {r.id: r for r in session.exec(select(Outbox).where(col(Outbox.id).in_(ids)))}
            for i, row_id in enumerate(ids):
                row = stored[row_id]
                if error is None:
                    row.status, row.sent_at = "sent", now
                    row.attempts += 1
                elif i == 0:
                    row.attempts += 1
                    row.last_error = error.reason[:500]
                    row.status = "dead" if error.permanent else "pending"
                    row.next_attempt_at = now + timedelta(seconds=error.retry_after or 0)
                else:  # after the failed one, in order
                    row.next_attempt_at = now + timedelta(seconds=(error.retry_after or 0) + i)
                session.add(row)

        await self.app[DATABASE].run(record)


def _rendered(reply: Reply, chat_id: str | None) -> tuple[str, Card | None]:
    """A reply as an outbox row's text (numbered choices: the record, and what a text-only
    fallback shows) and its card, when it has buttons."""
    return reply.render_text(), reply_card(reply, chat_id)


def _toast(kind: str, text: str) -> P2CardActionTriggerResponse:
    return P2CardActionTriggerResponse({"toast": {"type": kind, "content": text}})


def _latest_decision(session: Session, outcome: review.Outcome) -> ReviewDecision | None:
    """Who last approved or rejected the item and when, from the audit log."""
    match = re.fullmatch(r"(\D+)(\d+)", outcome.ref or "")
    kind = review.KINDS.get(match.group(1)) if match else None
    if kind is None or match is None or outcome.status not in (kind.approved, kind.rejected):
        return None
    audit = session.exec(
        select(AuditLog)
        .where(
            AuditLog.target_type == kind.key,
            AuditLog.target_id == int(match.group(2)),
            col(AuditLog.action).in_(("approve", "reject")),
        )
        .order_by(col(AuditLog.id).desc())
        .limit(1)
    ).first()
    if audit is None:
        return None
    decided = ReviewDecision(
        approved=audit.action == "approve",
        by=audit.actor.removeprefix(f"{CHANNEL}:"),
        at=audit.created_at.isoformat(),
    )
    if audit.reason:
        decided["reason"] = audit.reason
    return decided


def _processed(session: Session, incoming: Incoming) -> list[Reply] | None:
    done = answered(session, CHANNEL, incoming.message_id or "")
    return [Reply.from_dict(r) for r in done] if done is not None else None


def _recipient(incoming: Incoming) -> str:
    return incoming.chat_id or incoming.user


def message_text(
    kind: str, content: dict[str, Any], mentions: list[MentionEvent], bot_open_id: str | None
) -> str:
    """The text of a text or rich-text (post) message, the bot's @ removed, others' @ named."""
    text = str(content.get("text", "")) if kind == "text" else _post_text(content)
    for m in mentions:
        if not m.key:
            continue
        is_bot = m.mentioned_type == "bot" or (
            m.id is not None and bot_open_id is not None and m.id.open_id == bot_open_id
        )
        text = text.replace(m.key, "" if is_bot else f"@{m.name or ''}")
    return "\n".join(re.sub(r"[ \t]+", " ", line).strip() for line in text.strip().splitlines())


def _post_text(content: dict[str, Any]) -> str:
    """Rich text: its words and links, line by line (a pasted share text keeps its URL)."""
    if "content" not in content and len(content) == 1:  # {"zh_cn": {...}}
        content = next(iter(content.values()))
    rows = content.get("content") if isinstance(content, dict) else None
    lines = []
    for line in rows if isinstance(rows, list) else []:
        parts: list[str] = []
        for node in line if isinstance(line, list) else []:
            if not isinstance(node, dict):
                continue
            tag = node.get("tag")
            if tag in ("text", "a", "md"):
                parts.append(str(node.get("text", "")))
            if tag == "a" and node.get("href"):
                parts.append(f" {node['href']} ")
            if tag == "at" and node.get("user_id"):
                parts.append(str(node["user_id"]))
        lines.append("".join(parts))
    return "\n".join(lines)


FEISHU = web.AppKey("feishu", FeishuChannel)


def setup(app: web.Application) -> None:
    """Feishu events and the Feishu sender; called when FEISHU_APP_ID is set."""
    channel = FeishuChannel(app, app[SETTINGS])
    app[FEISHU] = channel
    app[SENDERS][CHANNEL] = channel.sender
    app.cleanup_ctx.append(channel.lifecycle)
    if app[SETTINGS].feishu_mode == "webhook":
        app.router.add_post("/feishu/events", channel.events)
