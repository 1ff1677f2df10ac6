"""Which reminders are due, and turning them into outbox rows: the database side of
bot/rules/reminders.py (which decides *when*).

Each kind of reminder is a `Page` of recipients: fan-outs to many streamers are read CHUNK at a
time, by registration id, skipping everyone whose outbox row already exists (an anti-join on the
idempotency key); each chunk is enqueued in its own transaction. So a crash in the middle of a
fan-out loses nothing (the next sweep carries on), a re-run adds nothing, and memory stays flat.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import exists, func, literal
from sqlmodel import Session, col, select

from bot.flows import signup
from bot.flows.videos import COUNTED as COUNTED_VIDEOS
from bot.rules.formatting import fmt_minutes, fmt_when
from bot.rules.reminders import (
    Deadline,
    after_stream_window,
    before_stream_window,
    deadlines,
    due_offset,
    fmt_left,
    fmt_offset,
    offsets,
    progress_due,
)
from bot.rules.videos import progress_text
from config.campaign import Campaign, parse_offset
from storage.db import Database
from storage.leaderboard import streamer_statuses
from storage.models import Conversation, Filing, Outbox, Registration, StreamReport, Video
from storage.outbox import Message, enqueue_many

CHUNK = 1000


# One page of due reminders from a cursor (0 at first): the reminders and the next cursor
# (None when this was the last page).
Page = Callable[[Session, int], tuple[list[Message], int | None]]


def plan(campaign: Campaign, now: datetime) -> list[Page]:
    """Every kind of reminder due for `campaign` at `now`."""
    pages: list[Page] = []
    for deadline in deadlines(campaign):
        offset = due_offset(deadline.at, offsets(campaign), now)
        if offset is not None:
            kinds = (
                (_unfinished_signups, _deadline_page)
                if deadline.kind == "registration"
                else (_deadline_page,)
            )
            pages.extend(partial(page, campaign, deadline, offset, now) for page in kinds)
        if campaign.reminders.progress and progress_due(deadline, offsets(campaign), now):
            pages.append(partial(_progress_page, campaign, deadline, now))
    if campaign.reminders.before_stream:
        before = parse_offset(campaign.reminders.before_stream)
        pages.append(partial(_before_stream_page, campaign, before, now))
    if campaign.reminders.after_stream:
        after = parse_offset(campaign.reminders.after_stream)
        pages.append(partial(_after_stream_page, campaign, after, now))
    return pages


async def enqueue_due(
    db: Database,
    campaign: Campaign,
    now: datetime,
    *,
    dry_run: bool = False,
    emit: Callable[[Message], None] | None = None,
) -> int:
    """Enqueue (or, dry, only list) every reminder due now; returns how many were new.
    `emit` sees each one (the CLI prints them)."""
    total = 0
    for page in plan(campaign, now):
        cursor: int | None = 0
        while cursor is not None:
            work = partial(_run_page, page, cursor, now, dry_run)
            added, cursor = await db.run(work)
            total += len(added)
            if emit is not None:
                for reminder in added:
                    emit(reminder)
    return total


def _run_page(
    page: Page, cursor: int, now: datetime, dry_run: bool, session: Session
) -> tuple[list[Message], int | None]:
    reminders, following = page(session, cursor)
    if dry_run:
        return reminders, following
    added = set(enqueue_many(session, reminders, now=now))
    return [r for r in reminders if r.key in added], following


# Recipients ---------------------------------------------------------------------------------
def _streamers(
    session: Session, campaign: Campaign, prefix: str, cursor: int
) -> tuple[list[Any], int | None]:
    """A chunk of the campaign's streamers after `cursor` who have no row keyed
    `prefix + channel:user` yet."""
    key = literal(prefix) + Registration.channel + literal(":") + Registration.user_id
    rows = session.exec(
        select(Registration.id, Registration.channel, Registration.user_id)
        .where(
            Registration.campaign_id == campaign.id,
            col(Registration.status).in_(streamer_statuses(campaign)),
            col(Registration.disqualified_reason).is_(None),
            col(Registration.id) > cursor,
            ~exists().where(Outbox.key == key),
        )
        .order_by(col(Registration.id))
        .limit(CHUNK)
    ).all()
    return list(rows), (rows[-1].id if len(rows) == CHUNK else None)


def _counts(session: Session, deadline: Deadline, ids: list[int], now: datetime) -> dict[int, int]:
    """Streams done (approved filings that have ended) or videos submitted, per registration."""
    if deadline.kind == "filing":
        query = select(Filing.registration_id, func.count()).where(
            col(Filing.registration_id).in_(ids),
            col(Filing.phase_key).in_(deadline.phase_keys),
            Filing.status == "approved",
            Filing.end_at <= now,
        )
        rid: Any = Filing.registration_id
    else:
        query = select(Video.registration_id, func.count()).where(
            col(Video.registration_id).in_(ids),
            col(Video.phase_key).in_(deadline.phase_keys),
            col(Video.status).in_(COUNTED_VIDEOS),
        )
        rid = Video.registration_id
    return {r: n for r, n in session.exec(query.group_by(rid)).all()}


def _fresh(session: Session, reminders: list[Message]) -> list[Message]:
    """The reminders whose key is not in the outbox yet."""
    if not reminders:
        return []
    keys = [r.key for r in reminders]
    done = set(session.exec(select(Outbox.key).where(col(Outbox.key).in_(keys))).all())
    return [r for r in reminders if r.key not in done]


# Pages ----------------------------------------------------------------------------------------
def _unfinished_signups(
    campaign: Campaign,
    deadline: Deadline,
    offset: timedelta,
    now: datetime,
    session: Session,
    _cursor: int,
) -> tuple[list[Message], int | None]:
    """Registration closes: everyone whose sign-up for this campaign is still unfinished
    (including those still choosing between campaigns, this one among them)."""
    prefix = _deadline_prefix(campaign, deadline, offset)
    text = (
        f"【报名提醒】「{campaign.title}」报名将于{fmt_when(deadline.at)}截止"
        f"（还剩{fmt_left(deadline.at - now)}）。你的报名还没有填完，回复「报名」完成报名。"
    )
    conversations = session.exec(
        select(Conversation).where(
            Conversation.flow == signup.FLOW.key,
            (Conversation.campaign_id == campaign.id) | col(Conversation.campaign_id).is_(None),
        )
    ).all()
    reminders = [
        Message(
            f"{prefix}{c.channel}:{c.user_id}", c.channel, c.user_id, "deadline", text, campaign.id
        )
        for c in conversations
        if c.campaign_id == campaign.id or campaign.id in c.data.get("_candidates", ())
    ]
    return _fresh(session, reminders), None


def _deadline_page(
    campaign: Campaign,
    deadline: Deadline,
    offset: timedelta,
    now: datetime,
    session: Session,
    cursor: int,
) -> tuple[list[Message], int | None]:
    """A deadline to the streamers it concerns (for videos, those still below the minimum),
    with their progress; registration closing, to those already registered."""
    prefix = _deadline_prefix(campaign, deadline, offset)
    rows, following = _streamers(session, campaign, prefix, cursor)
    counts = _counts(session, deadline, [r.id for r in rows], now) if deadline.required else {}
    reminders = []
    for row in rows:
        done = counts.get(row.id, 0)
        if deadline.kind == "video" and deadline.required and done >= deadline.required:
            continue
        text = _deadline_text(campaign, deadline, now, done)
        key = f"{prefix}{row.channel}:{row.user_id}"
        reminders.append(Message(key, row.channel, row.user_id, "deadline", text, campaign.id))
    return reminders, following


def _deadline_prefix(campaign: Campaign, deadline: Deadline, offset: timedelta) -> str:
    """The idempotency key of a deadline reminder, less its recipient."""
    return f"deadline:{campaign.id}:{deadline.kind}:{deadline.stamp}:{fmt_offset(offset)}:"


def _deadline_text(campaign: Campaign, deadline: Deadline, now: datetime, done: int) -> str:
    when, left = fmt_when(deadline.at), fmt_left(deadline.at - now)
    if deadline.kind == "registration":  # to those registered: check, and bring teammates
        return (
            f"【报名提醒】「{campaign.title}」报名将于{when}截止（还剩{left}）。"
            "你已报名：回复「我的」核对信息，需要时回复「修改报名」；还没报名的队友请抓紧。"
        )
    head = f"「{campaign.title}」{deadline.name}"
    if deadline.kind == "video":
        return (
            f"【作品提醒】{head}作品提交将于{when}截止（还剩{left}）。"
            f"{progress_text(done, deadline.required)}回复「作品」或直接粘贴分享链接提交。"
        )
    progress = _streams_progress(done, deadline.required)
    if campaign.filing.required:
        return f"【报备提醒】{head}直播报备将于{when}截止（还剩{left}）。{progress}回复「报备」报备直播。"
    return f"【比赛提醒】{head}将于{when}结束（还剩{left}）。{progress}回复「战报」提交直播数据。"


def _streams_progress(done: int, required: int) -> str:
    if not required:
        return ""
    if done >= required:
        return f"你已完成 {done}/{required} 场，已达到要求。"
    return f"你已完成 {done}/{required} 场，还差{required - done}场。"


def _progress_page(
    campaign: Campaign, deadline: Deadline, now: datetime, session: Session, cursor: int
) -> tuple[list[Message], int | None]:
    """Half-way through a phase with a minimum: those still below it, once."""
    prefix = f"progress:{campaign.id}:{deadline.kind}:{deadline.stamp}:"
    rows, following = _streamers(session, campaign, prefix, cursor)
    counts = _counts(session, deadline, [r.id for r in rows], now)
    reminders = []
    for row in rows:
        done = counts.get(row.id, 0)
        if done >= deadline.required:
            continue
        head = f"【进度提醒】「{campaign.title}」{deadline.name}已过半："
        if deadline.kind == "video":
            body = f"{progress_text(done, deadline.required)}请在{fmt_when(deadline.at)}前提交，回复「作品」提交。"
        else:
            body = (
                f"{_streams_progress(done, deadline.required)}"
                f"请在{fmt_when(deadline.at)}前报备，回复「报备」安排下一场。"
            )
        key = f"{prefix}{row.channel}:{row.user_id}"
        reminders.append(
            Message(key, row.channel, row.user_id, "progress", head + body, campaign.id)
        )
    return reminders, following


def _filings(
    session: Session, campaign: Campaign, cursor: int, *conditions: Any
) -> tuple[list[Any], int | None]:
    """A chunk of approved filings of streamers still in the contest, after `cursor`."""
    rows = session.exec(
        select(Filing, Registration.channel, Registration.user_id)
        .join(Registration, col(Registration.id) == Filing.registration_id)
        .where(
            Filing.campaign_id == campaign.id,
            Filing.status == "approved",
            col(Registration.disqualified_reason).is_(None),
            col(Filing.id) > cursor,
            *conditions,
        )
        .order_by(col(Filing.id))
        .limit(CHUNK)
    ).all()
    return list(rows), (rows[-1][0].id if len(rows) == CHUNK else None)


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M")


def _before_stream_page(
    campaign: Campaign, before: timedelta, now: datetime, session: Session, cursor: int
) -> tuple[list[Message], int | None]:
    low, high = before_stream_window(before, now)
    rows, following = _filings(
        session, campaign, cursor, Filing.start_at > low, Filing.start_at <= high
    )
    reminders = [
        Message(
            f"stream_start:{campaign.id}:{f.id}:{_stamp(f.start_at)}",
            channel,
            user,
            "stream_start",
            f"【开播提醒】你报备的直播将于{fmt_when(f.start_at)}开始"
            f"（{fmt_minutes(f.minutes)}，{f.venue}）。按报备的计划直播，加油！",
            campaign.id,
        )
        for f, channel, user in rows
    ]
    return _fresh(session, reminders), following


def _after_stream_page(
    campaign: Campaign, after: timedelta, now: datetime, session: Session, cursor: int
) -> tuple[list[Message], int | None]:
    """Streams that ended a little while ago and have no report yet."""
    low, high = after_stream_window(after, now)
    reported = exists().where(StreamReport.filing_id == Filing.id)
    rows, following = _filings(
        session, campaign, cursor, Filing.end_at > low, Filing.end_at <= high, ~reported
    )
    reminders = [
        Message(
            f"stream_end:{campaign.id}:{f.id}:{_stamp(f.end_at)}",
            channel,
            user,
            "stream_end",
            f"【战报提醒】你{fmt_when(f.start_at)}开始的直播结束啦，辛苦了！"
            "请回复「战报」提交这场的成交额、订单数和观看人数。",
            campaign.id,
        )
        for f, channel, user in rows
    ]
    return _fresh(session, reminders), following


def line(reminder: Message) -> str:
    """One reminder on one line, for the command line."""
    return f"[{reminder.kind}] {reminder.channel}:{reminder.recipient}  {reminder.text}"
