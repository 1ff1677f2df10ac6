"""The Feishu channel over real HTTP: events pushed to /feishu/events the way Feishu pushes them
(schema 2.0, encrypted, signed), the bot's answers sent through lark-oapi to a loopback fake of
the open API. Every test runs on SQLite and PostgreSQL.

The fake runs on the same event loop as the bot. lark-oapi's synchronous calls (token fetch,
file download) would deadlock that loop if they ran on it, so every test that gets an answer
from the fake also shows the outbound path never blocks the loop.
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from lark_oapi.api.im.v1.model import MentionEvent
from lark_oapi.core.utils import AESCipher
from pytest_aiohttp import AiohttpClient, AiohttpServer
from sqlmodel import select

from bot.app import create_app
from bot.clock import FrozenClock
from bot.digest import publish
from bot.handlers.feishu import FEISHU, FeishuChannel, message_text
from bot.keys import CAMPAIGNS, DATABASE, SENDERS
from bot.outbox_worker import OutboxWorker
from bot.senders.ratelimit import Pacer
from config.campaign import Campaign, Organizers
from storage.models import (
    BoundGroup,
    Filing,
    InboundEvent,
    Outbox,
    ProcessedEvent,
    Registration,
)
from tests.conftest import shanghai
from tests.fakes.feishu_api import (
    APP_SECRET,
    BOT_OPEN_ID,
    ENCRYPT_KEY,
    VERIFICATION_TOKEN,
    FakeFeishu,
    Pusher,
    Sent,
)
from tests.helpers import Campaigns, litong_answers, settings_for

STREAMER = "ou_streamer0000000000000000000001"
ORGANIZER = "ou_organizer000000000000000000001"
STRANGER = "ou_stranger0000000000000000000001"
GROUP = "oc_organizers0000000000000000001"


@dataclass
class Feishu:
    client: TestClient
    fake: FakeFeishu
    pusher: Pusher
    clock: FrozenClock

    @property
    def channel(self) -> FeishuChannel:
        return self.client.server.app[FEISHU]

    async def push(self, event: dict[str, Any], **kw: Any) -> ClientResponse:
        body, headers = self.pusher.request(event, int(self.clock.now().timestamp()), **kw)
        return await self.client.post("/feishu/events", data=body, headers=headers)

    async def say(self, user: str, text: str, **kw: Any) -> list[Sent]:
        """A message, then what the bot sent back (to the user, or to the group)."""
        before = len(self.fake.sent)
        response = await self.push(self.pusher.text(user, text, **kw))
        assert response.status == 200
        await self.channel.drain()
        return self.fake.sent[before:]

    async def say_group(self, user: str, text: str, chat_id: str = GROUP) -> list[Sent]:
        """`@bot text` in a group chat."""
        before = len(self.fake.sent)
        response = await self.push(self.pusher.group_text(user, chat_id, text))
        assert response.status == 200
        await self.channel.drain()
        return self.fake.sent[before:]

    async def run(self, user: str, *texts: str) -> str:
        sent: list[Sent] = []
        for text in texts:
            sent = await self.say(user, text)
        return "\n".join(s.text for s in sent)

    async def rows(self, model: type) -> list[Any]:
        db = self.client.server.app[DATABASE]
        return await db.run(lambda s: list(s.exec(select(model))))

    async def deliver_outbox(self) -> None:
        app = self.client.server.app
        await OutboxWorker(app[DATABASE], app[SENDERS], self.clock).run_once()


def with_feishu_organizer(campaign: Campaign) -> Campaign:
    return campaign.model_copy(update={"organizers": Organizers(feishu=[ORGANIZER])})


@pytest.fixture
async def fake_server(aiohttp_server: AiohttpServer) -> AsyncIterator[tuple[FakeFeishu, str]]:
    # A new app id per test: lark-oapi caches tenant tokens per app id for the process.
    fake = FakeFeishu(app_id=f"cli_{uuid.uuid4().hex[:16]}")
    server = await aiohttp_server(fake.app())
    yield fake, f"http://127.0.0.1:{server.port}"
    await fake.close()


async def start(
    aiohttp_client: AiohttpClient,
    db_url: str,
    clock: FrozenClock,
    campaigns: Campaigns,
    fake_server: tuple[FakeFeishu, str],
    **env: str,
) -> Feishu:
    fake, domain = fake_server
    env = {
        "FEISHU_APP_ID": fake.app_id,
        "FEISHU_APP_SECRET": APP_SECRET,
        "FEISHU_VERIFICATION_TOKEN": VERIFICATION_TOKEN,
        "FEISHU_ENCRYPT_KEY": ENCRYPT_KEY,
        "FEISHU_DOMAIN": domain,
        **env,
    }
    settings = settings_for(db_url, **env)
    app = create_app(settings, clock=clock, campaigns=campaigns)
    app[FEISHU].wall = clock  # Feishu's timestamps come from the test's clock
    client = await aiohttp_client(app)
    await app[FEISHU].drain()  # the start-up warm-up (token, bot id)
    encrypt_key = env["FEISHU_ENCRYPT_KEY"] or None
    return Feishu(client, fake, Pusher(encrypt_key=encrypt_key, app_id=fake.app_id), clock)


@pytest.fixture
async def feishu(
    aiohttp_client: AiohttpClient,
    db_url: str,
    clock: FrozenClock,
    all_campaigns: Campaigns,
    fake_server: tuple[FakeFeishu, str],
) -> Feishu:
    litong = with_feishu_organizer(all_campaigns["litong-2024"])
    return await start(aiohttp_client, db_url, clock, {litong.id: litong}, fake_server)


# Crypto and the challenge ----------------------------------------------------------------
def test_published_encrypt_key_vector_decrypts() -> None:
    cipher = AESCipher("test key")
    assert cipher.decrypt_str("P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=") == "hello world"


async def test_encrypted_challenge_is_answered(feishu: Feishu) -> None:
    response = await feishu.push(feishu.pusher.challenge("ajls384kdjx98XX"))
    assert response.status == 200
    assert await response.json() == {"challenge": "ajls384kdjx98XX"}


async def test_plain_challenge_without_an_encrypt_key(
    aiohttp_client: AiohttpClient,
    db_url: str,
    clock: FrozenClock,
    all_campaigns: Campaigns,
    fake_server: tuple[FakeFeishu, str],
) -> None:
    plain = await start(
        aiohttp_client, db_url, clock, all_campaigns, fake_server, FEISHU_ENCRYPT_KEY=""
    )
    response = await plain.push(plain.pusher.challenge("c-123"))
    assert (response.status, await response.json()) == (200, {"challenge": "c-123"})
    wrong = Pusher(token="not-the-token", encrypt_key=None)
    body, headers = wrong.request(wrong.challenge("c-123"), int(clock.now().timestamp()))
    refused = await plain.client.post("/feishu/events", data=body, headers=headers)
    assert refused.status == 403


# Refusals: nothing is processed ------------------------------------------------------------
async def assert_nothing_processed(feishu: Feishu) -> None:
    await feishu.channel.drain()
    assert feishu.fake.sent == []
    assert await feishu.rows(ProcessedEvent) == []


async def test_bad_signature_is_refused(feishu: Feishu) -> None:
    body, headers = feishu.pusher.request(
        feishu.pusher.text(STREAMER, "报名"), int(feishu.clock.now().timestamp())
    )
    headers["X-Lark-Signature"] = "0" * 64
    response = await feishu.client.post("/feishu/events", data=body, headers=headers)
    assert response.status == 401
    await assert_nothing_processed(feishu)


async def test_a_body_changed_after_signing_is_refused(feishu: Feishu) -> None:
    _body, headers = feishu.pusher.request(
        feishu.pusher.text(STREAMER, "报名"), int(feishu.clock.now().timestamp())
    )
    other, _ = feishu.pusher.request(
        feishu.pusher.text(STREAMER, "帮助"), int(feishu.clock.now().timestamp())
    )
    response = await feishu.client.post("/feishu/events", data=other, headers=headers)
    assert response.status == 401
    await assert_nothing_processed(feishu)


async def test_missing_signature_headers_are_refused(feishu: Feishu) -> None:
    body, headers = feishu.pusher.request(
        feishu.pusher.text(STREAMER, "报名"), int(feishu.clock.now().timestamp())
    )
    del headers["X-Lark-Signature"]
    response = await feishu.client.post("/feishu/events", data=body, headers=headers)
    assert response.status == 401
    await assert_nothing_processed(feishu)


async def test_a_stale_timestamp_is_refused(feishu: Feishu) -> None:
    stale = int((feishu.clock.now() - timedelta(minutes=10)).timestamp())
    body, headers = feishu.pusher.request(feishu.pusher.text(STREAMER, "报名"), stale)
    response = await feishu.client.post("/feishu/events", data=body, headers=headers)
    assert response.status == 401
    await assert_nothing_processed(feishu)


async def test_a_wrong_verification_token_is_refused(feishu: Feishu) -> None:
    impostor = Pusher(token="stolen?", app_id=feishu.fake.app_id)
    body, headers = impostor.request(
        impostor.text(STREAMER, "报名"), int(feishu.clock.now().timestamp())
    )
    response = await feishu.client.post("/feishu/events", data=body, headers=headers)
    assert response.status == 403
    await assert_nothing_processed(feishu)


@pytest.mark.parametrize("body", [b"{not json", b"[1]", b'{"encrypt": "AAAA"}'])
async def test_malformed_bodies_get_400(feishu: Feishu, body: bytes) -> None:
    response = await feishu.client.post("/feishu/events", data=body)
    assert response.status == 400
    await assert_nothing_processed(feishu)


async def test_headers_match_whatever_their_case(feishu: Feishu) -> None:
    body, headers = feishu.pusher.request(
        feishu.pusher.text(STREAMER, "帮助"), int(feishu.clock.now().timestamp())
    )
    lowered = {k.lower(): v for k, v in headers.items()}
    response = await feishu.client.post("/feishu/events", data=body, headers=lowered)
    assert response.status == 200
    await feishu.channel.drain()
    assert "报名" in feishu.fake.to(STREAMER)[0].text


async def test_an_event_type_we_do_not_handle_gets_200_not_a_retry_storm(feishu: Feishu) -> None:
    event = feishu.pusher.text(STREAMER, "hi")
    event["header"]["event_type"] = "im.message.message_read_v1"
    response = await feishu.push(event)
    assert response.status == 200
    await assert_nothing_processed(feishu)


def mention(key: str, open_id: str, name: str) -> MentionEvent:
    return MentionEvent({"key": key, "id": {"open_id": open_id}, "name": name})


@pytest.mark.parametrize(
    ("kind", "content", "mentions", "text"),
    [
        ("text", {"text": "@_user_1 榜单"}, [mention("@_user_1", BOT_OPEN_ID, "助手")], "榜单"),
        (
            "text",
            {"text": "@_user_1 扣分 @_user_2 5 刷单"},
            [mention("@_user_1", BOT_OPEN_ID, "助手"), mention("@_user_2", STREAMER, "王小文")],
            "扣分 @王小文 5 刷单",
        ),
        ("text", {"text": "  报名  "}, [], "报名"),
        (
            "post",
            {
                "title": "",
                "content": [
                    [{"tag": "text", "text": "7.43 复制打开抖音，看看#我在利通带好货#"}],
                    [{"tag": "a", "text": "链接", "href": "https://v.douyin.com/iRNBho6u/"}],
                ],
            },
            [],
            "7.43 复制打开抖音，看看#我在利通带好货#\n链接 https://v.douyin.com/iRNBho6u/",
        ),
        (
            "post",
            {"zh_cn": {"title": "", "content": [[{"tag": "text", "text": "作品"}]]}},
            [],
            "作品",
        ),
    ],
)
def test_message_text(
    kind: str, content: dict[str, Any], mentions: list[MentionEvent], text: str
) -> None:
    assert message_text(kind, content, mentions, BOT_OPEN_ID) == text


# Streamers ---------------------------------------------------------------------------------
async def test_a_streamer_signs_up_with_buttons_and_checks_the_ranking(
    feishu: Feishu,
) -> None:
    [first] = await feishu.say(STREAMER, "报名")
    assert first.receive_id_type == "open_id" and first.receive_id == STREAMER
    assert "第1步" in first.text
    answers = litong_answers("王小文", "13812345678", "2万", "5000元")
    for text in answers[:3]:
        sent = await feishu.say(STREAMER, text)
    [identity] = sent
    assert identity.msg_type == "interactive"  # choices come as buttons
    buttons = [
        b for e in identity.content["elements"] if e["tag"] == "action" for b in e["actions"]
    ]
    assert [b["text"]["content"] for b in buttons][:2] == ["在校大学生", "退役军人"]
    assert all(isinstance(b["value"], dict) for b in buttons)
    click = next(b for b in buttons if b["text"]["content"] == "电商从业者")
    response = await feishu.push(feishu.pusher.card_action(STREAMER, click["value"]))
    assert response.status == 200
    await feishu.channel.drain()
    assert "第5步" in feishu.fake.sent[-1].text  # the click answered step 4
    final = await feishu.run(STREAMER, *answers[4:])
    assert "达人组" in final
    ranking = await feishu.run(STREAMER, "排名")
    assert "【排名】" in ranking and "达人组" in ranking and "第1名" in ranking
    [reg] = await feishu.rows(Registration)
    assert (reg.channel, reg.user_id, reg.identity) == ("feishu", STREAMER, "电商从业者")
    assert len(feishu.fake.tokens) == 1  # one tenant token, fetched off the loop, reused


async def test_a_picture_reaches_the_flow_as_an_image(feishu: Feishu) -> None:
    await feishu.say(STREAMER, "报名")
    before = len(feishu.fake.sent)
    event = feishu.pusher.message(STREAMER, {"image_key": "img_v3_0001"}, message_type="image")
    assert (await feishu.push(event)).status == 200
    await feishu.channel.drain()
    assert "这一步请回复文字" in feishu.fake.sent[before].text


async def test_other_message_types_get_a_hint(feishu: Feishu) -> None:
    event = feishu.pusher.message(STREAMER, {"file_key": "v3_audio"}, message_type="audio")
    assert (await feishu.push(event)).status == 200
    await feishu.channel.drain()
    assert "文字和图片" in feishu.fake.to(STREAMER)[0].text


async def test_a_redelivered_event_changes_nothing(feishu: Feishu) -> None:
    event = feishu.pusher.text(STREAMER, "报名", event_id="ev-redelivered-1")
    for _ in range(3):  # Feishu retries after 15 s, 5 min, 1 h ...
        assert (await feishu.push(event)).status == 200
        await feishu.channel.drain()
    [first] = feishu.fake.sent
    assert "第1步" in first.text
    [second] = await feishu.say(STREAMER, "王小文")
    assert "第2步" in second.text  # the first 报名 was processed once: now at step 2
    feishu.clock.advance(timedelta(hours=6))  # the last retry: still remembered
    assert (await feishu.push(event)).status == 200
    await feishu.channel.drain()
    assert len(feishu.fake.sent) == 2
    assert len(await feishu.rows(ProcessedEvent)) == 2


async def test_an_event_lost_after_its_200_is_run_again(
    feishu: Feishu, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event is recorded before Feishu gets its 200. If the process dies before the work
    is done (here: the work is dropped, which leaves the database exactly as a kill -9 would),
    a sweep five minutes later runs it, once."""
    channel = feishu.channel
    spawn = channel.spawn

    def die(work: Any) -> Any:
        if work.cr_code.co_name == "_run":
            work.close()
            return None
        return spawn(work)

    monkeypatch.setattr(channel, "spawn", die)
    event = feishu.pusher.text(STREAMER, "报名", event_id="ev-lost-1")
    assert (await feishu.push(event)).status == 200
    [row] = await feishu.rows(InboundEvent)
    assert (row.event_id, row.kind, row.done_at) == ("ev-lost-1", "message", None)
    assert feishu.fake.sent == []

    monkeypatch.setattr(channel, "spawn", spawn)  # the restarted process
    assert await channel.recover() == 0  # not yet: it may still be under way elsewhere
    feishu.clock.advance(timedelta(minutes=6))
    assert await channel.recover() == 1
    await channel.drain()
    [reply] = feishu.fake.sent
    assert "第1步" in reply.text
    [row] = await feishu.rows(InboundEvent)
    assert row.done_at is not None
    feishu.clock.advance(timedelta(minutes=6))
    assert await channel.recover() == 0
    assert (await feishu.push(event)).status == 200  # Feishu's own redelivery: nothing more
    await channel.drain()
    assert len(feishu.fake.sent) == 1


