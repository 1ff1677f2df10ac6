"""The public leaderboard over real HTTP (SQLite and PostgreSQL): the JSON
GET /api/campaigns/{id}/leaderboard and the page GET /board/{id}."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import date, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from bot.clock import FrozenClock
from bot.handlers import board as board_handlers
from storage.leaderboard import compute_leaderboard
from storage.models import Registration
from tests.conftest import shanghai
from tests.flow.test_ranking import LITONG, deduct, report, seed, seed_litong, streamer
from tests.helpers import Campaigns, make_client, only

URL = f"/api/campaigns/{LITONG}/leaderboard"
PAGE = f"/board/{LITONG}"


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient, db_url: str, clock: FrozenClock, all_campaigns: Campaigns
) -> TestClient:
    clock.set(shanghai(2024, 10, 3, 21, 0))
    client = await make_client(aiohttp_client, db_url, clock, only(all_campaigns, LITONG))

    def build(session: Session) -> None:
        regs = seed_litong(session)
        regs["zhang"].disqualified_reason = "刷单"
        session.add(regs["zhang"])
        expert = streamer(session, LITONG, "u-big", "欧阳娜娜", group_key="expert")
        report(session, expert, date(2024, 10, 2), gmv=30_000, minutes=120, viewers=9000)

    await seed(client, build)
    return client


async def test_public_board_is_ranked_and_masked(client: TestClient) -> None:
    response = await client.get(URL)
    assert response.status == 200
    assert response.headers["Cache-Control"].startswith("public")
    body = await response.json()
    assert body["campaign"] == LITONG and body["phase"] is None
    assert body["updated_at"] == "2024-10-03T21:00:00+08:00"
    assert [m["key"] for m in body["metrics"]] == ["net_gmv", "stream_hours", "viewers"]
    rookies, experts = body["groups"]
    assert (rookies["key"], rookies["name"]) == ("rookie", "新秀组")
    # 张三丰 is disqualified: not on the public board at all
    assert [(e["rank"], e["display_name"], e["score"]) for e in rookies["entries"]] == [
        (1, "王*文", 95.0),
        (2, "李*", 47.0),
    ]
    [big] = experts["entries"]
    assert (big["rank"], big["display_name"], big["score"]) == (1, "欧**娜", 100.0)
    li = rookies["entries"][1]
    assert set(li) == {
        "rank", "streamer_id", "display_name", "score", "breakdown", "deductions", "metrics",
        "shown",
    }  # fmt: skip
    assert li["metrics"]["net_gmv"] == 4000 and li["metrics"]["stream_hours"] == 4
    assert li["breakdown"] == {"net_gmv": 32.0, "stream_hours": 10.0, "viewers": 5.0}
    # the weighted metrics as people read them, the same as the chat's 排名
    assert li["shown"] == {"net_gmv": "4000元", "stream_hours": "4.0小时", "viewers": "500"}
    assert (rookies["ranked"], experts["ranked"]) == (2, 1)
    assert li["deductions"] == 0


async def test_deductions_show_beside_the_breakdown(client: TestClient) -> None:
    """The score is the breakdown's sum less the deductions: the JSON says both."""

    def penalise(session: Session) -> None:
        deduct(
            session, session.exec(select(Registration).where(Registration.name == "李四")).one(), 10
        )

    await seed(client, penalise)
    body = await (await client.get(URL)).json()
    li = next(e for e in body["groups"][0]["entries"] if e["display_name"] == "李*")
    assert (li["score"], li["deductions"], sum(li["breakdown"].values())) == (37.0, 10.0, 47.0)


@pytest.mark.parametrize("url", [URL, PAGE])
async def test_no_full_name_or_mobile_in_the_body(client: TestClient, url: str) -> None:
    response = await client.get(url)
    assert response.status == 200
    text = await response.text()
    for secret in ("王小文", "李四", "张三丰", "欧阳娜娜", "张*丰", "u-li", "电商从业者"):
        assert secret not in text
    assert re.search(r"1\d{10}", text) is None  # no mobile number


async def test_one_phase(client: TestClient) -> None:
    """?phase=harvest (09-23..10-08) counts only 欧阳娜娜's stream of 10-02; ?phase=meet
    (09-12..09-30) everything but it."""
    body = await (await client.get(URL, params={"phase": "harvest"})).json()
    assert body["phase"] == "harvest"
    rookies, experts = body["groups"]
    assert [e["score"] for e in rookies["entries"]] == [0.0, 0.0]
    assert experts["entries"][0]["metrics"]["net_gmv"] == 30_000
    meet = await (await client.get(URL, params={"phase": "meet"})).json()
    assert meet["groups"][1]["entries"][0]["score"] == 0.0
    assert meet["groups"][0]["entries"][0]["score"] == 95.0


@pytest.mark.parametrize(
    ("url", "status", "error"),
    [
        ("/api/campaigns/nope/leaderboard", 404, "unknown campaign"),
        (f"{URL}?phase=nope", 400, "unknown phase"),
        (f"{URL}?top=0", 400, "bad top"),
        (f"{URL}?top=abc", 400, "bad top"),
        (f"{URL}?top=²", 400, "bad top"),
    ],
)
async def test_errors_are_json(client: TestClient, url: str, status: int, error: str) -> None:
    response = await client.get(url)
    assert response.status == status
    assert response.content_type == "application/json"
    assert (await response.json())["error"] == error


async def test_top_cuts_the_entries_not_the_count(client: TestClient) -> None:
    body = await (await client.get(URL, params={"top": "1"})).json()
    rookies = body["groups"][0]
    assert rookies["ranked"] == 2
    assert [e["display_name"] for e in rookies["entries"]] == ["王*文"]


