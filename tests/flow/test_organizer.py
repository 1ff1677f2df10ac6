"""Organizer commands through the real dispatcher, router and database (SQLite and PostgreSQL),
in the demo campaign, whose web user `organizer` is an organizer."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from io import BytesIO
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from openpyxl import load_workbook
from pytest_aiohttp import AiohttpClient
from sqlmodel import SQLModel, select

from bot.clock import FrozenClock
from bot.keys import CAMPAIGNS, DATABASE
from bot.review import decide
from storage.models import (
    AuditLog,
    BoundGroup,
    Deduction,
    Filing,
    Outbox,
    Registration,
    StreamReport,
    Video,
)
from tests.conftest import shanghai
from tests.helpers import Campaigns, Chat, chat_of, make_client, only

ORG = "organizer"
ORGANIZER_COMMANDS = [
    "审核", "通过", "通过 1", "通过 报备1 报备2", "驳回 1 场地冲突", "撤销 报备1",
    "扣分 王小文 5 投诉属实", "取消资格 王小文 刷单", "恢复 王小文", "导出", "导出 报备",
    "榜单", "榜单 20", "团队榜", "单位榜",
]  # fmt: skip


def demo_answers(name: str, mobile: str, handle: str, fans: str = "8000", sales: str = "300",
                 team: tuple[str, ...] = ("1",)) -> list[str]:  # fmt: skip
    """A complete demo sign-up: unit 演示团县委, no team unless `team` says otherwise."""
    return [name, mobile, "25", "1", "抖音", handle, fans, sales, "1", *team, "同意", "确认"]


async def sign_up(chat: Chat, user: str, *answers: str) -> str:
    return await chat.run(user, "报名", *answers)


async def file_stream(chat: Chat, user: str, when: str = "明天 20:00") -> str:
    return await chat.run(
        user, "报备", when, "2小时", "1", "1", "1", "主推红枣，抽奖引流。", "确认"
    )


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient, db_url: str, clock: FrozenClock, all_campaigns: Campaigns
) -> TestClient:
    client = await make_client(aiohttp_client, db_url, clock, only(all_campaigns, "demo"))
    chat = chat_of(client)
    await sign_up(chat, "u1", *demo_answers("王小文", "13812345678", "wxw"))
    await sign_up(chat, "u2", *demo_answers("李四", "13812345679", "lisi"))
    return client


async def rows(client: TestClient, model: Any) -> list[Any]:
    db = client.server.app[DATABASE]
    return await db.run(lambda s: list(s.exec(select(model).order_by(model.id))))


def insert(session: Any, *items: SQLModel) -> list[int]:
    """Rows as other flows would have written them; their ids."""
    for item in items:
        session.add(item)
    session.flush()
    return [int(getattr(item, "id", 0) or 0) for item in items]


async def add(client: TestClient, *items: SQLModel) -> list[int]:
    return await client.server.app[DATABASE].run(lambda s: insert(s, *items))


def registration(name: str, handle: str, *, user: str, group: str = "rookie",
                 status: str = "approved", unit: str | None = "demo-youth") -> Registration:  # fmt: skip
    now = shanghai(2024, 9, 1, 9, 0)
    return Registration(
        campaign_id="demo", channel="web", user_id=user, name=name, mobile="13900000000", age=30,
        identity="其他", platform="抖音", handle=handle, fans=5000, past_sales=Decimal(0),
        unit_key=unit, group_key=group, status=status, pledged_at=now, created_at=now,
        updated_at=now,
    )  # fmt: skip


def report(reg_id: int, day: int, gmv: str, *, viewers: int = 1000, status: str = "confirmed",
           source: str = "import", refunds: str = "0") -> StreamReport:  # fmt: skip
    now = shanghai(2024, 9, day, 23, 0)
    return StreamReport(
        campaign_id="demo", registration_id=reg_id, stream_date=date(2024, 9, day),
        gmv=Decimal(gmv), refunds=Decimal(refunds), orders=10, viewers=viewers, peak_viewers=100,
        likes=500, minutes=120, source=source, status=status, created_at=now, updated_at=now,
    )  # fmt: skip


def video(reg_id: int, url: str, status: str) -> Video:
    return Video(
        campaign_id="demo",
        registration_id=reg_id,
        phase_key="video",
        url=url,
        url_key=url.removeprefix("https://"),
        platform="抖音",
        status=status,
        created_at=shanghai(2024, 9, 5, 9, 0),
    )


async def outbox(client: TestClient) -> list[dict[str, Any]]:
    response = await client.get("/dev/outbox")
    assert response.status == 200
    return list(await response.json())


# Reviews -------------------------------------------------------------------------------------
async def test_organizer_approves_and_rejects_filings_and_streamers_are_told(
    client: TestClient,
) -> None:
    chat = chat_of(client)
    assert "报备成功（编号1）" in await file_stream(chat, "u1")
    assert "报备成功（编号2）" in await file_stream(chat, "u2", "明天 14:00")
    menu = await chat.last(ORG, "帮助")
    assert "组委会：" in menu and "「审核」" in menu and "「导出」" in menu
    queue = await chat.last(ORG, "审核")
    assert "【演示赛】待审核 2 项" in queue
    assert "· 报备1 王小文 2024年9月9日 20:00 2小时 抖音 场地：演示电商中心直播间" in queue
    assert "· 报备2 李四 2024年9月9日 14:00" in queue
    assert await chat.last(ORG, "通过 报备1") == "已通过 报备1（王小文），已通知主播。"
    assert (
        await chat.last(ORG, "驳回 2 场地与他人冲突，请改时间")
        == "已驳回 报备2（李四），已通知主播。"
    )
    assert "待审核 0 项" in await chat.last(ORG, "审核")

    first, second = await rows(client, Filing)
    assert (first.status, first.reviewed_by, first.review_reason) == (
        "approved",
        "web:organizer",
        None,
    )
    assert (second.status, second.review_reason) == ("rejected", "场地与他人冲突，请改时间")
    sent = [(m["recipient"], m["kind"], m["text"]) for m in await outbox(client)]
    assert sent == [
        ("u1", "review_result", "【演示赛】你报备的直播（2024年9月9日 20:00，2小时）已通过审核。"
         "请按时开播，直播结束后回复「战报」上报数据。"),
        ("u2", "review_result", "【演示赛】你报备的直播（2024年9月9日 14:00，2小时）未通过审核。"
         "理由：场地与他人冲突，请改时间。可修改后重新报备（回复「报备」）。如有疑问请联系组委会。"),
    ]  # fmt: skip
    assert "已驳回（场地与他人冲突，请改时间）" in await chat.last("u2", "我的报备")
    audits = await rows(client, AuditLog)
    assert [(a.actor, a.action, a.target_type, a.target_id) for a in audits] == [
        ("web:organizer", "approve", "filing", 1),
        ("web:organizer", "reject", "filing", 2),
    ]
    assert (audits[1].before["status"], audits[1].after["status"]) == ("pending", "rejected")
    assert audits[1].reason == "场地与他人冲突，请改时间"


@pytest.mark.parametrize("command", ORGANIZER_COMMANDS)
async def test_a_streamer_gets_no_permission_and_nothing_changes(
    client: TestClient, command: str
) -> None:
    chat = chat_of(client)
    await file_stream(chat, "u1")
    await file_stream(chat, "u2", "明天 14:00")
    replies = await chat.say("u2", command)
    assert len(replies) == 1 and replies[0].startswith("无权限")
    assert [f.status for f in await rows(client, Filing)] == ["pending", "pending"]
    assert [r.disqualified_reason for r in await rows(client, Registration)] == [None, None]
    for model in (Deduction, AuditLog, Outbox):
        assert await rows(client, model) == []
    assert "组委会" not in await chat.last("u2", "帮助")


async def test_batch_approval_and_a_bare_number_that_names_two_items(client: TestClient) -> None:
    chat = chat_of(client)
    for user, when in (("u1", "明天 20:00"), ("u2", "明天 14:00"), ("u1", "后天 20:00")):
        await file_stream(chat, user, when)
    [pending] = await add(client, registration("张三", "zs", user="u3", status="pending"))
    assert pending == 3
    ambiguous = await chat.last(ORG, "通过 3")
    assert "编号3对应多项：报名3、报备3" in ambiguous
    assert [f.status for f in await rows(client, Filing)] == ["pending"] * 3
    reply = await chat.last(ORG, "通过 报名3 报备3，报备#1")
    assert reply.splitlines() == [
        "已通过 报名3（张三），已通知主播。",
        "已通过 报备3（王小文），已通知主播。",
        "已通过 报备1（王小文），已通知主播。",
    ]
    assert [f.status for f in await rows(client, Filing)] == ["approved", "pending", "approved"]
    assert (await rows(client, Registration))[2].status == "approved"
    assert "你在「演示赛」的报名已通过审核" in (await outbox(client))[0]["text"]


async def test_decisions_can_be_changed_and_undone(client: TestClient) -> None:
    chat = chat_of(client)
    await file_stream(chat, "u1")
    assert "需要写明理由" in await chat.last(ORG, "驳回 报备1")
    await chat.say(ORG, "通过 报备1")
    assert "已经是「已通过」，无需重复操作" in await chat.last(ORG, "通过 报备1")
    assert "已驳回 报备1" in await chat.last(ORG, "驳回报备1商品不在清单内")
    assert "恢复为「已通过」" in await chat.last(ORG, "撤销 报备1")
    assert "没有可撤销的审核决定" in await chat.last(ORG, "撤销 报备1")
    [filing] = await rows(client, Filing)
    assert (filing.status, filing.review_reason) == ("approved", None)
    audits = await rows(client, AuditLog)
    assert [a.action for a in audits] == ["approve", "reject", "revert"]
    assert audits[1].reason == "商品不在清单内"
    assert audits[2].before["status"] == "rejected" and audits[2].after["status"] == "approved"
    texts = [m["text"] for m in await outbox(client)]
    assert len(texts) == 3 and "审核结果已撤销，当前状态：已通过" in texts[2]


async def test_a_cancelled_filing_cannot_be_decided(client: TestClient) -> None:
    chat = chat_of(client)
    await file_stream(chat, "u1")
    assert "已取消" in await chat.last("u1", "取消报备 1")
    assert "报备1当前是「已取消」，无需审核" in await chat.last(ORG, "通过 报备1")
    assert "没有找到报备9" in await chat.last(ORG, "通过 报备9")


async def test_videos_and_reports_wait_in_the_queue_and_are_decided(client: TestClient) -> None:
    tagless, shared_a, shared_b = await add(
        client,
        video(1, "https://v.douyin.com/aaa/", "review"),
        video(1, "https://v.douyin.com/bbb/", "accepted"),
        video(2, "https://v.douyin.com/bbb/", "flagged"),
    )
    [self_report] = await add(client, report(2, 7, "800", status="unverified", source="self"))
    chat = chat_of(client)
    queue = await chat.last(ORG, "审核")
    assert f"· 作品{tagless} 王小文 https://v.douyin.com/aaa/（未见活动话题）" in queue
    assert f"· 作品{shared_b} 李四 https://v.douyin.com/bbb/（同一链接已被他人提交）" in queue
    assert f"· 战报{self_report} 李四 9月7日 成交800元" in queue
    assert "同一作品链接被2人提交：王*文（报名1）、李*（报名2）" in queue  # masked: groups see it
    await chat.say(ORG, f"通过 作品{tagless}")
    await chat.say(ORG, f"驳回 作品{shared_b} 不是本人作品")
    await chat.say(ORG, f"通过 战报{self_report}")
    assert [v.status for v in await rows(client, Video)] == ["accepted", "accepted", "rejected"]
    assert (await rows(client, StreamReport))[0].status == "confirmed"
    texts = [m["text"] for m in await outbox(client)]
    assert "作品（https://v.douyin.com/aaa/）已通过审核" in texts[0]
    assert "未通过审核。理由：不是本人作品" in texts[1]
    assert "9月7日的战报已通过审核。已计入成绩" in texts[2]
    assert shared_a  # the first claim stays accepted


async def test_decide_is_callable_with_an_actor_id(client: TestClient) -> None:
    """The entry point card buttons use: 'channel:user', checked like a chat message."""
    chat = chat_of(client)
    await file_stream(chat, "u1")
    db = client.server.app[DATABASE]
    campaigns = client.server.app[CAMPAIGNS]
    now = shanghai(2024, 9, 8, 11, 0)
    denied = await db.run(lambda s: decide(s, campaigns, "web:u2", "报备1", True, None, now))
    assert not denied.ok and denied.text.startswith("无权限")
    done = await db.run(
        lambda s: decide(s, campaigns, "web:organizer", "报备1", False, "太晚", now)
    )
    assert (done.ok, done.changed, done.ref, done.status) == (True, True, "报备1", "rejected")


async def test_a_streamer_asking_in_other_words_gets_the_menu(client: TestClient) -> None:
    reply = await chat_of(client).last("u1", "通过了吗")
    assert "回复下面的关键词" in reply and "无权限" not in reply


# Streamers: deductions, disqualification, boards ------------------------------------------
def board_order(text: str, group: str) -> list[str]:
    block = text.split(f"{group}（")[1].split("\n\n")[0]
    return re.findall(r"^\d+\. (\S+?)（", block, re.M)


async def test_a_deduction_changes_the_leaderboard_at_once(client: TestClient) -> None:
    [wang, zhang_a, zhang_b] = [1, *await add(
        client,
        registration("张三", "zs_a", user="u3"),
        registration("张三", "zs_b", user="u4"),
    )]  # fmt: skip
    await add(
        client, report(wang, 5, "5000"), report(zhang_a, 5, "4800"), report(zhang_b, 5, "100")
    )
    chat = chat_of(client)
    assert board_order(await chat.last(ORG, "榜单"), "新秀组") == ["王小文", "张三", "张三", "李四"]
    ambiguous = await chat.last(ORG, "扣分 张三 5 投诉")
    assert "「张三」对应多位主播" in ambiguous and f"报名{zhang_a}" in ambiguous
    assert await rows(client, Deduction) == []
    reply = await chat.last(ORG, "扣分 王小文 30分 直播中虚假宣传")
    assert reply.startswith("已扣分 扣分1：王小文（报名1）扣30分")
    board = await chat.last(ORG, "榜单")
    assert board_order(board, "新秀组") == ["张三", "王小文", "张三", "李四"]
    assert "扣30分" in board
    assert "扣分" in await chat.last(ORG, "扣分 @zs_b 2 迟到")
    assert "已撤销 扣分1" in await chat.last(ORG, "撤销 扣分1")
    assert board_order(await chat.last(ORG, "榜单"), "新秀组") == ["王小文", "张三", "张三", "李四"]
    first, second = await rows(client, Deduction)
    assert (first.points, first.revoked_at is not None) == (30, True)
    assert (second.registration_id, second.points, second.revoked_at) == (zhang_b, 2, None)
    texts = [m["text"] for m in await outbox(client)]
    assert "因「直播中虚假宣传」，你的综合得分被扣除30分" in texts[0]
    assert [a.action for a in await rows(client, AuditLog)] == ["deduct", "deduct", "revoke"]


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        ("扣分 王小文 5", "扣分需要写明理由"),
        ("扣分 王小文 0 误报", "扣分分值需在0到100分之间"),
        ("扣分 无名氏 5 投诉", "没有找到主播「无名氏」"),
        ("取消资格 王小文", "取消资格需要写明理由"),
        ("恢复 王小文", "参赛资格正常，无需重复操作"),
        ("撤销 扣分7", "没有找到扣分7"),
        ("驳回 扣分1 x", "扣分记录不需要审核"),
        ("扣分 王小文", "格式：扣分 主播 分数 理由"),
        ("恢复", "格式：恢复 主播"),
    ],
)
async def test_bad_penalties_change_nothing(client: TestClient, command: str, answer: str) -> None:
    assert answer in await chat_of(client).last(ORG, command)
    assert await rows(client, Deduction) == [] and await rows(client, AuditLog) == []


async def test_disqualification_takes_a_streamer_out_until_reinstated(client: TestClient) -> None:
    await add(client, report(1, 5, "5000"))
    chat = chat_of(client)
    reply = await chat.last(ORG, "取消资格 wxw 经核实存在刷单")
    assert reply.startswith("已取消王小文（报名1）的参赛资格")
    board = await chat.last(ORG, "榜单")
    assert board_order(board, "新秀组") == ["李四"] and "取消资格：王小文（报名1）" in board
    assert (await rows(client, Registration))[0].disqualified_reason == "经核实存在刷单"
    assert "已恢复王小文（报名1）的参赛资格" in await chat.last(ORG, "恢复 报名1")
    assert board_order(await chat.last(ORG, "榜单"), "新秀组") == ["王小文", "李四"]
    texts = [m["text"] for m in await outbox(client)]
    assert "参赛资格已被取消。理由：经核实存在刷单" in texts[0] and "参赛资格已恢复" in texts[1]


async def test_team_and_unit_rankings(client: TestClient) -> None:
    chat = chat_of(client)
    created = await sign_up(
        chat, "u3", *demo_answers("王五", "13812345670", "ww", team=("2", "星火队"))
    )
    code = re.search(r"邀请码：(\w{6})", created)
    assert code is not None
    await sign_up(chat, "u4", *demo_answers("赵六", "13812345671", "zl", team=("3", code.group(1))))
    await add(client, report(3, 5, "3000"), report(4, 5, "2000"), report(1, 5, "1000"))
    teams = await chat.last(ORG, "团队榜")
    assert "1. 星火队" in teams and "2人计入" in teams
    units = await chat.last(ORG, "单位榜")
    assert units.splitlines()[1].startswith("1. 演示团县委") and "主播4人" in units


async def test_organizers_of_a_bound_group(
    aiohttp_client: AiohttpClient, db_url: str, clock: FrozenClock, all_campaigns: Campaigns
) -> None:
    demo = all_campaigns["demo"]
    campaign = demo.model_copy(
        update={"organizers": demo.organizers.model_copy(update={"group_members": True})}
    )
    client = await make_client(aiohttp_client, db_url, clock, {"demo": campaign})
    await add(client, BoundGroup(channel="web", chat_id="oc_1", campaign_id="demo",
                                 bound_by="web:organizer", created_at=clock.now()))  # fmt: skip
    chat = chat_of(client)
    assert "待审核 0 项" in (await chat.say("staff", "审核", chat_id="oc_1"))[0]
    assert (await chat.say("staff", "审核", chat_id="oc_2"))[0].startswith("无权限")
    assert (await chat.say("staff", "审核"))[0].startswith("无权限")


# Exports -------------------------------------------------------------------------------------
def link_of(text: str) -> str:
    match = re.search(r"http://127\.0\.0\.1:8080(/exports/\S+)", text)
    assert match is not None, text
    return match.group(1)


async def test_export_link_serves_the_roster_and_expires(
    client: TestClient, clock: FrozenClock
) -> None:
    chat = chat_of(client)
    await add(client, report(1, 5, "5000", viewers=2000), report(1, 6, "1000", refunds="100"))
    reply = await chat.last(ORG, "导出")
    assert "报名表（Excel）下载链接，2024年9月9日 10:00前有效" in reply
    # The campaign by its id, typed full-width as a Chinese keyboard may: the same link.
    assert link_of(await chat.last(ORG, "导出 ｄｅｍｏ")) == link_of(reply)
    path = link_of(reply)
    response = await client.get(path)
    assert response.status == 200
    assert response.content_type.endswith("spreadsheetml.sheet")
    assert "filename*=UTF-8''demo-" in response.headers["Content-Disposition"]
    sheet = load_workbook(BytesIO(await response.read())).active
    assert sheet is not None
    headers = [c.value for c in sheet[1]]
    assert headers[:8] == [
        "序号",
        "报名编号",
        "姓名",
        "达人账号名",
        "平台",
        "联系电话",
        "粉丝量",
        "获赞量",
    ]
    for seed_column in ("直播累计销量(单)", "直播累计销售额(元)", "平均客单价(元)", "dou+消耗",
                        "转化率", "主要直播品类", "参赛组", "推荐单位", "团队", "状态"):  # fmt: skip
        assert seed_column in headers
    row = dict(zip(headers, [c.value for c in sheet[2]], strict=True))
    assert (row["姓名"], row["联系电话"], row["粉丝量"], row["参赛组"]) == (
        "王小文",
        "13812345678",
        8000,
        "新秀组",
    )
    assert (row["推荐单位"], row["状态"], row["获赞量"]) == ("演示团县委", "已通过", 1000)
    assert row["直播累计销售额(元)"] == 6000 and row["平均客单价(元)"] == 300
    assert isinstance(row["报名时间"], datetime)
    assert sheet.freeze_panes == "A2"
    assert sheet.max_row == 3

    assert (await client.get(path.replace("sig=", "sig=0"))).status == 403
    assert (await client.get(path.split("&sig=")[0] + "&sig=签名")).status == 403
    assert (await client.get(path.split("?")[0])).status == 403
    assert (await client.get(path.replace("registrations", "filings"))).status == 403
    assert (await client.get("/exports/demo/secrets.xlsx")).status == 404
    clock.advance(timedelta(hours=25))
    expired = await client.get(path)
    assert expired.status == 403 and "获取新的链接" in await expired.text()
    assert [(a.action, a.target_type) for a in await rows(client, AuditLog)] == [
        ("export", "registrations"),
        ("export", "registrations"),  # the link asked for twice
    ]


@pytest.mark.parametrize(
    ("word", "sheet", "header"),
    [
        ("报备", "报备", "报备编号"),
        ("战报", "战报", "净成交额(元)"),
        ("作品", "作品", "作品编号"),
        ("榜单", "榜单", "综合得分"),
        ("奖项", "奖项", "奖金(元)"),
        ("单位榜", "单位榜", "推荐单位"),
        ("团队榜", "团队榜", "团队"),
    ],
)
async def test_every_export_in_chat(client: TestClient, word: str, sheet: str, header: str) -> None:
    reply = await chat_of(client).last(ORG, f"导出 {word}")
    response = await client.get(link_of(reply))
    assert response.status == 200
    book = load_workbook(BytesIO(await response.read()))
    assert book.sheetnames == [sheet]
    assert header in [c.value for c in book[sheet][1]]
