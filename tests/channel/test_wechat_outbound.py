"""WeChat outbound: the sender, the shared access token and the `qr` / `wechat-menu` commands,
against a loopback fake of the WeChat API over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import socket
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpServer
from sqlmodel import select

import run_bot
from bot.clock import FrozenClock
from bot.handlers.wechat import build_menu
from bot.outbox_worker import OutboxWorker
from bot.router import COMMANDS, FLOW_KEYWORDS
from bot.senders.base import DeliveryError
from bot.senders.wechat import WeChatSender
from bot.wechat_api import LEASE, SharedToken, WeChatAPI
from config.campaign import Campaign, WeChatTemplates
from storage.db import Database
from storage.models import AccessToken, ChannelUser, Outbox
from storage.outbox import enqueue
from tests.fakes.wechat_api import APPID, SECRET, FakeWeChat
from tests.helpers import Campaigns

CUSTOM = "/cgi-bin/message/custom/send"


@pytest.fixture
async def fake(aiohttp_server: AiohttpServer) -> tuple[FakeWeChat, str]:
    wechat = FakeWeChat()
    server = await aiohttp_server(wechat.app())
    return wechat, str(server.make_url("")).rstrip("/")


@pytest.fixture
def campaigns(all_campaigns: Campaigns) -> dict[str, Campaign]:
    templates = WeChatTemplates(reminder="TPL-REMIND", review_result="TPL-REVIEW")
    return {"demo": all_campaigns["demo"].model_copy(update={"wechat_templates": templates})}


@pytest.fixture
def sender(
    fake: tuple[FakeWeChat, str], db: Database, clock: FrozenClock, campaigns: Campaigns
) -> WeChatSender:
    return WeChatSender(WeChatAPI(APPID, SECRET, fake[1], db, clock), db, clock, campaigns)


def row(clock: FrozenClock, recipient: str = "o-1", kind: str = "reminder", n: int = 1) -> Outbox:
    now = clock.now()
    return Outbox(
        id=n,
        key=f"k{n}",
        campaign_id="demo",
        channel="wechat",
        recipient=recipient,
        kind=kind,
        text=f"提醒{n}：明天 20:00 的直播别忘了。",
        attempts=1,
        next_attempt_at=now,
        created_at=now,
    )


async def wrote(db: Database, user: str, ago: timedelta, clock: FrozenClock) -> None:
    """The user's last message, `ago` before now."""
    when = clock.now() - ago
    await db.run(lambda s: s.add(ChannelUser(channel="wechat", user_id=user, last_inbound_at=when)))


# The 48-hour window ----------------------------------------------------------------------------
async def test_inside_the_window_customer_service_messages_share_one_cached_token(
    sender: WeChatSender, fake: tuple[FakeWeChat, str], db: Database, clock: FrozenClock
) -> None:
    wechat = fake[0]
    await wrote(db, "o-1", timedelta(hours=47), clock)
    for n in (1, 2, 3):
        await sender.deliver(row(clock, n=n))
    assert [m["text"][:3] for m in wechat.custom] == ["提醒1", "提醒2", "提醒3"]
    assert wechat.tokens_issued == ["FAKE-TOKEN-1"] and wechat.templates == []
    [stored] = await db.run(lambda s: list(s.exec(select(AccessToken))))
    assert (stored.key, stored.token) == (f"wechat:{APPID}", "FAKE-TOKEN-1")
    assert stored.expires_at == clock.now() + timedelta(seconds=7200)


@pytest.mark.parametrize(
    ("ago", "kind", "template"),
    [
        (timedelta(hours=49), "reminder", "TPL-REMIND"),
        (timedelta(days=30), "review_result", "TPL-REVIEW"),
        (None, "filing_reviewed", "TPL-REVIEW"),
    ],
)
async def test_outside_the_window_a_template_message(
    sender: WeChatSender,
    fake: tuple[FakeWeChat, str],
    db: Database,
    clock: FrozenClock,
    ago: timedelta | None,
    kind: str,
    template: str,
) -> None:
    if ago is not None:
        await wrote(db, "o-1", ago, clock)
    await sender.deliver(row(clock, kind=kind))
    [sent] = fake[0].templates
    assert (sent["touser"], sent["template_id"]) == ("o-1", template)
    assert sent["data"]["first"]["value"].startswith("提醒1") and fake[0].custom == []


