"""Organizer commands in chat (组委会): 审核, 通过, 驳回, 撤销, 扣分, 取消资格, 恢复, 导出, 榜单,
团队榜, 单位榜. The decisions themselves live in bot/review.py (shared with card buttons); this
module parses what was typed, picks the campaign, and renders the answers. Anyone who is not an
organizer of a campaign gets 无权限 and nothing changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal

from bot.engine import Context
from bot.exporting import EXPORT_WORDS, EXPORTS, export_path, unit_products
from bot.messages import Reply
from bot.organizers import organizer_campaigns
from bot.review import (
    NO_PERMISSION,
    REF_PATTERN,
    campaign_anomalies,
    decide,
    deduct,
    disqualify,
    reinstate,
    revert,
    review_queue,
    split_refs,
)
from bot.rules.formatting import fmt_amount, fmt_when, mask_name
from config.campaign import Campaign
from config.settings import Settings
from storage.leaderboard import compute_leaderboard, team_ranking, unit_ranking
from storage.models import AuditLog

BOARD_TOP = 10
MAX_BOARD_TOP = 50
MENU = (
    ("审核", "查看待审核的报名、报备、作品和战报"),
    ("通过 编号", "通过，可一次多个，如「通过 报备12 报名3」"),
    ("驳回 编号 理由", "驳回并告知主播理由"),
    ("撤销 编号", "撤销最近一次审核或扣分"),
    ("扣分 主播 分数 理由", "主播可写报名编号、姓名或账号"),
    ("取消资格 主播 理由", "取消参赛资格；「恢复 主播」恢复"),
    ("榜单", "各组前10名（私聊显示全名，群里脱敏）"),
    ("团队榜 / 单位榜", "团队和推荐单位排名"),
    ("导出", "下载 Excel 表格"),
)
USAGE = {
    "通过": "请带上编号，例如「通过 报备12」，可一次多个：「通过 报备12 报名3」。回复「审核」查看编号。",
    "驳回": "请带上编号和理由，例如「驳回 报备12 场地不符合要求」。回复「审核」查看编号。",
    "撤销": "请带上编号，例如「撤销 报备12」或「撤销 扣分3」。",
    "扣分": "格式：扣分 主播 分数 理由，例如「扣分 报名3 5 直播中违规宣传」。",
    "取消资格": "格式：取消资格 主播 理由，例如「取消资格 报名3 经核实存在刷单」。",
    "恢复": "格式：恢复 主播，例如「恢复 报名3」。",
}
_WHO = r"(?P<who>\S+)"
_REASON = r"(?:\s+(?P<reason>.*))?"


def menu_lines(ctx: Context) -> str:
    """The organizer part of the menu, for organizers only."""
    if not organizer_campaigns(ctx.session, ctx.campaigns, ctx.incoming):
        return ""
    lines = "\n".join(f"「{word}」{what}" for word, what in MENU)
    return f"\n组委会：\n{lines}"


def _mine(ctx: Context) -> list[Campaign]:
    return organizer_campaigns(ctx.session, ctx.campaigns, ctx.incoming)


def _pick(ctx: Context, hint: str | None, command: str) -> Campaign | Reply:
    """The one campaign a command is about: named (id or title), the only one, or the only
    live one; otherwise a question naming the choices."""
    mine = _mine(ctx)
    if not mine:
        return Reply(NO_PERMISSION)
    if hint:
        named = [c for c in mine if hint in (c.id, c.title, c.name)]
        if named:
            return named[0]
        return Reply(f"没有找到你负责的赛事「{hint}」。可选：{'、'.join(c.id for c in mine)}。")
    live = [c for c in mine if c.is_live(ctx.now)] or mine
    if len(live) == 1:
        return live[0]
    options = "\n".join(f"「{command} {c.id}」{c.title}" for c in live)
    return Reply(f"你负责多个赛事，请指明是哪一个：\n{options}")


# 审核 ------------------------------------------------------------------------------------------
def queue(ctx: Context) -> list[Reply]:
    mine = _mine(ctx)
    if not mine:
        return [Reply(NO_PERMISSION)]
    blocks = []
    for campaign in mine:
        waiting = review_queue(ctx.session, campaign)
        lines = [f"【{campaign.title}】待审核 {waiting.total} 项"]
        for word, items, total in waiting.sections:
            lines.append(f"{word}（{total}）")
            lines += [f"· {item.ref} {item.line}" for item in items]
            if total > len(items):
                lines.append(f"· ……还有{total - len(items)}项，回复「导出」下载全部")
        anomalies = campaign_anomalies(ctx.session, campaign)
        if anomalies:
            lines.append("异常提示（请留意）：")
            lines += [f"· {a.text}" for a in anomalies[:10]]
        blocks.append("\n".join(lines))
    tail = (
        "回复「通过 编号」通过（可一次多个），「驳回 编号 理由」驳回，"
        "「撤销 编号」撤销；主播会收到通知。"
    )
    return [Reply("\n\n".join(blocks) + "\n" + tail)]


def approve(ctx: Context, match: re.Match[str]) -> list[Reply]:
    outcomes = [
        decide(ctx.session, ctx.campaigns, ctx.incoming, r, True, None, ctx.now)
        for r in split_refs(match["refs"])
    ]
    return [Reply("\n".join(o.text for o in outcomes))]


def reject(ctx: Context, match: re.Match[str]) -> list[Reply]:
    outcome = decide(
        ctx.session, ctx.campaigns, ctx.incoming, match["ref"], False, match["reason"], ctx.now
    )
    return [Reply(outcome.text)]


def undo(ctx: Context, match: re.Match[str]) -> list[Reply]:
    return [Reply(revert(ctx.session, ctx.campaigns, ctx.incoming, match["ref"], ctx.now).text)]


def usage(ctx: Context, match: re.Match[str]) -> list[Reply]:
    """An organizer command typed without what it needs: how to type it."""
    return [Reply(USAGE[match["word"]] if _mine(ctx) else NO_PERMISSION)]


# Deductions and disqualification --------------------------------------------------------------
def penalise(ctx: Context, match: re.Match[str]) -> list[Reply]:
    points = Decimal(match["points"])
    outcome = deduct(
        ctx.session, ctx.campaigns, ctx.incoming, match["who"], points, match["reason"], ctx.now
    )
    return [Reply(outcome.text)]


def disqualify_streamer(ctx: Context, match: re.Match[str]) -> list[Reply]:
    outcome = disqualify(
        ctx.session, ctx.campaigns, ctx.incoming, match["who"], match["reason"], ctx.now
    )
    return [Reply(outcome.text)]


def reinstate_streamer(ctx: Context, match: re.Match[str]) -> list[Reply]:
    return [Reply(reinstate(ctx.session, ctx.campaigns, ctx.incoming, match["who"], ctx.now).text)]


# Rankings --------------------------------------------------------------------------------------
def _board_args(args: str | None) -> tuple[int, str | None]:
    top, hint = BOARD_TOP, None
    for token in (args or "").split():
        if token.isdigit():
            top = min(max(int(token), 1), MAX_BOARD_TOP)
        else:
            hint = token
    return top, hint


def board(ctx: Context, match: re.Match[str] | None = None) -> list[Reply]:
    """The organizer's leaderboard: top N per group with names and registration ids."""
    top, hint = _board_args(match["args"] if match else None)
    campaign = _pick(ctx, hint, "榜单")
    if isinstance(campaign, Reply):
        return [campaign]
    result = compute_leaderboard(ctx.session, campaign, ctx.now)
    # A group chat has more readers than its organizers: names masked there, as in digests.
    name = mask_name if ctx.incoming.chat_id else str
    blocks = [f"【{campaign.title}】榜单（{fmt_when(ctx.now)}）"]
    for group in result.groups:
        ranked = [e for e in group.entries if e.rank is not None]
        out = [e for e in group.entries if e.rank is None]
        lines = [f"{group.name}（{len(ranked)}人）"]
        lines += [
            f"{e.rank}. {name(e.name)}（报名{e.registration_id}）{e.score:.2f}分 "
            f"净成交{fmt_amount(e.metrics.get('net_gmv', 0))}元"
            + (f" 扣{fmt_amount(e.deductions)}分" if e.deductions else "")
            for e in ranked[:top]
        ]
        if not ranked:
            lines.append("暂无")
        if out:
            lines.append(
                "取消资格：" + "、".join(f"{name(e.name)}（报名{e.registration_id}）" for e in out)
            )
        blocks.append("\n".join(lines))
    return [
        Reply(
            "\n\n".join(blocks)
            + f"\n回复「榜单 {MAX_BOARD_TOP}」看更多名次，「导出 榜单」下载全部。"
        )
    ]


