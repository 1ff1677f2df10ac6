"""Who may sign up and which group they join: pure functions over campaign config."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from bot.rules.formatting import fmt_amount, fmt_when
from config.campaign import Campaign, Condition, Eligibility, Group

FIELD_NAMES = {
    "fans": "全网粉丝量",
    "past_sales": "近一年直播带货销售额",
    "age": "年龄",
    "identity": "身份",
    "platform": "平台",
    "likes": "获赞量",
}
OP_WORDS = {
    "lt": "低于",
    "le": "不超过",
    "gt": "高于",
    "ge": "不低于",
    "eq": "为",
    "ne": "不是",
    "in": "属于",
}


@dataclass(frozen=True)
class Profile:
    age: int
    identity: str
    platform: str
    fans: int
    past_sales: Decimal
    likes: int = 0


def _holds(cond: Condition, profile: Profile) -> bool:
    actual = getattr(profile, cond.field)
    expected = cond.value
    if cond.op == "in":
        return actual in (expected if isinstance(expected, list) else [expected])
    if cond.op in ("eq", "ne"):
        same = str(actual) == str(expected) if isinstance(expected, str) else actual == expected
        return same if cond.op == "eq" else not same
    number = Decimal(str(actual))
    bound = Decimal(str(expected))
    return {
        "lt": number < bound,
        "le": number <= bound,
        "gt": number > bound,
        "ge": number >= bound,
    }[cond.op]


def matches(group: Group, profile: Profile) -> bool:
    if group.rule is None:
        return True
    rule = group.rule
    return all(_holds(c, profile) for c in rule.all) and (
        not rule.any or any(_holds(c, profile) for c in rule.any)
    )


def assign_group(groups: list[Group], profile: Profile) -> Group | None:
    """The first group, in the campaign's order, whose rule the profile meets."""
    return next((g for g in groups if matches(g, profile)), None)


def _condition_text(cond: Condition) -> str:
    value = cond.value
    if cond.field == "past_sales" and not isinstance(value, (str, list)):
        shown = f"{fmt_amount(Decimal(str(value)))}元"
    elif cond.field == "fans" and not isinstance(value, (str, list)):
        shown = fmt_amount(Decimal(str(value)))
    else:
        shown = "、".join(value) if isinstance(value, list) else str(value)
    return f"{FIELD_NAMES[cond.field]}{OP_WORDS[cond.op]}{shown}"


def group_rule_text(group: Group) -> str:
    """The group's rule in words: its description, else generated from the conditions."""
    if group.description:
        return group.description
    if group.rule is None:
        return "所有报名选手"
    parts = ["且".join(_condition_text(c) for c in group.rule.all)] if group.rule.all else []
    if group.rule.any:
        parts.append("或".join(_condition_text(c) for c in group.rule.any))
    return "，且".join(p for p in parts if p)


def no_group_reason(campaign: Campaign) -> str:
    rules = "；".join(f"{g.name}：{group_rule_text(g)}" for g in campaign.groups)
    return f"很抱歉，你的粉丝量和销售额不符合任何参赛组的条件（{rules}）。"


def age_refusal(eligibility: Eligibility, age: int) -> str | None:
    if age < eligibility.min_age:
        return f"很抱歉，本赛事要求年满{eligibility.min_age}周岁（你填写的年龄是{age}岁），暂时无法报名。"
    if eligibility.max_age is not None and age > eligibility.max_age:
        return f"很抱歉，本赛事要求年龄不超过{eligibility.max_age}周岁，暂时无法报名。"
    return None


def fans_refusal(eligibility: Eligibility, fans: int) -> str | None:
    if eligibility.min_fans is not None and fans < eligibility.min_fans:
        return f"很抱歉，本赛事要求粉丝量在{eligibility.min_fans}以上（你填写的是{fans}），暂时无法报名。"
    return None


def registration_refusal(campaign: Campaign, now: datetime) -> str | None:
    """Why sign-up is closed now, naming the registration window; None while it is open."""
    phases = campaign.phases_of("registration")
    if not phases:
        return f"「{campaign.title}」不开放线上报名。"
    if any(p.contains(now) for p in phases):
        return None
    upcoming = [p for p in phases if p.start > now]
    if upcoming:
        first = min(upcoming, key=lambda p: p.start)
        return f"「{campaign.title}」报名将于{fmt_when(first.start)}开始，届时再来报名吧。"
    last = max(phases, key=lambda p: p.end)
    return f"很抱歉，「{campaign.title}」报名已于{fmt_when(last.end)}截止，无法再报名。"