async def test_a_template_with_keywords_gets_them_filled_and_cut_to_their_limits(
    fake: tuple[FakeWeChat, str], db: Database, clock: FrozenClock, all_campaigns: Campaigns
) -> None:
    """Templates added since WeChat's 2023 change show only their keywords (thing1, time2 …),
    not first/remark: the campaign file says which keyword shows what."""
    templates = WeChatTemplates.model_validate(
        {
            "review_result": {
                "id": "TPL-NEW",
                "fields": {
                    "thing1": "text",
                    "thing2": "campaign",
                    "time3": "time",
                    "character_string4": "text",
                },
            }
        }
    )
    demo = all_campaigns["demo"].model_copy(update={"wechat_templates": templates})
    sender = WeChatSender(WeChatAPI(APPID, SECRET, fake[1], db, clock), db, clock, {"demo": demo})
    message = row(clock, kind="review_result")
    message.text = "你报备的直播（2024年9月9日 20:00，2小时）已通过审核。"
    await sender.deliver(message)
    [sent] = fake[0].templates
    data = {k: v["value"] for k, v in sent["data"].items()}
    assert sent["template_id"] == "TPL-NEW" and set(data) == {
        "thing1", "thing2", "time3", "character_string4"
    }  # fmt: skip
    assert len(data["thing1"]) == 20 and data["thing1"].endswith("…")
    assert data["thing1"] == "你报备的直播（2024年9月9日 20…"
    assert data["character_string4"] == message.text[:31] + "…"  # 32 at most
    assert data["thing2"] == demo.title and data["time3"].startswith("2024年")


async def test_a_window_closed_early_falls_back_to_the_template(
    sender: WeChatSender, fake: tuple[FakeWeChat, str], db: Database, clock: FrozenClock
) -> None:
    await wrote(db, "o-1", timedelta(hours=1), clock)
    fake[0].close_window("o-1")
    await sender.deliver(row(clock))
    assert fake[0].custom == [] and fake[0].templates[0]["template_id"] == "TPL-REMIND"


async def test_no_template_outside_the_window_is_a_permanent_failure(
    sender: WeChatSender, fake: tuple[FakeWeChat, str], clock: FrozenClock
) -> None:
    with pytest.raises(DeliveryError) as failure:
        await sender.deliver(row(clock, kind="reply"))
    assert failure.value.permanent and "wechat_templates" in failure.value.reason
    assert fake[0].calls == []


# Tokens and errors ----------------------------------------------------------------------------
async def test_an_expired_token_is_refreshed_once_and_the_message_sent(
    sender: WeChatSender, fake: tuple[FakeWeChat, str], db: Database, clock: FrozenClock
) -> None:
    wechat = fake[0]
    await wrote(db, "o-1", timedelta(hours=1), clock)
    await sender.deliver(row(clock, n=1))
    wechat.expire_tokens()
    await sender.deliver(row(clock, n=2))
    assert wechat.tokens_issued == ["FAKE-TOKEN-1", "FAKE-TOKEN-2"] and len(wechat.custom) == 2


async def test_token_errors_are_retried_a_bounded_number_of_times(
    sender: WeChatSender, fake: tuple[FakeWeChat, str], db: Database, clock: FrozenClock
) -> None:
    wechat = fake[0]
    await wrote(db, "o-1", timedelta(hours=1), clock)
    wechat.fail(CUSTOM, *[40001] * 50)
    with pytest.raises(DeliveryError) as failure:
        await sender.deliver(row(clock))
    assert "40001" in failure.value.reason and not failure.value.permanent
    assert wechat.calls.count(CUSTOM) == 2 and len(wechat.tokens_issued) == 2


async def test_rate_limits_back_off_longer_each_time(
    sender: WeChatSender, fake: tuple[FakeWeChat, str], db: Database, clock: FrozenClock
) -> None:
    await wrote(db, "o-1", timedelta(hours=1), clock)
    fake[0].fail(CUSTOM, 45009, 45009)
    waits = []
    for _ in range(2):
        with pytest.raises(DeliveryError) as failure:
            await sender.deliver(row(clock))
        waits.append(failure.value.retry_after)
    assert waits == [60.0, 120.0]
    await sender.deliver(row(clock))  # a success ends the streak
    fake[0].fail(CUSTOM, 45009)
    with pytest.raises(DeliveryError) as failure:
        await sender.deliver(row(clock))
    assert failure.value.retry_after == 60.0


