"""报备, 战报 and 作品 through the real engine and database, in 利通 第一期 (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from sqlmodel import select

from bot.clock import FrozenClock
from bot.keys import DATABASE
from storage.models import Filing, Registration, StreamReport, Video
from tests.conftest import shanghai
from tests.helpers import Campaigns, Chat, chat_of, litong_answers, make_client, only

DOUYIN = (
    "7.43 复制打开抖音，看看【王小文的作品】#我在利通带好货# 利通美食探店 "
    "https://v.douyin.com/iRNBho6u/ Slp:/ 09/21 L@w.FH"
)


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient, db_url: str, clock: FrozenClock, all_campaigns: Campaigns
) -> TestClient:
    client = await make_client(aiohttp_client, db_url, clock, only(all_campaigns, "litong-2024"))
    chat = chat_of(client)
    await chat.run("u1", "报名", *litong_answers("王小文", "13812345678", "8000", "300"))
    await chat.run("u2", "报名", *litong_answers("李四", "13812345679", "2万", "5000"))
    return client


async def rows(client: TestClient, model: type) -> list:  # type: ignore[type-arg]
    db = client.server.app[DATABASE]
    return await db.run(lambda s: list(s.exec(select(model).order_by(model.id))))


async def file_stream(chat: Chat, user: str, when: str, duration: str = "2小时") -> str:
    """A complete filing at the official venue; the last reply."""
    return await chat.run(
        user,
        "报备",
        when,
        duration,
        "1",
        "1",
        "本场主推利通特产，短视频预热引流，直播间抽奖。",
        "确认",
    )


async def test_a_valid_filing_is_accepted_and_waits_for_approval(
    client: TestClient, clock: FrozenClock
) -> None:
    clock.set(shanghai(2024, 9, 15, 10, 0))
    chat = chat_of(client)
    assert "需至少提前24小时" in await chat.last("u1", "报备")
    assert "第2步" in await chat.last("u1", "9月17日 20:00")
    text = await chat.run(
        "u1", "2小时", "抖音", "利通区电子商务中心", "主推枸杞和滩羊肉，抽奖引流。"
    )
    assert "请核对" in text and "2024年9月17日 20:00" in text and "2小时" in text
    reply = await chat.last("u1", "确认")
    assert "报备成功" in reply and "待组委会审核" in reply
    [filing] = await rows(client, Filing)
    assert (filing.status, filing.minutes, filing.venue, filing.phase_key) == (
        "pending",
        120,
        "利通区电子商务中心",
        "meet",
    )
    assert "#1 2024年9月17日 20:00 2小时 抖音 · 待审核" in await chat.last("u1", "我的报备")


@pytest.mark.parametrize(
    ("now", "when", "duration", "rule"),
    [
        ((2024, 9, 15, 10, 0), "明天 08:00", None, "至少提前24小时"),
        ((2024, 9, 15, 10, 0), "10-10 20:00", None, "不在比赛阶段内"),
        ((2024, 9, 15, 10, 0), "2024-09-14 20:00", None, "已经过去"),
        ((2024, 11, 5, 10, 0), "11月10日 20:00", "90分钟", "要求每场不少于2小时"),
        ((2024, 12, 10, 10, 0), "12月20日 23:00", "2小时", "超出了"),
        ((2024, 9, 15, 10, 0), "9月20日 20:00", "5分钟", "至少10分钟"),
    ],
)
async def test_each_rule_refuses_with_its_name(
    client: TestClient,
    clock: FrozenClock,
    now: tuple[int, ...],
    when: str,
    duration: str | None,
    rule: str,
) -> None:
    clock.set(shanghai(*now))
    chat = chat_of(client)
    await chat.say("u1", "报备")
    reply = await chat.last("u1", when)
    if duration is not None:
        assert "第2步" in reply, reply
        reply = await chat.last("u1", duration)
    assert rule in reply
    assert await rows(client, Filing) == []


async def test_overlap_with_ones_own_filing_is_refused(
    client: TestClient, clock: FrozenClock
) -> None:
    clock.set(shanghai(2024, 9, 15, 10, 0))
    chat = chat_of(client)
    assert "报备成功" in await file_stream(chat, "u1", "9月18日 20:00")
    await chat.say("u1", "报备")
    # A start inside it is refused at once; a start before it, by the duration running into it.
    reply = await chat.last("u1", "9月18日 21:00")
    assert "时间重叠" in reply and "第1步" in reply
    assert "第2步" in await chat.last("u1", "9月18日 19:00")
    reply = await chat.last("u1", "2小时")
    assert "时间重叠" in reply and "第2步" in reply
    assert "请核对" in (await chat.run("u1", "1小时", "1", "1", "主推枸杞，抽奖引流。"))
    # Another streamer may stream then.
    assert "报备成功" in await file_stream(chat, "u2", "9月18日 21:00")


async def test_ambiguous_time_is_asked_not_guessed(client: TestClient, clock: FrozenClock) -> None:
    clock.set(shanghai(2024, 9, 15, 10, 0))
    chat = chat_of(client)
    await chat.say("u1", "报备")
    question = await chat.last("u1", "9月20日8点")
    assert "上午" in question and "晚上" in question and "第1步" in question
    assert "第2步" in await chat.last("u1", "2")
    summary = await chat.run("u1", "2小时", "1", "1", "计划：主推黄花菜，预热视频引流。")
    assert "2024年9月20日 20:00" in summary


async def test_other_venue_needs_a_reason_and_approval(
    client: TestClient, clock: FrozenClock
) -> None:
    clock.set(shanghai(2024, 9, 15, 10, 0))
    chat = chat_of(client)
    text = await chat.run(
        "u1",
        "报备",
        "9月20日 20:00",
        "2小时",
        "1",
        "2",
        "金积镇果园",
        "现场展示采摘",
        "计划：果园现场直播采摘和试吃。",
    )
    assert "金积镇果园" in text and "现场展示采摘" in text
    await chat.say("u1", "确认")
    [filing] = await rows(client, Filing)
    assert (filing.venue, filing.venue_reason, filing.status) == (
        "金积镇果园",
        "现场展示采摘",
        "pending",
    )


async def test_cancel_a_future_filing(client: TestClient, clock: FrozenClock) -> None:
    clock.set(shanghai(2024, 9, 15, 10, 0))
    chat = chat_of(client)
    await file_stream(chat, "u1", "9月18日 20:00")
    assert "没有找到你的报备 #9" in await chat.last("u1", "取消报备 9")
    assert "没有找到" in await chat.last("u2", "取消报备 1")
    assert "已取消报备 #1" in await chat.last("u1", "取消报备 1")
    assert "已取消" in await chat.last("u1", "我的报备")
    assert "不能取消" in await chat.last("u1", "取消报备 1")


async def test_unapproved_registration_cannot_file(
    aiohttp_client: AiohttpClient, db_url: str, all_campaigns: Campaigns
) -> None:
    clock = FrozenClock(shanghai(2022, 1, 5, 9, 0))
    client = await make_client(aiohttp_client, db_url, clock, only(all_campaigns, "jiangle-2022"))
    chat = chat_of(client)
    assert "还没有报名" in await chat.last("u1", "报备")
    text = await chat.run(
        "u1", "报名", "王小文", "13812345678", "25", "1", "抖音", "wxw", "8000", "300"
    )
    while "请核对" not in text:
        text = await chat.run("u1", "同意" if "诚信承诺" in text else "1")
    await chat.say("u1", "确认")
    assert "审核通过后才能报备" in await chat.last("u1", "报备")


async def test_report_is_stored_unverified(client: TestClient, clock: FrozenClock) -> None:
    clock.set(shanghai(2024, 9, 15, 10, 0))
    chat = chat_of(client)
    assert "没有可以上报的直播" in await chat.last("u1", "战报")
    await file_stream(chat, "u1", "9月17日 20:00")
    assert "没有可以上报的直播" in await chat.last("u1", "战报")  # not started yet
    clock.set(shanghai(2024, 9, 17, 22, 30))
    first = await chat.last("u1", "战报")
    assert "#1 2024年9月17日 20:00" in first and "成交金额" in first
    await chat.run("u1", "1.2万", "300")
    text = await chat.run("u1", "85", "3500", "5000")
    assert "不能超过累计观看人数" in text
    text = await chat.run("u1", "320", "2.3万", "10小时")
    assert "长太多了" in text
    text = await chat.run("u1", "2小时05分", "跳过")
    assert "请核对" in text and "1.2万元" in text
    reply = await chat.last("u1", "确认")
    assert "净成交1.17万元" in reply and "待核实" in reply
    [report] = await rows(client, StreamReport)
    assert (report.status, report.source, str(report.gmv), str(report.refunds)) == (
        "unverified",
        "self",
        "12000.00",
        "300.00",
    )
    assert (report.orders, report.viewers, report.peak_viewers, report.likes, report.minutes) == (
        85,
        3500,
        320,
        23000,
        125,
    )
    assert "没有可以上报的直播" in await chat.last("u1", "战报")


async def test_report_refunds_above_gmv_are_refused(client: TestClient, clock: FrozenClock) -> None:
    clock.set(shanghai(2024, 9, 15, 10, 0))
    chat = chat_of(client)
    await file_stream(chat, "u1", "9月17日 20:00")
    clock.set(shanghai(2024, 9, 17, 22, 30))
    text = await chat.run("u1", "战报", "1000", "2000")
    assert "退款金额不能超过成交金额" in text
    assert "订单数不会是0" in await chat.run("u1", "0", "0")


async def test_editing_one_answer_rechecks_the_rules_between_answers(
    client: TestClient, clock: FrozenClock
) -> None:
    """修改 N of GMV after the refunds, or of the start after the duration, cannot slip a broken
    rule past the summary: the user is sent back to the answer the rule now refuses."""
    clock.set(shanghai(2024, 9, 15, 10, 0))
    chat = chat_of(client)
    await file_stream(chat, "u1", "9月17日 20:00")
    clock.set(shanghai(2024, 9, 17, 22, 30))
    text = await chat.run("u1", "战报", "1000", "500", "20", "3000", "200", "100", "2小时", "跳过")
    assert "请核对" in text
    await chat.say("u1", "修改 1")
    reply = await chat.last("u1", "100")
    assert "退款金额不能超过成交金额（100元）" in reply and "请修改「退款金额」" in reply
    assert "请核对" in await chat.last("u1", "50")
    assert "净成交50元" in await chat.last("u1", "确认")

    # A filing moved into 双十一 (≥ 2 h) keeps its 1 h duration only if asked again.
    await chat.run("u1", "报备", "9月20日 20:00", "1小时", "1", "1", "主推枸杞，抽奖引流。")
    await chat.say("u1", "修改 1")
    reply = await chat.last("u1", "11-05 20:00")
    assert "要求每场不少于2小时" in reply and "请修改「时长」" in reply
    assert "请核对" in await chat.last("u1", "2小时")
    assert "报备成功" in await chat.last("u1", "确认")

    # Moved onto one's own stream: refused as an overlap at the summary, not saved.
    await chat.run("u1", "报备", "9月21日 20:00", "2小时", "1", "1", "主推滩羊肉，抽奖引流。")
    await chat.say("u1", "修改 1")
    assert "时间重叠" in await chat.last("u1", "11-05 21:00")
    # Time passing also counts: the notice is checked again at 确认.
    await chat.say("u1", "取消")
    clock.set(shanghai(2024, 9, 18, 19, 0))
    await chat.run("u1", "报备", "9月19日 20:00", "1小时", "1", "1", "主推枸杞，抽奖引流。")
    clock.set(shanghai(2024, 9, 18, 20, 30))
    assert "至少提前24小时" in await chat.last("u1", "确认")
    assert len(await rows(client, Filing)) == 2


async def test_report_takes_a_screenshot(client: TestClient, clock: FrozenClock) -> None:
    clock.set(shanghai(2024, 9, 15, 10, 0))
    chat = chat_of(client)
    await file_stream(chat, "u1", "9月17日 20:00")
    clock.set(shanghai(2024, 9, 17, 22, 30))
    await chat.say("u1", "战报")
    assert "这一步请回复文字" in (await chat.say("u1", "", image="media-0"))[0]
    await chat.run("u1", "1000", "0", "10", "100", "20", "50", "2小时")
    text = "\n".join(await chat.say("u1", "", image="media-1"))
    assert "数据截图：已上传" in text
    await chat.say("u1", "确认")
    [report] = await rows(client, StreamReport)
    assert report.screenshot == "web:media-1"


async def test_videos_tagged_flagged_and_confirmed(client: TestClient, clock: FrozenClock) -> None:
    chat = chat_of(client)
    clock.set(shanghai(2024, 9, 15, 10, 0))
    assert "下一次作品提交将于2024年10月9日 00:00开始" in await chat.last("u1", "作品")
    clock.set(shanghai(2024, 10, 12, 10, 0))
    assert "#我在利通带好货#" in await chat.last("u1", "作品")
    reply = await chat.last("u1", DOUYIN)
    assert "作品已收到" in reply and "抖音" in reply and "已提交 1/1" in reply
    assert "已经提交过了" in await chat.last("u1", DOUYIN)  # pasted without 作品: same flow
    flagged = await chat.last(
        "u2", DOUYIN.replace("https://", "http://").replace("iRNBho6u/", "iRNBho6u")
    )
    assert "已被其他选手提交" in flagged
    untagged = await chat.last("u2", "看看我的探店视频 https://v.kuaishou.com/AbCd12")
    assert "没看到话题" in untagged and "带了话题" in untagged
    assert "请回复 1（带了话题）或 2（没有带）" in await chat.last("u2", "不确定")
    assert "已收到" in await chat.last("u2", "是")
    videos = await rows(client, Video)
    assert [(v.status, v.platform, v.hashtag_ok) for v in videos] == [
        ("accepted", "抖音", True),
        ("flagged", "抖音", True),
        ("review", "快手", False),
    ]
    refused = await chat.run("u1", "作品", "https://v.kuaishou.com/Zz99", "否")
    assert "需要带话题" in refused
    assert len(await rows(client, Video)) == 3
    clock.set(shanghai(2024, 10, 16, 10, 0))
    closed = await chat.last("u1", "作品")
    assert "的作品提交已于2024年10月15日 23:59截止" in closed and "2025年1月1日" in closed


async def test_not_a_link_gets_a_hint(client: TestClient, clock: FrozenClock) -> None:
    clock.set(shanghai(2024, 10, 12, 10, 0))
    chat = chat_of(client)
    await chat.say("u1", "作品")
    assert "没有找到链接" in await chat.last("u1", "我的视频很好看")
    assert "没有找到链接" in await chat.last("u1", "javascript:alert(1)")


async def test_streamer_flows_need_a_registration(client: TestClient, clock: FrozenClock) -> None:
    clock.set(shanghai(2024, 10, 12, 10, 0))
    chat = chat_of(client)
    for keyword in ("报备", "战报", "作品"):
        assert "报名" in await chat.last("stranger", keyword)
    regs = await rows(client, Registration)
    assert len(regs) == 2
