"""Enqueueing proactive messages. A row per message, unique by its idempotency key, so the same
reminder or notice asked for twice (a retry, a second instance, a re-run) is stored once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from storage.models import Outbox


@dataclass(frozen=True)
class Message:
    key: str
    channel: str
    recipient: str
    kind: str
    text: str
    campaign_id: str | None = None
    payload: dict[str, Any] | None = None


def enqueue(
    session: Session,
    *,
    key: str,
    channel: str,
    recipient: str,
    kind: str,
    text: str,
    now: datetime,
    campaign_id: str | None = None,
    payload: dict[str, Any] | None = None,
) -> bool:
    """Insert unless the key exists; True when this call added the row."""
    message = Message(key, channel, recipient, kind, text, campaign_id, payload)
    return bool(enqueue_many(session, [message], now=now))


def enqueue_many(session: Session, messages: Sequence[Message], *, now: datetime) -> list[str]:
    """Insert each message unless its key exists, in one statement (a fan-out's chunk); the
    keys this call added."""
    if not messages:
        return []
    rows = [
        {
            "key": m.key[:255],
            "campaign_id": m.campaign_id,
            "channel": m.channel,
            "recipient": m.recipient,
            "kind": m.kind,
            "text": m.text,
            "payload": m.payload or {},
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for m in messages
    ]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(Outbox)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(Outbox.key)  # rowcount is not reliable here across drivers; returned keys are
    )
    return list(session.scalars(statement, rows))