@pytest.mark.parametrize(("errcode", "permanent"), [(43004, True), (40003, True), (-1, False)])
async def test_platform_errors_are_reported_with_their_code(
    sender: WeChatSender,
    fake: tuple[FakeWeChat, str],
    db: Database,
    clock: FrozenClock,
    errcode: int,
    permanent: bool,
) -> None:
    await wrote(db, "o-1", timedelta(hours=1), clock)
    fake[0].fail(CUSTOM, errcode)
    with pytest.raises(DeliveryError) as failure:
        await sender.deliver(row(clock))
    assert str(errcode) in failure.value.reason and failure.value.permanent is permanent


async def test_an_unreachable_api_is_a_retryable_failure(
    db: Database, clock: FrozenClock, campaigns: Campaigns
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = WeChatAPI(APPID, SECRET, f"http://127.0.0.1:{port}", db, clock)
    with pytest.raises(DeliveryError) as failure:
        await WeChatSender(api, db, clock, campaigns).deliver(row(clock, kind="review_result"))
    assert not failure.value.permanent and "token request failed" in failure.value.reason


async def test_instances_share_the_token_and_refresh_it_one_at_a_time(
    fake: tuple[FakeWeChat, str], db: Database, clock: FrozenClock
) -> None:
    wechat, base = fake
    first, second = (WeChatAPI(APPID, SECRET, base, db, clock) for _ in range(2))
    await asyncio.gather(
        *(api.send_text(f"o-{n}", "你好") for n in range(4) for api in (first, second))
    )
    assert wechat.tokens_issued == ["FAKE-TOKEN-1"] and len(wechat.custom) == 8
    wechat.expire_tokens()
    await first.send_text("o-1", "你好")  # refreshes
    # The other instance still holding the old token finds the new one instead of fetching.
    assert await asyncio.to_thread(second.tokens.refresh, stale="FAKE-TOKEN-1") == "FAKE-TOKEN-2"
    await second.send_text("o-2", "你好")
    assert wechat.tokens_issued == ["FAKE-TOKEN-1", "FAKE-TOKEN-2"]
    # A token near its expiry is refreshed before use.
    clock.advance(timedelta(seconds=7200 - 60))
    await second.send_text("o-3", "你好")
    assert len(wechat.tokens_issued) == 3


def test_a_token_refresh_holds_no_transaction_while_it_asks_wechat(
    db: Database, clock: FrozenClock
) -> None:
    """The refresher holds a lease, not a transaction: on SQLite a transaction held through a
    slow token call would stall every write of the bot. Here the token call itself waits for
    an unrelated write to finish, which could not happen if it held the database."""
    asking, written = threading.Event(), threading.Event()
    got: list[str] = []

    def fetch() -> tuple[str, int]:
        asking.set()
        return ("SLOW-TOKEN" if written.wait(timeout=10) else "BLOCKED"), 7200

    tokens = SharedToken(db, clock, "wechat:slow", fetch)
    refresher = threading.Thread(target=lambda: got.append(tokens.get()))
    refresher.start()
    assert asking.wait(timeout=10)
    visit = ChannelUser(channel="web", user_id="u", last_inbound_at=clock.now())
    db.run_sync(lambda s: s.merge(visit))  # while the token call is under way
    written.set()
    refresher.join(timeout=30)
    assert got == ["SLOW-TOKEN"]
    assert db.run_sync(lambda s: s.get(AccessToken, "wechat:slow:lease")) is None


def test_a_refresh_that_outlived_its_lease_keeps_the_newer_token(
    db: Database, clock: FrozenClock
) -> None:
    """A token call slower than the lease: another instance took the lapsed lease and stored
    a newer token (which voids ours at WeChat). The slow one must not overwrite it."""
    slow_asking, go_on = threading.Event(), threading.Event()

    def slow_fetch() -> tuple[str, int]:
        slow_asking.set()
        assert go_on.wait(timeout=10)
        return "OLDER", 7200

    got: list[str] = []
    slow = SharedToken(db, clock, "wechat:x", slow_fetch)
    caller = threading.Thread(target=lambda: got.append(slow.get()))
    caller.start()
    assert slow_asking.wait(timeout=10)
    clock.advance(LEASE + timedelta(seconds=1))  # the slow caller's lease lapses
    assert SharedToken(db, clock, "wechat:x", lambda: ("NEWER", 7200)).get() == "NEWER"
    go_on.set()
    caller.join(timeout=20)
    assert got == ["NEWER"]
    stored = db.run_sync(lambda s: s.get(AccessToken, "wechat:x"))
    assert stored is not None and stored.token == "NEWER"
    assert db.run_sync(lambda s: s.get(AccessToken, "wechat:x:lease")) is None


async def test_the_outbox_worker_delivers_through_the_wechat_sender(
    sender: WeChatSender, fake: tuple[FakeWeChat, str], db: Database, clock: FrozenClock
) -> None:
    await wrote(db, "o-ok", timedelta(hours=1), clock)
    now = clock.now()
    for key, user in (("a", "o-ok"), ("b", "o-gone")):
        text = f"审核结果：{key}"
        await db.run(
            lambda s, key=key, user=user, text=text: enqueue(
                s,
                key=key,
                channel="wechat",
                recipient=user,
                kind="review_result",
                text=text,
                now=now,
                campaign_id="demo",
            )
        )
    fake[0].fail("/cgi-bin/message/template/send", 43004)  # o-gone unfollowed the account
    assert await OutboxWorker(db, {"wechat": sender}, clock).run_once() == 2
    rows = await db.run(lambda s: {r.key: r for r in s.exec(select(Outbox))})
    assert rows["a"].status == "sent" and fake[0].custom[0]["text"] == "审核结果：a"
    assert rows["b"].status == "dead" and "43004" in (rows["b"].last_error or "")


# Commands ------------------------------------------------------------------------------------
@pytest.fixture
def wechat_env(monkeypatch: pytest.MonkeyPatch, db_url: str, fake: tuple[FakeWeChat, str]) -> None:
    for name, value in {
        "DATABASE_URL": db_url,
        "WECHAT_APPID": APPID,
        "WECHAT_SECRET": SECRET,
        "WECHAT_API_BASE": fake[1],
    }.items():
        monkeypatch.setenv(name, value)


async def command(*argv: str) -> int:
    return await asyncio.to_thread(run_bot.main, list(argv))


@pytest.mark.usefixtures("wechat_env")
async def test_wechat_menu_publishes_the_keywords(
    fake: tuple[FakeWeChat, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert await command("wechat-menu", "--now", "2024-09-08T10:00") == 0
    [menu] = fake[0].menus
    assert menu == build_menu({*FLOW_KEYWORDS, *COMMANDS})
    assert "参赛: 报名" in capsys.readouterr().out


@pytest.mark.usefixtures("wechat_env")
@pytest.mark.parametrize("permanent", [False, True])
async def test_qr_makes_a_wechat_parametric_code(
    fake: tuple[FakeWeChat, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    permanent: bool,
) -> None:
    out = tmp_path / "poster.png"
    args = ["qr", "--campaign", "demo", "--unit", "demo-youth", "--out", str(out)]
    assert await command(*args, *(["--permanent"] if permanent else [])) == 0
    [made] = fake[0].qrcodes
    assert made["action_info"]["scene"]["scene_str"] == "demo:demo-youth"
    if permanent:
        assert made["action_name"] == "QR_LIMIT_STR_SCENE" and "expire_seconds" not in made
    else:
        assert (made["action_name"], made["expire_seconds"]) == ("QR_STR_SCENE", 30 * 86400)
    printed = capsys.readouterr().out
    assert (
        "http://weixin.qq.com/q/fake1" in printed and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    )


@pytest.mark.usefixtures("wechat_env")
async def test_qr_reports_a_wechat_refusal(
    fake: tuple[FakeWeChat, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake[0].fail("/cgi-bin/qrcode/create", 48001)
    assert await command("qr", "--campaign", "demo", "--out", str(tmp_path / "x.png")) == 1
    assert "48001" in capsys.readouterr().err and not (tmp_path / "x.png").exists()


async def test_wechat_menu_needs_credentials(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("WECHAT_APPID", raising=False)
    monkeypatch.delenv("WECHAT_SECRET", raising=False)
    assert await command("wechat-menu") == 1
    assert "WECHAT_APPID" in capsys.readouterr().err