async def test_a_rate_limited_reply_waits_as_feishu_says_then_goes(feishu: Feishu) -> None:
    # The sender paces on monotonic time; moved forward with the test's clock here.
    jump = [0.0]
    loop = asyncio.get_running_loop()
    feishu.channel.api.pacer = Pacer(time=lambda: loop.time() + jump[0])
    feishu.fake.limit_next(1, reset_seconds=30)
    assert await feishu.say(STREAMER, "帮助") == []
    [row] = await feishu.rows(Outbox)
    assert row.status == "pending" and "99991400" in (row.last_error or "")
    assert row.next_attempt_at == feishu.clock.now() + timedelta(seconds=30)
    await feishu.deliver_outbox()
    assert feishu.fake.to(STREAMER) == []  # not before the reset
    feishu.clock.advance(timedelta(seconds=31))
    jump[0] += 31
    await feishu.deliver_outbox()
    assert "报名" in feishu.fake.to(STREAMER)[0].text


async def test_a_refused_tenant_token_is_fetched_again_once(feishu: Feishu) -> None:
    feishu.fake.tokens.clear()  # Feishu no longer accepts the cached token
    [reply] = await feishu.say(STREAMER, "帮助")
    assert "报名" in reply.text
    assert len(feishu.fake.tokens) == 1  # a fresh one, fetched off the loop


