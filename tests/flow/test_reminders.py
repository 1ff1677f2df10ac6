"""Reminders (bot/reminders.py) over the real database, SQLite and PostgreSQL: who gets what,
when, and never twice. Sign-ups and videos go through the real chat flows."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from sqlmodel import Session, col, select

from bot import reminders
from bot.clock import FrozenClock
from bot.keys import DATABASE
from config.campaign import Campaign
from storage.db import Database
from storage.models import Filing, Outbox, Registration, StreamReport
from storage.outbox import Message
from tests.conftest import shanghai
from tests.helpers import Campaigns, chat_of, litong_answers, make_client, only

DOUYIN = "复制打开抖音，看看【作品】#我在利通带好货# 探店 https://v.douyin.com/iRNBho6u/"


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient, db_url: str, clock: FrozenClock, all_campaigns: Campaigns
) -> TestClient:
    return await make_client(
        aiohttp_client, db_url, clock, only(all_campaigns, "litong-2024", "litong-2025")
    )


def db_of(client: TestClient) -> Database:
    return client.server.app[DATABASE]


async def outbox(client: TestClient, kind: str | None = None) -> list[Outbox]:
    def read(session: Session) -> list[Outbox]:
        query = select(Outbox).order_by(col(Outbox.id))
        if kind:
            query = query.where(Outbox.kind == kind)
        return list(session.exec(query))

    return await db_of(client).run(read)


async def remind(client: TestClient, campaign: Campaign, now: datetime, **kw: object) -> int:
    return await reminders.enqueue_due(db_of(client), campaign, now, **kw)  # type: ignore[arg-type]


async def add_streamers(
    client: TestClient, campaign_id: str, count: int, *, status: str = "approved", first: int = 0
) -> list[int]:
    """Registrations written directly: many streamers without chatting each one in."""
    now = shanghai(2025, 2, 3, 10, 0)

    def write(session: Session) -> list[int]:
        regs = [
            Registration(
                campaign_id=campaign_id,
                channel="web",
                user_id=f"s{i}",
                name=f"选手{i}",
                mobile=f"139{i:08d}",
                age=25,
                identity="电商从业者",
                platform="抖音",
                handle=f"h{i}",
                fans=100,
                past_sales=Decimal(0),
                group_key="rookie",
                status=status,
                pledged_at=now,
                created_at=now,
                updated_at=now,
            )
            for i in range(first, first + count)
        ]
        session.add_all(regs)
        session.flush()
        return [r.id for r in regs if r.id is not None]

    return await db_of(client).run(write)


async def add_filing(
    client: TestClient, campaign_id: str, rid: int, phase: str, start: datetime, minutes: int = 120
) -> int:
    def write(session: Session) -> int:
        filing = Filing(
            campaign_id=campaign_id,
            registration_id=rid,
            phase_key=phase,
            start_at=start,
            end_at=start + timedelta(minutes=minutes),
            minutes=minutes,
            platform="抖音",
            venue="利通区电子商务中心",
            status="approved",
            created_at=start - timedelta(days=2),
            updated_at=start - timedelta(days=2),
        )
        session.add(filing)
        session.flush()
        assert filing.id is not None
        return filing.id

    return await db_of(client).run(write)


# Registration closes ------------------------------------------------------------------------
async def test_registration_closing_is_told_once_per_offset(
    client: TestClient, all_campaigns: Campaigns, clock: FrozenClock
) -> None:
    """Unfinished sign-ups are asked to finish; registered streamers to check their details."""
    litong = all_campaigns["litong-2024"]
    chat = chat_of(client)
    await chat.run("half", "报名", "我在利通带好货·第一期", "王小文", "13812345678")
    await chat.run(
        "done",
        "报名",
        "我在利通带好货·第一期",
        *litong_answers("李四", "13812345679", "2万", "5000"),
    )
    await chat.say("choosing", "报名")  # still choosing between the two campaigns
    await chat.say("passerby", "你好")

    day_before = shanghai(2024, 9, 11, 0, 0)
    assert await remind(client, litong, day_before) == 3
    rows = await outbox(client)
    assert sorted(r.recipient for r in rows) == ["choosing", "done", "half"]
    texts = {r.recipient: r.text for r in rows}
    for text in texts.values():
        assert "报名将于2024年9月11日 23:59截止" in text and "还剩23小时59分钟" in text
    assert "还没有填完，回复「报名」完成报名" in texts["half"]
    assert "你已报名：回复「我的」核对信息" in texts["done"]
    assert {(r.kind, r.channel, r.campaign_id, r.status) for r in rows} == {
        ("deadline", "web", "litong-2024", "pending")
    }

    assert await remind(client, litong, day_before + timedelta(hours=5)) == 0  # same window
    two_hours = shanghai(2024, 9, 11, 22, 30)
    assert await remind(client, litong, two_hours) == 3  # the 2h reminder is another one
    assert await remind(client, litong, two_hours) == 0
    assert await remind(client, litong, shanghai(2024, 9, 12, 0, 0)) == 0  # closed: never late
    keys = [r.key for r in await outbox(client)]
    assert len(keys) == len(set(keys)) == 6


async def test_dry_run_lists_and_writes_nothing(
    client: TestClient, all_campaigns: Campaigns
) -> None:
    await chat_of(client).run("half", "报名", "我在利通带好货·第一期", "王小文")
    seen: list[Message] = []
    now = shanghai(2024, 9, 11, 12, 0)
    litong = all_campaigns["litong-2024"]
    assert await remind(client, litong, now, dry_run=True, emit=seen.append) == 1
    assert [r.recipient for r in seen] == ["half"]
    assert "[deadline] web:half" in reminders.line(seen[0])
    assert await outbox(client) == []


# Videos ----------------------------------------------------------------------------------------
async def test_video_deadline_reaches_those_below_the_minimum(
    client: TestClient, all_campaigns: Campaigns, clock: FrozenClock
) -> None:
    chat = chat_of(client)
    await chat.run(
        "u1",
        "报名",
        "我在利通带好货·第一期",
        *litong_answers("王小文", "13812345678", "8000", "300"),
    )
    await chat.run(
        "u2", "报名", "我在利通带好货·第一期", *litong_answers("李四", "13812345679", "2万", "5000")
    )
    clock.set(shanghai(2024, 10, 12, 10, 0))
    assert "作品已收到" in await chat.run("u2", "作品", DOUYIN)

    litong = all_campaigns["litong-2024"]
    now = shanghai(2024, 10, 15, 9, 0)
    assert await remind(client, litong, now) == 1
    [row] = await outbox(client)
    assert row.recipient == "u1"
    assert "「“多彩利通 等你来探”电商活动」作品提交将于2024年10月15日 23:59截止" in row.text
    assert "已提交 0/1，还差1个" in row.text
    assert await remind(client, litong, now) == 0


async def test_disqualified_and_unapproved_streamers_get_no_deadline_reminder(
    client: TestClient, all_campaigns: Campaigns
) -> None:
    litong = all_campaigns["litong-2024"]
    ids = await add_streamers(client, "litong-2024", 3)
    await add_streamers(client, "litong-2024", 1, status="rejected", first=10)

    def disqualify(session: Session) -> None:
        reg = session.get(Registration, ids[0])
        assert reg is not None
        reg.disqualified_reason = "刷单"
        session.add(reg)

    await db_of(client).run(disqualify)
    assert await remind(client, litong, shanghai(2024, 10, 15, 9, 0)) == 2
    assert sorted(r.recipient for r in await outbox(client)) == ["s1", "s2"]


async def test_a_big_fan_out_goes_chunk_by_chunk_and_resumes(
    client: TestClient, all_campaigns: Campaigns, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reminders, "CHUNK", 3)
    litong = all_campaigns["litong-2024"]
    await add_streamers(client, "litong-2024", 7)
    now = shanghai(2024, 10, 15, 9, 0)
    assert await remind(client, litong, now) == 7
    # A later streamer (or a chunk lost to a crash) is picked up by the next sweep; nobody twice.
    await add_streamers(client, "litong-2024", 2, first=7)
    assert await remind(client, litong, now + timedelta(minutes=1)) == 2
    recipients = [r.recipient for r in await outbox(client)]
    assert sorted(recipients) == sorted(f"s{i}" for i in range(9))


# Filing cut-off and progress (利通 第二期: 双十一 asks for 15 streams) ---------------------------------
async def test_filing_cutoff_shows_each_streamers_progress(
    client: TestClient, all_campaigns: Campaigns
) -> None:
    litong = all_campaigns["litong-2025"]
    rid, other = await add_streamers(client, "litong-2025", 2)
    for day in range(1, 10):  # nine streams done
        await add_filing(client, "litong-2025", rid, "double11", shanghai(2025, 11, day, 20, 0))
    await add_filing(client, "litong-2025", rid, "double11", shanghai(2025, 11, 29, 20, 0))  # later

    rows_before = len(await outbox(client))
    assert await remind(client, litong, shanghai(2025, 11, 29, 9, 0)) == 2
    texts = {r.recipient: r.text for r in (await outbox(client))[rows_before:]}
    assert "直播报备将于2025年11月29日 23:59截止" in texts["s0"]
    assert "你已完成 9/15 场，还差6场" in texts["s0"]
    assert "你已完成 0/15 场，还差15场" in texts["s1"]
    assert other


async def test_progress_nudge_half_way_only_below_the_minimum(
    client: TestClient, all_campaigns: Campaigns
) -> None:
    litong = all_campaigns["litong-2025"]
    behind, ahead = await add_streamers(client, "litong-2025", 2)
    for day in range(1, 16):
        await add_filing(client, "litong-2025", ahead, "double11", shanghai(2025, 11, day, 8, 0))
    await add_filing(client, "litong-2025", behind, "double11", shanghai(2025, 11, 2, 20, 0))

    await remind(client, litong, shanghai(2025, 11, 14, 10, 0))
    assert await outbox(client, "progress") == []  # not half way yet
    now = shanghai(2025, 11, 17, 10, 0)
    await remind(client, litong, now)
    [row] = await outbox(client, "progress")
    assert row.recipient == "s0"
    assert "已过半：你已完成 1/15 场，还差14场" in row.text
    await remind(client, litong, now + timedelta(days=2))
    assert len(await outbox(client, "progress")) == 1  # once per phase


# Streams -----------------------------------------------------------------------------------------
async def test_before_and_after_a_stream(client: TestClient, all_campaigns: Campaigns) -> None:
    litong = all_campaigns["litong-2024"]
    [rid] = await add_streamers(client, "litong-2024", 1)
    start = shanghai(2024, 9, 13, 20, 0)
    filing_id = await add_filing(client, "litong-2024", rid, "meet", start)

    assert await remind(client, litong, start - timedelta(minutes=31)) == 0
    assert await remind(client, litong, start - timedelta(minutes=30)) == 1
    assert await remind(client, litong, start - timedelta(minutes=5)) == 0
    [before] = await outbox(client, "stream_start")
    assert before.recipient == "s0"
    assert "你报备的直播将于2024年9月13日 20:00开始（2小时，利通区电子商务中心）" in before.text

    end = start + timedelta(hours=2)
    assert await remind(client, litong, end + timedelta(minutes=14)) == 0
    assert await remind(client, litong, end + timedelta(minutes=15)) == 1
    [after] = await outbox(client, "stream_end")
    assert "请回复「战报」" in after.text
    assert await remind(client, litong, end + timedelta(hours=3)) == 0

    # A stream already reported, or one long over, is not asked about.
    second = await add_filing(client, "litong-2024", rid, "meet", shanghai(2024, 9, 14, 20, 0))

    def report(session: Session) -> None:
        session.add(
            StreamReport(
                campaign_id="litong-2024",
                registration_id=rid,
                filing_id=second,
                stream_date=shanghai(2024, 9, 14).date(),
                gmv=Decimal(100),
                created_at=end,
                updated_at=end,
            )
        )

    await db_of(client).run(report)
    assert await remind(client, litong, shanghai(2024, 9, 14, 22, 30)) == 0
    assert await remind(client, litong, shanghai(2024, 9, 15, 22, 30)) == 0
    assert filing_id != second


async def test_pending_filings_get_no_stream_reminder(
    client: TestClient, all_campaigns: Campaigns
) -> None:
    [rid] = await add_streamers(client, "litong-2024", 1)
    start = shanghai(2024, 9, 13, 20, 0)
    filing_id = await add_filing(client, "litong-2024", rid, "meet", start)

    def unapprove(session: Session) -> None:
        filing = session.get(Filing, filing_id)
        assert filing is not None
        filing.status = "pending"
        session.add(filing)

    await db_of(client).run(unapprove)
    assert await remind(client, all_campaigns["litong-2024"], start - timedelta(minutes=10)) == 0
