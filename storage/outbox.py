"""Enqueueing proactive messages. A row per message, unique by its idempotency key, so the same
reminder or notice asked for twice (a retry, a second instance, a re-run) is stored once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from storage.models import Outbox


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
    values = {
        "key": key[:255],
        "campaign_id": campaign_id,
        "channel": channel,
        "recipient": recipient,
        "kind": kind,
        "text": text,
        "payload": payload or {},
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(Outbox)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(Outbox.id)  # rowcount is not reliable here across drivers; a returned id is
    )
    return session.execute(statement).first() is not None
