"""The web/dev channel's sender: the message is delivered by being listed at /dev/outbox
(and, later, pulled by the web page), so delivery only records it."""

from __future__ import annotations

from storage.models import Outbox


class DevSender:
    channel = "web"

    async def deliver(self, message: Outbox) -> None:
        return None
