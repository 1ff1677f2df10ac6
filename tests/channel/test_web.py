"""The web/dev channel over real HTTP."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from bot.clock import FrozenClock
from tests.helpers import Campaigns, litong_answers, make_client, only, settings_for


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient, db_url: str, clock: FrozenClock, all_campaigns: Campaigns
) -> TestClient:
    return await make_client(aiohttp_client, db_url, clock, only(all_campaigns, "litong-2024"))


async def say(client: TestClient, user: str, text: str) -> list[str]:
    response = await client.post("/dev/messages", json={"user": user, "text": text})
    assert response.status == 200
    return [r["text"] for r in (await response.json())["replies"]]


async def test_healthz_and_campaigns(client: TestClient) -> None:
    health = await client.get("/healthz")
    assert health.status == 200 and (await health.json())["status"] == "ok"
    [campaign] = await (await client.get("/api/campaigns")).json()
    assert campaign["id"] == "litong-2024"
    assert {"key", "name", "kind", "start", "end"} <= set(campaign["phases"][0])
    assert campaign["phases"][0]["start"].startswith("2024-09-06T00:00:00+08:00")
    assert [g["name"] for g in campaign["groups"]] == ["新秀组", "达人组"]


async def test_signup_over_http(client: TestClient) -> None:
    assert "第1步" in (await say(client, "u1", "报名"))[-1]
    reply = []
    for text in litong_answers("王小文", "13812345678", "2万", "5000元"):
        reply = await say(client, "u1", text)
    assert "达人组" in reply[-1]
    response = await client.post("/dev/messages", json={"user": "u1", "text": "我的"})
    assert "达人组" in (await response.json())["replies"][0]["text"]


async def test_choices_come_numbered_in_text_and_as_a_list(client: TestClient) -> None:
    for text in ["报名", "王小文", "13812345678", "25"]:
        response = await client.post("/dev/messages", json={"user": "u1", "text": text})
    [reply] = (await response.json())["replies"]
    assert reply["choices"][0] == "在校大学生"
    assert "1. 在校大学生" in reply["text"]


async def test_scan_event(client: TestClient) -> None:
    body = {"user": "u1", "event": {"type": "scan", "scene": "litong-2024"}}
    response = await client.post("/dev/messages", json=body)
    assert "第1步" in (await response.json())["replies"][-1]["text"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "JSON"),
        (b"[1, 2]", "object"),
        (b'{"text": "hi"}', "user"),
        (b'{"user": "", "text": "hi"}', "user"),
        (b'{"user": 5, "text": "hi"}', "user"),
        (b'{"user": "u1"}', "exactly one"),
        (b'{"user": "u1", "text": 5}', "string"),
        (b'{"user": "u1", "text": "x", "event": {"type": "scan"}}', "exactly one"),
        (b'{"user": "u1", "event": {"type": "boom"}}', "type"),
        (b'{"user": "u1", "event": "scan"}', "type"),
        (b'{"user": "u1", "event": {"type": "scan", "scene": 5}}', "strings"),
        (b'{"user": "u1", "event": {"type": "click"}}', "key"),
        ("\xff\xfe".encode("latin-1"), "JSON"),
    ],
)
async def test_malformed_requests_get_400_with_a_reason(
    client: TestClient, body: bytes, reason: str
) -> None:
    response = await client.post(
        "/dev/messages", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert reason in (await response.json())["error"]


async def test_oversized_body_is_refused(client: TestClient) -> None:
    response = await client.post("/dev/messages", data=b"x" * 400_000)
    assert response.status == 413


async def test_dev_endpoints_absent_outside_dev(
    aiohttp_client: AiohttpClient, db_url: str, clock: FrozenClock, all_campaigns: Campaigns
) -> None:
    from bot.app import create_app

    app = create_app(settings_for(db_url, env="prod"), clock=clock, campaigns=all_campaigns)
    client = await aiohttp_client(app)
    assert (await client.post("/dev/messages", json={"user": "u", "text": "x"})).status == 404
    assert (await client.get("/dev/outbox")).status == 404
    # The chat page's endpoint ignores a claimed identity outside dev and signs its own.
    response = await client.post("/api/chat", json={"user": "organizer", "text": "帮助"})
    data = await response.json()
    assert data["user"] != "organizer" and "bot_uid" in response.cookies


async def test_chat_page_keeps_its_identity_by_cookie(client: TestClient) -> None:
    page = await client.get("/")
    assert page.status == 200 and "直播带货赛事助手" in await page.text()
    first = await client.post("/api/chat", json={"text": "报名"})
    user = (await first.json())["user"]
    second = await client.post("/api/chat", json={"text": "王小文"})
    data = await second.json()
    assert data["user"] == user and "第2步" in data["replies"][-1]["text"]


async def test_dev_outbox_lists_proactive_messages(client: TestClient) -> None:
    response = await client.get("/dev/outbox")
    assert response.status == 200 and await response.json() == []


async def test_many_users_at_once_never_see_a_busy_database(client: TestClient) -> None:
    """Thirty streamers sign up at the same time: every one succeeds (no "database is locked")."""

    async def signup(n: int) -> str:
        replies: list[str] = []
        for text in [
            "报名",
            *litong_answers(f"选手{chr(0x4E00 + n)}", f"138{n:08d}", "8000", "300"),
        ]:
            replies = await say(client, f"user{n}", text)
        return replies[-1]

    results = await asyncio.gather(*(signup(n) for n in range(30)))
    assert all("报名成功" in r for r in results), results
