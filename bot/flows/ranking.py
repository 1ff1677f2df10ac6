"""排名 (a one-shot command): for each live campaign the user signed up for, the group, 第k名/共N名,
the composite score and what each metric contributed, the gap to the place above, days and hours
streamed, and the group's top 3 with masked names."""

from __future__ import annotations

from sqlmodel import select

from bot.engine import Context
from bot.messages import Reply
from bot.rules.scoring import fmt_metric, metric_label
from config.campaign import Campaign
from storage.leaderboard import (
    Entry,
    GroupBoard,
    compute_leaderboard,
    scoring_phases,
    streamer_statuses,
)
from storage.models import Registration

TOP = 3
TIE_RULE = "同分时依次比较净成交额、直播天数、报名先后"


def show(ctx: Context) -> list[Reply]:
    regs = ctx.session.exec(
        select(Registration)
        .where(
            Registration.channel == ctx.incoming.channel,
            Registration.user_id == ctx.incoming.user,
        )
        .order_by(Registration.created_at, Registration.id)
    ).all()
    live = [
        (ctx.campaigns[r.campaign_id], r)
        for r in regs
        if r.campaign_id in ctx.campaigns and ctx.campaigns[r.campaign_id].is_live(ctx.now)
    ]
    if not live:
        return [Reply("你还没有报名正在进行的赛事，报名后才能查看排名。回复「报名」开始报名。")]
    return [Reply(_standing(ctx, campaign, reg)) for campaign, reg in live]


def _standing(ctx: Context, campaign: Campaign, reg: Registration) -> str:
    head = f"【排名】{campaign.title}"
    if reg.disqualified_reason is not None:
        return (
            f"{head}\n你的参赛资格已被取消（原因：{reg.disqualified_reason}），"
            "不参与排名和评奖。如有疑问请联系组委会。"
        )
    if reg.status not in streamer_statuses(campaign):
        if reg.status == "pending":
            return f"{head}\n你的报名正在审核，审核通过后才会计入排名。"
        return f"{head}\n你的报名未通过审核，不参与排名。如有疑问请联系组委会。"
    board = compute_leaderboard(ctx.session, campaign, ctx.now, group_key=reg.group_key)
    found = board.entry(reg.id)
    assert found is not None, "an approved registration is always on its group's board"
    group, entry = found
    lines = [f"{head} · {group.name}", *_position(group, entry), *_details(campaign, entry)]
    lines += _phase_line(ctx, campaign, reg)
    lines.append(_top(group, entry))
    lines.append("回复「战报」上报直播数据，「作品」提交短视频作品。")
    return "\n".join(lines)


def _ranked(group: GroupBoard) -> list[Entry]:
    return [e for e in group.entries if e.rank is not None]


def _position(group: GroupBoard, entry: Entry) -> list[str]:
    ranked = _ranked(group)
    assert entry.rank is not None
    lines = [f"第{entry.rank}名/共{len(ranked)}名　综合得分 {entry.score:.2f}（满分100）"]
    if entry.rank == 1:
        lines.append(
            "你目前排名第一，继续保持！" if entry.score > 0 else "大家都还没有成绩，抓紧开播吧！"
        )
        return lines
    above = ranked[entry.rank - 2]
    gap = above.score - entry.score
    if gap > 0:
        lines.append(f"距第{above.rank}名还差 {gap:.2f} 分。")
    else:
        lines.append(f"与第{above.rank}名同分（{TIE_RULE}）。")
    return lines


def _details(campaign: Campaign, entry: Entry) -> list[str]:
    lines = ["得分明细："]
    for m in campaign.scoring.metrics:
        value = fmt_metric(m.key, entry.metrics.get(m.key, 0.0))
        points = entry.breakdown.get(m.key, 0.0)
        lines.append(f"· {metric_label(m.key, m.label)}：{points:.2f}分（{value}）")
    if entry.deductions:
        lines.append(f"· 扣分：-{entry.deductions:g}分")
    metrics = entry.metrics
    keys = {m.key for m in campaign.scoring.metrics}
    if any(not k.startswith("video_") for k in keys):
        lines.append(
            f"直播：{metrics['stream_days']:g}天、{metrics['stream_count']:g}场，"
            f"共{fmt_metric('stream_hours', metrics['stream_hours'])}"
        )
    if any(k.startswith("video_") for k in keys):
        lines.append(f"作品：{metrics['video_count']:g}条")
    if not (metrics["stream_count"] or metrics["video_count"]):
        lines.append("还没有计入排名的数据：直播后回复「战报」上报数据，组委会确认后计入。")
    return lines


def _phase_line(ctx: Context, campaign: Campaign, reg: Registration) -> list[str]:
    """Where a campaign has several scoring phases (each its own awards), the running one too."""
    phases = scoring_phases(campaign)
    current = next((p for p in phases if p.contains(ctx.now)), None)
    if len(phases) < 2 or current is None:
        return []
    board = compute_leaderboard(
        ctx.session, campaign, ctx.now, phase_key=current.key, group_key=reg.group_key
    )
    found = board.entry(reg.id)
    if found is None or found[1].rank is None:
        return []
    group, entry = found
    return [
        f"本阶段「{current.name}」：第{entry.rank}名/共{len(_ranked(group))}名，"
        f"得分 {entry.score:.2f}"
    ]


def _top(group: GroupBoard, me: Entry) -> str:
    top = [
        f"{e.rank}. {e.display_name}{'（你）' if e.registration_id == me.registration_id else ''}"
        f" {e.score:.2f}分"
        for e in _ranked(group)[:TOP]
    ]
    return f"{group.name}前{TOP}名：\n" + "\n".join(top)
