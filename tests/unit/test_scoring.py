"""The pure scoring rules: normalisation, weights, tie-break, deductions, disqualification."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.rules.scoring import (
    METRIC_KEYS,
    UNIT_TIEBREAK,
    UNIT_WEIGHTS,
    Candidate,
    Total,
    fmt_metric,
    rank_totals,
    score_group,
)


def c(id: int, deductions: float = 0.0, disqualified: bool = False, **metrics: float) -> Candidate:
    return Candidate(id, metrics, deductions, disqualified)


def scores(candidates: list[Candidate], weights: dict[str, float]) -> dict[int, float]:
    return {s.id: s.score for s in score_group(candidates, weights)}


@pytest.mark.parametrize(
    ("candidates", "weights", "expected"),
    [
        # scaled against the best: 100, 50, 0
        (
            [c(1, net_gmv=100), c(2, net_gmv=50), c(3, net_gmv=0)],
            {"net_gmv": 1},
            {1: 100, 2: 50, 3: 0},
        ),
        # weights 3:1 → 75 % + 25 % of the scaled values
        (
            [c(1, net_gmv=100, stream_days=1), c(2, net_gmv=50, stream_days=2)],
            {"net_gmv": 3, "stream_days": 1},
            {1: 87.5, 2: 62.5},
        ),
        # only relative weights matter
        (
            [c(1, net_gmv=100, stream_days=1), c(2, net_gmv=50, stream_days=2)],
            {"net_gmv": 75, "stream_days": 25},
            {1: 87.5, 2: 62.5},
        ),
        # a metric nobody has gives everyone 0, the other still counts
        (
            [c(1, net_gmv=0, stream_days=2), c(2, net_gmv=0, stream_days=1)],
            {"net_gmv": 1, "stream_days": 1},
            {1: 50, 2: 25},
        ),
        # all zero: everyone 0
        ([c(1), c(2)], {"net_gmv": 1, "likes": 1}, {1: 0, 2: 0}),
        # refunds above sales: a negative net GMV counts as 0, never below
        ([c(1, net_gmv=-500), c(2, net_gmv=1000)], {"net_gmv": 1}, {1: 0, 2: 100}),
        # deductions come off the composite, never below 0
        (
            [c(1, 10, net_gmv=100), c(2, 80, net_gmv=50)],
            {"net_gmv": 1},
            {1: 90, 2: 0},
        ),
        # rounded to 2 decimals
        ([c(1, net_gmv=3), c(2, net_gmv=1)], {"net_gmv": 1}, {1: 100, 2: 33.33}),
        # a short-video contest: the same engine over video metrics only
        (
            [c(1, video_views=1000, video_shares=10), c(2, video_views=500, video_shares=40)],
            {"video_views": 60, "video_shares": 40},
            {1: 70, 2: 70},
        ),
    ],
)
def test_normalisation_weights_and_deductions(
    candidates: list[Candidate], weights: dict[str, float], expected: dict[int, float]
) -> None:
    assert scores(candidates, weights) == pytest.approx(expected)


def test_breakdown_is_what_each_metric_contributed() -> None:
    [first, second] = score_group(
        [c(1, net_gmv=100, stream_days=1), c(2, net_gmv=50, stream_days=2)],
        {"net_gmv": 3, "stream_days": 1},
    )
    assert first.breakdown == pytest.approx({"net_gmv": 75, "stream_days": 12.5})
    assert second.breakdown == pytest.approx({"net_gmv": 37.5, "stream_days": 25})
    assert sum(second.breakdown.values()) == pytest.approx(second.score)


@pytest.mark.parametrize(
    ("candidates", "order"),
    [
        # equal scores: higher net_gmv first (net_gmv is not even weighted here)
        ([c(1, likes=5, net_gmv=10), c(2, likes=5, net_gmv=20)], [2, 1]),
        # equal net_gmv too: more streaming days
        (
            [c(1, likes=5, net_gmv=10, stream_days=1), c(2, likes=5, net_gmv=10, stream_days=3)],
            [2, 1],
        ),
        # all equal: the earlier registration (lower id)
        ([c(7, likes=5), c(3, likes=5), c(5, likes=5)], [3, 5, 7]),
        # a higher score always beats the tie-break values
        ([c(1, likes=4, net_gmv=1000, stream_days=9), c(2, likes=5)], [2, 1]),
        # nobody has anything: registration order
        ([c(2), c(1)], [1, 2]),
    ],
)
def test_tie_break(candidates: list[Candidate], order: list[int]) -> None:
    ranked = score_group(candidates, {"likes": 1})
    assert [s.id for s in ranked] == order
    assert [s.rank for s in ranked] == list(range(1, len(order) + 1))


def test_disqualified_come_last_without_rank_and_do_not_set_the_best() -> None:
    ranked = score_group(
        [c(1, net_gmv=50), c(2, disqualified=True, net_gmv=10_000), c(3, net_gmv=100)],
        {"net_gmv": 1},
    )
    assert [(s.id, s.rank, s.score, s.disqualified) for s in ranked] == [
        (3, 1, 100.0, False),
        (1, 2, 50.0, False),
        (2, None, 0.0, True),
    ]


def test_no_weights_is_refused_and_an_empty_group_is_empty() -> None:
    with pytest.raises(ValueError):
        score_group([c(1)], {})
    assert score_group([], {"net_gmv": 1}) == []


def test_unit_weights_use_the_same_engine() -> None:
    units = [
        Candidate(0, {"streamers": 10, "net_gmv": 1000, "top_n": 0}),
        Candidate(1, {"streamers": 5, "net_gmv": 2000, "top_n": 2}),
    ]
    ranked = score_group(units, UNIT_WEIGHTS, UNIT_TIEBREAK)
    assert [(s.id, s.score) for s in ranked] == [(1, 85.0), (0, 50.0)]


def test_rank_totals() -> None:
    totals = [
        Total(1, 50.0, (10.0,)),
        Total(2, 80.0, (0.0,)),
        Total(3, 50.0, (20.0,)),
        Total(4, 50.0, (20.0,)),
    ]
    assert [(rank, t.id) for rank, t in rank_totals(totals)] == [(1, 2), (2, 3), (3, 4), (4, 1)]


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [
        ("net_gmv", 12000, "1.2万元"),
        ("net_gmv", 88.5, "88.5元"),
        ("stream_hours", 2.5, "2.5小时"),
        ("avg_daily_hours", 1 / 3, "0.3小时"),
        ("stream_days", 3, "3天"),
        ("viewers", 8000, "8000"),
        ("video_count", 2, "2条"),
    ],
)
def test_fmt_metric(key: str, value: float, text: str) -> None:
    assert fmt_metric(key, value) == text


# Properties over many groups ------------------------------------------------------------------
values = st.floats(min_value=-1e6, max_value=1e9, allow_nan=False, allow_infinity=False)
groups = st.lists(
    st.tuples(
        st.dictionaries(st.sampled_from(METRIC_KEYS), values, max_size=5),
        st.floats(min_value=0, max_value=200),
        st.booleans(),
    ),
    max_size=25,
)
weight_maps = st.dictionaries(
    st.sampled_from(METRIC_KEYS), st.floats(min_value=0.1, max_value=100), min_size=1, max_size=5
)


def build(rows: list[tuple[dict[str, float], float, bool]]) -> list[Candidate]:
    return [Candidate(i, m, d, q) for i, (m, d, q) in enumerate(rows, 1)]


@given(groups, weight_maps)
def test_scores_stay_within_0_and_100(rows: list, weights: dict[str, float]) -> None:
    for s in score_group(build(rows), weights):
        assert 0 <= s.score <= 100
        assert all(0 <= p <= 100 + 1e-9 for p in s.breakdown.values())


@given(groups, weight_maps, st.randoms(use_true_random=False))
def test_order_does_not_depend_on_row_order(
    rows: list, weights: dict[str, float], rnd: random.Random
) -> None:
    candidates = build(rows)
    shuffled = list(candidates)
    rnd.shuffle(shuffled)
    assert score_group(shuffled, weights) == score_group(candidates, weights)


@given(groups, weight_maps, st.floats(min_value=0.5, max_value=20))
def test_ranks_are_1_to_n_and_scaling_the_weights_changes_nothing(
    rows: list, weights: dict[str, float], factor: float
) -> None:
    candidates = build(rows)
    ranked = score_group(candidates, weights)
    eligible = [s for s in ranked if not s.disqualified]
    assert [s.rank for s in eligible] == list(range(1, len(eligible) + 1))
    assert all(s.rank is None for s in ranked if s.disqualified)
    assert [s.score for s in eligible] == sorted((s.score for s in eligible), reverse=True)
    scaled = score_group(candidates, {k: w * factor for k, w in weights.items()})
    by_id = {s.id: s.score for s in scaled}
    assert by_id == pytest.approx({s.id: s.score for s in ranked}, abs=0.011)
