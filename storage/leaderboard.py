"""The leaderboard (龙虎榜) of a campaign: per-streamer metrics aggregated in SQL, scored by the
pure rules of bot/rules/scoring.py, per group; team and unit (优秀组织奖) rankings on top.

What counts (docs/scoring.md):
- streamers: the campaign's registrations with status 'approved' ('pending' too when the
  campaign has no registration review), in their group;
- stream reports: status 'confirmed', plus 'unverified' when `scoring.count_unverified`; never
  'superseded' (an import replaced it) or 'rejected'; only on the days of the scoring phases
  (`scoring.phases`, else every competition phase), or of the one phase asked for;
- videos: status 'accepted' or 'review' ('flagged' and 'rejected' count once an organizer
  accepts them); with a phase asked for, the videos filed under that phase;
- deductions: the points of rows not revoked, over the whole campaign.
Tie-break on equal (2-decimal) scores: higher net_gmv, then more stream_days, then the earlier
registration (lower registration id). Disqualified streamers come last with rank None.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Date, Float, cast, false, func, or_, union_all
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import Session, select

from bot.clock import SHANGHAI
from bot.rules.formatting import mask_name
from bot.rules.scoring import (
    METRIC_KEYS,
    STREAMER_TIEBREAK,
    UNIT_TIEBREAK,
    UNIT_WEIGHTS,
    Candidate,
    Total,
    rank_columns,
    rank_totals,
    score_group,
)
from config.campaign import Campaign, Phase
from storage import report_totals
from storage.models import Deduction, Registration, ReportTotals, StreamReport, Team, Video

VIDEO_STATUSES = ("accepted", "review")
DEFAULT_TOP_N = 10  # a group without prize tiers: its top 10 count for 优秀组织奖


class UnknownPhase(ValueError):
    """The phase asked for is not one of the campaign's."""


class Entry(NamedTuple):
    """One streamer on the board. A named tuple holding its row as it came: a board makes
    tens of thousands at once, and most are never looked at closely, so the `metrics` and
    `breakdown` dicts are made only when asked for."""

    rank: int | None
    registration_id: int
    name: str
    group_key: str
    score: float
    deductions: float
    team_id: int | None
    unit_key: str | None
    disqualified: bool
    values: tuple[float, ...]  # the metrics, in METRIC_KEYS order
    weighted: tuple[str, ...]  # the weighted metrics, in `points` order
    points: tuple[float, ...]  # what each weighted metric contributed

    @property
    def display_name(self) -> str:
        """Masked: the only name public pages show."""
        return mask_name(self.name)

    @property
    def metrics(self) -> dict[str, float]:
        return dict(zip(METRIC_KEYS, self.values, strict=True))

    @property
    def breakdown(self) -> dict[str, float]:
        return dict(zip(self.weighted, self.points, strict=True))


@dataclass(frozen=True)
class GroupBoard:
    key: str
    name: str
    entries: list[Entry]


@dataclass(frozen=True)
class Leaderboard:
    campaign_id: str
    updated_at: datetime
    groups: list[GroupBoard]

    def entry(self, registration_id: int) -> tuple[GroupBoard, Entry] | None:
        for group in self.groups:
            for entry in group.entries:
                if entry.registration_id == registration_id:
                    return group, entry
        return None


@dataclass(frozen=True)
class TeamStanding:
    rank: int
    team_id: int
    name: str
    score: float  # sum of the members' composite scores
    members: int  # ranked members (disqualified ones do not count)
    net_gmv: float


@dataclass(frozen=True)
class UnitStanding:
    rank: int
    unit_key: str
    name: str
    score: float
    breakdown: dict[str, float]
    streamers: int
    net_gmv: float
    top_n: int  # streamers in their group's top N (N = the group's prize places, else 10)


def streamer_statuses(campaign: Campaign) -> tuple[str, ...]:
    return ("approved",) if campaign.registration.review else ("approved", "pending")


def report_statuses(campaign: Campaign) -> tuple[str, ...]:
    return ("confirmed", "unverified") if campaign.scoring.count_unverified else ("confirmed",)


def scoring_phases(campaign: Campaign, phase_key: str | None = None) -> list[Phase]:
    """The phases whose stream days count: the one asked for, else the scoring phases."""
    if phase_key is not None:
        phase = next((p for p in campaign.phases if p.key == phase_key), None)
        if phase is None:
            raise UnknownPhase(phase_key)
        return [phase]
    if campaign.scoring.phases:
        return [p for p in campaign.phases if p.key in campaign.scoring.phases]
    return campaign.phases_of("competition")


def local_days(phase: Phase) -> tuple[date, date]:
    return phase.start.astimezone(SHANGHAI).date(), phase.end.astimezone(SHANGHAI).date()


