"""WeCom (企业微信) group robots as digest targets: a plain HTTP POST of markdown to the robot's
webhook URL.

A campaign names its robots (`organizer_groups.wecom_robots[]: {name, url_env}`); an outbox row
for channel `wecom` has the robot's name as recipient and the campaign as campaign_id, and the
URL (it holds the robot's key) is read from the environment variable the campaign names.
Markdown goes in pieces of at most 4096 bytes, split between lines; a robot takes about 20
messages a minute, so when its window is full the row goes back to the outbox with the wait.
Pieces already accepted are remembered (in memory) so a retry carries on where it stopped.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.keys import CAMPAIGNS, SENDERS
from bot.rules.markdown_split import split_markdown
from bot.senders.base import DeliveryError
from bot.senders.ratelimit import Limit, SlidingWindow
from config.campaign import Campaign
from storage.models import Outbox

log = logging.getLogger(__name__)

CHANNEL = "wecom"
PER_ROBOT = Limit(20, 60.0)
MAX_IMAGE_BYTES = 2 * 1024 * 1024
RATE_LIMITED = 45009
PERMANENT = {93000, 40008, 40058}  # bad webhook URL, bad message type, content too long
TIMEOUT = aiohttp.ClientTimeout(total=10)


class WeComRobotSender:
    channel = CHANNEL

    def __init__(
        self,
        campaigns: dict[str, Campaign],
        env: Mapping[str, str] = os.environ,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.campaigns = campaigns
        self.env = env
        self.monotonic = monotonic
        self.window = SlidingWindow(PER_ROBOT)
        self._session: aiohttp.ClientSession | None = None
        self._sent: dict[str, set[str]] = {}  # outbox key -> pieces accepted so far

    def url_for(self, message: Outbox) -> str:
        campaign = self.campaigns.get(message.campaign_id or "")
        if campaign is None:
            raise DeliveryError(f"wecom: unknown campaign {message.campaign_id!r}", permanent=True)
        robot = next(
            (r for r in campaign.organizer_groups.wecom_robots if r.name == message.recipient),
            None,
        )
        if robot is None:
            raise DeliveryError(
                f"wecom: campaign {campaign.id} has no robot {message.recipient!r}", permanent=True
            )
        url = self.env.get(robot.url_env, "").strip()
        if not url:
            raise DeliveryError(f"wecom: environment variable {robot.url_env} is not set")
        return url

    async def deliver(self, message: Outbox) -> None:
        url = self.url_for(message)
        pieces: list[tuple[str, dict[str, Any]]] = []
        image_path = (message.payload or {}).get("image_path")
        if image_path:
            image = await asyncio.to_thread(_image_body, Path(image_path))
            if image is not None:
                pieces.append(("image", image))
        pieces += [
            (f"md{i}", {"msgtype": "markdown", "markdown": {"content": part}})
            for i, part in enumerate(split_markdown(message.text))
        ]
        done = self._sent.setdefault(message.key, set())
        try:
            for name, body in pieces:
                if name in done:
                    continue
                wait = self.window.wait_for(url, self.monotonic())
                if wait > 0:
                    raise DeliveryError("wecom: robot's 20 a minute used up", retry_after=wait)
                self.window.record(url, self.monotonic())
                await self._post(url, body)
                done.add(name)
        except DeliveryError as error:
            if error.permanent:
                self._sent.pop(message.key, None)
            raise
        self._sent.pop(message.key, None)

    async def _post(self, url: str, body: dict[str, Any]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=TIMEOUT)
        try:
            async with self._session.post(url, json=body) as response:
                if response.status != 200:
                    raise DeliveryError(f"wecom: HTTP {response.status}")
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            # The URL holds the robot's key: never put it in an error that gets stored.
            raise DeliveryError(f"wecom: {type(exc).__name__}") from exc
        code = answer.get("errcode") if isinstance(answer, dict) else None
        if code == 0:
            return
        reason = f"wecom: {code} {answer.get('errmsg', '') if isinstance(answer, dict) else ''}"
        if code == RATE_LIMITED:
            self.window.pause(url, self.monotonic() + PER_ROBOT.per_seconds)
            raise DeliveryError(reason, retry_after=PER_ROBOT.per_seconds)
        raise DeliveryError(reason, permanent=code in PERMANENT)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _image_body(path: Path) -> dict[str, Any] | None:
    """A chart picture as a robot image message; None (text only) when it cannot be sent."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        log.warning("wecom: chart %s unreadable: %s", path, exc)
        return None
    if len(data) > MAX_IMAGE_BYTES:
        log.warning("wecom: chart %s is over 2 MB, sent as text only", path)
        return None
    return {
        "msgtype": "image",
        "image": {"base64": base64.b64encode(data).decode(), "md5": hashlib.md5(data).hexdigest()},
    }


def setup(app: web.Application) -> None:
    """Always registered: whether a campaign has robots is its configuration's business."""
    sender = WeComRobotSender(app[CAMPAIGNS])
    app[SENDERS][CHANNEL] = sender

    async def session(_app: web.Application) -> AsyncIterator[None]:
        yield
        await sender.close()

    app.cleanup_ctx.append(session)
