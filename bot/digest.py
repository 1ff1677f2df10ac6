"""战况播报: the digest organizer groups get on each campaign's schedule.

What it shows: the top N of each group (masked names), today's totals (streams, GMV after
refunds, new sign-ups, videos), the biggest movers since the previous digest (its ranks are kept
in `DigestSnapshot`), what waits for review, dead letters, and anomalies worth a look
(bot/rules/anomalies.py through bot/review.py).

Rendered per channel: plain text (web/dev outbox, WeChat), WeCom markdown (the row's text), Feishu
card data (`payload.digest`, the shape bot/feishu_cards.py renders); Feishu and WeCom also get a
chart picture (`payload.image_path`, a PNG under data/charts/).

One digest per (campaign, period): the snapshot and every recipient's outbox row are written in
one transaction, and the rows' keys carry the period, so a re-run or a second instance adds
nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from bot import charts
from bot.clock import SHANGHAI
from bot.feishu_cards import DigestData
from bot.organizers import bound_groups
from bot.review import campaign_anomalies
from bot.rules.formatting import fmt_amount, fmt_when
from bot.rules.reminders import digest_due, last_fire
from bot.rules.scoring import METRIC_LABELS, METRIC_UNITS
from config.campaign import Campaign
from config.settings import ROOT
from storage.db import Database
from storage.leaderboard import Leaderboard, compute_leaderboard
from storage.models import (
    DigestSnapshot,
    Filing,
    Outbox,
    Registration,
    StreamReport,
    Video,
)
from storage.outbox import enqueue

CHARTS_DIR = ROOT / "data" / "charts"
CHART_CHANNELS = ("feishu", "wecom")  # the channels whose senders send pictures
MOVERS = 3
ANOMALY_LINES = 5
COUNTED_REPORTS = ("unverified", "confirmed")  # superseded and rejected ones never count


@dataclass(frozen=True)
class Line:
    rank: int
    name: str  # masked
    score: float
    detail: str  # the campaign's heaviest metric, e.g. 净成交额 1.2万元


@dataclass(frozen=True)
class Board:
    name: str
    lines: list[Line]


@dataclass(frozen=True)
class Totals:
    streams: int
    gmv: Decimal  # after refunds
    signups: int
    videos: int


@dataclass(frozen=True)
class Mover:
    name: str
    group: str
    before: int
    after: int


@dataclass(frozen=True)
class Pending:
    registrations: int
    filings: int
    videos: int
    reports: int


@dataclass(frozen=True)
class Digest:
    campaign_id: str
    title: str
    period: datetime
    boards: list[Board]
    totals: Totals
    movers: list[Mover]
    pending: Pending
    dead_letters: int
    anomalies: list[str]
    ranks: dict[str, int]  # registration id -> rank: the next digest's movers

    def sections(self) -> list[tuple[str, list[str]]]:
        t, p = self.totals, self.pending
        today = f"直播{t.streams}场 · 成交额{fmt_amount(t.gmv)}元 · 新报名{t.signups}人 · 作品{t.videos}条"
        moves = [
            f"{m.name}（{m.group}）第{m.before}→{m.after}名 "
            + (f"↑{m.before - m.after}" if m.after < m.before else f"↓{m.after - m.before}")
            for m in self.movers
        ]
        waiting = [
            f"{label}{n}"
            for label, n in (
                ("报名", p.registrations),
                ("报备", p.filings),
                ("作品", p.videos),
                ("战报", p.reports),
            )
            if n
        ]
        review = [f"{' · '.join(waiting)}（回复「审核」处理）"] if waiting else ["无"]
        notice = self.anomalies[:ANOMALY_LINES]
        if len(self.anomalies) > ANOMALY_LINES:
            notice.append(f"……共{len(self.anomalies)}项，回复「审核」查看")
        if self.dead_letters:
            notice.append(f"有{self.dead_letters}条消息多次发送失败，已停止重试（见日志）")
        return [
            ("今日", [today]),
            ("名次变化", moves or ["暂无变化"]),
            ("待审核", review),
            ("需要留意", notice or ["无"]),
        ]


# Rendering -------------------------------------------------------------------------------
def heading(digest: Digest) -> str:
    return f"战况播报 · {digest.title}"


def render_text(digest: Digest) -> str:
    """Plain text, short lines: the web/dev outbox and WeChat."""
    lines = [f"【{heading(digest)}】{fmt_when(digest.period)}"]
    for board in digest.boards:
        lines.append(f"\n{board.name} 前{len(board.lines)}名" if board.lines else f"\n{board.name}")
        lines += [f"{x.rank}. {x.name} {x.score:g}分 · {x.detail}" for x in board.lines]
        lines += [] if board.lines else ["暂无上榜选手"]
    sections = [f"{title}：" + "；".join(items) for title, items in digest.sections()]
    return "\n".join([*lines, "", *sections])


# WeCom markdown knows **bold**, [links](…), `code` and <font>: typed text (a masked 欧**锋, a
# name with brackets) gets full-width look-alikes instead. A lone * is no markup there.
_MARKDOWN_SAFE = str.maketrans("[]<>`", "［］＜＞｀")


def _md(text: str) -> str:
    return text.replace("**", "＊＊").translate(_MARKDOWN_SAFE)


def render_markdown(digest: Digest) -> str:
    """WeCom robot markdown; names and other typed text cannot add markup."""
    lines = [f"## {heading(digest)}", f"> {fmt_when(digest.period)}"]
    for board in digest.boards:
        lines.append(f"\n**{_md(board.name)}**")
        lines += [
            f'{x.rank}. {_md(x.name)} <font color="warning">{x.score:g}分</font> {x.detail}'
            for x in board.lines
        ] or ['<font color="comment">暂无上榜选手</font>']
    for title, items in digest.sections():
        lines.append(f"\n**{title}**\n" + "\n".join(_md(item) for item in items))
    return "\n".join(lines)


def card_data(digest: Digest) -> DigestData:
    """What bot/feishu_cards.digest_card turns into a Feishu card (the chart goes inside)."""
    return {
        "title": heading(digest),
        "as_of": digest.period.isoformat(),
        "groups": [
            {
                "name": board.name,
                "entries": [
                    {"rank": x.rank, "name": x.name, "score": x.score, "detail": x.detail}
                    for x in board.lines
                ],
            }
            for board in digest.boards
        ],
        "sections": [{"title": title, "lines": items} for title, items in digest.sections()],
    }


def text_for(channel: str, digest: Digest) -> str:
    return render_markdown(digest) if channel == "wecom" else render_text(digest)


def payload_for(channel: str, digest: Digest, chart: Path | None) -> dict[str, Any]:
    """Feishu: card data and the chart (bot/senders/feishu.py); WeCom: the chart picture."""
    picture = {"image_path": str(chart)} if chart else {}
    if channel == "feishu":
        return {"digest": card_data(digest), **picture}
    return picture if channel == "wecom" else {}


# Collecting ------------------------------------------------------------------------------
def _detail(campaign: Campaign, metrics: dict[str, float]) -> str:
    main = max(campaign.scoring.metrics, key=lambda m: m.weight)
    label = main.label or METRIC_LABELS.get(main.key, main.key)
    value = fmt_amount(Decimal(str(metrics.get(main.key, 0))))
    return f"{label} {value}{METRIC_UNITS.get(main.key, '')}"


def _boards(campaign: Campaign, board: Leaderboard, top_n: int) -> list[Board]:
    return [
        Board(
            group.name,
            [
                Line(e.rank, e.display_name, e.score, _detail(campaign, e.metrics))
                for e in group.entries
                if e.rank is not None and e.rank <= top_n
            ],
        )
        for group in board.groups
    ]


def _movers(board: Leaderboard, before: dict[str, int]) -> list[Mover]:
    moved = [
        Mover(e.display_name, group.name, before[str(e.registration_id)], e.rank)
        for group in board.groups
        for e in group.entries
        if e.rank is not None and before.get(str(e.registration_id), e.rank) != e.rank
    ]
    moved.sort(key=lambda m: (-abs(m.before - m.after), m.after))
    return moved[:MOVERS]


def _count(session: Session, model: Any, *conditions: Any) -> int:
    return int(session.exec(select(func.count()).select_from(model).where(*conditions)).one())


def _totals(session: Session, campaign: Campaign, period: datetime) -> Totals:
    day = period.astimezone(SHANGHAI).date()
    start = datetime.combine(day, time(0), tzinfo=SHANGHAI)
    end = start + timedelta(days=1)
    streams, gmv = session.exec(
        select(
            func.count(), func.coalesce(func.sum(StreamReport.gmv - StreamReport.refunds), 0)
        ).where(
            StreamReport.campaign_id == campaign.id,
            StreamReport.stream_date == day,
            col(StreamReport.status).in_(COUNTED_REPORTS),
        )
    ).one()
    signups = _count(
        session,
        Registration,
        Registration.campaign_id == campaign.id,
        Registration.created_at >= start,
        Registration.created_at < end,
    )
    videos = _count(
        session,
        Video,
        Video.campaign_id == campaign.id,
        Video.created_at >= start,
        Video.created_at < end,
        Video.status != "rejected",
    )
    return Totals(int(streams), Decimal(str(gmv)), signups, videos)


def _pending(session: Session, campaign: Campaign) -> Pending:
    cid = campaign.id
    return Pending(
        registrations=_count(
            session, Registration, Registration.campaign_id == cid, Registration.status == "pending"
        ),
        filings=_count(session, Filing, Filing.campaign_id == cid, Filing.status == "pending"),
        videos=_count(
            session, Video, Video.campaign_id == cid, col(Video.status).in_(("flagged", "review"))
        ),
        reports=_count(
            session,
            StreamReport,
            StreamReport.campaign_id == cid,
            StreamReport.status == "unverified",
            StreamReport.source == "self",
        ),
    )


def collect(session: Session, campaign: Campaign, period: datetime, top_n: int) -> Digest:
    """The digest of `period` from the database as it is now."""
    board = compute_leaderboard(session, campaign, period)
    previous = session.exec(
        select(DigestSnapshot)
        .where(DigestSnapshot.campaign_id == campaign.id, DigestSnapshot.period < period)
        .order_by(col(DigestSnapshot.period).desc())
        .limit(1)
    ).first()
    return Digest(
        campaign_id=campaign.id,
        title=campaign.title,
        period=period,
        boards=_boards(campaign, board, top_n),
        totals=_totals(session, campaign, period),
        movers=_movers(board, previous.ranks if previous else {}),
        pending=_pending(session, campaign),
        dead_letters=_count(
            session, Outbox, Outbox.campaign_id == campaign.id, Outbox.status == "dead"
        ),
        anomalies=[a.text for a in campaign_anomalies(session, campaign)],
        ranks={
            str(e.registration_id): e.rank
            for group in board.groups
            for e in group.entries
            if e.rank is not None
        },
    )


def recipients(session: Session, campaign: Campaign) -> list[tuple[str, str]]:
    """(channel, recipient): bound organizer groups, configured Feishu chats, WeCom robots (by
    name), and the web organizers (so the dev outbox shows digests)."""
    found = [(g.channel, g.chat_id) for g in bound_groups(session, campaign.id)]
    found += [("feishu", chat) for chat in campaign.organizer_groups.feishu]
    found += [("wecom", robot.name) for robot in campaign.organizer_groups.wecom_robots]
    found += [("web", user) for user in campaign.organizers.web]
    return list(dict.fromkeys(found))


# Publishing ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Published:
    period: datetime
    text: str
    recipients: list[tuple[str, str]]
    added: int  # new outbox rows (0 when this period's digest was already out, or dry)


def _stamp(period: datetime) -> str:
    return period.astimezone(UTC).strftime("%Y%m%dT%H%M")


def _prepare(
    campaign: Campaign, period: datetime, top_n: int, again: bool, session: Session
) -> tuple[Digest, list[tuple[str, str]]] | None:
    if not again and session.get(DigestSnapshot, (campaign.id, period)) is not None:
        return None
    return collect(session, campaign, period, top_n), recipients(session, campaign)


def _publish(
    campaign: Campaign,
    digest: Digest,
    to: list[tuple[str, str]],
    chart: Path | None,
    now: datetime,
    session: Session,
) -> int:
    if session.get(DigestSnapshot, (campaign.id, digest.period)) is not None:
        return 0  # published meanwhile (an earlier leader's last sweep)
    session.add(
        DigestSnapshot(
            campaign_id=campaign.id, period=digest.period, ranks=digest.ranks, created_at=now
        )
    )
    return sum(
        enqueue(
            session,
            key=f"digest:{campaign.id}:{_stamp(digest.period)}:{channel}:{recipient}",
            channel=channel,
            recipient=recipient,
            kind="digest",
            text=text_for(channel, digest),
            now=now,
            campaign_id=campaign.id,
            payload=payload_for(channel, digest, chart),
        )
        for channel, recipient in to
    )


async def publish(
    db: Database,
    campaign: Campaign,
    period: datetime,
    top_n: int,
    now: datetime,
    *,
    charts_dir: Path,
    dry_run: bool = False,
) -> Published | None:
    """Build and enqueue the digest of `period` unless it is out already (None then); dry: build
    it and enqueue nothing."""
    prepared = await db.run(partial(_prepare, campaign, period, top_n, dry_run))
    if prepared is None:
        return None
    digest, to = prepared
    text = render_text(digest)
    if dry_run:
        return Published(period, text, to, 0)
    chart = None
    if any(channel in CHART_CHANNELS for channel, _r in to):
        panels = [(b.name, [(x.name, x.score) for x in b.lines]) for b in digest.boards]
        path = charts_dir / f"{campaign.id}-{_stamp(period)}.png"
        chart = await asyncio.to_thread(charts.leaderboard_chart, heading(digest), panels, path)
    added = await db.run(partial(_publish, campaign, digest, to, chart, now))
    return Published(period, text, to, added)


async def enqueue_due(
    db: Database,
    campaign: Campaign,
    now: datetime,
    *,
    charts_dir: Path,
    on_demand: bool = False,
    dry_run: bool = False,
) -> list[Published]:
    """The digests due now (within the grace after their cron time); `on_demand` (the command
    line) takes each schedule's latest period however late it is."""
    done = []
    for schedule in campaign.digests:
        period = last_fire(schedule.cron, now) if on_demand else digest_due(schedule.cron, now)
        if period is None or not campaign.is_live(period):
            continue
        published = await publish(
            db, campaign, period, schedule.top_n, now, charts_dir=charts_dir, dry_run=dry_run
        )
        if published is not None:
            done.append(published)
    return done
