"""WeCom group robots as digest targets, over real HTTP to a loopback robot webhook, delivered
through the outbox worker (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient, AiohttpServer
from sqlmodel import select

from bot.app import create_app
from bot.clock import FrozenClock
from bot.digest import publish
from bot.keys import DATABASE, SENDERS
from bot.outbox_worker import OutboxWorker
from bot.senders.wecom import WeComRobotSender
from config.campaign import Campaign, OrganizerGroups, Robot
from storage.db import Database
from storage.models import Outbox
from storage.outbox import enqueue
from tests.fakes.wecom_robot import FakeRobot
from tests.helpers import Campaigns, chat_of, settings_for

KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
URL_ENV = "TEST_WECOM_ORGANIZERS_URL"
# 演示赛 sign-up: name, mobile, age, identity, platform, handle, fans, sales, unit, team, pledge
DEMO_SIGNUP = [
    *("王小文", "13812345678", "25", "电商从业者", "抖音", "wxw", "2万", "5000"),
    *("1", "1", "同意", "确认"),
]


@pytest.fixture
def campaign(all_campaigns: Campaigns) -> Campaign:
    robots = OrganizerGroups(wecom_robots=[Robot(name="组委会群", url_env=URL_ENV)])
    return all_campaigns["demo"].model_copy(update={"organizer_groups": robots})


class Minute:
    """Monotonic seconds that move only when the test says (shared by sender and robot)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def minute() -> Minute:
    return Minute()


@pytest.fixture
async def robot(
    aiohttp_server: AiohttpServer, minute: Minute
) -> AsyncIterator[tuple[FakeRobot, str]]:
    fake = FakeRobot(keys={KEY}, now=minute)
    server = await aiohttp_server(fake.app())
    yield fake, f"http://127.0.0.1:{server.port}/cgi-bin/webhook/send?key={KEY}"


@pytest.fixture
async def sender(
    campaign: Campaign, robot: tuple[FakeRobot, str], minute: Minute
) -> AsyncIterator[WeComRobotSender]:
    wecom = WeComRobotSender({campaign.id: campaign}, env={URL_ENV: robot[1]}, monotonic=minute)
    yield wecom
    await wecom.close()


def digest_text(lines: int) -> str:
    rows = "\n".join(
        f"{i}. 王*文{i}  {100 - i * 0.1:.1f}分  净成交{i}.5万元" for i in range(1, lines + 1)
    )
    return f"## 演示赛 战况播报\n> 截至 9月8日 21:00\n**新秀组**\n{rows}"


def queue(
    db: Database, clock: FrozenClock, campaign: Campaign, key: str, text: str, **payload: str
) -> None:
    db.run_sync(
        lambda s: enqueue(
            s,
            key=key,
            channel="wecom",
            recipient="组委会群",
            kind="digest",
            text=text,
            now=clock.now(),
            campaign_id=campaign.id,
            payload=dict(payload),
        )
    )


def rows(db: Database) -> list[Outbox]:
    return db.run_sync(lambda s: list(s.exec(select(Outbox).order_by(Outbox.id))))


async def test_a_long_markdown_digest_arrives_in_pieces_split_between_lines(
    db: Database,
    clock: FrozenClock,
    campaign: Campaign,
    robot: tuple[FakeRobot, str],
    sender: WeComRobotSender,
) -> None:
    fake, _url = robot
    text = digest_text(200)
    assert len(text.encode()) > 2 * 4096
    queue(db, clock, campaign, "digest:demo:wecom:1", text)
    await OutboxWorker(db, {"wecom": sender}, clock).run_once()
    pieces = fake.markdown(KEY)
    assert len(pieces) == 3 and all(len(p.encode()) <= 4096 for p in pieces)
    assert "\n".join(pieces) == text  # nothing lost, no line cut
    [row] = rows(db)
    assert row.status == "sent"


async def test_at_most_20_a_minute_then_the_rest_waits_for_the_window(
    db: Database,
    clock: FrozenClock,
    campaign: Campaign,
    robot: tuple[FakeRobot, str],
    sender: WeComRobotSender,
    minute: Minute,
) -> None:
    fake, _url = robot
    for i in range(23):
        queue(db, clock, campaign, f"notice:{i}", f"第{i}条")
    worker = OutboxWorker(db, {"wecom": sender}, clock)
    await worker.run_once()
    assert len(fake.markdown(KEY)) == 20 and 45009 not in fake.refused  # never over the limit
    waiting = [r for r in rows(db) if r.status == "pending"]
    assert len(waiting) == 3 and all(r.next_attempt_at > clock.now() for r in waiting)
    await worker.run_once()
    assert len(fake.markdown(KEY)) == 20  # not due yet
    clock.advance(timedelta(seconds=61))
    minute.t += 61
    await worker.run_once()
    assert len(fake.markdown(KEY)) == 23
    assert all(r.status == "sent" for r in rows(db))


