"""排名 through the real dispatcher, router and database (SQLite and PostgreSQL), over rows built
directly in the database; plus the leaderboard, team and unit rankings those rows give."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from sqlalchemy import delete
from sqlmodel import Session

from bot.clock import FrozenClock
from bot.keys import CAMPAIGNS, CLOCK, DATABASE
from config.campaign import Campaign, Metric, Scoring
from config.campaign import Registration as RegistrationRules
from storage.leaderboard import compute_leaderboard, team_ranking, unit_ranking
from storage.models import Deduction, Registration, ScoringBasis, StreamReport, Team, Video
from tests.conftest import shanghai
from tests.helpers import Campaigns, chat_of, make_client, only

LITONG = "litong-2024"


# Factories: rows as the filing, report and video flows and imports would leave them -------------
def streamer(session: Session, campaign: str, user: str, name: str, **kw: Any) -> Registration:
    at = shanghai(2024, 9, 8, 10, 0)
    number = sum(ord(ch) for ch in user) % 10_000_000
    fields: dict[str, Any] = {
        "campaign_id": campaign,
        "channel": "web",
        "user_id": user,
        "name": name,
        "mobile": kw.pop("mobile", f"139{number:08d}"),
        "age": 25,
        "identity": "电商从业者",
        "platform": "抖音",
        "handle": f"{user}_live",
        "fans": 5000,
        "past_sales": Decimal(0),
        "group_key": "rookie",
        "status": "approved",
        "pledged_at": at,
        "created_at": at,
        "updated_at": at,
        **kw,
    }
    reg = Registration(**fields)
    session.add(reg)
    session.flush()
    return reg


def report(session: Session, reg: Registration, day: date, **kw: Any) -> None:
    at = shanghai(2024, 9, 20, 22, 0)
    values = {"status": "unverified", "source": "self", "created_at": at, "updated_at": at, **kw}
    for money in ("gmv", "refunds"):
        values[money] = Decimal(str(values.get(money, 0)))
    session.add(
        StreamReport(campaign_id=reg.campaign_id, registration_id=reg.id, stream_date=day, **values)
    )


def video(session: Session, reg: Registration, n: int, **kw: Any) -> None:
    session.add(
        Video(
            campaign_id=reg.campaign_id,
            registration_id=reg.id,
            url=f"https://v.douyin.com/{n}/",
            url_key=f"douyin:{n}",
            created_at=shanghai(2024, 9, 20, 22, 0),
            **kw,
        )
    )


def deduct(session: Session, reg: Registration, points: float, *, revoked: bool = False) -> None:
    at = shanghai(2024, 9, 20, 22, 0)
    session.add(
        Deduction(
            campaign_id=reg.campaign_id,
            registration_id=reg.id,
            points=points,
            reason="投诉",
            actor="web:organizer",
            created_at=at,
            revoked_at=at if revoked else None,
        )
    )


def seed_litong(session: Session) -> dict[str, Registration]:
    """Three rookies in 利通's 遇见利通 phase (2024-09-12..30). 利通 scores net_gmv 80,
    stream_hours 10, viewers 10. Expected: 王小文 90, 李四 44.5, 张三丰 28.5."""
    wang = streamer(session, LITONG, "u-wang", "王小文", mobile="13800000001")
    li = streamer(session, LITONG, "u-li", "李四", mobile="13800000002")
    zhang = streamer(session, LITONG, "u-zhang", "张三丰", mobile="13800000003")
    report(session, wang, date(2024, 9, 13), gmv=6000, minutes=60, viewers=600)
    report(session, wang, date(2024, 9, 14), gmv=4000, minutes=60, viewers=400, status="confirmed")
    report(session, li, date(2024, 9, 13), gmv=5000, refunds=1000, minutes=240, viewers=500)
    report(session, zhang, date(2024, 9, 15), gmv=2000, minutes=60, viewers=2000)
    # None of these count: replaced by an import, rejected, or outside every scoring phase.
    report(session, zhang, date(2024, 9, 15), gmv=90_000, minutes=600, status="superseded")
    report(session, zhang, date(2024, 9, 16), gmv=90_000, minutes=600, status="rejected")
    report(session, zhang, date(2024, 9, 5), gmv=90_000, minutes=600)
    return {"wang": wang, "li": li, "zhang": zhang}


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient, db_url: str, clock: FrozenClock, all_campaigns: Campaigns
) -> TestClient:
    clock.set(shanghai(2024, 9, 20, 21, 0))  # inside 遇见利通, the first competition phase
    return await make_client(aiohttp_client, db_url, clock, only(all_campaigns, LITONG))


async def seed(client: TestClient, build: Any) -> Any:
    return await client.server.app[DATABASE].run(build)


async def test_not_signed_up_gets_a_hint(client: TestClient) -> None:
    [reply] = await chat_of(client).say("nobody", "排名")
    assert "还没有报名" in reply and "「报名」" in reply


async def test_rank_score_breakdown_gap_and_top_three(client: TestClient) -> None:
    await seed(client, seed_litong)
    [reply] = await chat_of(client).say("u-li", "排名")
    assert "我在利通带好货·第一期 · 新秀组" in reply
    assert "第2名/共3名　综合得分 44.50" in reply
    assert "距第1名还差 45.50 分" in reply
    assert "· 带货成交额（扣除退款）：32.00分（4000元）" in reply
    assert "· 直播时长：10.00分（4.0小时）" in reply
    assert "· 观看人数：2.50分（500）" in reply
    assert "直播：1天、1场，共4.0小时" in reply
    assert "1. 王*文 90.00分\n2. 李*（你） 44.50分\n3. 张*丰 28.50分" in reply
    assert "王小文" not in reply and "张三丰" not in reply
    # 利通 has several competition phases, each with its own prizes: the running one is shown
    assert "本阶段「“遇见利通 共享好物”直播带货比赛」：第2名/共3名，得分 44.50" in reply


async def test_the_leader_and_equal_scores(client: TestClient) -> None:
    def build(session: Session) -> None:
        seed_litong(session)
        twin = streamer(session, LITONG, "u-twin", "赵六", mobile="13800000004")
        report(session, twin, date(2024, 9, 15), gmv=2000, minutes=60, viewers=2000)

    await seed(client, build)
    chat = chat_of(client)
    assert "你目前排名第一，继续保持！" in (await chat.say("u-wang", "排名"))[0]
    # 赵六 equals 张三丰 in everything; 张三丰 registered first
    reply = (await chat.say("u-twin", "排名"))[0]
    assert "第4名/共4名" in reply
    assert "与第3名同分（同分时依次比较净成交额、直播天数、报名先后）" in reply


async def test_deductions_and_disqualification(client: TestClient) -> None:
    def build(session: Session) -> None:
        regs = seed_litong(session)
        deduct(session, regs["li"], 5)
        deduct(session, regs["li"], 30, revoked=True)
        regs["wang"].disqualified_reason = "刷单"
        session.add(regs["wang"])

    await seed(client, build)
    chat = chat_of(client)
    reply = (await chat.say("u-wang", "排名"))[0]
    assert "你的参赛资格已被取消（原因：刷单）" in reply and "不参与排名和评奖" in reply
    reply = (await chat.say("u-li", "排名"))[0]
    # 王小文 is out and sets no best: 李四 80 (net GMV) + 10 (hours) + 2.5 (viewers) − 5
    assert "第1名/共2名　综合得分 87.50" in reply
    assert "· 扣分：-5分" in reply
    assert "王*文" not in reply


async def test_waiting_for_review_is_told(
    aiohttp_client: AiohttpClient, db_url: str, clock: FrozenClock, all_campaigns: Campaigns
) -> None:
    clock.set(shanghai(2024, 9, 20, 21, 0))
    litong = all_campaigns[LITONG]
    reviewed = litong.model_copy(update={"registration": RegistrationRules(review=True)})
    client = await make_client(aiohttp_client, db_url, clock, {LITONG: reviewed})
    await seed(client, lambda s: streamer(s, LITONG, "u-new", "钱七", status="pending"))
    reply = (await chat_of(client).say("u-new", "排名"))[0]
    assert "你的报名正在审核，审核通过后才会计入排名" in reply


async def test_no_figures_yet(client: TestClient) -> None:
    await seed(client, lambda s: streamer(s, LITONG, "u-new", "钱七"))
    reply = (await chat_of(client).say("u-new", "排名"))[0]
    assert "第1名/共1名　综合得分 0.00" in reply
    assert "还没有计入排名的数据" in reply
    assert "大家都还没有成绩" in reply and "继续保持" not in reply


async def test_ranking_mid_conversation_is_answered_then_the_question_again(
    client: TestClient,
) -> None:
    await seed(client, seed_litong)
    chat = chat_of(client)
    assert "请核对" in (await chat.say("u-li", "修改报名"))[-1]
    replies = await chat.say("u-li", "排名")
    assert "第2名/共3名" in replies[0]
    assert "继续「修改报名」" in replies[1] and "请核对" in replies[2]


async def test_several_live_campaigns_each_get_a_standing(
    aiohttp_client: AiohttpClient, db_url: str, clock: FrozenClock, all_campaigns: Campaigns
) -> None:
    clock.set(shanghai(2024, 9, 20, 21, 0))
    client = await make_client(aiohttp_client, db_url, clock, only(all_campaigns, LITONG, "demo"))

    def build(session: Session) -> None:
        seed_litong(session)
        demo = streamer(session, "demo", "u-li", "李四", group_key="expert")
        report(session, demo, date(2024, 9, 18), gmv=100, minutes=90)

    await seed(client, build)
    replies = await chat_of(client).say("u-li", "排名")
    assert len(replies) == 2
    assert "我在利通带好货·第一期 · 新秀组" in replies[0]
    assert "演示赛 · 达人组" in replies[1] and "第1名/共1名" in replies[1]


async def test_short_video_contest_ranks_by_video_metrics(
    aiohttp_client: AiohttpClient, db_url: str, clock: FrozenClock, all_campaigns: Campaigns
) -> None:
    clock.set(shanghai(2024, 9, 20, 21, 0))
    videos_only = Scoring(
        metrics=[
            Metric(key="video_views", weight=60, label="播放量"),
            Metric(key="video_shares", weight=40, label="转发量"),
        ]
    )
    campaign = all_campaigns[LITONG].model_copy(update={"scoring": videos_only})
    client = await make_client(aiohttp_client, db_url, clock, {LITONG: campaign})

    def build(session: Session) -> None:
        a = streamer(session, LITONG, "u-a", "周小一", mobile="13800000011")
        b = streamer(session, LITONG, "u-b", "吴小二", mobile="13800000012")
        video(session, a, 1, views=1000, shares=10)
        video(session, a, 2, views=9000, shares=900, status="flagged")  # claimed twice: not yet
        video(session, b, 3, views=300, shares=20, status="review")
        video(session, b, 4, views=200, shares=20)
        video(session, b, 5, views=99_000, status="rejected")

    await seed(client, build)
    reply = (await chat_of(client).say("u-b", "排名"))[0]
    # 周小一: 60 + 40×10/40 = 70; 吴小二: 60×500/1000 + 40 = 70; equal: the earlier registration
    assert "第2名/共2名　综合得分 70.00" in reply
    assert "· 播放量：30.00分（500）" in reply and "· 转发量：40.00分（40）" in reply
    assert "作品：2条" in reply and "直播：" not in reply


# The storage API that the digest, exports and organizer commands use -----------------------
async def test_leaderboard_and_team_ranking(client: TestClient) -> None:
    campaign: Campaign = client.server.app[CAMPAIGNS][LITONG]

    def build(session: Session) -> None:
        team = Team(
            campaign_id=LITONG, name="利通之星", code="ABC234", created_at=shanghai(2024, 9, 8)
        )
        empty = Team(
            campaign_id=LITONG, name="空队", code="XYZ789", created_at=shanghai(2024, 9, 8)
        )
        session.add_all([team, empty])
        session.flush()
        regs = seed_litong(session)
        regs["wang"].team_id = regs["li"].team_id = team.id
        regs["zhang"].group_key = "expert"
        session.add_all(regs.values())

    await seed(client, build)
    now = client.server.app[CLOCK].now()

    def read(session: Session) -> Any:
        board = compute_leaderboard(session, campaign, now)
        return board, team_ranking(session, campaign, now, board=board)

    board, teams = await seed(client, read)
    rookies, experts = board.groups
    assert [(e.display_name, e.rank, e.score) for e in rookies.entries] == [
        ("王*文", 1, 95.0),  # 80 + 10×2/4 + 10×1000/1000
        ("李*", 2, 47.0),  # 80×4000/10000 + 10 + 10×500/1000
    ]
    assert [(e.display_name, e.rank, e.score) for e in experts.entries] == [("张*丰", 1, 100.0)]
    li = rookies.entries[1]
    assert li.metrics["net_gmv"] == 4000 and li.metrics["gmv"] == 5000
    assert li.metrics["stream_days"] == 1 and li.metrics["stream_hours"] == 4
    assert li.breakdown == pytest.approx({"net_gmv": 32, "stream_hours": 10, "viewers": 5})
    assert [(t.rank, t.name, t.score, t.members, t.net_gmv) for t in teams] == [
        (1, "利通之星", 142.0, 2, 14000.0),
        (2, "空队", 0.0, 0, 0.0),
    ]
    assert board.updated_at == now


async def test_unit_ranking_formula(
    aiohttp_client: AiohttpClient, db_url: str, clock: FrozenClock, all_campaigns: Campaigns
) -> None:
    """江西 ranks its recommending units (优秀组织奖): streamers 30, net_gmv 40, top-N 30."""
    clock.set(shanghai(2020, 11, 10, 21, 0))
    jiangxi = all_campaigns["jiangxi-2020"]
    client = await make_client(aiohttp_client, db_url, clock, {jiangxi.id: jiangxi})

    def build(session: Session) -> Any:
        day = date(2020, 11, 1)
        for n in range(3):  # 南昌: three streamers, small sales
            reg = streamer(
                session,
                jiangxi.id,
                f"nc{n}",
                f"南昌{n}号",
                group_key="main",
                unit_key="jx-nanchang",
            )
            report(session, reg, day, gmv=100, minutes=60)
        big = streamer(
            session, jiangxi.id, "jj0", "九江一号", group_key="main", unit_key="jx-jiujiang"
        )
        report(session, big, day, gmv=6000, minutes=60)
        cheat = streamer(
            session,
            jiangxi.id,
            "jj1",
            "九江二号",
            group_key="main",
            unit_key="jx-jiujiang",
            disqualified_reason="刷单",
        )
        report(session, cheat, day, gmv=99_000, minutes=600)
        return unit_ranking(session, jiangxi, clock.now())

    units = await seed(client, build)
    top = {u.unit_key: u for u in units[:2]}
    # 九江: 1 streamer (of best 3) → 10, 6000 net (best) → 40, 1 in top 38 (of best 3) → 10 = 60
    # 南昌: 3 streamers → 30, 300 net → 2, 3 in top 38 → 30 = 62
    assert [u.unit_key for u in units[:2]] == ["jx-nanchang", "jx-jiujiang"]
    assert (top["jx-nanchang"].score, top["jx-nanchang"].streamers, top["jx-nanchang"].top_n) == (
        62.0,
        3,
        3,
    )
    assert (top["jx-jiujiang"].score, top["jx-jiujiang"].streamers, top["jx-jiujiang"].net_gmv) == (
        60.0,
        1,
        6000.0,
    )
    assert all(u.score == 0 for u in units[2:]) and len(units) == len(jiangxi.units)


async def test_equal_amounts_tie_whatever_the_float_sums(client: TestClient) -> None:
    """0.1 + 0.2 yuan and 0.15 + 0.15 yuan are the same net GMV: more streaming days decide."""
    campaign: Campaign = client.server.app[CAMPAIGNS][LITONG]
    now = client.server.app[CLOCK].now()

    def build(session: Session) -> Any:
        a = streamer(session, LITONG, "u-a", "周小一", mobile="13800000011")
        b = streamer(session, LITONG, "u-b", "吴小二", mobile="13800000012")
        report(session, a, date(2024, 9, 13), gmv=0.1, minutes=30)
        report(session, a, date(2024, 9, 13), gmv=0.2, minutes=30)
        report(session, b, date(2024, 9, 13), gmv=0.15, minutes=30)
        report(session, b, date(2024, 9, 14), gmv=0.15, minutes=30)
        session.flush()
        return compute_leaderboard(session, campaign, now)

    [rookies, _] = (await seed(client, build)).groups
    assert [(e.name, e.rank, e.score, e.metrics["net_gmv"]) for e in rookies.entries] == [
        ("吴小二", 1, 90.0, 0.3),
        ("周小一", 2, 90.0, 0.3),
    ]


async def test_the_board_from_report_totals_is_the_board_from_the_reports(
    client: TestClient,
) -> None:
    """The app keeps report_totals from start-up on; without a stored basis the board sums the
    reports itself. Both give exactly the same board, for writers and readers alike."""
    campaign = client.server.app[CAMPAIGNS][LITONG]
    now = client.server.app[CLOCK].now()

    def build(session: Session) -> None:
        regs = seed_litong(session)
        for n in range(7):  # more streamers, some with figures
            extra = streamer(session, LITONG, f"u-x{n}", f"测试{n}号")
            if n % 2:
                report(session, extra, date(2024, 9, 15), gmv=1000 * n, minutes=60, viewers=100)
        deduct(session, regs["li"], 3)

    await seed(client, build)
    board = lambda s: [  # noqa: E731
        (g.key, [(e.registration_id, e.rank, e.score, e.values, e.points) for e in g.entries])
        for g in compute_leaderboard(s, campaign, now).groups
    ]
    db = client.server.app[DATABASE]
    from_totals = await db.run(board, read_only=True)
    await db.run(lambda s: s.execute(delete(ScoringBasis)))
    assert await db.run(board) == await db.run(board, read_only=True) == from_totals
    assert sum(len(entries) for _key, entries in from_totals) == 10
