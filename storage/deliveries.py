"""The bookkeeping every message does: was this delivery answered already, and with what; the
answer recorded; the sender's latest message noted. In SQLAlchemy Core on the session's
connection, statements built once: on every message the ORM's per-statement work cost more
than the rest of the step (see docs/performance.md, "WeChat webhook").

Core statements skip the ORM's autoflush: a message's lookups come before its own writes, and a
grouped message runs in a savepoint, whose start flushes the writes of the messages before it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from storage.models import ChannelUser, ProcessedEvent

_ANSWERED = select(ProcessedEvent.replies).where(
    ProcessedEvent.channel == bindparam("channel"),
    ProcessedEvent.event_id == bindparam("event_id"),
)
_RECORD = insert(ProcessedEvent)


def _touch_statement(dialect: Any) -> Any:
    upsert = (
        postgresql.insert(ChannelUser) if dialect == "postgresql" else sqlite.insert(ChannelUser)
    )
    return upsert.on_conflict_do_update(
        index_elements=["channel", "user_id"],
        set_={"last_inbound_at": upsert.excluded.last_inbound_at},
    )


_TOUCH = {name: _touch_statement(name) for name in ("postgresql", "sqlite")}


def answered(session: Session, channel: str, event_id: str) -> list[dict[str, Any]] | None:
    """The replies a delivery got, or None when it was not handled yet."""
    found = session.connection().execute(_ANSWERED, {"channel": channel, "event_id": event_id})
    replies: list[dict[str, Any]] | None = found.scalar_one_or_none()
    return replies


def record_answer(
    session: Session, channel: str, event_id: str, replies: list[dict[str, Any]], now: datetime
) -> None:
    """The delivery is handled: its retries get `replies` (a second record is an IntegrityError)."""
    session.connection().execute(
        _RECORD,
        {"channel": channel, "event_id": event_id, "replies": replies, "created_at": now},
    )


def touch_user(session: Session, channel: str, user: str, now: datetime) -> None:
    """Note the user's latest message (on WeChat it opens the 48-hour customer-service window)."""
    connection = session.connection()
    connection.execute(
        _TOUCH[connection.dialect.name],
        {"channel": channel, "user_id": user, "last_inbound_at": now},
    )
