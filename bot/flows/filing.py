"""Stream filing (报备): when, how long, where, which products, the plan. The campaign's rules
decide, and each refusal names its rule. `我的报备` lists filings; `取消报备 N` cancels one."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, select

from bot.engine import Context, Flow, Invalid, Step
from bot.flows.signup import NOT_REGISTERED, registered_campaigns, registration_of
from bot.messages import Reply
from bot.rules.filing import (
    duration_refusal,
    minutes_range,
    overlap_refusal,
    phases_for_start,
    products_refusal,
    start_refusal,
)
from bot.rules.formatting import fmt_minutes, fmt_when
from bot.rules.parsing import Ambiguous, parse_datetime, parse_duration_minutes
from bot.rules.platforms import PLATFORMS, canonical_platform
from config.campaign import Campaign, Phase
from storage.models import Filing, Registration

OTHER_VENUE = "其他场地（需说明原因，经审核）"
STATUS_WORDS = {
    "pending": "待审核",
    "approved": "已通过",
    "rejected": "已驳回",
    "cancelled": "已取消",
}
ACTIVE = ("pending", "approved")


def _registration(ctx: Context) -> Registration:
    reg = registration_of(ctx, ctx.require_campaign)
    assert reg is not None  # begin() refused otherwise
    return reg


def _start_at(ctx: Context) -> datetime:
    return datetime.fromisoformat(ctx.data["start"])


def _phase(ctx: Context) -> Phase:
    phases = phases_for_start(ctx.require_campaign, _start_at(ctx))
    chosen = ctx.data.get("phase")
    return next((p for p in phases if p.name == chosen), phases[0])


def _own_streams(ctx: Context) -> list[tuple[datetime, datetime]]:
    rows = ctx.session.exec(
        select(Filing.start_at, Filing.end_at).where(
            Filing.registration_id == _registration(ctx).id, col(Filing.status).in_(ACTIVE)
        )
    ).all()
    return [(start, end) for start, end in rows]


# Parsers ------------------------------------------------------------------------------------
def _start(text: str, ctx: Context) -> str:
    options = ctx.data.get("_start_options")
    if options and text in ("1", "2"):
        start = datetime.fromisoformat(options[int(text) - 1])
    else:
        parsed = parse_datetime(text, ctx.now)
        if parsed is None:
            raise Invalid("没看懂这个时间。请这样回复：明天 20:00、11-25 19:30、周六晚上8点。")
        if isinstance(parsed, Ambiguous):
            ctx.data = {**ctx.data, "_start_options": [o.isoformat() for o in parsed.options]}
            numbered = "".join(f"\n{i}. {fmt_when(o)}" for i, o in enumerate(parsed.options, 1))
            hint = f"{parsed.question}{numbered}" + ("\n也可以直接回复编号。" if numbered else "")
            raise Invalid(hint, miss=False)
        start = parsed
    ctx.data = {k: v for k, v in ctx.data.items() if k != "_start_options"}
    return start.isoformat()


def _check_start(value: str, ctx: Context) -> str | None:
    # Checked again at 确认: the notice shrinks while the user fills in the rest. A start inside
    # one's own stream is refused here, before any duration could be asked in vain.
    start = datetime.fromisoformat(value)
    return start_refusal(ctx.require_campaign, ctx.now, start) or overlap_refusal(
        start, start + timedelta(minutes=1), _own_streams(ctx)
    )


def _phase_choices(ctx: Context) -> list[str]:
    return [p.name for p in phases_for_start(ctx.require_campaign, _start_at(ctx))]


def _minutes(text: str, ctx: Context) -> int:
    minutes = parse_duration_minutes(text)
    if minutes is None:
        raise Invalid("请回复直播时长，例如：2小时、90分钟、1.5h。")
    if text.strip().isdigit() and minutes <= 12:
        raise Invalid(
            f"是{minutes}小时吗？请带上单位回复，如：{minutes}小时 或 90分钟。", miss=False
        )
    return minutes


def _check_minutes(minutes: int, ctx: Context) -> str | None:
    # Depends on the start and the activity too: 修改 of either re-runs it.
    return duration_refusal(
        ctx.require_campaign, _phase(ctx), _start_at(ctx), minutes, _own_streams(ctx)
    )


def _platform_choices(ctx: Context) -> list[str]:
    mine = _registration(ctx).platform
    allowed = ctx.require_campaign.eligibility.platforms or list(PLATFORMS)
    return [mine, *(p for p in allowed if p != mine)]


def _platform(text: str, ctx: Context) -> str:
    platform = canonical_platform(text)
    if platform is None or platform not in _platform_choices(ctx):
        raise Invalid(f"请选择平台：{'、'.join(_platform_choices(ctx))}。")
    return platform


def _venue_choices(ctx: Context) -> list[str]:
    filing = ctx.require_campaign.filing
    assert filing.official_venue is not None
    return (
        [filing.official_venue, OTHER_VENUE]
        if filing.allow_other_venue
        else [filing.official_venue]
    )


def _free_text(limit: int, hint: str, minimum: int = 2) -> Any:
    def parse(text: str, _ctx: Context) -> str:
        if len(text) > limit:
            raise Invalid(f"最多{limit}个字，请精简一下。")
        if len(text) < minimum:
            raise Invalid(hint)
        return text

    return parse


def _products(text: str, ctx: Context) -> list[str]:
    catalogue = [p.name for p in ctx.require_campaign.products]
    if catalogue:
        numbers = re.findall(r"\d+", text)
        if not numbers or any(not 1 <= int(n) <= len(catalogue) for n in numbers):
            raise Invalid(f"请回复产品编号（1-{len(catalogue)}），多个用空格或逗号隔开，如：1 3。")
        chosen = list(dict.fromkeys(catalogue[int(n) - 1] for n in numbers))
    else:
        chosen = [p.strip() for p in re.split(r"[，,、;；\n]+", text) if p.strip()]
    return chosen


# Prompts ------------------------------------------------------------------------------------
def _start_prompt(ctx: Context) -> str:
    notice = ctx.require_campaign.filing.min_notice_hours
    rule = f"（需至少提前{notice:g}小时）" if notice else ""
    return f"报备一场直播{rule}。什么时候开播？\n例如：明天 20:00、11-25 19:30、周六晚上8点。"


def _minutes_prompt(ctx: Context) -> str:
    low, high = minutes_range(ctx.require_campaign, _phase(ctx))
    rule = ""
    if low and high:
        rule = f"（{fmt_minutes(low)}至{fmt_minutes(high)}）"
    elif low:
        rule = f"（不少于{fmt_minutes(low)}）"
    return f"计划直播多长时间{rule}？例如：2小时、90分钟。"


def _products_prompt(ctx: Context) -> str:
    catalogue = ctx.require_campaign.products
    need = ctx.require_campaign.filing.min_products
    rule = f"至少{need}款，" if need else ""
    if not catalogue:
        return f"这场带哪些产品？（{rule}多个用逗号隔开）"
    listing = "\n".join(f"{i}. {p.name}" for i, p in enumerate(catalogue, 1))
    return f"这场带哪些产品？回复编号（{rule}多个用空格隔开，如：1 3）：\n{listing}"


def _has_venue_choice(ctx: Context) -> bool:
    return ctx.require_campaign.filing.official_venue is not None


def _other_venue(ctx: Context) -> bool:
    return not _has_venue_choice(ctx) or ctx.data.get("venue") == OTHER_VENUE


STEPS = (
    Step(
        "start",
        "开播时间",
        _start_prompt,
        _start,
        show=lambda v, _c: fmt_when(datetime.fromisoformat(v)),
        check=_check_start,
    ),
    Step(
        "phase",
        "比赛活动",
        "这个时间有多项活动同时进行，这场直播参加哪一项？",
        choices=_phase_choices,
        when=lambda ctx: "start" in ctx.data and len(_phase_choices(ctx)) > 1,
    ),
    Step(
        "minutes",
        "时长",
        _minutes_prompt,
        _minutes,
        show=lambda v, _c: fmt_minutes(v),
        check=_check_minutes,
    ),
    Step("platform", "平台", "在哪个平台直播？", _platform, choices=_platform_choices),
    Step("venue", "直播地点", "在哪里直播？", choices=_venue_choices, when=_has_venue_choice),
    Step(
        "venue_place",
        "其他地点",
        "请写明直播地点，例如：金积镇某某果园。",
        _free_text(100, "请写明直播地点。"),
        when=_other_venue,
    ),
    Step(
        "venue_reason",
        "场地原因",
        "为什么在这里直播？例如：现场展示采摘。（需组委会审核）",
        _free_text(200, "请说明原因。"),
        when=lambda ctx: _has_venue_choice(ctx) and _other_venue(ctx),
    ),
    Step(
        "products",
        "带货产品",
        _products_prompt,
        _products,
        show=lambda v, _c: "、".join(v) if v else "（未填）",
        check=lambda v, ctx: products_refusal(ctx.require_campaign, v),
        when=lambda ctx: (
            bool(ctx.require_campaign.products) or ctx.require_campaign.filing.min_products > 0
        ),
    ),
    Step(
        "plan",
        "直播计划及推广策略",
        "请简单写写这场的直播计划和推广策略（10-500字）。",
        _free_text(500, "请至少写10个字的计划。", minimum=10),
        when=lambda ctx: ctx.require_campaign.filing.require_plan,
    ),
)


# Flow hooks ---------------------------------------------------------------------------------
def _begin(ctx: Context) -> list[Reply] | None:
    campaign = ctx.require_campaign
    reg = registration_of(ctx, campaign)
    if reg is None:
        return [Reply(f"你还没有报名「{campaign.title}」，回复「报名」先报名。")]
    if reg.disqualified_reason:
        return [
            Reply(
                f"你的参赛资格已被取消（{reg.disqualified_reason}），无法报备。如有疑问请联系组委会。"
            )
        ]
    if reg.status != "approved":
        return [Reply("你的报名还在审核中，审核通过后才能报备直播。")]
    if not any(p.end > ctx.now for p in campaign.phases_of("competition")):
        return [Reply(f"「{campaign.title}」的比赛阶段都已结束，不能再报备了。")]
    return None


def needs_approval(campaign: Campaign, data: dict[str, Any]) -> bool:
    """Campaigns that need no approval auto-approve, except a stream at another venue."""
    return (
        campaign.filing.approval
        or "venue_reason" in data
        or (campaign.filing.official_venue is not None and data.get("venue") == OTHER_VENUE)
    )


def _finish(ctx: Context) -> list[Reply]:
    campaign = ctx.require_campaign
    d = ctx.data
    start = _start_at(ctx)
    status = "pending" if needs_approval(campaign, d) else "approved"
    venue = d.get("venue_place") if _other_venue(ctx) else d.get("venue")
    filing = Filing(
        campaign_id=campaign.id,
        registration_id=_registration(ctx).id,
        phase_key=_phase(ctx).key,
        start_at=start,
        end_at=start + timedelta(minutes=d["minutes"]),
        minutes=d["minutes"],
        platform=d["platform"],
        venue=venue or "",
        venue_reason=d.get("venue_reason"),
        products=d.get("products", []),
        plan=d.get("plan"),
        status=status,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    ctx.session.add(filing)
    ctx.session.flush()
    state = "待组委会审核，审核结果会通知你" if status == "pending" else "已通过，可以按时开播"
    return [
        Reply(
            f"报备成功（编号{filing.id}）：{fmt_when(start)}，{fmt_minutes(filing.minutes)}，"
            f"{filing.platform}。\n状态：{state}。\n"
            "直播结束后回复「战报」上报数据；回复「我的报备」查看或取消。"
        )
    ]


FLOW = Flow(
    key="filing",
    title="报备",
    version=1,
    steps=STEPS,
    finish=_finish,
    candidates=registered_campaigns,
    no_campaign=NOT_REGISTERED,
    begin=_begin,
)


# Commands -----------------------------------------------------------------------------------
def _my_filings(ctx: Context) -> list[tuple[Filing, Campaign]]:
    rows = ctx.session.exec(
        select(Filing, Registration)
        .join(Registration, col(Registration.id) == Filing.registration_id)
        .where(
            Registration.channel == ctx.incoming.channel,
            Registration.user_id == ctx.incoming.user,
        )
        .order_by(col(Filing.start_at))
    ).all()
    return [(f, ctx.campaigns[f.campaign_id]) for f, _r in rows if f.campaign_id in ctx.campaigns]


def describe_filing(filing: Filing) -> str:
    status = STATUS_WORDS.get(filing.status, filing.status)
    line = f"#{filing.id} {fmt_when(filing.start_at)} {fmt_minutes(filing.minutes)} {filing.platform} · {status}"
    if filing.status == "rejected" and filing.review_reason:
        line += f"（{filing.review_reason}）"
    return line


def my_filings(ctx: Context) -> list[Reply]:
    filings = _my_filings(ctx)
    if not filings:
        return [Reply("你还没有报备过直播。回复「报备」报备一场。")]
    lines = [describe_filing(f) for f, _c in filings[-20:]]
    cancellable = any(f.status in ACTIVE and f.start_at > ctx.now for f, _c in filings)
    tail = "\n取消一场未开始的直播：回复「取消报备 编号」，如：取消报备 12。" if cancellable else ""
    return [Reply("我的报备：\n" + "\n".join(lines) + tail)]


def cancel_filing(ctx: Context, match: re.Match[str]) -> list[Reply]:
    number = int(match.group(1))
    found = next(((f, c) for f, c in _my_filings(ctx) if f.id == number), None)
    if found is None:
        return [Reply(f"没有找到你的报备 #{number}。回复「我的报备」查看编号。")]
    filing, _campaign = found
    if filing.status not in ACTIVE:
        return [Reply(f"报备 #{number} 当前是「{STATUS_WORDS[filing.status]}」，不能取消。")]
    if filing.start_at <= ctx.now:
        return [Reply(f"报备 #{number} 的直播已经开始，不能取消了。")]
    filing.status = "cancelled"
    filing.updated_at = ctx.now
    ctx.session.add(filing)
    return [Reply(f"已取消报备 #{number}（{fmt_when(filing.start_at)}）。")]


CANCEL_PATTERN = re.compile(r"取消报备\s*#?(\d{1,9})")
