"""Sign-up driven through the real engine, router and database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from sqlmodel import Session, select

from bot.clock import FrozenClock
from bot.keys import DATABASE
from storage.models import Conversation, Registration, Team
from tests.conftest import shanghai
from tests.helpers import Campaigns, chat_of, litong_answers, make_client, only


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient, db_url: str, clock: FrozenClock, all_campaigns: Campaigns
) -> TestClient:
    return await make_client(aiohttp_client, db_url, clock, only(all_campaigns, "litong-2024"))


async def registrations(client) -> list[Registration]:
    db = client.server.app[DATABASE]
    return await db.run(lambda s: list(s.exec(select(Registration).order_by(Registration.id))))


@pytest.mark.parametrize(
    ("fans", "sales", "group"),
    [
        ("8000", "300", "新秀组"),
        ("2万", "5000元", "达人组"),
        ("1.2万", "0", "达人组"),
        ("9999", "3000", "达人组"),
        ("0", "500", "新秀组"),
    ],
)
async def test_group_is_assigned_by_the_campaign_rules(
    client: TestClient, fans: str, sales: str, group: str
) -> None:
    chat = chat_of(client)
    reply = await chat.run("u1", "报名", *litong_answers("王小文", "13812345678", fans, sales))
    assert f"报名成功！你已分入「{group}」" in reply
    [reg] = await registrations(client)
    assert reg.group_key == {"新秀组": "rookie", "达人组": "expert"}[group]
    assert reg.status == "approved"


async def test_no_fitting_group_is_refused_with_the_rules(client: TestClient) -> None:
    chat = chat_of(client)
    reply = await chat.run(
        "u1", "报名", "赵六", "13612345678", "30", "1", "抖音", "zl", "5000", "1000"
    )
    assert "不符合任何参赛组的条件" in reply
    assert "新秀组" in reply and "达人组" in reply
    assert await registrations(client) == []
    assert "没有进行中" in (await chat.say("u1", "取消"))[0]


async def test_under_age_is_refused_and_nothing_is_kept(client: TestClient) -> None:
    chat = chat_of(client)
    reply = await chat.run("u1", "报名", "李四", "13912345678", "16")
    assert "年满18周岁" in reply and "16岁" in reply
    reply = await chat.run("u2", "报名", "李五", "13912345670", "2010-01-01")
    assert "年满18周岁" in reply
    assert await registrations(client) == []


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (shanghai(2024, 9, 20, 10, 0), "报名已于2024年9月11日 23:59截止"),
        (shanghai(2024, 9, 1, 10, 0), "报名将于2024年9月6日 00:00开始"),
    ],
)
async def test_outside_the_registration_phase_is_refused_with_the_window(
    client, clock: FrozenClock, when, expected
) -> None:
    clock.set(when)
    assert expected in await chat_of(client).last("u1", "报名")


async def test_second_signup_shows_the_existing_one_and_edit_keeps_the_group(
    client: TestClient,
) -> None:
    chat = chat_of(client)
    await chat.run("u1", "报名", *litong_answers("王小文", "13812345678", "8000", "300"))
    again = await chat.last("u1", "报名")
    assert "你已经报过名了" in again and "新秀组" in again and "修改报名" in again
    summary = await chat.last("u1", "修改报名")
    assert "1. 姓名：王小文" in summary
    assert "第1步" in await chat.last("u1", "修改 1")
    assert "请核对" in await chat.last("u1", "王晓文")
    assert "已保存修改" in await chat.last("u1", "确认")
    [reg] = await registrations(client)
    assert (reg.name, reg.group_key) == ("王晓文", "rookie")
    mine = await chat.last("u1", "我的")
    assert "王晓文" in mine and "已报名" in mine


async def test_review_campaign_registrations_wait(
    aiohttp_client: AiohttpClient, db_url: str, all_campaigns: Campaigns
) -> None:
    clock = FrozenClock(shanghai(2022, 1, 5, 9, 0))
    client = await make_client(aiohttp_client, db_url, clock, only(all_campaigns, "jiangle-2022"))
    chat = chat_of(client)
    reply = await chat.say("u1", "报名")
    assert "将乐" in reply[-1]
    answers = ["王小文", "13812345678", "25", "1", "抖音", "wxw", "8000", "300"]
    text = await chat.run("u1", *answers)
    while "请核对" not in text:  # unit / team steps of this campaign: take the first option
        text = await chat.run("u1", "同意" if "诚信承诺" in text else "1")
    assert "待审核" in await chat.last("u1", "确认")
    [reg] = await registrations(client)
    assert reg.status == "pending"
    assert "待审核" in await chat.last("u1", "我的")


async def test_scene_fills_campaign_and_unit(
    aiohttp_client: AiohttpClient, db_url: str, all_campaigns: Campaigns
) -> None:
    clock = FrozenClock(shanghai(2020, 10, 15, 9, 0))
    client = await make_client(aiohttp_client, db_url, clock, all_campaigns)
    chat = chat_of(client)
    campaign = all_campaigns["jiangxi-2020"]
    unit = campaign.units[0]
    first = await chat.scan("u1", f"{campaign.id}:{unit.key}")
    assert f"推荐单位：{unit.name}" in first[-1] and "第1步" in first[-1]
    text = await chat.run("u1", "王小文", "13812345678", "25", "1", "抖音", "wxw", "2万", "1000")
    assert "推荐你的单位" not in text
    while "请核对" not in text:
        text = await chat.run("u1", "同意" if "诚信承诺" in text else "1")
    assert "推荐单位" not in text.split("请核对")[1].split("回复")[0] or unit.name in text
    await chat.say("u1", "确认")
    [reg] = await registrations(client)
    assert (reg.campaign_id, reg.unit_key) == (campaign.id, unit.key)
    assert "已失效" in (await chat.scan("u2", "no-such-campaign:x"))[0]


async def test_several_open_campaigns_ask_which(
    aiohttp_client: AiohttpClient, db_url: str, clock: FrozenClock, all_campaigns: Campaigns
) -> None:
    client = await make_client(aiohttp_client, db_url, clock, all_campaigns)
    chat = chat_of(client)
    question = await chat.last("u1", "报名")
    assert "多个赛事" in question and "演示赛事" in question and "利通" in question
    assert "没有找到这个赛事，请回复编号" in (await chat.say("u1", "99"))[0]
    assert "没有找到" in (await chat.say("u1", "货"))[0]  # in both names: still asked
    assert "我在利通带好货·第一期" in await chat.last("u1", "2")
    await chat.run("u2", "报名")
    assert "我在利通带好货·第一期" in await chat.last("u2", "利通")  # part of one name


async def test_demo_teams_create_and_join(
    aiohttp_client: AiohttpClient, db_url: str, clock: FrozenClock, all_campaigns: Campaigns
) -> None:
    client = await make_client(aiohttp_client, db_url, clock, only(all_campaigns, "demo"))
    chat = chat_of(client)
    base = ["25", "电商从业者", "抖音", "h", "8000", "300", "演示团县委"]
    done = await chat.run(
        "lead", "报名", "王小文", "13812345678", *base, "创建团队", "飞鸟队", "同意", "确认"
    )
    code = done.split("邀请码：")[1][:6]
    taken = await chat.run("u2", "报名", "李四", "13812345679", *base, "创建团队", "飞鸟队")
    assert "已被使用" in taken
    await chat.say("u2", "取消")
    bad = await chat.run("u3", "报名", "张三", "13812345670", *base, "加入团队", "ZZZZZZ")
    assert "没有找到这个邀请码" in bad
    joined = await chat.run("u3", code.lower(), "同意", "确认")
    assert "已加入团队「飞鸟队」" in joined
    db = client.server.app[DATABASE]
    [team] = await db.run(lambda s: list(s.exec(select(Team))))
    regs = await registrations(client)
    assert [r.team_id for r in regs] == [team.id, team.id]


async def test_duplicate_mobile_is_refused(client: TestClient) -> None:
    chat = chat_of(client)
    await chat.run("u1", "报名", *litong_answers("王小文", "13812345678", "8000", "300"))
    reply = await chat.run("u2", "报名", "李四", "138 1234 5678")
    assert "已经报过名" in reply


async def test_engine_back_cancel_help_misses_and_edit(client: TestClient) -> None:
    chat = chat_of(client)
    assert "第1步/共9步" in await chat.last("u1", "报名")
    assert "第2步/共9步" in await chat.last("u1", "王小文")
    wrong = await chat.say("u1", "12345")
    assert len(wrong) == 1 and wrong[0].startswith("手机号需要是11位") and "第2步/共9步" in wrong[0]
    await chat.say("u1", "abc")
    third = await chat.last("u1", "xyz")
    assert "回复「帮助」" in third
    assert "第1步" in await chat.last("u1", "上一步")
    assert "已经是第一步" in await chat.last("u1", "上一步")
    assert "照下面的问题回复即可" in await chat.last("u1", "帮助")
    text = await chat.run(
        "u1", "王小文", "13812345678", "25", "电商从业者", "douyin", "h", "8000", "300", "1"
    )
    assert "请核对" in text and "5. 直播平台：抖音" in text
    assert "哪个平台" in await chat.last("u1", "修改 5")
    assert "5. 直播平台：快手" in await chat.last("u1", "快手")
    assert "修改 N" in (await chat.say("u1", "随便"))[0]
    assert "已取消「报名」" in await chat.last("u1", "取消")
    assert await registrations(client) == []


async def test_one_shot_commands_do_not_break_a_flow(client: TestClient) -> None:
    chat = chat_of(client)
    await chat.run("u1", "报名", "王小文")
    replies = await chat.say("u1", "我的")
    assert "还没有报名" in replies[0] and "第2步" in replies[-1]
    replies = await chat.say("u1", "报名")
    assert "第2步" in replies[-1]


async def test_idle_conversation_expires_with_a_note(
    client: TestClient, clock: FrozenClock
) -> None:
    chat = chat_of(client)
    await chat.run("u1", "报名", "王小文")
    clock.advance(timedelta(hours=3))
    replies = await chat.say("u1", "13812345678")
    assert "太久没有回复" in replies[0]
    db = client.server.app[DATABASE]
    assert await db.run(lambda s: s.get(Conversation, ("web", "u1"))) is None


async def test_state_survives_a_new_app_on_the_same_database(
    aiohttp_client, db_url, clock, all_campaigns
) -> None:
    campaigns = only(all_campaigns, "litong-2024")
    first = await make_client(aiohttp_client, db_url, clock, campaigns)
    await chat_of(first).run("u1", "报名", "王小文", "13812345678")
    await first.close()
    second = await make_client(aiohttp_client, db_url, clock, campaigns)
    assert "第4步/共9步" in await chat_of(second).last("u1", "25")


async def test_concurrent_messages_of_one_user_keep_order(client: TestClient) -> None:
    chat = chat_of(client)
    answers = ["报名", *litong_answers("王小文", "13812345678", "8000", "300")]
    results = await asyncio.gather(*(chat.say("u1", a) for a in answers))
    assert "报名成功" in results[-1][-1]
    [reg] = await registrations(client)
    assert (reg.name, reg.fans) == ("王小文", 8000)


@pytest.mark.parametrize(
    "text",
    ["", "   ", "😀😀😀", "'; DROP TABLE registration; --", "x" * 5000, "\x00\x01", "报名" * 600],
)
async def test_bad_input_gets_a_friendly_answer(client: TestClient, text: str) -> None:
    chat = chat_of(client)
    await chat.say("u1", "报名")
    replies = await chat.say("u1", text)
    assert replies and all(r for r in replies)
    assert not any("Traceback" in r or "出了点问题" in r for r in replies)
    assert await registrations(client) == []


async def test_a_conversation_at_a_removed_step_restarts_with_a_note(client: TestClient) -> None:
    chat = chat_of(client)
    await chat.run("u1", "报名", "王小文")
    db = client.server.app[DATABASE]

    def break_step(session: Session) -> None:
        conv = session.get(Conversation, ("web", "u1"))
        assert conv is not None
        conv.flow_version, conv.step = 0, "a-step-that-no-longer-exists"
        session.add(conv)

    await db.run(break_step)
    assert "已更新" in (await chat.say("u1", "13812345678"))[0]
    assert "第1步" in await chat.last("u1", "报名")
