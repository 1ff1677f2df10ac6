"""Stream report (战报): the figures of a filed stream after it started. Self-reported figures
stay unverified until an organizer confirms them or an import supersedes them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlmodel import col, select

from bot.clock import SHANGHAI
from bot.engine import Context, Flow, Invalid, Step
from bot.flows.signup import NOT_REGISTERED, registered_campaigns, registration_of
from bot.messages import Reply
from bot.rules.filing import report_minutes_refusal
from bot.rules.formatting import fmt_amount, fmt_minutes, fmt_when
from bot.rules.parsing import parse_amount, parse_count, parse_duration_minutes
from storage.models import Filing, StreamReport

SKIP = "跳过"
MAX_CHOICES = 10


def _reportable(ctx: Context) -> list[Filing]:
    """Filed streams that have started and have no self-report yet, latest first."""
    reg = registration_of(ctx, ctx.require_campaign)
    if reg is None:
        return []
    reported = select(StreamReport.filing_id).where(
        StreamReport.registration_id == reg.id, StreamReport.source == "self"
    )
    rows = ctx.session.exec(
        select(Filing)
        .where(
            Filing.registration_id == reg.id,
            col(Filing.status).in_(("approved", "pending")),
            Filing.start_at <= ctx.now,
            col(Filing.id).not_in(reported),
        )
        .order_by(col(Filing.start_at).desc())
        .limit(MAX_CHOICES)
    ).all()
    return list(rows)


def _label(filing: Filing) -> str:
    return f"#{filing.id} {fmt_when(filing.start_at)} {filing.platform}（{fmt_minutes(filing.minutes)}）"


def _filing(ctx: Context) -> Filing:
    chosen = ctx.data["filing"] if "filing" in ctx.data else ctx.data["_filing_id"]
    filing = ctx.session.get(Filing, int(chosen))
    assert filing is not None
    return filing


def _choose_filing(text: str, ctx: Context) -> int:
    for filing in _reportable(ctx):
        if _label(filing) == text:
            return int(filing.id or 0)
    raise Invalid("请回复场次编号。")


def _money(label: str, example: str) -> Any:
    def parse(text: str, _ctx: Context) -> str:
        amount = parse_amount(text)
        if amount is None:
            raise Invalid(f"请回复{label}（元），例如：{example}；没有请回复 0。")
        return str(amount)

    return parse


def _check_refunds(amount: str, ctx: Context) -> str | None:
    gmv = Decimal(ctx.data["gmv"])
    return f"退款金额不能超过成交金额（{fmt_amount(gmv)}元）。" if Decimal(amount) > gmv else None


def _count(label: str, example: str) -> Any:
    def parse(text: str, _ctx: Context) -> int:
        count = parse_count(text)
        if count is None:
            raise Invalid(f"请回复{label}，例如：{example}；没有请回复 0。")
        return count

    return parse


def _check_peak(peak: int, ctx: Context) -> str | None:
    viewers = ctx.data["viewers"]
    return f"最高在线人数不能超过累计观看人数（{viewers}）。" if peak > viewers else None


def _minutes(text: str, ctx: Context) -> int:
    minutes = parse_duration_minutes(text)
    if minutes is None:
        raise Invalid("请回复实际直播时长，例如：2小时、125分钟。")
    return minutes


def _screenshot(text: str, _ctx: Context) -> str:
    if text != SKIP:
        raise Invalid("请发送后台数据截图（图片），或回复「跳过」。")
    return ""


STEPS = (
    Step(
        "filing",
        "场次",
        "上报哪一场的数据？",
        _choose_filing,
        choices=lambda ctx: [_label(f) for f in _reportable(ctx)],
        when=lambda ctx: "_filing_id" not in ctx.data,
        show=lambda v, ctx: _label(_filing(ctx)),
    ),
    Step(
        "gmv",
        "成交金额",
        lambda ctx: (
            f"上报 {_label(_filing(ctx))} 的数据。\n这场的成交金额是多少元？例如：12000、1.2万。"
        ),
        _money("成交金额", "12000"),
        show=lambda v, _c: f"{fmt_amount(Decimal(v))}元",
    ),
    Step(
        "refunds",
        "退款金额",
        "其中退款（退货）金额是多少元？没有请回复 0。",
        _money("退款金额", "300"),
        show=lambda v, _c: f"{fmt_amount(Decimal(v))}元",
        check=_check_refunds,
    ),
    Step(
        "orders",
        "成交订单",
        "成交订单数是多少？",
        _count("成交订单数", "85"),
        check=lambda n, ctx: (
            "有成交金额时订单数不会是0，请核对后台的成交订单数。"
            if n == 0 and Decimal(ctx.data["gmv"]) > 0
            else None
        ),
    ),
    Step(
        "viewers",
        "累计观看",
        "累计观看人数是多少？例如：3500、1.2万。",
        _count("累计观看人数", "3500"),
    ),
    Step(
        "peak_viewers",
        "最高在线",
        "最高同时在线人数是多少？",
        _count("最高在线人数", "320"),
        check=_check_peak,
    ),
    Step("likes", "获赞", "这场获得多少点赞？", _count("点赞数", "2.3万")),
    Step(
        "minutes",
        "实际时长",
        "实际直播了多长时间？例如：2小时、125分钟。",
        _minutes,
        show=lambda v, _c: fmt_minutes(v),
        check=lambda v, ctx: report_minutes_refusal(_filing(ctx).minutes, v),
    ),
    Step(
        "screenshot",
        "数据截图",
        "请发送直播后台的数据截图（可选），没有请回复「跳过」。",
        _screenshot,
        accepts_image=True,
        show=lambda v, _c: "已上传" if v else "未上传",
    ),
)


def _begin(ctx: Context) -> list[Reply] | None:
    campaign = ctx.require_campaign
    reg = registration_of(ctx, campaign)
    if reg is None:
        return [Reply(f"你还没有报名「{campaign.title}」，回复「报名」先报名。")]
    filings = _reportable(ctx)
    if not filings:
        return [
            Reply("没有可以上报的直播：需要先「报备」，直播开始后再上报战报。每场只需上报一次。")
        ]
    if len(filings) == 1:
        ctx.data = {**ctx.data, "_filing_id": filings[0].id}
    return None


def _finish(ctx: Context) -> list[Reply]:
    campaign = ctx.require_campaign
    filing = _filing(ctx)
    d = ctx.data
    day = filing.start_at.astimezone(SHANGHAI).date()
    imported = ctx.session.exec(
        select(StreamReport.id).where(
            StreamReport.registration_id == filing.registration_id,
            StreamReport.source == "import",
            StreamReport.stream_date == day,
            col(StreamReport.status) != "rejected",
        )
    ).first()
    report = StreamReport(
        campaign_id=campaign.id,
        registration_id=filing.registration_id,
        filing_id=filing.id,
        stream_date=day,
        gmv=Decimal(d["gmv"]),
        refunds=Decimal(d["refunds"]),
        orders=d["orders"],
        viewers=d["viewers"],
        peak_viewers=d["peak_viewers"],
        likes=d["likes"],
        minutes=d["minutes"],
        screenshot=d.get("screenshot") or None,
        source="self",
        status="superseded" if imported else "unverified",
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    ctx.session.add(report)
    net = Decimal(d["gmv"]) - Decimal(d["refunds"])
    lines = [
        f"战报已提交：净成交{fmt_amount(net)}元（成交{fmt_amount(Decimal(d['gmv']))}元，退款{fmt_amount(Decimal(d['refunds']))}元），{d['orders']}单，累计观看{d['viewers']}人。"
    ]
    if imported:
        lines.append("组委会已导入这一天的平台数据，成绩以平台数据为准。")
    elif campaign.scoring.count_unverified:
        lines.append("状态：待核实。排名先按你上报的数据计算，组委会核实后为正式成绩。")
    else:
        lines.append("状态：待核实。组委会核实后计入排名。")
    lines.append("回复「排名」查看当前排名。")
    return [Reply("\n".join(lines))]


FLOW = Flow(
    key="report",
    title="战报",
    version=1,
    steps=STEPS,
    finish=_finish,
    candidates=registered_campaigns,
    no_campaign=NOT_REGISTERED,
    begin=_begin,
)