async def test_a_failure_is_retried_and_recorded(
    db: Database,
    clock: FrozenClock,
    campaign: Campaign,
    robot: tuple[FakeRobot, str],
    sender: WeComRobotSender,
) -> None:
    fake, _url = robot
    fake.fail_next(-1)  # WeCom's "system busy"
    queue(db, clock, campaign, "digest:demo:wecom:2", digest_text(3))
    worker = OutboxWorker(db, {"wecom": sender}, clock)
    await worker.run_once()
    [row] = rows(db)
    assert row.status == "pending" and row.attempts == 1 and "-1" in (row.last_error or "")
    clock.advance(timedelta(minutes=5))
    await worker.run_once()
    [row] = rows(db)
    assert row.status == "sent" and len(fake.markdown(KEY)) == 1


async def test_a_piece_accepted_before_a_failure_is_not_sent_again(
    db: Database,
    clock: FrozenClock,
    campaign: Campaign,
    robot: tuple[FakeRobot, str],
    sender: WeComRobotSender,
) -> None:
    fake, _url = robot
    text = digest_text(200)
    queue(db, clock, campaign, "digest:demo:wecom:3", text)
    fake.fail_at(1, -1)  # the second piece fails once
    worker = OutboxWorker(db, {"wecom": sender}, clock)
    await worker.run_once()
    clock.advance(timedelta(minutes=5))
    await worker.run_once()
    assert "\n".join(fake.markdown(KEY)) == text  # the first piece went once
    assert fake.refused == [-1]


async def test_a_bad_robot_key_is_given_up_and_a_missing_url_is_named(
    db: Database,
    clock: FrozenClock,
    campaign: Campaign,
    robot: tuple[FakeRobot, str],
    minute: Minute,
) -> None:
    _fake, url = robot
    wrong = WeComRobotSender(
        {campaign.id: campaign}, env={URL_ENV: url.replace(KEY, "nope")}, monotonic=minute
    )
    unset = WeComRobotSender({campaign.id: campaign}, env={}, monotonic=minute)
    queue(db, clock, campaign, "digest:demo:wecom:4", "榜单")
    await OutboxWorker(db, {"wecom": wrong}, clock).run_once()
    [row] = rows(db)
    assert row.status == "dead" and "93000" in (row.last_error or "")
    queue(db, clock, campaign, "digest:demo:wecom:5", "榜单")
    await OutboxWorker(db, {"wecom": unset}, clock).run_once()
    assert URL_ENV in (rows(db)[1].last_error or "")
    await wrong.close()
    await unset.close()


async def test_a_chart_goes_as_an_image_with_its_md5(
    db: Database,
    clock: FrozenClock,
    campaign: Campaign,
    robot: tuple[FakeRobot, str],
    sender: WeComRobotSender,
    tmp_path: Path,
) -> None:
    fake, _url = robot
    chart = tmp_path / "board.png"
    chart.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    queue(db, clock, campaign, "digest:demo:wecom:6", digest_text(2), image_path=str(chart))
    await OutboxWorker(db, {"wecom": sender}, clock).run_once()
    kinds = [m["msgtype"] for m in fake.received[KEY]]
    assert kinds == ["image", "markdown"] and not fake.refused


async def test_the_campaign_digest_reaches_its_robot_as_markdown_and_chart(
    aiohttp_client: AiohttpClient,
    db_url: str,
    clock: FrozenClock,
    campaign: Campaign,
    robot: tuple[FakeRobot, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The app registers the WeCom sender; the robot's URL comes from the environment."""
    fake, url = robot
    monkeypatch.setenv(URL_ENV, url)
    client = await aiohttp_client(
        create_app(settings_for(db_url), clock=clock, campaigns={campaign.id: campaign})
    )
    app = client.server.app
    await chat_of(client).run("u1", "报名", *DEMO_SIGNUP)
    now = clock.now()
    published = await publish(app[DATABASE], campaign, now, 5, now, charts_dir=tmp_path)
    assert published is not None and ("wecom", "组委会群") in published.recipients
    await OutboxWorker(app[DATABASE], app[SENDERS], clock).run_once()
    assert [m["msgtype"] for m in fake.received[KEY]] == ["image", "markdown"]
    [markdown] = fake.markdown(KEY)
    assert markdown.startswith("## 战况播报 · 演示赛")
    assert "**达人组**\n1. 王" in markdown  # the masked name, ranked