def embedded(page: str) -> dict[str, Any]:
    """The board the page carries for its first paint (then it refreshes from `api`)."""
    found = re.search(r'<script id="board-data" type="application/json">(.*?)</script>', page)
    assert found is not None
    return dict(json.loads(found[1]))


async def test_the_page_shows_the_campaign_and_embeds_the_public_board(
    client: TestClient,
) -> None:
    response = await client.get(PAGE)
    assert response.status == 200 and response.content_type == "text/html"
    assert response.headers["Cache-Control"].startswith("public")
    page = await response.text()
    assert "<title>龙虎榜 · 我在利通带好货·第一期</title>" in page
    assert "<h1>“我在利通带好货”系列活动（第一期）</h1>" in page
    config = embedded(page)
    assert config["api"] == f"{URL}?top=20"
    api = await (await client.get(config["api"])).json()
    assert config["board"]["groups"] == api["groups"]  # the page and the API agree
    assert [e["display_name"] for e in api["groups"][0]["entries"]] == ["王*文", "李*"]
    # no network assets: the page works on a closed network and leaks no visits
    assert re.search(r"(src|href)=\"(https?:)?//", page) is None


@pytest.mark.parametrize("url", ["/board/nope", "/board/%3Cscript%3Ealert(1)%3C%2Fscript%3E"])
async def test_an_unknown_campaign_gets_a_friendly_page(client: TestClient, url: str) -> None:
    response = await client.get(url)
    assert response.status == 404 and response.content_type == "text/html"
    page = await response.text()
    assert "没有找到这个赛事" in page
    assert "<script" not in page  # the id asked for is not echoed back


async def test_markup_in_the_data_stays_data(
    aiohttp_client: AiohttpClient, db_url: str, clock: FrozenClock, all_campaigns: Campaigns
) -> None:
    """Names are configuration and user input: they may hold anything, and the page must
    still have exactly its own two scripts."""
    evil = "<img src=x onerror=alert(1)></script><script>alert(2)</script>"
    campaign = all_campaigns[LITONG].model_copy(update={"name": evil, "short_name": evil})
    client = await make_client(aiohttp_client, db_url, clock, {LITONG: campaign})
    await seed(client, lambda session: streamer(session, LITONG, "u-x", "<b>坏</b>人"))
    page = await (await client.get(PAGE)).text()
    assert "<img" not in page and "<b>" not in page
    assert page.count("<script") == 2 and page.count("</script>") == 2
    config = embedded(page)
    assert config["board"]["name"] == evil  # intact as data, for textContent
    assert config["board"]["groups"][0]["entries"][0]["display_name"] == "<*******人"


@pytest.mark.parametrize(
    ("now", "state", "current", "upcoming"),
    [
        (shanghai(2024, 9, 1, 10), "before", None, "registration"),
        (shanghai(2024, 9, 8, 10), "running", "registration", "meet"),
        # 遇见利通 and the 助农 activity overlap: the competition that ends first leads
        (shanghai(2024, 9, 25, 10), "running", "meet", "explore"),
        (shanghai(2024, 10, 10, 10), "running", "explore", "double11"),
        (shanghai(2024, 10, 25, 10), "between", None, "double11"),
        (shanghai(2025, 3, 5, 10), "after", None, None),
    ],
)
async def test_the_board_says_where_the_campaign_stands(
    client: TestClient,
    clock: FrozenClock,
    now: datetime,
    state: str,
    current: str | None,
    upcoming: str | None,
) -> None:
    clock.set(now)
    timeline = (await (await client.get(URL)).json())["timeline"]
    assert timeline["state"] == state
    assert (timeline["current"] or {}).get("key") == current
    assert (timeline["next"] or {}).get("key") == upcoming
    if current == "meet":
        assert timeline["current"] == {
            "key": "meet",
            "name": "“遇见利通 共享好物”直播带货比赛",
            "kind": "competition",
            "start": "2024-09-12T00:00:00+08:00",
            "end": "2024-09-30T23:59:59+08:00",
        }


async def test_viewers_asking_at_once_share_one_computation(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six viewers while a (slow) board is computed: one computation, six equal answers, and
    one who leaves early takes it from nobody. The next viewer gets a fresh one."""
    calls = []

    def slow(*args: Any, **kw: Any) -> Any:
        calls.append(kw.get("phase_key"))
        time.sleep(0.3)  # on the database thread, as a 50,000-streamer board takes
        return compute_leaderboard(*args, **kw)

    monkeypatch.setattr(board_handlers, "compute_leaderboard", slow)
    leaving = asyncio.ensure_future(client.get(URL))
    await asyncio.sleep(0.05)
    answers = [client.get(URL), client.get(URL), client.get(PAGE), client.get(f"{URL}?top=1")]
    leaving.cancel()
    responses = await asyncio.gather(*answers)
    assert [r.status for r in responses] == [200] * 4 and calls == [None]
    first, second = [await r.json() for r in responses[:2]]
    assert first == second and len(first["groups"][0]["entries"]) == 2
    await client.get(f"{URL}?phase=meet")  # another phase: a board of its own
    assert (await client.get(URL)).status == 200
    assert calls == [None, "meet", None]


async def test_a_database_outage_answers_503_not_500(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*_args: Any, **_kw: Any) -> Any:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(board_handlers, "compute_leaderboard", down)
    monkeypatch.setattr("storage.db.time.sleep", lambda _s: None)  # no back-off between tries
    api = await client.get(URL)
    assert api.status == 503 and (await api.json())["error"].startswith("database unavailable")
    page = await client.get(PAGE)
    assert page.status == 503 and "系统有点忙" in await page.text()