def teams(ctx: Context, match: re.Match[str] | None = None) -> list[Reply]:
    campaign = _pick(ctx, _board_args(match["args"] if match else None)[1], "团队榜")
    if isinstance(campaign, Reply):
        return [campaign]
    standings = team_ranking(ctx.session, campaign, ctx.now)
    if not standings:
        return [Reply(f"【{campaign.title}】还没有团队。")]
    lines = [
        f"{t.rank}. {t.name} {t.score:.2f}分（{t.members}人计入，净成交{fmt_amount(t.net_gmv)}元）"
        for t in standings[:MAX_BOARD_TOP]
    ]
    head = f"【{campaign.title}】优秀直播带货团队排名（团队得分为成员得分之和）"
    return [Reply(head + "\n" + "\n".join(lines))]


def units(ctx: Context, match: re.Match[str] | None = None) -> list[Reply]:
    campaign = _pick(ctx, _board_args(match["args"] if match else None)[1], "单位榜")
    if isinstance(campaign, Reply):
        return [campaign]
    standings = unit_ranking(ctx.session, campaign, ctx.now)
    if not standings:
        return [Reply(f"【{campaign.title}】没有设置推荐单位。")]
    products = unit_products(ctx.session, campaign)
    lines = [
        f"{u.rank}. {u.name} {u.score:.2f}分（主播{u.streamers}人，净成交{fmt_amount(u.net_gmv)}元，"
        f"获奖名次内{u.top_n}人，报备商品{products.get(u.unit_key, 0)}款）"
        for u in standings[:MAX_BOARD_TOP]
    ]
    return [Reply(f"【{campaign.title}】优秀组织奖（推荐单位）排名\n" + "\n".join(lines))]