class Unindexed(FunctionElement[date]):
    """The column, with SQLite told not to use an index on it (its unary +): the planner would
    pick stream_date's own index for a date range, then sort a million rows to group them,
    instead of the one pass over ix_stream_report_scoring in (registration, day) order."""

    type = Date()
    inherit_cache = True


@compiles(Unindexed)
def _plain(element: Unindexed, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(Unindexed, "sqlite")
def _sqlite_plus(element: Unindexed, compiler: Any, **kw: Any) -> str:
    return f"+{compiler.process(element.clauses, **kw)}"


def _sum(column: Any) -> Any:
    return cast(func.sum(column), Float)


class Yuan(FunctionElement[float]):
    """Money to 2 decimals, as a float: SQLite sums floats, and equal amounts must compare
    equal in the tie-break. PostgreSQL sums exact numerics, rounded the same way by a cast."""

    type = Float()
    inherit_cache = True


@compiles(Yuan)
def _yuan_exact(element: Yuan, compiler: Any, **kw: Any) -> str:
    amount = compiler.process(element.clauses, **kw)
    return f"CAST(round(CAST({amount} AS NUMERIC(18, 2)), 2) AS FLOAT)"


@compiles(Yuan, "sqlite")
def _yuan_sqlite(element: Yuan, compiler: Any, **kw: Any) -> str:
    return f"round({compiler.process(element.clauses, **kw)}, 2)"  # a REAL already


def scoring_basis(campaign: Campaign) -> report_totals.Basis:
    """What the default board counts, as `report_totals` keeps it."""
    days = {
        first + timedelta(days=n)
        for first, last in map(local_days, scoring_phases(campaign))
        for n in range((last - first).days + 1)
    }
    return report_totals.Basis(campaign.scoring.count_unverified, tuple(sorted(days)))


def sync_scoring_basis(session: Session, campaign: Campaign) -> bool:
    """Bring the campaign's `report_totals` in line with its file (at start-up; a no-op
    unless the scoring phases or `count_unverified` changed). True when it rebuilt them."""
    return report_totals.rebuild(session, campaign.id, scoring_basis(campaign))


def report_sums(campaign: Campaign, phase_key: str | None = None, *, stored: bool = False) -> Any:
    """Per streamer: the sums of its counted reports (`rid` and the report metrics' inputs);
    `stored`: as `report_totals` holds them (for the default board, while they are current),
    else summed over the reports."""
    if stored:
        t = ReportTotals
        return select(
            t.registration_id.label("rid"),
            t.gmv.label("gmv"),
            t.refunds.label("refunds"),
            t.orders.label("orders"),
            t.streams.label("streams"),
            t.days.label("days"),
            cast(t.minutes, Float).label("minutes"),
            t.viewers.label("viewers"),
            t.peak.label("peak"),
            t.likes.label("likes"),
        ).where(t.campaign_id == campaign.id)
    days = [local_days(p) for p in scoring_phases(campaign, phase_key)]
    day = Unindexed(StreamReport.stream_date)
    in_days = or_(*(day.between(a, b) for a, b in days)) if days else false()
    return (
        select(
            StreamReport.registration_id.label("rid"),
            func.sum(StreamReport.gmv).label("gmv"),
            func.sum(StreamReport.refunds).label("refunds"),
            func.sum(StreamReport.orders).label("orders"),
            func.count().label("streams"),
            func.count(StreamReport.stream_date.distinct()).label("days"),
            _sum(StreamReport.minutes).label("minutes"),
            func.sum(StreamReport.viewers).label("viewers"),
            func.max(StreamReport.peak_viewers).label("peak"),
            func.sum(StreamReport.likes).label("likes"),
        )
        .where(
            StreamReport.campaign_id == campaign.id,
            StreamReport.status.in_(report_statuses(campaign)),
            in_days,
        )
        .group_by(StreamReport.registration_id)
    )


def _counted_reports(session: Session, campaign: Campaign, phase_key: str | None) -> Any:
    """`report_sums` for this board: the stored totals while they are current (default board
    only), else the reports summed."""
    if phase_key is not None:
        return report_sums(campaign, phase_key)
    basis = scoring_basis(campaign)
    if session.get_bind().dialect.name == "sqlite":
        # A SQLite transaction reads one snapshot, and a writer's holds the lock a rebuild
        # needs: asking first is safe (SQLite would scan a million reports for a branch it
        # could know to be empty).
        return report_sums(campaign, stored=report_totals.is_current(session, campaign.id, basis))
    # PostgreSQL decides inside the statement: a writer's statements (READ COMMITTED) each see
    # a new snapshot. The empty branch is never executed (a one-time filter).
    fresh = report_totals.current(campaign.id, basis)
    return union_all(
        report_sums(campaign, stored=True).where(fresh), report_sums(campaign).where(~fresh)
    )


def _metrics_query(
    campaign: Campaign, reports: Any, phase_key: str | None, group_key: str | None
) -> Any:
    """One row per streamer: its registration fields, then its metrics (METRIC_KEYS order),
    from `reports` (`_counted_reports`)."""
    reports = reports.subquery()
    video_filter = [
        Video.campaign_id == campaign.id,
        Video.status.in_(VIDEO_STATUSES),
    ]
    if phase_key is not None:
        video_filter.append(Video.phase_key == phase_key)
    videos = (
        select(
            Video.registration_id.label("rid"),
            func.count().label("count"),
            func.sum(Video.views).label("views"),
            func.sum(Video.shares).label("shares"),
            func.sum(Video.likes).label("likes"),
        )
        .where(*video_filter)
        .group_by(Video.registration_id)
        .subquery()
    )
    deductions = (
        select(Deduction.registration_id.label("rid"), _sum(Deduction.points).label("points"))
        .where(
            Deduction.campaign_id == campaign.id,
            Deduction.revoked_at.is_(None),
        )
        .group_by(Deduction.registration_id)
        .subquery()
    )
    r, v = reports.c, videos.c
    zero = func.coalesce
    metrics = {
        "net_gmv": Yuan(zero(r.gmv, 0) - zero(r.refunds, 0)),
        "gmv": Yuan(zero(r.gmv, 0)),
        "orders": zero(r.orders, 0),
        "stream_count": zero(r.streams, 0),
        "stream_days": zero(r.days, 0),
        "stream_hours": zero(r.minutes, 0) / 60,
        "avg_daily_hours": zero(r.minutes / 60 / func.nullif(r.days, 0), 0),
        "viewers": zero(r.viewers, 0),
        "peak_viewers": zero(r.peak, 0),
        "likes": zero(r.likes, 0),
        "video_count": zero(v.count, 0),
        "video_views": zero(v.views, 0),
        "video_shares": zero(v.shares, 0),
        "video_likes": zero(v.likes, 0),
    }
    regs = [
        Registration.campaign_id == campaign.id,
        Registration.status.in_(streamer_statuses(campaign)),
    ]
    if group_key is not None:
        regs.append(Registration.group_key == group_key)
    return (
        select(
            Registration.id,
            Registration.name,
            Registration.group_key,
            Registration.team_id,
            Registration.unit_key,
            Registration.disqualified_reason.is_not(None),
            zero(deductions.c.points, 0),
            *(metrics[key].label(key) for key in METRIC_KEYS),
        )
        .select_from(Registration)
        .outerjoin(reports, r.rid == Registration.id)
        .outerjoin(videos, v.rid == Registration.id)
        .outerjoin(deductions, deductions.c.rid == Registration.id)
        .where(*regs)
    )


def _entries(group_key: str, rows: list[Any], weights: dict[str, float]) -> list[Entry]:
    """A group's entries in ranking order, from its `_metrics_query` rows."""
    if not rows:
        return []
    # Only the columns the ranking reads: the rest stay in the rows.
    ids = [row[0] for row in rows]
    disqualified = [bool(row[5]) for row in rows]  # SQLite answers 0 or 1
    deductions = [row[6] for row in rows]
    at = {key: 7 + METRIC_KEYS.index(key) for key in {*weights, *STREAMER_TIEBREAK}}
    columns = {key: [row[i] for row in rows] for key, i in at.items()}
    ranking = rank_columns(ids, columns, deductions, disqualified, weights)
    entries = [
        Entry(
            ranking.ranks[i],
            row[0],
            row[1],
            group_key,
            ranking.scores[i],
            row[6],
            row[3],
            row[4],
            disqualified[i],
            row[7:],
            ranking.weighted,
            ranking.points[i],
        )
        for i, row in enumerate(rows)
    ]  # built in row order, then reordered: far fewer cache misses than in rank order
    return [entries[i] for i in ranking.order]


def _metric_rows(
    session: Session, campaign: Campaign, phase_key: str | None, group_key: str | None
) -> list[tuple[Any, ...]]:
    """Every streamer's `_metrics_query` row, as the driver gives it: tens of thousands of rows
    skip SQLAlchemy's per-row work (every column is cast in SQL to what the rules want).
    Executed the usual way, so errors, retries and a dropped connection are handled as
    everywhere else."""
    reports = _counted_reports(session, campaign, phase_key)
    result = session.connection().execute(_metrics_query(campaign, reports, phase_key, group_key))
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


@contextmanager
def _no_collection() -> Iterator[None]:
    """Tens of thousands of new objects that all live on (rows, entries, their tuples): the
    cyclic collector would walk them again and again while they are made, and once more when
    it is enabled again (about 0.1 s for a 50,000-streamer board), for nothing. Freezing and
    unfreezing hands everything young to the oldest generation without that walk; garbage
    cycles made meanwhile by other threads are collected with the oldest generation instead."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.freeze()
            gc.unfreeze()
            gc.enable()


def compute_leaderboard(
    session: Session,
    campaign: Campaign,
    now: datetime,
    *,
    phase_key: str | None = None,
    group_key: str | None = None,
) -> Leaderboard:
    """Every group's ranking (or just `group_key`'s). Raises UnknownPhase for a wrong phase.

    Metrics come from one SQL statement (GROUP BY per table, joined to the registrations); the
    normalisation and the tie-break (equal scores: higher net_gmv, more stream_days, lower
    registration id) are `bot.rules.scoring.rank_columns`.
    """
    with _no_collection():
        rows = _metric_rows(session, campaign, phase_key, group_key)
        by_group: dict[str, list[Any]] = defaultdict(list)
        for row in rows:
            by_group[row[2]].append(row)
        weights = {m.key: m.weight for m in campaign.scoring.metrics}
        names = {g.key: g.name for g in campaign.groups}
        keys = [g.key for g in campaign.groups if group_key in (None, g.key)]
        keys += sorted(k for k in by_group if k not in names)  # a group since removed from file
        groups = [
            GroupBoard(key, names.get(key, key), _entries(key, by_group[key], weights))
            for key in keys
        ]
    return Leaderboard(campaign_id=campaign.id, updated_at=now, groups=groups)


def team_ranking(
    session: Session,
    campaign: Campaign,
    now: datetime,
    *,
    board: Leaderboard | None = None,
) -> list[TeamStanding]:
    """优秀直播带货团队: a team's score is the SUM of its ranked members' composite scores (a
    bigger active team does more for the campaign); ties: higher net_gmv, then the older team."""
    board = board or compute_leaderboard(session, campaign, now)
    teams = session.exec(select(Team.id, Team.name).where(Team.campaign_id == campaign.id)).all()
    members: dict[int, list[Entry]] = defaultdict(list)
    for group in board.groups:
        for entry in group.entries:
            if entry.team_id is not None and not entry.disqualified:
                members[entry.team_id].append(entry)
    names = {team_id: name for team_id, name in teams}
    totals = [
        Total(
            id=team_id,
            score=round(sum(e.score for e in members[team_id]), 2),
            tiebreak=(round(sum(e.metrics["net_gmv"] for e in members[team_id]), 2),),
        )
        for team_id in names
    ]
    return [
        TeamStanding(
            rank=rank,
            team_id=t.id,
            name=names[t.id],
            score=t.score,
            members=len(members[t.id]),
            net_gmv=t.tiebreak[0],
        )
        for rank, t in rank_totals(totals)
    ]


def prize_places(campaign: Campaign, group_key: str) -> int:
    tiers = campaign.prizes.groups.get(group_key, [])
    return sum(t.count for t in tiers) or DEFAULT_TOP_N


def unit_ranking(
    session: Session,
    campaign: Campaign,
    now: datetime,
    *,
    board: Leaderboard | None = None,
) -> list[UnitStanding]:
    """优秀组织奖: per recommending unit, its ranked streamers, their net_gmv and how many are
    in their group's top N, each scaled to the best unit and weighted 30/40/30
    (`bot.rules.scoring.UNIT_WEIGHTS`); ties: net_gmv, streamers, then the unit listed first."""
    board = board or compute_leaderboard(session, campaign, now)
    index = {u.key: i for i, u in enumerate(campaign.units)}
    totals = {key: {"streamers": 0.0, "net_gmv": 0.0, "top_n": 0.0} for key in index}
    for group in board.groups:
        places = prize_places(campaign, group.key)
        for entry in group.entries:
            if entry.unit_key not in totals or entry.rank is None:
                continue
            unit = totals[entry.unit_key]
            unit["streamers"] += 1
            unit["net_gmv"] += entry.metrics["net_gmv"]
            unit["top_n"] += entry.rank <= places
    candidates = [Candidate(id=index[key], metrics=m) for key, m in totals.items()]
    standings = []
    # No unit is ever disqualified: every one gets a rank, in this order.
    for rank, s in enumerate(score_group(candidates, UNIT_WEIGHTS, UNIT_TIEBREAK), 1):
        unit = campaign.units[s.id]
        figures = totals[unit.key]
        standings.append(
            UnitStanding(
                rank=rank,
                unit_key=unit.key,
                name=unit.name,
                score=s.score,
                breakdown=s.breakdown,
                streamers=int(figures["streamers"]),
                net_gmv=round(figures["net_gmv"], 2),
                top_n=int(figures["top_n"]),
            )
        )
    return standings
