"""Excel exports (openpyxl) and the signed, expiring links that serve them.

`export_xlsx(session, campaign, what, now)` builds one sheet: the registration roster with the
columns of the seeds' registration forms (江西 附件2 达人报名登记表) plus ours, filings, reports,
videos, the leaderboard, the prize list, unit and team rankings. Headers are bold and frozen,
columns sized to their content, numbers stored as numbers (phone numbers as text), times as
Asia/Shanghai. Links are `/exports/<campaign>/<what>.xlsx?expires=<unix>&sig=<hmac>`: HMAC-SHA256
with the install's secret over campaign, sheet and expiry, so a link cannot be widened or
extended; the file is built when the link is opened, so it is current.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import unicodedata
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from sqlmodel import Session, col, select

from bot.clock import SHANGHAI
from bot.review import BY_KEY
from bot.rules.prizes import Allocation, Contender, allocate, budget_line, tiers_total
from bot.rules.scoring import METRIC_UNITS, STREAMER_TIEBREAK, metric_label
from config.campaign import Campaign
from storage.leaderboard import (
    compute_leaderboard,
    report_statuses,
    team_ranking,
    unit_ranking,
)
from storage.models import Filing, Registration, StreamReport, Team, Video

LINK_TTL = timedelta(hours=24)
MIN_WIDTH, MAX_WIDTH = 8, 60
DATETIME_FORMAT = "yyyy-mm-dd hh:mm"
DATE_FORMAT = "yyyy-mm-dd"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class Table:
    title: str  # the sheet's name
    headers: list[str]
    rows: list[list[Any]]


Builder = Callable[[Session, Campaign, datetime], Table]


# Links ----------------------------------------------------------------------------------------
def _signature(secret: str, campaign_id: str, what: str, expires: int) -> str:
    message = f"{campaign_id}/{what}/{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def export_path(secret: str, campaign_id: str, what: str, now: datetime) -> tuple[str, datetime]:
    """(path with query, expiry) of a download link valid for LINK_TTL from `now`."""
    expires = now + LINK_TTL
    stamp = int(expires.timestamp())
    sig = _signature(secret, campaign_id, what, stamp)
    return f"/exports/{campaign_id}/{what}.xlsx?expires={stamp}&sig={sig}", expires


def link_valid(
    secret: str, campaign_id: str, what: str, expires: str, sig: str, now: datetime
) -> bool:
    if not expires.isdigit() or int(expires) < now.timestamp():
        return False
    expected = _signature(secret, campaign_id, what, int(expires))
    return hmac.compare_digest(
        sig.encode(), expected.encode()
    )  # bytes: any text is refused, not raised


# Workbooks ------------------------------------------------------------------------------------
def _local(when: datetime | None) -> datetime | None:
    """Excel has no time zones: Asia/Shanghai wall time, naive."""
    return when.astimezone(SHANGHAI).replace(tzinfo=None) if when else None


def _width(value: Any) -> int:
    text = value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else str(value)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def workbook_bytes(table: Table) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = table.title[:31]  # Excel's limit
    sheet.append(table.headers)
    for row in table.rows:
        sheet.append(row)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    if table.rows:
        sheet.auto_filter.ref = sheet.dimensions
    for index, header in enumerate(table.headers, 1):
        values = [header, *(r[index - 1] for r in table.rows if index - 1 < len(r))]
        width = max(_width(v) for v in values if v is not None)
        sheet.column_dimensions[get_column_letter(index)].width = min(
            max(width + 2, MIN_WIDTH), MAX_WIDTH
        )
    for column in sheet.iter_cols(min_row=2):
        for cell in column:
            if isinstance(cell.value, datetime):
                cell.number_format = DATETIME_FORMAT
            elif isinstance(cell.value, date):
                cell.number_format = DATE_FORMAT
            elif isinstance(cell.value, str) and cell.value.startswith("="):
                cell.data_type = "s"  # what people typed is text, never a formula
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def export_xlsx(session: Session, campaign: Campaign, what: str, now: datetime) -> bytes:
    return workbook_bytes(EXPORTS[what][1](session, campaign, now))


def export_filename(campaign: Campaign, what: str, now: datetime) -> str:
    return f"{campaign.id}-{EXPORTS[what][0]}-{now.astimezone(SHANGHAI):%Y%m%d-%H%M}.xlsx"


# Sheets ---------------------------------------------------------------------------------------
def _regs(session: Session, campaign: Campaign) -> list[Registration]:
    return list(
        session.exec(
            select(Registration)
            .where(Registration.campaign_id == campaign.id)
            .order_by(col(Registration.id))
        )
    )


def _teams(session: Session, campaign: Campaign) -> dict[int, str]:
    rows = session.exec(select(Team.id, Team.name).where(Team.campaign_id == campaign.id)).all()
    return {int(i or 0): n for i, n in rows}


def _unit_name(campaign: Campaign, key: str | None) -> str:
    unit = campaign.unit(key)
    return unit.name if unit else ""


def _group_name(campaign: Campaign, key: str) -> str:
    group = campaign.group(key)
    return group.name if group else key


def _status(kind: str, status: str) -> str:
    return BY_KEY[kind].status_words.get(status, status)


def _ratio(part: Decimal | float, whole: Decimal | float) -> float | None:
    return round(float(part) / float(whole), 4) if whole else None


def registrations_sheet(session: Session, campaign: Campaign, now: datetime) -> Table:
    """The roster. 附件2's history columns are filled from the contest's own reports (what the
    bot knows); 直播音浪总收入, dou+消耗 and 主要直播品类 are not collected and stay empty."""
    reports = session.exec(
        select(StreamReport).where(
            StreamReport.campaign_id == campaign.id,
            col(StreamReport.status).in_(report_statuses(campaign)),
        )
    ).all()
    per: dict[int, list[StreamReport]] = defaultdict(list)
    for report in reports:
        per[report.registration_id].append(report)
    teams = _teams(session, campaign)
    headers = [
        "序号", "报名编号", "姓名", "达人账号名", "平台", "联系电话", "粉丝量", "获赞量",
        "直播音浪总收入", "月均直播有效天", "月均直播有效时长(小时)", "累积观看人数",
        "最高同时在线人数", "直播累计销量(单)", "直播累计销售额(元)", "平均客单价(元)",
        "dou+消耗", "转化率", "主要直播品类", "年龄", "身份", "近一年带货销售额(元)",
        "参赛组", "推荐单位", "团队", "状态", "取消资格原因", "报名时间",
    ]  # fmt: skip
    rows = []
    for number, reg in enumerate(_regs(session, campaign), 1):
        mine = per.get(int(reg.id or 0), [])
        gmv = sum((r.gmv for r in mine), Decimal(0))
        orders = sum(r.orders for r in mine)
        viewers = sum(r.viewers for r in mine)
        months = len({(r.stream_date.year, r.stream_date.month) for r in mine})
        days = len({r.stream_date for r in mine})
        hours = sum(r.minutes for r in mine) / 60
        rows.append(
            [
                number, reg.id, reg.name, reg.handle, reg.platform, reg.mobile, reg.fans,
                sum(r.likes for r in mine), None,
                round(days / months, 1) if months else 0, round(hours / months, 1) if months else 0,
                viewers, max((r.peak_viewers for r in mine), default=0), orders, gmv,
                (gmv / orders).quantize(Decimal("0.01")) if orders else None, None,
                _ratio(orders, viewers), None, reg.age, reg.identity, reg.past_sales,
                _group_name(campaign, reg.group_key), _unit_name(campaign, reg.unit_key),
                teams.get(reg.team_id or 0, ""), _status("registration", reg.status),
                reg.disqualified_reason, _local(reg.created_at),
            ]
        )  # fmt: skip
    return Table("报名表", headers, rows)


def _with_regs(session: Session, model: Any, campaign: Campaign) -> list[tuple[Any, Registration]]:
    return list(
        session.exec(
            select(model, Registration)
            .join(Registration, col(Registration.id) == model.registration_id)
            .where(model.campaign_id == campaign.id)
            .order_by(col(model.id))
        ).all()
    )


def filings_sheet(session: Session, campaign: Campaign, now: datetime) -> Table:
    phases = {p.key: p.name for p in campaign.phases}
    headers = [
        "报备编号", "报名编号", "姓名", "平台账号", "阶段", "开始时间", "结束时间", "时长(分钟)",
        "平台", "场地", "场地说明", "商品", "直播计划", "状态", "审核理由", "审核人", "审核时间",
        "提交时间",
    ]  # fmt: skip
    rows = [
        [
            f.id,
            reg.id,
            reg.name,
            reg.handle,
            phases.get(f.phase_key, f.phase_key),
            _local(f.start_at),
            _local(f.end_at),
            f.minutes,
            f.platform,
            f.venue,
            f.venue_reason,
            "、".join(f.products),
            f.plan,
            _status("filing", f.status),
            f.review_reason,
            f.reviewed_by,
            _local(f.reviewed_at),
            _local(f.created_at),
        ]
        for f, reg in _with_regs(session, Filing, campaign)
    ]
    return Table("报备", headers, rows)


def reports_sheet(session: Session, campaign: Campaign, now: datetime) -> Table:
    headers = [
        "战报编号", "报名编号", "姓名", "直播日期", "报备编号", "成交金额(元)", "退款金额(元)",
        "净成交额(元)", "成交订单数", "累计观看人数", "最高在线", "点赞数", "直播时长(分钟)",
        "来源", "状态", "截图",
    ]  # fmt: skip
    rows = [
        [
            r.id,
            reg.id,
            reg.name,
            r.stream_date,
            r.filing_id,
            r.gmv,
            r.refunds,
            r.gmv - r.refunds,
            r.orders,
            r.viewers,
            r.peak_viewers,
            r.likes,
            r.minutes,
            "平台导入" if r.source == "import" else "主播自报",
            _status("report", r.status),
            r.screenshot,
        ]
        for r, reg in _with_regs(session, StreamReport, campaign)
    ]
    return Table("战报", headers, rows)


def videos_sheet(session: Session, campaign: Campaign, now: datetime) -> Table:
    phases = {p.key: p.name for p in campaign.phases}
    headers = [
        "作品编号", "报名编号", "姓名", "阶段", "平台", "链接", "标题", "带活动话题", "状态",
        "播放量", "转发量", "点赞数", "审核理由", "提交时间",
    ]  # fmt: skip
    rows = [
        [
            v.id,
            reg.id,
            reg.name,
            phases.get(v.phase_key or "", v.phase_key),
            v.platform,
            v.url,
            v.title,
            "是" if v.hashtag_ok else "否",
            _status("video", v.status),
            v.views,
            v.shares,
            v.likes,
            v.review_reason,
            _local(v.created_at),
        ]
        for v, reg in _with_regs(session, Video, campaign)
    ]
    return Table("作品", headers, rows)


def leaderboard_sheet(session: Session, campaign: Campaign, now: datetime) -> Table:
    board = compute_leaderboard(session, campaign, now)
    metrics = campaign.scoring.metrics
    units = {m.key: METRIC_UNITS.get(m.key) for m in metrics}
    headers = [
        "参赛组", "排名", "报名编号", "姓名", "推荐单位", "团队", "综合得分",
        *(f"{metric_label(m.key, m.label)}({units[m.key]})" if units[m.key]
          else metric_label(m.key, m.label) for m in metrics),
        "扣分", "状态",
    ]  # fmt: skip
    teams = _teams(session, campaign)
    rows = [
        [
            group.name,
            e.rank,
            e.registration_id,
            e.name,
            _unit_name(campaign, e.unit_key),
            teams.get(e.team_id or 0, ""),
            e.score,
            *(e.metrics.get(m.key, 0) for m in metrics),
            e.deductions,
            "取消资格" if e.disqualified else "正常",
        ]
        for group in board.groups
        for e in group.entries
    ]
    return Table("榜单", headers, rows)


def teams_sheet(session: Session, campaign: Campaign, now: datetime) -> Table:
    members: dict[int, list[str]] = defaultdict(list)
    for reg in _regs(session, campaign):
        if reg.team_id is not None:
            members[reg.team_id].append(reg.name)
    headers = ["排名", "团队", "综合得分(成员得分之和)", "计入排名成员", "净成交额(元)", "成员"]
    rows = [
        [t.rank, t.name, t.score, t.members, t.net_gmv, "、".join(members.get(t.team_id, []))]
        for t in team_ranking(session, campaign, now)
    ]
    return Table("团队榜", headers, rows)


def unit_products(session: Session, campaign: Campaign) -> dict[str, int]:
    """Distinct products in the (not cancelled) filings of each unit's streamers."""
    rows = session.exec(
        select(Registration.unit_key, Filing.products)
        .join(Registration, col(Registration.id) == Filing.registration_id)
        .where(Filing.campaign_id == campaign.id, Filing.status != "cancelled")
    ).all()
    products: dict[str, set[str]] = defaultdict(set)
    for unit_key, names in rows:
        if unit_key:
            products[unit_key].update(names)
    return {k: len(v) for k, v in products.items()}


