"""Prize allocation (评奖): tiers from the campaign (一等奖 3 名 10000元 …) filled in ranking order.

Order is the leaderboard's (bot/rules/scoring.py): higher score; on equal scores the tiebreak
values in turn, higher first (streamers: net GMV, then streaming days); then the lower id, the
earlier registration. Disqualified contenders and contenders without any score get nothing.
A tier that cannot be filled stays short (reported), it never takes from the next one. An award
decided by the tie-break (someone with the same score got a lower tier or none) is marked, so
the committee can see it and publish the rule with the list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from bot.rules.formatting import fmt_amount
from bot.rules.scoring import Total, rank_totals
from config.campaign import PrizeTier


@dataclass(frozen=True)
class Contender:
    id: int
    name: str
    score: float
    tiebreak: tuple[float, ...] = ()
    disqualified: bool = False


@dataclass(frozen=True)
class Award:
    tier: PrizeTier
    place: int  # 1-based among the prize winners of this list
    contender: Contender
    by_tiebreak: bool  # someone with the same score ranked into a lower tier or none


@dataclass(frozen=True)
class Allocation:
    awards: list[Award]
    unfilled: list[tuple[str, int]]  # (tier name, places left empty) for want of contenders

    @property
    def total(self) -> Decimal:
        return sum((a.tier.amount for a in self.awards), Decimal(0))


def allocate(tiers: Sequence[PrizeTier], contenders: Sequence[Contender]) -> Allocation:
    eligible = {c.id: c for c in contenders if not c.disqualified and c.score > 0}
    ranked = rank_totals([Total(c.id, c.score, c.tiebreak) for c in eligible.values()])
    order = [eligible[total.id] for _rank, total in ranked]
    tier_of: dict[int, int] = {}
    unfilled: list[tuple[str, int]] = []
    position = 0
    for index, tier in enumerate(tiers):
        winners = order[position : position + tier.count]
        tier_of.update((c.id, index) for c in winners)
        position += len(winners)
        if len(winners) < tier.count:
            unfilled.append((tier.name, tier.count - len(winners)))
    awards = [
        Award(
            tier=tiers[tier_of[c.id]],
            place=place,
            contender=c,
            by_tiebreak=any(
                o.score == c.score and tier_of.get(o.id, len(tiers)) > tier_of[c.id] for o in order
            ),
        )
        for place, c in enumerate(order[:position], 1)
    ]
    return Allocation(awards, unfilled)


def budget_line(total: Decimal, budget: Decimal | None, reserved: Decimal = Decimal(0)) -> str:
    """'奖金合计 7000元，预算 8000元，结余 1000元' (or 超出 …). `reserved`: the prizes the
    budget also pays that are awarded elsewhere (per phase, per video): not a remainder."""
    line = f"奖金合计 {fmt_amount(total)}元"
    if budget is None:
        return line
    left = budget - total - reserved
    state = f"结余 {fmt_amount(left)}元" if left >= 0 else f"超出预算 {fmt_amount(-left)}元"
    kept = f"，其他奖项预留 {fmt_amount(reserved)}元" if reserved else ""
    return f"{line}，预算 {fmt_amount(budget)}元{kept}，{state}"


def tiers_total(tiers: list[PrizeTier]) -> Decimal:
    return sum((t.amount * t.count for t in tiers), Decimal(0))