# 导出 ------------------------------------------------------------------------------------------
def export(ctx: Context, match: re.Match[str] | None = None) -> list[Reply]:
    if not _mine(ctx):
        return [Reply(NO_PERMISSION)]
    titles = "、".join(title for title, _build in EXPORTS.values())
    word, campaign_id = (match["what"], match["campaign"]) if match else ("", None)
    if campaign_id is None and word in ctx.campaigns:
        word, campaign_id = "", word  # 导出 <campaign>: its roster
    what = EXPORT_WORDS.get(word) if word else "registrations"
    if what is None:
        return [Reply(f"可以导出：{titles}。例如「导出 报备」。")]
    title = EXPORTS[what][0]
    campaign = _pick(ctx, campaign_id, f"导出 {title}")
    if isinstance(campaign, Reply):
        return [campaign]
    settings: Settings = ctx.services.settings
    path, expires = export_path(settings.secret_key, campaign.id, what, ctx.now)
    ctx.session.add(
        AuditLog(
            campaign_id=campaign.id,
            actor=f"{ctx.incoming.channel}:{ctx.incoming.user}",
            action="export",
            target_type=what,
            created_at=ctx.now,
        )
    )
    lines = [
        f"【{campaign.title}】{title}（Excel）下载链接，{fmt_when(expires)}前有效，请勿转发：",
        settings.public_base_url.rstrip("/") + path,
    ]
    if not word:
        lines.append(f"可以导出：{titles}，例如「导出 报备」。")
    return [Reply("\n".join(lines))]


_REFS = rf"(?P<refs>{REF_PATTERN}(?:[\s,，、]+{REF_PATTERN})*)"
PATTERNS: list[tuple[re.Pattern[str], Callable[[Context, re.Match[str]], list[Reply]]]] = [
    (re.compile(rf"通过\s*{_REFS}"), approve),
    (re.compile(rf"驳回\s*(?P<ref>{REF_PATTERN})(?:(?:\s+|(?=\D))(?P<reason>.*))?", re.S), reject),
    (re.compile(rf"撤销\s*(?P<ref>{REF_PATTERN})"), undo),
    (
        re.compile(rf"扣分\s*{_WHO}\s+(?P<points>\d{{1,3}}(?:\.\d{{1,2}})?)\s*分?{_REASON}", re.S),
        penalise,
    ),
    (re.compile(rf"取消资格\s*{_WHO}{_REASON}", re.S), disqualify_streamer),
    (re.compile(rf"恢复\s*{_WHO}"), reinstate_streamer),
    (re.compile(r"导出\s*(?P<what>\S+)(?:\s+(?P<campaign>\S+))?"), export),
    (re.compile(r"榜单\s+(?P<args>.+)"), board),
    (re.compile(r"团队榜\s+(?P<args>.+)"), teams),
    (re.compile(r"单位榜\s+(?P<args>.+)"), units),
    (re.compile(rf"(?P<word>{'|'.join(USAGE)})(?:\s.*)?", re.S), usage),
]
COMMANDS: dict[str, Callable[[Context], list[Reply]]] = {
    "审核": queue,
    "榜单": board,
    "团队榜": teams,
    "单位榜": units,
    "导出": export,
}
