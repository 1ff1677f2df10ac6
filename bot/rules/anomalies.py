"""Anomalies worth an organizer's look (possible 刷单), for the review queue and the digest.

- **Figure outliers**: per group, each streamer's GMV per viewer (成交额 / 累计观看) and refund rate
  (退款 / 成交额) is compared with the group by the robust z-score of Iglewicz and Hoaglin:
  z = 0.6745 × (x − median) / MAD, MAD the median absolute deviation. Only the high side is
  flagged, at z > 3.5, and only in groups of at least 5 streamers with the figure. When MAD is 0
  (most values equal) the mean absolute deviation stands in (z = (x − median) / (1.2533 × meanAD)).
  Median and MAD are not dragged along by the outlier itself, unlike mean and standard deviation.
  A flag also needs a size that matters, so a group of near-equal values raises nothing: GMV per
  viewer at least twice the group's median, a refund rate of at least 30%.
- **One link, two streamers**: the same video (normalised link) claimed by several streamers.
- **Self-report above the platform**: a self-reported GMV at least 1.5 times the imported figure
  for the same streamer and day, and at least 100 元 more.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from statistics import median

from bot.rules.formatting import fmt_amount

Z_THRESHOLD = 3.5
MIN_GROUP = 5
PER_VIEWER_MIN_RATIO = 2.0
REFUND_RATE_MIN = 0.3
SELF_OVER_RATIO = Decimal("1.5")
SELF_OVER_FLOOR = Decimal(100)
_MAD_SCALE = 0.6745
_MEAN_AD_SCALE = 1.2533


@dataclass(frozen=True)
class StreamerTotals:
    registration_id: int
    name: str
    group_key: str
    gmv: Decimal
    refunds: Decimal
    viewers: int


@dataclass(frozen=True)
class Claim:
    url_key: str
    url: str
    registration_id: int
    name: str


@dataclass(frozen=True)
class DayPair:
    """A streamer's self-reported and imported GMV for one day."""

    registration_id: int
    name: str
    day: date
    self_gmv: Decimal
    imported_gmv: Decimal


@dataclass(frozen=True)
class Anomaly:
    kind: str  # gmv_per_viewer | refund_rate | shared_link | self_over_import
    registration_ids: tuple[int, ...]
    text: str  # one line for an organizer


def robust_z(values: Sequence[float]) -> list[float]:
    """The modified z-score of each value (0 for all when the values do not spread)."""
    if not values:
        return []
    mid = median(values)
    deviations = [abs(v - mid) for v in values]
    mad = median(deviations)
    if mad > 0:
        return [_MAD_SCALE * (v - mid) / mad for v in values]
    mean_ad = sum(deviations) / len(values)
    if mean_ad > 0:
        return [(v - mid) / (_MEAN_AD_SCALE * mean_ad) for v in values]
    return [0.0] * len(values)


def _high_outliers(
    totals: Sequence[StreamerTotals],
    value: Callable[[StreamerTotals], float | None],
    matters: Callable[[float, float], bool],
) -> list[tuple[StreamerTotals, float, float]]:
    """(streamer, value, group median) of each high outlier that `matters`, group by group."""
    found = []
    for group in sorted({t.group_key for t in totals}):
        members = [(t, v) for t in totals if t.group_key == group and (v := value(t)) is not None]
        if len(members) < MIN_GROUP:
            continue
        values = [v for _t, v in members]
        mid = median(values)
        for (t, v), z in zip(members, robust_z(values), strict=True):
            if z > Z_THRESHOLD and matters(v, mid):
                found.append((t, v, mid))
    return found


def figure_outliers(totals: Sequence[StreamerTotals]) -> list[Anomaly]:
    def per_viewer(t: StreamerTotals) -> float | None:
        return float(t.gmv) / t.viewers if t.viewers > 0 and t.gmv > 0 else None

    def refund_rate(t: StreamerTotals) -> float | None:
        return float(t.refunds / t.gmv) if t.gmv > 0 else None

    anomalies = [
        Anomaly(
            "gmv_per_viewer",
            (t.registration_id,),
            f"{t.name}：每位观众成交 {v:.2f}元，组内中位数 {mid:.2f}元（可能刷单）",
        )
        for t, v, mid in _high_outliers(
            totals, per_viewer, lambda v, mid: v >= PER_VIEWER_MIN_RATIO * mid
        )
    ]
    anomalies += [
        Anomaly(
            "refund_rate",
            (t.registration_id,),
            f"{t.name}：退款率 {v:.0%}，组内中位数 {mid:.0%}（可能刷单后退款）",
        )
        for t, v, mid in _high_outliers(totals, refund_rate, lambda v, _m: v >= REFUND_RATE_MIN)
    ]
    return anomalies


def shared_links(claims: Sequence[Claim]) -> list[Anomaly]:
    by_link: dict[str, list[Claim]] = {}
    for claim in claims:
        by_link.setdefault(claim.url_key, []).append(claim)
    anomalies = []
    for group in by_link.values():
        ids = tuple(sorted({c.registration_id for c in group}))
        if len(ids) < 2:
            continue
        names = "、".join(dict.fromkeys(c.name for c in group))
        anomalies.append(
            Anomaly(
                "shared_link", ids, f"同一作品链接被{len(ids)}人提交：{names}（{group[0].url}）"
            )
        )
    return anomalies


def self_over_import(pairs: Sequence[DayPair]) -> list[Anomaly]:
    return [
        Anomaly(
            "self_over_import",
            (p.registration_id,),
            f"{p.name}：{p.day.month}月{p.day.day}日自报成交 {fmt_amount(p.self_gmv)}元，"
            f"平台数据 {fmt_amount(p.imported_gmv)}元",
        )
        for p in pairs
        if p.self_gmv >= p.imported_gmv * SELF_OVER_RATIO
        and p.self_gmv - p.imported_gmv >= SELF_OVER_FLOOR
    ]
