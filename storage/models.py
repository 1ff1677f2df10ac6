"""Tables. The database enforces the invariants: one sign-up per person and campaign, one
conversation per (channel, user), one processed delivery per event id, one outbox row per key."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Numeric, UniqueConstraint
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
    disqualified_reason: str | None = None  # 取消资格: set means out of rankings and prizes
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
    """A delivery already handled, with the replies it got: retries get the same answer.
    Feishu redelivers up to 6 h later: any clean-up must keep rows at least 8 h."""

    __tablename__ = "processed_event"

    channel: str = Field(primary_key=True, max_length=16)
    event_id: str = Field(primary_key=True, max_length=128)
    replies: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    created_at: datetime = _when(index=True)


class InboundEvent(SQLModel, table=True):
    """An event recorded before the platform is answered 200 (Feishu: the work runs after the
    answer). One not done a while later, because the process died, is run again; its
    ProcessedEvent and outbox keys keep the redo from changing or sending anything twice."""

    __tablename__ = "inbound_event"

    channel: str = Field(primary_key=True, max_length=16)
    event_id: str = Field(primary_key=True, max_length=128)
    kind: str = Field(max_length=32)  # the SDK event it is, to read `body` back
    body: str  # the event as the SDK marshals it
    received_at: datetime = _when()
    done_at: datetime | None = _when(default=None, index=True)


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
    status: str = Field(default="pending", index=True, max_length=16)  # pending|sending|sent|dead
    attempts: int = 0
    next_attempt_at: datetime = _when(index=True)
    last_error: str | None = None
    created_at: datetime = _when()
    sent_at: datetime | None = _when(default=None)


class Filing(SQLModel, table=True):
    """A stream filed in advance (直播报备)."""

    __tablename__ = "filing"

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: str = Field(index=True, max_length=32)
    registration_id: int = Field(foreign_key="registration.id", index=True)
    phase_key: str = Field(max_length=32)
    start_at: datetime = _when(index=True)
    end_at: datetime = _when()
    minutes: int
    platform: str = Field(max_length=16)
    venue: str = Field(max_length=128)
    venue_reason: str | None = None  # why not the official venue; such a filing needs approval
    products: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    plan: str | None = None
    status: str = Field(default="pending", index=True, max_length=16)
    # pending | approved | rejected | cancelled
    review_reason: str | None = None
    reviewed_by: str | None = Field(default=None, max_length=160)
    reviewed_at: datetime | None = _when(default=None)
    created_at: datetime = _when()
    updated_at: datetime = _when()


class StreamReport(SQLModel, table=True):
    """The figures of one stream (战报): self-reported (unverified until confirmed) or imported
    from a platform export, which supersedes self-reports for the same stream or day."""

    __tablename__ = "stream_report"
    # Covers the leaderboard's aggregation: one pass in (registration, day) order, no table reads.
    __table_args__ = (
        Index(
            "ix_stream_report_scoring",
            "campaign_id",
            "registration_id",
            "stream_date",
            "status",
            "gmv",
            "refunds",
            "orders",
            "minutes",
            "viewers",
            "peak_viewers",
            "likes",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: str = Field(index=True, max_length=32)
    registration_id: int = Field(foreign_key="registration.id", index=True)
    filing_id: int | None = Field(default=None, foreign_key="filing.id", index=True)
    stream_date: date = Field(index=True)  # Asia/Shanghai calendar day of the stream
    gmv: Decimal = _money(default=Decimal(0))
    refunds: Decimal = _money(default=Decimal(0))
    orders: int = 0
    viewers: int = 0  # cumulative (累计观看)
    peak_viewers: int = 0
    likes: int = 0
    minutes: int = 0
    screenshot: str | None = Field(default=None, max_length=255)  # a channel media reference
    source: str = Field(default="self", max_length=16)  # self | import
    status: str = Field(default="unverified", index=True, max_length=16)
    # unverified | confirmed | superseded | rejected
    import_key: str | None = Field(default=None, unique=True, max_length=128)
    created_at: datetime = _when()
    updated_at: datetime = _when()


class Video(SQLModel, table=True):
    """A short-video link (作品). A link claimed by two streamers is kept, flagged, for review."""

    __tablename__ = "video"
    __table_args__ = (UniqueConstraint("campaign_id", "registration_id", "url_key"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: str = Field(index=True, max_length=32)
    registration_id: int = Field(foreign_key="registration.id", index=True)
    phase_key: str | None = Field(default=None, max_length=32)
    url: str = Field(max_length=1024)
    url_key: str = Field(index=True, max_length=512)
    platform: str | None = Field(default=None, max_length=16)
    title: str | None = Field(default=None, max_length=255)
    hashtag_ok: bool = False  # the campaign hashtag was in the pasted text
    status: str = Field(default="accepted", index=True, max_length=16)
    # accepted | review (tag not seen, streamer confirmed) | flagged (claimed twice) | rejected
    views: int = 0
    shares: int = 0
    likes: int = 0
    review_reason: str | None = None
    reviewed_by: str | None = Field(default=None, max_length=160)
    created_at: datetime = _when()


class ScoringBasis(SQLModel, table=True):
    """What a campaign's stream reports count for on its board, as the database needs it to
    keep `report_totals`: written from the campaign file by `storage.leaderboard`."""

    __tablename__ = "scoring_basis"

    campaign_id: str = Field(primary_key=True, max_length=32)
    fingerprint: str  # the statuses and days below, as text: equal to the file's, or stale
    count_unverified: bool


class ScoringDay(SQLModel, table=True):
    """One Asia/Shanghai day of a campaign's scoring phases."""

    __tablename__ = "scoring_day"

    campaign_id: str = Field(primary_key=True, max_length=32)
    day: date = Field(primary_key=True)


