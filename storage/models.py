"""Tables. The database enforces the invariants: one sign-up per person and campaign, one
conversation per (channel, user), one processed delivery per event id, one outbox row per key."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, Numeric, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.db import UTCDateTime


def _when(**kw: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kw)


def _money(**kw: Any) -> Any:
    return Field(sa_type=Numeric(16, 2), **kw)


class Registration(SQLModel, table=True):
    """A streamer's sign-up (报名) for one campaign. The group is set once, at sign-up."""

    __tablename__ = "registration"
    __table_args__ = (UniqueConstraint("campaign_id", "channel", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: str = Field(index=True, max_length=32)
    channel: str = Field(max_length=16)
    user_id: str = Field(max_length=128)
    name: str = Field(max_length=64)
    mobile: str = Field(max_length=11)
    age: int
    identity: str = Field(max_length=32)
    platform: str = Field(max_length=16)
    handle: str = Field(max_length=64)
    fans: int
    past_sales: Decimal = _money()
    unit_key: str | None = Field(default=None, max_length=32)
    team_id: int | None = Field(default=None, foreign_key="team.id")
    group_key: str = Field(max_length=32)
    status: str = Field(max_length=16)  # pending | approved | rejected
    pledged_at: datetime = _when()
    created_at: datetime = _when()
    updated_at: datetime = _when()


class Team(SQLModel, table=True):
    """优秀直播带货团队: created by one streamer, joined with its code."""

    __tablename__ = "team"
    __table_args__ = (UniqueConstraint("campaign_id", "name"), UniqueConstraint("code"))

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: str = Field(index=True, max_length=32)
    name: str = Field(max_length=32)
    code: str = Field(max_length=8)
    created_at: datetime = _when()


class Conversation(SQLModel, table=True):
    """Where one user is in one flow; written in the same transaction as the data it leads to."""

    __tablename__ = "conversation"

    channel: str = Field(primary_key=True, max_length=16)
    user_id: str = Field(primary_key=True, max_length=128)
    flow: str = Field(max_length=32)
    flow_version: int
    step: str = Field(max_length=32)
    campaign_id: str | None = Field(default=None, max_length=32)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    history: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    misses: int = 0
    editing: bool = False
    updated_at: datetime = _when()


class ProcessedEvent(SQLModel, table=True):
    """A delivery already handled, with the replies it got: retries get the same answer."""

    __tablename__ = "processed_event"

    channel: str = Field(primary_key=True, max_length=16)
    event_id: str = Field(primary_key=True, max_length=128)
    replies: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    created_at: datetime = _when(index=True)


class Outbox(SQLModel, table=True):
    """A proactive message: a row first (unique key), then delivered by a worker."""

    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=255)
    campaign_id: str | None = Field(default=None, index=True, max_length=32)
    channel: str = Field(max_length=16)
    recipient: str = Field(max_length=128)
    kind: str = Field(max_length=32)
    text: str
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", index=True, max_length=16)  # pending | sent | dead
    attempts: int = 0
    next_attempt_at: datetime = _when(index=True)
    last_error: str | None = None
    created_at: datetime = _when()
    sent_at: datetime | None = _when(default=None)
