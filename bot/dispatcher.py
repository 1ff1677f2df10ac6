"""From an Incoming to replies: one user's messages strictly in order, each in one transaction
with the conversation state, retried deliveries answered from the stored replies."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from sqlmodel import Session

from bot.clock import Clock
from bot.engine import Context, Engine
from bot.messages import Incoming, Reply
from bot.router import Router
from config.campaign import Campaign
from storage.db import Database, DatabaseUnavailable
from storage.deliveries import answered, record_answer

log = logging.getLogger(__name__)
MAX_TEXT = 1000
Prelude = Callable[[Session], bool]
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # all but tab and line breaks
BUSY = "系统有点忙，请稍后再发一次。"
OOPS = "抱歉，出了点问题，请稍后再试；如果一直这样，请联系组委会。"


class KeyedLocks:
    """One FIFO lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class Dispatcher:
    def __init__(
        self,
        db: Database,
        campaigns: dict[str, Campaign],
        clock: Clock,
        engine: Engine,
        services: Any = None,
    ) -> None:
        self.db = db
        self.campaigns = campaigns
        self.clock = clock
        self.router = Router(engine)
        self.services = services
        self._locks = KeyedLocks()

    async def handle(self, incoming: Incoming, *, prelude: Prelude | None = None) -> list[Reply]:
        """Never raises: a failure becomes a friendly reply and changes nothing.
        `prelude` runs first in the message's transaction (a channel's own bookkeeping, one
        transaction instead of two); True from it means: answered already, nothing to do."""
        if len(incoming.text) > MAX_TEXT:
            return [Reply(f"内容太长了（最多{MAX_TEXT}字），请精简后再发。")]
        if _CONTROL.search(incoming.text):
            # Invisible to people, refused by PostgreSQL (NUL): never part of an answer.
            incoming = replace(incoming, text=_CONTROL.sub("", incoming.text))
        async with self._locks.hold(incoming.conversation_key):
            try:
                return await self.db.run_grouped(
                    lambda session: self.process(session, incoming, prelude)
                )
            except DatabaseUnavailable:
                log.warning("database unavailable for %s", incoming.conversation_key)
                return [Reply(BUSY)]
            except Exception:
                log.exception("message from %s failed", incoming.conversation_key)
                return [Reply(OOPS)]

    def process(
        self, session: Session, incoming: Incoming, prelude: Prelude | None = None
    ) -> list[Reply]:
        self.db.lock_user(session, incoming.conversation_key)
        if prelude is not None and prelude(session):
            return []
        if incoming.message_id:
            done = answered(session, incoming.channel, incoming.message_id)
            if done is not None:
                return [Reply.from_dict(r) for r in done]
        now = self.clock.now()
        ctx = Context(
            session=session,
            incoming=incoming,
            now=now,
            campaigns=self.campaigns,
            services=self.services,
        )
        replies = self.router.route(ctx)
        if incoming.message_id:
            stored = [r.to_dict() for r in replies]
            record_answer(session, incoming.channel, incoming.message_id, stored, now)
        return replies