# Organizer groups --------------------------------------------------------------------------
async def test_the_bot_introduces_itself_when_added_to_a_group(feishu: Feishu) -> None:
    assert (await feishu.push(feishu.pusher.bot_added(ORGANIZER, GROUP))).status == 200
    await feishu.channel.drain()
    [intro] = feishu.fake.to(GROUP)
    assert intro.receive_id_type == "chat_id" and "绑定" in intro.text


async def test_group_messages_without_a_mention_are_ignored(feishu: Feishu) -> None:
    assert await feishu.say(ORGANIZER, "绑定 litong-2024", chat_id=GROUP) == []
    assert await feishu.rows(ProcessedEvent) == []


async def test_only_an_organizer_binds_a_group(feishu: Feishu) -> None:
    [refused] = await feishu.say_group(STRANGER, "绑定 litong-2024")
    assert "无权限" in refused.text and refused.receive_id == GROUP
    assert await feishu.rows(BoundGroup) == []
    [bound] = await feishu.say_group(ORGANIZER, "绑定 litong-2024")
    assert "已把本群绑定" in bound.text
    [group] = await feishu.rows(BoundGroup)
    assert (group.channel, group.chat_id, group.campaign_id) == ("feishu", GROUP, "litong-2024")


async def test_in_a_bound_group_organizers_see_the_board_and_others_do_not(
    feishu: Feishu,
) -> None:
    await feishu.run(STREAMER, "报名", *litong_answers("王小文", "13812345678", "2万", "5000元"))
    await feishu.say_group(ORGANIZER, "绑定 litong-2024")
    [board] = await feishu.say_group(ORGANIZER, "榜单")
    assert board.receive_id == GROUP and "达人组" in board.text
    assert "王*文（报名1）" in board.text and "王小文" not in board.text  # a group: masked
    [refused] = await feishu.say_group(STRANGER, "榜单")
    assert "无权限" in refused.text and "王小文" not in refused.text


