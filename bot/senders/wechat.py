"""The WeChat Official Account sender: review results, reminders and late chat replies.

Within 48 hours of the user's last message WeChat allows customer-service messages (plain text);
outside it, or when WeChat says the window closed (45015, 45047), a template message from the
campaign's `wechat_templates`. Every failure is logged and raised as DeliveryError with the
platform's code, so the outbox worker records it on the row; none passes silently.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlmodel import Session

from bot.clock import Clock
from bot.rules.formatting import fmt_when
from bot.senders.base import DeliveryError
from bot.wechat_api import WeChatAPI, WeChatAPIError
from config.campaign import Campaign, WeChatTemplate
from storage.db import Database
from storage.models import ChannelUser, Outbox
from storage.outbox import enqueue

log = logging.getLogger(__name__)
CHANNEL = "wechat"
WINDOW = timedelta(hours=48)
WINDOW_CLOSED = frozenset({45015, 45047})  # out of the window / its message quota used up
RATE_LIMITED = 45009
# Retrying cannot help: bad openid, bad template id, user unsubscribed or blocked us, bad data.
PERMANENT = frozenset({40003, 40037, 43004, 43019, 47001})
BACKOFF_BASE = 60.0
BACKOFF_MAX = 3600.0
REPLY_KIND = "reply"  # a chat reply that missed the 5-second deadline: no template fits one


# How long WeChat lets a keyword's value be, by the keyword's type (thing3 -> thing).
FIELD_LIMITS = {"thing": 20, "short_thing": 5, "phrase": 5, "character_string": 32, "name": 10}


def template_for(campaign: Campaign | None, kind: str) -> WeChatTemplate | None:
    if campaign is None or kind == REPLY_KIND:
        return None
    templates = campaign.wechat_templates
    return templates.review_result if "review" in kind else templates.reminder


def template_data(message: Outbox, campaign: Campaign, template: WeChatTemplate) -> dict[str, Any]:
    """The row's own `payload.wechat_data` when its producer knows the template's fields; else
    the template's configured fields, each cut to its type's limit; else the classic layout."""
    custom = message.payload.get("wechat_data")
    if isinstance(custom, dict):
        return custom
    values = {
        "text": message.text,
        "campaign": campaign.title,
        "time": fmt_when(message.created_at),
    }
    if template.fields:
        return {
            keyword: {"value": _fit(values[source], keyword)}
            for keyword, source in template.fields.items()
        }
    return {
        "first": {"value": message.text[:200]},
        "keyword1": {"value": campaign.title},
        "keyword2": {"value": values["time"]},
        "remark": {"value": "回复「帮助」查看更多。"},
    }


def _fit(value: str, keyword: str) -> str:
    limit = FIELD_LIMITS.get(keyword.rstrip("0123456789"))
    if limit is None or len(value) <= limit:
        return value
    return value[: limit - 1] + "…"


class WeChatSender:
    channel = CHANNEL

    def __init__(
        self, api: WeChatAPI, db: Database, clock: Clock, campaigns: dict[str, Campaign]
    ) -> None:
        self.api = api
        self.db = db
        self.clock = clock
        self.campaigns = campaigns
        self._rate_limited = 0  # 45009s in a row: each doubles the pause the worker takes

    async def deliver(self, message: Outbox) -> None:
        last = await self.db.run(lambda s: s.get(ChannelUser, (CHANNEL, message.recipient)))
        if last is not None and self.clock.now() - last.last_inbound_at < WINDOW:
            try:
                await self.api.send_text(message.recipient, message.text)
                self._rate_limited = 0
                return
            except WeChatAPIError as exc:
                if exc.errcode not in WINDOW_CLOSED:
                    raise self._failure(exc, message, "customer-service message") from exc
                log.info("WeChat window closed for %s (%s): trying a template", message.id, exc)
        await self._template(message)

    async def _template(self, message: Outbox) -> None:
        campaign = self.campaigns.get(message.campaign_id or "")
        template = template_for(campaign, message.kind)
        if campaign is None or template is None:
            reason = (
                "outside WeChat's 48-hour window and no template configured "
                f"(campaign {message.campaign_id!r}, kind {message.kind!r}, "
                "see wechat_templates)"
            )
            log.warning("outbox %s to %s not sent: %s", message.id, message.recipient, reason)
            raise DeliveryError(reason, permanent=True)
        try:
            await self.api.send_template(
                message.recipient, template.id, template_data(message, campaign, template)
            )
        except WeChatAPIError as exc:
            raise self._failure(exc, message, "template message") from exc
        self._rate_limited = 0

    def _failure(self, exc: WeChatAPIError, message: Outbox, via: str) -> DeliveryError:
        log.warning("WeChat %s for outbox %s failed: %s", via, message.id, exc)
        reason = f"{via}: {exc}"
        if exc.errcode == RATE_LIMITED:
            # The worker pauses the channel for retry_after without counting an attempt, so
            # the backoff grows here, with the streak of refusals.
            wait = min(BACKOFF_MAX, BACKOFF_BASE * 2**self._rate_limited)
            self._rate_limited += 1
            return DeliveryError(reason, retry_after=wait)
        return DeliveryError(reason, permanent=exc.errcode in PERMANENT)

    async def reply_later(self, openid: str, texts: list[str], key: str) -> None:
        """Chat replies that missed WeChat's 5-second deadline, by customer-service message
        now; what cannot go now is queued in the outbox for the worker to retry (and record)."""
        for i, text in enumerate(texts):
            try:
                await self.api.send_text(openid, text)
            except WeChatAPIError as exc:
                log.warning("late reply to %s failed, queued for retry: %s", openid, exc)
                await self._queue(openid, texts[i:], key)
                return

    async def _queue(self, openid: str, texts: list[str], key: str) -> None:
        now = self.clock.now()

        def work(session: Session) -> None:
            for i, text in enumerate(texts):
                enqueue(
                    session,
                    key=f"{key}:{i}",
                    channel=CHANNEL,
                    recipient=openid,
                    kind=REPLY_KIND,
                    text=text,
                    now=now,
                )

        await self.db.run(work)
