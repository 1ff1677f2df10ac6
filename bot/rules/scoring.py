"""Scoring (评分): plain numbers in, ranks out. See docs/scoring.md.

Each weighted metric is scaled 0–100 against the best eligible candidate of the group
(value / best × 100; a metric whose best is 0 gives everyone 0; negative values count as 0), then
the scaled values are averaged by weight into a composite 0–100. In-force deduction points are
subtracted (never below 0). Scores are rounded to 2 decimals: what people see is what is compared.

Order (deterministic): higher score; on equal scores the `tiebreak` metrics in turn, higher first
(streamers: net_gmv, then stream_days); then the lower id (the earlier registration). Disqualified
candidates never rank: they come last, rank None, score 0, and do not set the group's best.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import compress
from typing import NamedTuple

from bot.rules.formatting import fmt_amount

METRIC_LABELS: dict[str, str] = {
    "net_gmv": "净成交额",
    "gmv": "成交额",
    "orders": "订单数",
    "stream_count": "直播场次",
    "stream_days": "直播天数",
    "stream_hours": "直播时长",
    "avg_daily_hours": "日均直播时长",
    "viewers": "累计观看",
    "peak_viewers": "最高在线",
    "likes": "获赞",
    "video_count": "作品数",
    "video_views": "作品播放量",
    "video_shares": "作品转发量",
    "video_likes": "作品获赞",
}
METRIC_KEYS = tuple(METRIC_LABELS)
METRIC_UNITS: dict[str, str] = {
    "net_gmv": "元",
    "gmv": "元",
    "orders": "单",
    "stream_count": "场",
    "stream_days": "天",
    "stream_hours": "小时",
    "avg_daily_hours": "小时",
    "video_count": "条",
}
STREAMER_TIEBREAK = ("net_gmv", "stream_days")
# 优秀组织奖: streamers recommended, their net sales, and how many of them are in their group's
# top N, each scaled against the best unit, weighted 30/40/30.
UNIT_WEIGHTS: dict[str, float] = {"streamers": 30, "net_gmv": 40, "top_n": 30}
UNIT_TIEBREAK = ("net_gmv", "streamers")


# Named tuples, not dataclasses: a big group makes tens of thousands of them per leaderboard.
class Candidate(NamedTuple):
    id: int
    metrics: Mapping[str, float]
    deductions: float = 0.0  # points in force
    disqualified: bool = False


class Scored(NamedTuple):
    id: int
    rank: int | None
    score: float
    breakdown: dict[str, float]  # metric -> points it contributed (unrounded; shown rounded)
    deductions: float
    disqualified: bool


class Total(NamedTuple):
    """A sum over members (a team): ranked by score, then the tiebreak values, then id."""

    id: int
    score: float
    tiebreak: tuple[float, ...] = ()


def metric_label(key: str, label: str = "") -> str:
    return label or METRIC_LABELS.get(key, key)


def fmt_metric(key: str, value: float) -> str:
    """A metric as people read it: 1.2万元, 12.5小时, 3天, 8000."""
    if key in ("stream_hours", "avg_daily_hours"):
        return f"{value:.1f}小时"
    return f"{fmt_amount(value)}{METRIC_UNITS.get(key, '')}"


class Ranking(NamedTuple):
    """`rank_columns`' answer, per candidate index (the order the candidates came in)."""

    order: list[int]  # indices: the ranked best first, then the disqualified by id
    ranks: list[int | None]
    scores: list[float]
    weighted: tuple[str, ...]  # the weighted metrics, in `points` order
    points: list[tuple[float, ...]]  # per candidate: what each weighted metric contributed

    def breakdown(self, i: int) -> dict[str, float]:
        return dict(zip(self.weighted, self.points[i], strict=True))


def rank_columns(
    ids: Sequence[int],
    columns: Mapping[str, Sequence[float]],
    deductions: Sequence[float],
    disqualified: Sequence[bool],
    weights: Mapping[str, float],
    tiebreak: Sequence[str] = STREAMER_TIEBREAK,
) -> Ranking:
    """One group's ranking from one list per metric (`columns[key][i]` is candidate i's value;
    a missing metric is 0 for everyone).

    Columns, not an object per candidate: a group can hold tens of thousands of streamers, the
    leaderboard has a one-second budget, and list comprehensions over columns are several
    times faster than building and garbage-collecting objects.
    """
    total_weight = sum(weights.values())
    if total_weight <= 0:
        raise ValueError("scoring needs at least one positive weight")
    n = len(ids)
    zeros = [0.0] * n
    eligible = [not out for out in disqualified]
    per_metric = []  # per weighted metric: the points each candidate gets from it
    for key, weight in weights.items():
        column = columns.get(key, zeros)
        best = max(compress(column, eligible), default=0)
        share = 100 * weight / total_weight  # the points of the best
        per_metric.append(
            [
                v / best * share if v > 0 and ok else 0.0
                for v, ok in zip(column, eligible, strict=True)
            ]
            if best > 0
            else zeros
        )
    # Tuples, not a dict per candidate: `Ranking.breakdown(i)` makes the dict when asked.
    points = list(zip(*per_metric, strict=True))
    scores = [
        0.0 if out else round(max(sum(row) - d, 0.0), 2)
        for row, d, out in zip(points, deductions, disqualified, strict=True)
    ]
    # Stable sorts from the last criterion to the first: no key tuple per candidate.
    ranked = sorted(compress(range(n), eligible), key=ids.__getitem__)
    for key in reversed(tiebreak):
        higher_first = [-v for v in columns.get(key, zeros)]
        ranked.sort(key=higher_first.__getitem__)
    by_score = [-s for s in scores]
    ranked.sort(key=by_score.__getitem__)
    out = sorted(compress(range(n), disqualified), key=ids.__getitem__)
    ranks: list[int | None] = [None] * n
    for rank, i in enumerate(ranked, 1):
        ranks[i] = rank
    return Ranking(ranked + out, ranks, scores, tuple(weights), points)


def score_group(
    candidates: Sequence[Candidate],
    weights: Mapping[str, float],
    tiebreak: Sequence[str] = STREAMER_TIEBREAK,
) -> list[Scored]:
    """One group's ranking: ranked candidates first (rank 1…n), then the disqualified."""
    keys = {*weights, *tiebreak}
    ranking = rank_columns(
        [c.id for c in candidates],
        {k: [c.metrics.get(k, 0.0) for c in candidates] for k in keys},
        [c.deductions for c in candidates],
        [c.disqualified for c in candidates],
        weights,
        tiebreak,
    )
    return [
        Scored(
            candidates[i].id,
            ranking.ranks[i],
            ranking.scores[i],
            ranking.breakdown(i),
            candidates[i].deductions,
            candidates[i].disqualified,
        )
        for i in ranking.order
    ]


def rank_totals(totals: Sequence[Total]) -> list[tuple[int, Total]]:
    """(rank, total) best first: higher score, then higher tiebreak values, then lower id."""
    ordered = sorted(totals, key=lambda t: (-t.score, *(-v for v in t.tiebreak), t.id))
    return list(enumerate(ordered, 1))