async def test_a_failure_inside_the_work_is_still_answered_200(
    feishu: Feishu, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 500 would make Feishu redeliver the same failing event for hours."""

    async def broken(_data: Any) -> None:
        raise RuntimeError("a bug in the flows")

    monkeypatch.setattr(feishu.channel, "_message", broken)
    response = await feishu.push(feishu.pusher.text(STREAMER, "报名", event_id="ev-broken"))
    assert response.status == 200
    await feishu.channel.drain()
    [row] = await feishu.rows(InboundEvent)
    assert row.done_at is not None  # not run again and again by the sweep either


async def test_a_bound_group_receives_a_digest_card_with_its_chart(
    feishu: Feishu, tmp_path: Path
) -> None:
    await feishu.run(STREAMER, "报名", *litong_answers("王小文", "13812345678", "2万", "5000元"))
    await feishu.say_group(ORGANIZER, "绑定 litong-2024")
    app = feishu.client.server.app
    campaign = app[CAMPAIGNS]["litong-2024"]
    now = feishu.clock.now()
    published = await publish(app[DATABASE], campaign, now, 5, now, charts_dir=tmp_path)
    assert published is not None and ("feishu", GROUP) in published.recipients
    await feishu.deliver_outbox()
    card = feishu.fake.to(GROUP)[-1]
    assert card.msg_type == "interactive" and card.receive_id_type == "chat_id"
    assert "战况播报" in card.text and "王*文" in card.text
    [image] = [e for e in card.content["elements"] if e["tag"] == "img"]
    assert feishu.fake.images[0].startswith(b"\x89PNG")  # the chart, uploaded with image.acreate
    assert image["img_key"] == "img_v3_0001"


async def test_an_organizer_approves_a_filing_with_a_card_button_and_the_streamer_is_told(
    feishu: Feishu,
) -> None:
    await feishu.run(STREAMER, "报名", *litong_answers("王小文", "13812345678", "2万", "5000元"))
    feishu.clock.set(shanghai(2024, 9, 15, 10, 0))
    filed = await feishu.run(
        STREAMER,
        "报备",
        "9月17日 20:00",
        "2小时",
        "抖音",
        "利通区电子商务中心",
        "主推枸杞和滩羊肉，抽奖引流。",
        "确认",
    )
    assert "待组委会审核" in filed
    await feishu.say_group(ORGANIZER, "绑定 litong-2024")
    shown = await feishu.say_group(ORGANIZER, "审核")
    assert "报备" in shown[0].text
    card = next(s for s in shown if s.msg_type == "interactive")
    assert "待审核" in card.text and card.receive_id == GROUP
    form = next(e for e in card.content["elements"] if e["tag"] == "form")
    approve = next(e for e in form["elements"] if e.get("name") == "approve")

    # A stranger's click changes nothing.
    stranger = feishu.pusher.card_action(
        STRANGER, approve["value"], chat_id=GROUP, form_value={"reason": ""}, name="approve"
    )
    answer = await (await feishu.push(stranger)).json()
    assert answer["toast"]["type"] == "error" and "无权限" in answer["toast"]["content"]
    assert "card" not in answer

    click = feishu.pusher.card_action(
        ORGANIZER, approve["value"], chat_id=GROUP, form_value={"reason": ""}, name="approve"
    )
    response = await feishu.push(click)
    assert response.status == 200
    answer = await response.json()
    assert answer["toast"]["type"] == "success"
    updated = answer["card"]["data"]
    texts = str(updated)
    assert "已通过" in texts and ORGANIZER in texts and "2024年9月15日 10:00" in texts
    assert not any(e["tag"] in ("form", "action") for e in updated["elements"])  # no buttons
    [filing] = await feishu.rows(Filing)
    assert (filing.status, filing.reviewed_by) == ("approved", f"feishu:{ORGANIZER}")

    await feishu.deliver_outbox()
    told = feishu.fake.to(STREAMER)[-1]
    assert "已通过审核" in told.text


async def test_a_rejection_needs_the_reason_typed_in_the_card(feishu: Feishu) -> None:
    await feishu.run(STREAMER, "报名", *litong_answers("王小文", "13812345678", "2万", "5000元"))
    feishu.clock.set(shanghai(2024, 9, 15, 10, 0))
    await feishu.run(
        STREAMER,
        "报备",
        "9月17日 20:00",
        "2小时",
        "抖音",
        "利通区电子商务中心",
        "主推枸杞和滩羊肉，抽奖引流。",
        "确认",
    )
    shown = await feishu.say(ORGANIZER, "审核")
    card = next(s for s in shown if s.msg_type == "interactive")
    form = next(e for e in card.content["elements"] if e["tag"] == "form")
    reject = next(e for e in form["elements"] if e.get("name") == "reject")
    empty = feishu.pusher.card_action(ORGANIZER, reject["value"], form_value={"reason": " "})
    answer = await (await feishu.push(empty)).json()
    assert "理由" in answer["toast"]["content"] and "card" not in answer
    reasoned = feishu.pusher.card_action(
        ORGANIZER, reject["value"], form_value={"reason": "场地不符"}
    )
    answer = await (await feishu.push(reasoned)).json()
    assert "已驳回" in str(answer["card"]["data"]) and "场地不符" in str(answer["card"]["data"])
    await feishu.deliver_outbox()
    assert "场地不符" in feishu.fake.to(STREAMER)[-1].text


async def test_an_organizer_imports_a_statistics_file_downloaded_off_the_loop(
    feishu: Feishu,
) -> None:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([["抖音号", "直播间成交金额"], ["nobody_here", "100"]])
    feishu.fake.add_file("om_file_1", "file_v3_1", "利通数据.csv", buffer.getvalue().encode())
    event = feishu.pusher.message(
        ORGANIZER, {"file_key": "file_v3_1", "file_name": "利通数据.csv"}, message_type="file"
    )
    event["event"]["message"]["message_id"] = "om_file_1"
    assert (await feishu.push(event)).status == 200
    await feishu.channel.drain()
    [answer] = feishu.fake.to(ORGANIZER)
    assert "利通数据.csv" in answer.text  # the file name survived the download
    assert "导入" in answer.text


async def test_a_file_from_someone_else_is_not_downloaded(feishu: Feishu) -> None:
    event = feishu.pusher.message(
        STREAMER, {"file_key": "file_v3_2", "file_name": "x.xlsx"}, message_type="file"
    )
    assert (await feishu.push(event)).status == 200
    await feishu.channel.drain()
    assert "只有组委会成员" in feishu.fake.to(STREAMER)[0].text


# Long connection ---------------------------------------------------------------------------
async def test_long_connection_mode_uses_the_same_handlers_and_dedup(
    aiohttp_client: AiohttpClient,
    db_url: str,
    clock: FrozenClock,
    all_campaigns: Campaigns,
    fake_server: tuple[FakeFeishu, str],
) -> None:
    feishu = await start(
        aiohttp_client, db_url, clock, all_campaigns, fake_server, FEISHU_MODE="ws"
    )
    fake = feishu.fake
    await fake.wait_connected()
    assert (await feishu.client.post("/feishu/events", data=b"{}")).status == 404
    event = feishu.pusher.text(STREAMER, "帮助", event_id="ev-ws-1")
    for _ in range(2):
        ack = await fake.push(event)
        assert ack["code"] == 200
        await feishu.channel.drain()
    [reply] = fake.to(STREAMER)
    assert "报名" in reply.text
    connection = feishu.channel.connection
    assert connection is not None
    await feishu.client.close()
    assert not connection.running
