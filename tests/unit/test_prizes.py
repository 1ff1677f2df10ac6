"""bot.rules.prizes: tiers filled in ranking order, ties by the documented tie-break."""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.rules.prizes import Contender, allocate, budget_line, tiers_total
from config.campaign import PrizeTier

TIERS = [
    PrizeTier(name="一等奖", count=1, amount=Decimal(1000)),
    PrizeTier(name="二等奖", count=2, amount=Decimal(500)),
]


def c(id: int, score: float, gmv: float = 0, days: float = 0, out: bool = False) -> Contender:
    return Contender(id, f"主播{id}", score, (gmv, days), out)


def winners(contenders: list[Contender]) -> list[tuple[str, int, bool]]:
    return [
        (a.tier.name, a.contender.id, a.by_tiebreak) for a in allocate(TIERS, contenders).awards
    ]


@pytest.mark.parametrize(
    ("contenders", "expected"),
    [
        # plain order by score
        (
            [c(1, 50), c(2, 90), c(3, 70), c(4, 60)],
            [("一等奖", 2, False), ("二等奖", 3, False), ("二等奖", 4, False)],
        ),
        # equal scores: higher net GMV first; the award across a tier boundary is marked
        (
            [c(1, 90, gmv=100), c(2, 90, gmv=300), c(3, 10)],
            [("一等奖", 2, True), ("二等奖", 1, False), ("二等奖", 3, False)],
        ),
        # equal score and GMV: more streaming days
        (
            [c(1, 90, 100, days=2), c(2, 90, 100, days=5), c(3, 10)],
            [("一等奖", 2, True), ("二等奖", 1, False), ("二等奖", 3, False)],
        ),
        # a tie on everything: the earlier registration (lower id)
        (
            [c(7, 80, 100, 3), c(4, 80, 100, 3), c(9, 80, 100, 3), c(5, 80, 100, 3)],
            [("一等奖", 4, True), ("二等奖", 5, True), ("二等奖", 7, True)],
        ),
        # disqualified and zero scores get nothing; places stay empty rather than filled
        (
            [c(1, 99, out=True), c(2, 40), c(3, 0)],
            [("一等奖", 2, False)],
        ),
    ],
)
def test_allocation(contenders: list[Contender], expected: list[tuple[str, int, bool]]) -> None:
    assert winners(contenders) == expected


def test_unfilled_places_and_totals() -> None:
    allocation = allocate(TIERS, [c(1, 10), c(2, 5)])
    assert allocation.unfilled == [("二等奖", 1)]
    assert allocation.total == Decimal(1500)
    assert [a.place for a in allocation.awards] == [1, 2]


@pytest.mark.parametrize(
    ("total", "budget", "line"),
    [
        (Decimal(7000), Decimal(8000), "奖金合计 7000元，预算 8000元，结余 1000元"),
        (Decimal(90000), Decimal(80000), "奖金合计 9万元，预算 8万元，超出预算 1万元"),
        (Decimal(500), None, "奖金合计 500元"),
    ],
)
def test_budget_line(total: Decimal, budget: Decimal | None, line: str) -> None:
    assert budget_line(total, budget) == line


def test_prizes_awarded_elsewhere_are_not_a_remainder() -> None:
    """利通's 50万 also pays each activity's own prizes: those are reserved, not left over."""
    assert budget_line(Decimal(105000), Decimal(500000), Decimal(395000)) == (
        "奖金合计 10.5万元，预算 50万元，其他奖项预留 39.5万元，结余 0元"
    )
    tiers = [
        PrizeTier(name="一等奖", count=3, amount=Decimal(5000)),
        PrizeTier(name="优秀奖", count=10),
    ]
    assert tiers_total(tiers) == Decimal(15000)


scores = st.lists(
    st.tuples(st.integers(0, 5), st.integers(0, 3), st.booleans()), min_size=0, max_size=12
)


@given(scores)
def test_invariants(rows: list[tuple[int, int, bool]]) -> None:
    contenders = [c(i, float(s), gmv=float(g), out=o) for i, (s, g, o) in enumerate(rows, 1)]
    awards = allocate(TIERS, contenders).awards
    eligible = [x for x in contenders if not x.disqualified and x.score > 0]
    # as many winners as places and eligible contenders allow, none disqualified or scoreless
    assert len(awards) == min(3, len(eligible))
    assert all(not a.contender.disqualified and a.contender.score > 0 for a in awards)
    # nobody outside the list beats anyone inside it, and tiers never go up as scores go down
    order = {"一等奖": 0, "二等奖": 1}
    inside = {a.contender.id for a in awards}
    lowest = min((a.contender.score for a in awards), default=0)
    assert all(x.score <= lowest for x in eligible if x.id not in inside)
    for better, worse in pairwise(awards):
        key = (better.contender.score, better.contender.tiebreak)
        assert key >= (worse.contender.score, worse.contender.tiebreak)
        assert order[better.tier.name] <= order[worse.tier.name]