def _total(**kw: Any) -> Any:
    return Field(default=0, sa_type=BigInteger, **kw)


class ReportTotals(SQLModel, table=True):
    """A streamer's counted stream reports, summed: kept by triggers (storage.report_totals) on
    every write to stream_report, so the board reads 50,000 rows, not a million."""

    __tablename__ = "report_totals"

    campaign_id: str = Field(primary_key=True, max_length=32)
    registration_id: int = Field(primary_key=True)
    gmv: Decimal = Field(sa_type=Numeric(18, 2))
    refunds: Decimal = Field(sa_type=Numeric(18, 2))
    orders: int = _total()
    streams: int = _total()
    days: int = _total()
    minutes: int = _total()
    viewers: int = _total()
    peak: int = _total()
    likes: int = _total()


class Deduction(SQLModel, table=True):
    """Points taken off a streamer's score (complaints); revoked rather than deleted."""

    __tablename__ = "deduction"

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: str = Field(index=True, max_length=32)
    registration_id: int = Field(foreign_key="registration.id", index=True)
    points: float
    reason: str
    actor: str = Field(max_length=160)
    created_at: datetime = _when()
    revoked_at: datetime | None = _when(default=None)


class AuditLog(SQLModel, table=True):
    """Every organizer decision: who, when, what, before and after."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: str | None = Field(default=None, index=True, max_length=32)
    actor: str = Field(max_length=160)
    action: str = Field(max_length=32)
    target_type: str = Field(max_length=32)
    target_id: int | None = None
    before: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    after: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    reason: str | None = None
    created_at: datetime = _when(index=True)


class AccessToken(SQLModel, table=True):
    """A platform access token shared by every instance (one refreshes, all use it)."""

    __tablename__ = "access_token"

    key: str = Field(primary_key=True, max_length=128)  # e.g. wechat:<appid>
    token: str
    expires_at: datetime = _when()
    updated_at: datetime = _when()


class BoundGroup(SQLModel, table=True):
    """An organizer group chat bound to a campaign (`绑定 <campaign>`): it receives digests."""

    __tablename__ = "bound_group"

    channel: str = Field(primary_key=True, max_length=16)
    chat_id: str = Field(primary_key=True, max_length=128)
    campaign_id: str = Field(primary_key=True, max_length=32)
    bound_by: str = Field(max_length=160)
    created_at: datetime = _when()


class ChannelUser(SQLModel, table=True):
    """When a user last wrote to us on a channel: WeChat lets us answer by customer-service
    message only within 48 hours of the user's last message (templates outside it)."""

    __tablename__ = "channel_user"

    channel: str = Field(primary_key=True, max_length=16)
    user_id: str = Field(primary_key=True, max_length=128)
    last_inbound_at: datetime = _when()


class DigestSnapshot(SQLModel, table=True):
    """The ranks one digest showed (registration id -> rank), so the next one can name the
    biggest movers. Written with the digest's outbox rows: it also marks the period as done."""

    __tablename__ = "digest_snapshot"

    campaign_id: str = Field(primary_key=True, max_length=32)
    period: datetime = _when(primary_key=True)  # the digest's cron fire time
    ranks: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _when()
