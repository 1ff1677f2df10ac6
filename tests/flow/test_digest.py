"""战况播报 (bot/digest.py) over the real database, SQLite and PostgreSQL: content, recipients,
per-channel rendering, movers between digests, once per period; and the app running its jobs."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from sqlmodel import Session, col, select

from bot import digest
from bot.app import create_app
from bot.clock import FrozenClock
from bot.keys import DATABASE
from config.campaign import Campaign, OrganizerGroups, Organizers, Robot
from storage.db import Database
from storage.models import BoundGroup, DigestSnapshot, Filing, Outbox, StreamReport, Video
from storage.outbox import enqueue
from tests.conftest import shanghai
from tests.helpers import Campaigns, chat_of, litong_answers, make_client, settings_for

PERIOD = shanghai(2024, 9, 13, 21, 0)


@pytest.fixture
def litong(all_campaigns: Campaigns) -> Campaign:
    """利通 第一期 with organizers on every channel the digest goes to."""
    return all_campaigns["litong-2024"].model_copy(
        update={
            "organizers": Organizers(web=["organizer"]),
            "organizer_groups": OrganizerGroups(
                feishu=["oc_config"], wecom_robots=[Robot(name="组委会群", url_env="ROBOT_URL")]
            ),
        }
    )


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient, db_url: str, clock: FrozenClock, litong: Campaign
) -> TestClient:
    client = await make_client(aiohttp_client, db_url, clock, {litong.id: litong})
    chat = chat_of(client)
    await chat.run("u1", "报名", *litong_answers("王小文", "13812345678", "8000", "300"))
    await chat.run("u2", "报名", *litong_answers("李四", "13812345679", "2万", "5000"))
    await chat.run("u3", "报名", *litong_answers("赵六", "13812345670", "5000", "0"))
    return client


def db_of(client: TestClient) -> Database:
    return client.server.app[DATABASE]


async def reg_ids(client: TestClient) -> dict[str, int]:
    from storage.models import Registration

    regs = await db_of(client).run(lambda s: list(s.exec(select(Registration))))
    return {r.user_id: r.id for r in regs if r.id is not None}


async def report(
    client: TestClient,
    rid: int,
    day: date,
    gmv: int,
    *,
    refunds: int = 0,
    status: str = "confirmed",
) -> None:
    at = shanghai(day.year, day.month, day.day, 23, 0)

    def write(session: Session) -> None:
        session.add(
            StreamReport(
                campaign_id="litong-2024",
                registration_id=rid,
                stream_date=day,
                gmv=Decimal(gmv),
                refunds=Decimal(refunds),
                viewers=100,
                minutes=120,
                source="self" if status == "unverified" else "import",
                status=status,
                created_at=at,
                updated_at=at,
            )
        )

    await db_of(client).run(write)


async def outbox(client: TestClient) -> list[Outbox]:
    return await db_of(client).run(
        lambda s: list(
            s.exec(select(Outbox).where(Outbox.kind == "digest").order_by(col(Outbox.id)))
        )
    )


async def publish_due(
    client: TestClient, litong: Campaign, now: datetime, tmp_path: Path, **kw: bool
) -> list[digest.Published]:
    return await digest.enqueue_due(db_of(client), litong, now, charts_dir=tmp_path, **kw)


async def setup_day(client: TestClient) -> dict[str, int]:
    ids = await reg_ids(client)
    day = PERIOD.date()
    await report(client, ids["u1"], day, 1000, refunds=100)
    await report(client, ids["u3"], day, 500)
    await report(client, ids["u2"], day, 20000)
    await report(client, ids["u2"], date(2024, 9, 12), 300, status="unverified")

    def extras(session: Session) -> None:
        start = shanghai(2024, 9, 20, 20, 0)
        session.add(
            Filing(
                campaign_id="litong-2024",
                registration_id=ids["u1"],
                phase_key="meet",
                start_at=start,
                end_at=start + timedelta(hours=2),
                minutes=120,
                platform="抖音",
                venue="利通区电子商务中心",
                status="pending",
                created_at=PERIOD,
                updated_at=PERIOD,
            )
        )
        for rid in (ids["u1"], ids["u3"]):  # one link claimed by two streamers
            session.add(
                Video(
                    campaign_id="litong-2024",
                    registration_id=rid,
                    url="https://v.douyin.com/same/",
                    url_key="douyin:same",
                    status="flagged",
                    created_at=PERIOD - timedelta(hours=1),
                )
            )
        session.add(
            BoundGroup(
                channel="feishu",
                chat_id="oc_bound",
                campaign_id="litong-2024",
                bound_by="o",
                created_at=PERIOD,
            )
        )
        enqueue(
            session,
            key="lost",
            channel="web",
            recipient="x",
            kind="notice",
            text="x",
            now=PERIOD,
            campaign_id="litong-2024",
        )
        session.exec(select(Outbox).where(Outbox.key == "lost")).one().status = "dead"

    await db_of(client).run(extras)
    return ids


async def test_digest_content_recipients_and_channels(
    client: TestClient, litong: Campaign, tmp_path: Path
) -> None:
    await setup_day(client)
    [published] = await publish_due(client, litong, PERIOD + timedelta(minutes=1), tmp_path)
    assert published.added == 4
    rows = {(r.channel, r.recipient): r for r in await outbox(client)}
    assert set(rows) == {
        ("feishu", "oc_bound"),
        ("feishu", "oc_config"),
        ("wecom", "组委会群"),
        ("web", "organizer"),
    }
    text = rows[("web", "organizer")].text
    assert text.startswith("【战况播报 · 我在利通带好货·第一期】2024年9月13日 21:00")
    assert "新秀组 前2名\n1. 王*文" in text and "2. 赵*" in text
    assert "达人组 前1名\n1. 李* 100分 · 带货成交额（扣除退款） 2.03万元" in text
    assert all(n not in text for n in ("王小文", "李四", "赵六"))  # groups see masked names
    assert "今日：直播3场 · 成交额2.14万元 · 新报名0人 · 作品2条" in text
    assert "待审核：报备1 · 作品2 · 战报1（回复「审核」处理）" in text
    assert "同一作品链接被2人提交" in text
    assert "有1条消息多次发送失败" in text
    assert "名次变化：暂无变化" in text

    wecom = rows[("wecom", "组委会群")]
    assert wecom.text.startswith("## 战况播报") and '<font color="warning">' in wecom.text
    assert "1. 王*文 " in wecom.text
    assert digest._md("欧**锋[x](y)") == "欧＊＊锋［x］(y)"  # typed text cannot add markup
    feishu = rows[("feishu", "oc_config")].payload
    assert feishu["digest"]["title"] == "战况播报 · 我在利通带好货·第一期"
    assert [g["name"] for g in feishu["digest"]["groups"]] == ["新秀组", "达人组"]
    assert feishu["digest"]["groups"][0]["entries"][0]["name"] == "王*文"
    chart = Path(feishu["image_path"])
    assert chart.parent == tmp_path and chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert wecom.payload == {"image_path": str(chart)}
    assert rows[("web", "organizer")].payload == {}


async def test_once_per_period_and_movers_since_the_last_one(
    client: TestClient, litong: Campaign, tmp_path: Path
) -> None:
    ids = await setup_day(client)
    assert len(await publish_due(client, litong, PERIOD, tmp_path)) == 1
    assert await publish_due(client, litong, PERIOD + timedelta(minutes=30), tmp_path) == []
    assert await publish_due(client, litong, PERIOD, tmp_path, on_demand=True) == []
    assert len(await outbox(client)) == 4

    await report(client, ids["u3"], date(2024, 9, 14), 5000)  # 赵六 overtakes 王小文
    [second] = await publish_due(client, litong, PERIOD + timedelta(days=1), tmp_path)
    assert "名次变化：赵*（新秀组）第2→1名 ↑1；王*文（新秀组）第1→2名 ↓1" in second.text
    assert "今日：直播1场 · 成交额5000元" in second.text
    snapshots = await db_of(client).run(lambda s: list(s.exec(select(DigestSnapshot))))
    assert len(snapshots) == 2
    assert snapshots[1].ranks == {str(ids["u3"]): 1, str(ids["u1"]): 2, str(ids["u2"]): 1}


async def test_late_digests_are_skipped_unless_asked_for(
    client: TestClient, litong: Campaign, tmp_path: Path
) -> None:
    late = PERIOD + timedelta(hours=2)
    assert await publish_due(client, litong, late, tmp_path) == []  # the sweeper lets it go
    [asked] = await publish_due(client, litong, late, tmp_path, on_demand=True)  # a person asks
    assert asked.period == PERIOD and asked.added == 3  # no group bound in this one


async def test_dry_run_builds_and_writes_nothing(
    client: TestClient, litong: Campaign, tmp_path: Path
) -> None:
    [dry] = await publish_due(client, litong, PERIOD, tmp_path, dry_run=True)
    assert dry.added == 0 and "战况播报" in dry.text and ("web", "organizer") in dry.recipients
    assert await outbox(client) == []
    assert await db_of(client).run(lambda s: s.exec(select(DigestSnapshot)).first()) is None
    assert not list(tmp_path.glob("*.png"))


async def test_no_digest_outside_the_campaign(
    client: TestClient, litong: Campaign, tmp_path: Path
) -> None:
    after = shanghai(2025, 3, 5, 21, 10)
    assert await publish_due(client, litong, after, tmp_path, on_demand=True) == []


async def test_the_app_runs_the_jobs_and_delivers(
    aiohttp_client: AiohttpClient, db_url: str, all_campaigns: Campaigns
) -> None:
    """create_app(jobs=True), as `serve` runs it: the leader sweeps at once, the worker delivers
    the digest to the web organizer, /dev/outbox shows it sent; shutdown is clean."""
    clock = FrozenClock(shanghai(2024, 9, 12, 21, 0, 30))
    demo = all_campaigns["demo"]
    app = create_app(settings_for(db_url), clock=clock, campaigns={"demo": demo}, jobs=True)
    client = await aiohttp_client(app)
    for _ in range(200):
        listed = await (await client.get("/dev/outbox")).json()
        if listed and listed[0]["status"] == "sent":
            break
        await asyncio.sleep(0.05)  # waits for the background tasks, not for time to pass
    [row] = listed
    assert (row["recipient"], row["kind"], row["status"]) == ("organizer", "digest", "sent")
    assert row["text"].startswith("【战况播报 · 演示赛】2024年9月12日 21:00")
