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
from typing import NamedTuple

import numpy as np

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

    Columns as arrays, not an object per candidate: a group can hold tens of thousands of
    streamers and the leaderboard has a one-second budget. Every float is computed as the
    plain Python expression would (v / best * share; points added in weight order; Python's
    own rounding), so the figures do not depend on the representation.
    """
    total_weight = sum(weights.values())
    if total_weight <= 0:
        raise ValueError("scoring needs at least one positive weight")
    n = len(ids)
    out = np.fromiter(disqualified, dtype=bool, count=n)
    eligible = ~out

    def column(key: str) -> np.ndarray:
        return np.asarray(columns[key], dtype=float) if key in columns else np.zeros(n)

    per_metric = []  # per weighted metric: the points each candidate gets from it
    for key, weight in weights.items():
        values = column(key)
        best = values[eligible].max(initial=0.0)
        share = 100 * weight / total_weight  # the points of the best
        points = np.zeros(n)
        if best > 0:
            counted = eligible & (values > 0)
            points[counted] = values[counted] / best * share
        per_metric.append(points)
    total = per_metric[0].copy()
    for points in per_metric[1:]:  # in weight order, as sum() adds them
        total += points
    raw = np.maximum(total - np.asarray(deductions, dtype=float), 0.0).tolist()
    scores = [0.0 if o else round(x, 2) for x, o in zip(raw, disqualified, strict=True)]
    # Higher score, then the tiebreak metrics higher first, then the lower id: one stable sort.
    keys = [np.asarray(ids), *(-column(k) for k in reversed(tiebreak)), -np.asarray(scores)]
    order = np.lexsort(keys)
    ranked = order[eligible[order]].tolist()
    dropped = sorted(np.flatnonzero(out).tolist(), key=ids.__getitem__)  # last, by id
    ranks: list[int | None] = [None] * n
    for rank, i in enumerate(ranked, 1):
        ranks[i] = rank
    points_by_candidate = list(zip(*(p.tolist() for p in per_metric), strict=True))
    return Ranking(ranked + dropped, ranks, scores, tuple(weights), points_by_candidate)


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
