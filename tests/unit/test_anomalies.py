"""bot.rules.anomalies: robust z-scores per group, shared links, self-reports above the platform."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.rules.anomalies import (
    Claim,
    DayPair,
    StreamerTotals,
    figure_outliers,
    robust_z,
    self_over_import,
    shared_links,
)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], []),
        ([5.0, 5.0, 5.0], [0.0, 0.0, 0.0]),
        # median 3, MAD 1: z = 0.6745 × (x − 3)
        ([1.0, 2.0, 3.0, 4.0, 5.0], [-1.349, -0.6745, 0.0, 0.6745, 1.349]),
        # MAD 0: the mean absolute deviation (9/5) stands in: 9 / (1.2533 × 1.8)
        ([1.0, 1.0, 1.0, 1.0, 10.0], [0.0, 0.0, 0.0, 0.0, 3.9895]),
    ],
)
def test_robust_z(values: list[float], expected: list[float]) -> None:
    assert robust_z(values) == pytest.approx(expected, abs=1e-3)


@given(
    st.lists(st.floats(100, 110), min_size=5, max_size=30),
    st.floats(1000, 1e9),
)
def test_a_far_value_always_stands_out(values: list[float], extra: float) -> None:
    """However the tight group is shaped (even mostly equal, where MAD is 0), a value far above
    it scores past the threshold: it cannot drag the median and MAD along as it would a mean."""
    *rest, last = robust_z([*values, extra])
    assert last > 3.5
    assert all(abs(z) < last for z in rest)


def totals(
    rid: int, gmv: float, viewers: int, refunds: float = 0, group: str = "g"
) -> StreamerTotals:
    return StreamerTotals(
        rid, f"主播{rid}", group, Decimal(str(gmv)), Decimal(str(refunds)), viewers
    )


NORMAL = [totals(i, 1000 + 50 * i, 1000) for i in range(1, 7)]  # about 1 元 per viewer


def test_gmv_per_viewer_outlier_in_its_group() -> None:
    suspicious = totals(9, 30000, 1000)  # 30 元 per viewer
    found = figure_outliers([*NORMAL, suspicious])
    assert [(a.kind, a.registration_ids) for a in found] == [("gmv_per_viewer", (9,))]
    assert "主播9" in found[0].text and "可能刷单" in found[0].text


def test_groups_are_compared_separately_and_small_groups_not_at_all() -> None:
    big_group = [totals(20 + i, 30000 + 100 * i, 1000, group="expert") for i in range(3)]
    assert figure_outliers([*NORMAL, *big_group]) == []


def test_refund_rate_outlier_needs_a_rate_that_matters() -> None:
    mostly_none = [totals(i, 1000, 1000, refunds=0) for i in range(1, 7)]
    small = totals(8, 1000, 1000, refunds=50)  # 5%: a z-score outlier, but ordinary
    large = totals(9, 1000, 1000, refunds=600)  # 60%
    found = figure_outliers([*mostly_none, small, large])
    assert [(a.kind, a.registration_ids) for a in found] == [("refund_rate", (9,))]
    assert "60%" in found[0].text


def test_streamers_without_viewers_or_sales_are_left_out() -> None:
    assert figure_outliers([*NORMAL, totals(9, 500, 0), totals(10, 0, 0)]) == []


def test_shared_links() -> None:
    claims = [
        Claim("v.douyin.com/abc", "https://v.douyin.com/abc/", 1, "王小文"),
        Claim("v.douyin.com/abc", "https://v.douyin.com/abc/", 2, "李四"),
        Claim("v.douyin.com/xyz", "https://v.douyin.com/xyz/", 3, "张三"),
    ]
    [anomaly] = shared_links(claims)
    assert anomaly.registration_ids == (1, 2)
    assert "被2人提交：王小文、李四" in anomaly.text


@pytest.mark.parametrize(
    ("self_gmv", "imported", "flagged"),
    [
        ("3000", "1000", True),
        ("1500", "1000", True),  # exactly 1.5 times and 500 more
        ("1400", "1000", False),
        ("150", "50", True),  # 100 元 more: at the floor
        ("140", "50", False),  # three times, but under 100 元 more
        ("90", "30", False),
    ],
)
def test_self_report_far_above_the_platform(self_gmv: str, imported: str, flagged: bool) -> None:
    pair = DayPair(1, "王小文", date(2024, 9, 12), Decimal(self_gmv), Decimal(imported))
    found = self_over_import([pair])
    assert bool(found) is flagged
    if flagged:
        assert "9月12日自报成交" in found[0].text
