"""What every outbound channel implements. The outbox worker calls `deliver` for one row;
a sender raises `DeliveryError` to have the row retried later (or given up on)."""

from __future__ import annotations

from typing import Protocol

from storage.models import Outbox


class DeliveryError(Exception):
    def __init__(
        self, reason: str, *, retry_after: float | None = None, permanent: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after  # seconds the platform asked us to wait (rate limits)
        self.permanent = permanent  # retrying cannot help (blocked user, bad recipient)


class Sender(Protocol):
    channel: str

    async def deliver(self, message: Outbox) -> None: ...