def units_sheet(session: Session, campaign: Campaign, now: datetime) -> Table:
    products = unit_products(session, campaign)
    headers = [
        "排名",
        "推荐单位",
        "综合得分",
        "参赛主播",
        "净成交额(元)",
        "进入获奖名次主播",
        "报备商品数",
    ]
    rows = [
        [u.rank, u.name, u.score, u.streamers, u.net_gmv, u.top_n, products.get(u.unit_key, 0)]
        for u in unit_ranking(session, campaign, now)
    ]
    return Table("单位榜", headers, rows)


# Prizes ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PrizeSection:
    category: str  # group | team | unit
    title: str  # the group's name, 团队, 推荐单位
    allocation: Allocation


@dataclass(frozen=True)
class PrizeList:
    sections: list[PrizeSection]
    total: Decimal
    budget_text: str
    not_allocated: list[str]  # configured prizes this list does not decide, said plainly


def campaign_prizes(session: Session, campaign: Campaign, now: datetime) -> PrizeList:
    """Each group's tiers over its leaderboard, then team and unit tiers over their rankings."""
    sections: list[PrizeSection] = []
    board = compute_leaderboard(session, campaign, now)
    for group in board.groups:
        tiers = campaign.prizes.groups.get(group.key)
        if not tiers:
            continue
        contenders = [
            Contender(
                e.registration_id,
                e.name,
                e.score,
                tuple(e.metrics.get(k, 0.0) for k in STREAMER_TIEBREAK),
                e.disqualified,
            )
            for e in group.entries
        ]
        sections.append(PrizeSection("group", group.name, allocate(tiers, contenders)))
    if campaign.prizes.teams:
        teams = team_ranking(session, campaign, now, board=board)
        contenders = [Contender(t.team_id, t.name, t.score, (t.net_gmv,)) for t in teams]
        sections.append(PrizeSection("team", "团队", allocate(campaign.prizes.teams, contenders)))
    if campaign.prizes.units:
        index = {u.key: i for i, u in enumerate(campaign.units)}
        units = unit_ranking(session, campaign, now, board=board)
        contenders = [
            Contender(index[u.unit_key], u.name, u.score, (u.net_gmv, float(u.streamers)))
            for u in units
        ]
        sections.append(
            PrizeSection("unit", "推荐单位", allocate(campaign.prizes.units, contenders))
        )
    total = sum((s.allocation.total for s in sections), Decimal(0))
    not_allocated = [
        f"阶段「{p.name}」的奖项（需按该阶段单独评选）" for p in campaign.phases if p.prizes
    ]
    if campaign.prizes.videos:
        not_allocated.append("短视频奖项（需按作品评选）")
    reserved = sum(
        (tiers_total(p.prizes) for p in campaign.phases), tiers_total(campaign.prizes.videos)
    )
    budget = budget_line(total, campaign.prizes.budget, reserved)
    return PrizeList(sections, total, budget, not_allocated)


