"""Bulk seeding for benchmarks: a campaign's streamers, stream reports, videos and deductions,
written fast (one executemany transaction on SQLite, COPY on PostgreSQL), deterministic by seed.

Reusable: `bulk_insert(db, table, columns, rows)` writes any table; `seed_campaign(...)` fills a
campaign with a realistic mix (every report status, days outside the scoring phases, a few
deductions and disqualifications) and returns the new registration ids.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import text

from config.campaign import Campaign
from storage.db import Database
from storage.leaderboard import local_days, scoring_phases, sync_scoring_basis

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
GIVEN = "小文明华丽强芳军杰静敏磊洋艳勇娟涛超霞平刚桂英鹏飞燕玲婷雪梅晨阳宇轩浩然子涵欣怡佳琪"
PLATFORMS = ("抖音", "快手", "视频号", "淘宝", "京东")
# Report statuses in realistic proportions; the leaderboard must skip the last two.
STATUSES = ("unverified",) * 70 + ("confirmed",) * 20 + ("superseded",) * 7 + ("rejected",) * 3
VIDEO_STATUSES = ("accepted",) * 85 + ("review",) * 8 + ("flagged",) * 4 + ("rejected",) * 3


def _sqlite_value(value: Any) -> Any:
    """What the ORM would store: SQLite keeps dates and times as text (UTC), money as real."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
    if isinstance(value, date):
        return value.isoformat()
    return value


def bulk_insert(
    db: Database, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    """Insert `rows` into `table` in one transaction; returns how many were written."""
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if db.is_sqlite:
            values = [tuple(_sqlite_value(v) for v in row) for row in rows]
            marks = ", ".join("?" * len(columns))
            cursor.execute("BEGIN")  # the engine's connections run in autocommit mode
            cursor.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", values
            )
            cursor.execute("COMMIT")
            return len(values)
        count = 0
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
        raw.commit()
        return count
    finally:
        raw.close()


def _next_id(db: Database, table: str) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT COALESCE(MAX(id), 0) FROM {table}")).scalar_one()) + 1


def _sync_sequence(db: Database, table: str) -> None:
    """Rows written with explicit ids leave PostgreSQL's serial behind: move it past them."""
    if db.is_sqlite:
        return
    with db.engine.begin() as conn:
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"
            )
        )


REGISTRATION_COLUMNS = [
    "id",
    "campaign_id",
    "channel",
    "user_id",
    "name",
    "mobile",
    "age",
    "identity",
    "platform",
    "handle",
    "fans",
    "past_sales",
    "unit_key",
    "group_key",
    "status",
    "disqualified_reason",
    "pledged_at",
    "created_at",
    "updated_at",
]
REPORT_COLUMNS = [
    "campaign_id",
    "registration_id",
    "stream_date",
    "gmv",
    "refunds",
    "orders",
    "viewers",
    "peak_viewers",
    "likes",
    "minutes",
    "source",
    "status",
    "created_at",
    "updated_at",
]
VIDEO_COLUMNS = [
    "campaign_id",
    "registration_id",
    "url",
    "url_key",
    "hashtag_ok",
    "status",
    "views",
    "shares",
    "likes",
    "created_at",
]
DEDUCTION_COLUMNS = [
    "campaign_id",
    "registration_id",
    "points",
    "reason",
    "actor",
    "created_at",
    "revoked_at",
]


class _Rows:
    """Random rows of one campaign; the same seed gives the same rows."""

    def __init__(self, campaign: Campaign, ids: list[int], seed: int) -> None:
        self.rng = random.Random(seed)
        self.campaign = campaign
        self.ids = ids
        self.created = min(p.start for p in campaign.phases)
        self.units = [u.key for u in campaign.units] + [None]
        self.groups = [g.key for g in campaign.groups]
        days = [local_days(p) for p in scoring_phases(campaign)]
        days = days or [(self.created.date(), self.created.date())]
        # Five days either side fall outside the scoring phases and must not count.
        self.first_day = min(a for a, _ in days) - timedelta(days=5)
        self.span = (max(b for _, b in days) - self.first_day).days + 10

    def registration(self, rid: int) -> tuple[Any, ...]:
        rng = self.rng
        name = rng_name(rng)
        cheat = "刷单" if rng.random() < 0.001 else None
        return (
            rid,
            self.campaign.id,
            "web",
            f"bench{rid}",
            name,
            f"1{rid:010d}",
            rng.randint(18, 60),
            "其他",
            rng.choice(PLATFORMS),
            f"h{rid}",
            rng.randint(0, 200_000),
            float(rng.randint(0, 10_000)),
            rng.choice(self.units),
            self.groups[rid % len(self.groups)],
            "approved",
            cheat,
            self.created,
            self.created,
            self.created,
        )

    def report(self) -> tuple[Any, ...]:
        rng = self.rng
        gmv = round(rng.expovariate(1 / 2000), 2)
        viewers = rng.randint(10, 50_000)
        return (
            self.campaign.id,
            rng.choice(self.ids),
            self.first_day + timedelta(days=rng.randrange(self.span)),
            gmv,
            round(gmv * rng.random() * 0.2, 2),
            rng.randint(0, 300),
            viewers,
            rng.randint(1, max(viewers // 10, 1)),
            rng.randint(0, 100_000),
            rng.randint(30, 240),
            "self",
            rng.choice(STATUSES),
            self.created,
            self.created,
        )

    def video(self, n: int) -> tuple[Any, ...]:
        rng = self.rng
        return (
            self.campaign.id,
            rng.choice(self.ids),
            f"https://v.douyin.com/b{n}/",
            f"douyin:b{n}",
            True,
            rng.choice(VIDEO_STATUSES),
            rng.randint(0, 100_000),
            rng.randint(0, 5_000),
            rng.randint(0, 20_000),
            self.created,
        )

    def deduction(self, rid: int) -> tuple[Any, ...]:
        revoked = self.created if self.rng.random() < 0.3 else None
        points = float(self.rng.randint(1, 10))
        return (self.campaign.id, rid, points, "投诉", "bench", self.created, revoked)


def rng_name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2))))


def seed_campaign(
    db: Database,
    campaign: Campaign,
    *,
    streamers: int = 50_000,
    reports: int = 1_000_000,
    videos: int = 0,
    seed: int = 1,
) -> list[int]:
    """Approved streamers spread over the campaign's groups and units (0.1% disqualified), their
    reports (every status), videos, and deductions for 1% of them (30% revoked)."""
    first = _next_id(db, "registration")
    ids = list(range(first, first + streamers))
    rows = _Rows(campaign, ids, seed)
    bulk_insert(db, "registration", REGISTRATION_COLUMNS, (rows.registration(i) for i in ids))
    _sync_sequence(db, "registration")
    bulk_insert(db, "stream_report", REPORT_COLUMNS, (rows.report() for _ in range(reports)))
    bulk_insert(db, "video", VIDEO_COLUMNS, (rows.video(n) for n in range(videos)))
    deducted = rows.rng.sample(ids, k=len(ids) // 100)
    bulk_insert(db, "deduction", DEDUCTION_COLUMNS, (rows.deduction(i) for i in deducted))
    db.run_sync(partial(sync_scoring_basis, campaign=campaign))  # as `serve` does at start-up
    return ids