def prize_lines(prizes: PrizeList) -> list[str]:
    """The prize list as text (command line, chat)."""
    lines = []
    for section in prizes.sections:
        lines.append(f"【{section.title}】")
        for award in section.allocation.awards:
            amount = f" {award.tier.amount}元" if award.tier.amount else ""
            tie = "（同分，按规则排序）" if award.by_tiebreak else ""
            lines.append(f"  {award.tier.name}{amount}：{award.contender.name}{tie}")
        lines += [f"  {tier}空缺{n}名" for tier, n in section.allocation.unfilled]
    lines.append(prizes.budget_text)
    lines += [f"未分配：{item}" for item in prizes.not_allocated]
    return lines


def prizes_sheet(session: Session, campaign: Campaign, now: datetime) -> Table:
    prizes = campaign_prizes(session, campaign, now)
    headers = ["类别", "奖项", "名次", "获奖者", "报名编号", "得分", "奖金(元)", "其他奖励", "备注"]
    rows: list[list[Any]] = []
    for section in prizes.sections:
        for a in section.allocation.awards:
            rows.append(
                [
                    section.title, a.tier.name, a.place, a.contender.name,
                    a.contender.id if section.category == "group" else None, a.contender.score,
                    a.tier.amount, a.tier.extras, "同分，按规则排序" if a.by_tiebreak else "",
                ]
            )  # fmt: skip
        rows += [
            [section.title, tier, None, f"空缺{n}名", None, None, None, None, ""]
            for tier, n in section.allocation.unfilled
        ]
    rows.append(["合计", None, None, None, None, None, prizes.total, None, prizes.budget_text])
    return Table("奖项", headers, rows)


EXPORTS: dict[str, tuple[str, Builder]] = {
    "registrations": ("报名表", registrations_sheet),
    "filings": ("报备", filings_sheet),
    "reports": ("战报", reports_sheet),
    "videos": ("作品", videos_sheet),
    "leaderboard": ("榜单", leaderboard_sheet),
    "prizes": ("奖项", prizes_sheet),
    "units": ("单位榜", units_sheet),
    "teams": ("团队榜", teams_sheet),
}
# What organizers type after 导出.
EXPORT_WORDS: dict[str, str] = {
    "报名": "registrations", "报名表": "registrations", "名单": "registrations",
    "报备": "filings", "战报": "reports", "数据": "reports", "作品": "videos",
    "榜单": "leaderboard", "排名": "leaderboard", "奖项": "prizes", "获奖": "prizes",
    "评奖": "prizes", "单位": "units", "单位榜": "units", "团队": "teams", "团队榜": "teams",
}  # fmt: skip
