"""The WeChat Official Account push protocol at /wechat, over real HTTP with real signatures and
AES encryption (Tencent's published sample credentials), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from typing import Any

import pytest
import xmltodict
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st
from pytest_aiohttp import AiohttpClient, AiohttpServer
from sqlmodel import select
from wechatpy.crypto import WeChatCrypto
from wechatpy.replies import TextReply

from bot.app import create_app
from bot.clock import FrozenClock
from bot.dispatcher import Prelude
from bot.handlers.wechat import WECHAT, build_menu, cdata, pack
from bot.keys import DATABASE, DISPATCHER, SENDERS
from bot.messages import Incoming, Reply
from storage.models import (
    ChannelUser,
    Conversation,
    Filing,
    Outbox,
    ProcessedEvent,
    Registration,
)
from tests.conftest import shanghai
from tests.fakes.wechat_api import APPID, SECRET, FakeWeChat
from tests.helpers import Campaigns, litong_answers, only, settings_for

# Tencent's sample credentials (their WXBizMsgCrypt Sample.py).
TOKEN = "spamtest"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
ACCOUNT = "gh_10f6c3c3ac5a"
SAMPLE_USER = "oyORnuP8q7ou2gfYjqLzSIWZf0rs"
SAMPLE_ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PG"
    "HQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6"
    "tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp"
    "3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhv"
    "Ql+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
)
SAMPLE_QUERY = {
    "timestamp": "1409735669",
    "nonce": "1320562132",
    "msg_signature": "5d197aaffba7e9b25a30732f161a50dee96bd5fa",
}
MODES = ["plain", "compatible", "safe"]
LITONG_NAME = "“我在利通带好货”系列活动（第一期）"


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def push_xml(user: str, msg_type: str, created: int, **fields: str | int) -> str:
    body = "".join(
        f"<{k}><![CDATA[{v.replace(']]>', ']]]]><![CDATA[>')}]]></{k}>"
        if isinstance(v, str)
        else f"<{k}>{v}</{k}>"
        for k, v in fields.items()
    )
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
        f"<FromUserName><![CDATA[{user}]]></FromUserName><CreateTime>{created}</CreateTime>"
        f"<MsgType><![CDATA[{msg_type}]]></MsgType>{body}</xml>"
    )


class WeChatServers:
    """Plays WeChat's servers: signs (and in compatible/safe mode encrypts) pushes to /wechat
    and reads the passive replies back."""

    _ids = itertools.count(6054768590064713729)
    _times = itertools.count(1725760800)

    def __init__(self, client: TestClient, mode: str = "plain") -> None:
        self.client = client
        self.mode = mode
        self.crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)

    async def post(self, xml: str, *, token: str = TOKEN, tamper: bool = False) -> ClientResponse:
        timestamp, nonce = str(next(self._times)), "1320562132"
        query = {"signature": sign(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
        body = xml
        if self.mode != "plain":
            sealed = xmltodict.parse(self.crypto.encrypt_message(xml, nonce, timestamp))["xml"]
            encrypted = sealed["Encrypt"]
            signature = sealed["MsgSignature"] if not tamper else sign(token, "forged")
            query |= {"encrypt_type": "aes", "msg_signature": signature}
            element = f"<Encrypt><![CDATA[{encrypted}]]></Encrypt>"
            if self.mode == "safe":
                body = f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>{element}</xml>"
            else:
                body = xml.replace("</xml>", f"{element}</xml>")
        return await self.client.post("/wechat", params=query, data=body.encode())

    async def reply(self, xml: str, user: str) -> str:
        """The reply text; "" when WeChat was answered `success`."""
        response = await self.post(xml)
        assert response.status == 200, await response.text()
        return self.read(await response.text(), user)

    def read(self, text: str, user: str) -> str:
        if text == "success":
            return ""
        if self.mode != "plain":
            sealed = xmltodict.parse(text)["xml"]
            text = self.crypto.decrypt_message(
                text, sealed["MsgSignature"], sealed["TimeStamp"], sealed["Nonce"]
            )
        reply = xmltodict.parse(text)["xml"]
        assert (reply["ToUserName"], reply["FromUserName"], reply["MsgType"]) == (
            user,
            ACCOUNT,
            "text",
        )
        return str(reply["Content"])

    async def say(self, user: str, text: str, *, msg_id: int | None = None) -> str:
        msg_id = msg_id or next(self._ids)
        xml = push_xml(user, "text", next(self._times), Content=text, MsgId=msg_id)
        return await self.reply(xml, user)

    async def event(self, user: str, event: str, key: str | None = None) -> str:
        fields: dict[str, str | int] = {"Event": event}
        if key is not None:
            fields["EventKey"] = key
        return await self.reply(push_xml(user, "event", next(self._times), **fields), user)


@pytest.fixture
async def fake_api(aiohttp_server: AiohttpServer) -> tuple[FakeWeChat, str]:
    fake = FakeWeChat()
    server = await aiohttp_server(fake.app())
    return fake, str(server.make_url("")).rstrip("/")


def wechat_settings(db_url: str, base: str, **extra: Any) -> Any:
    values = {
        "WECHAT_TOKEN": TOKEN,
        "WECHAT_APPID": APPID,
        "WECHAT_SECRET": SECRET,
        "WECHAT_ENCODING_AES_KEY": AES_KEY,
        "WECHAT_API_BASE": base,
    }
    return settings_for(db_url, **(values | extra))


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient,
    db_url: str,
    clock: FrozenClock,
    all_campaigns: Campaigns,
    fake_api: tuple[FakeWeChat, str],
) -> TestClient:
    campaigns = only(all_campaigns, "litong-2024", "demo")
    app = create_app(wechat_settings(db_url, fake_api[1]), clock=clock, campaigns=campaigns)
    return await aiohttp_client(app)


async def rows(client: TestClient, model: Any) -> list[Any]:
    return await client.server.app[DATABASE].run(lambda s: list(s.exec(select(model))))


async def dev_say(client: TestClient, user: str, text: str) -> str:
    response = await client.post("/dev/messages", json={"user": user, "text": text})
    return "\n\n".join(r["text"] for r in (await response.json())["replies"])


# Protocol ------------------------------------------------------------------------------------
async def test_url_verification_echoes_only_with_a_good_signature(client: TestClient) -> None:
    query = {"timestamp": "1409735669", "nonce": "42", "echostr": "4711"}
    good = await client.get(
        "/wechat", params=query | {"signature": sign(TOKEN, "1409735669", "42")}
    )
    assert good.status == 200 and await good.text() == "4711"
    bad = await client.get("/wechat", params=query | {"signature": sign("other", "1", "42")})
    assert bad.status == 403 and "4711" not in await bad.text()
    assert (await client.get("/wechat", params={"echostr": "4711"})).status == 403


async def test_tencent_sample_vector_decrypts_verifies_and_is_answered_encrypted(
    client: TestClient,
) -> None:
    """The push of Tencent's Sample.py (msg_signature and ciphertext as published)."""
    query = SAMPLE_QUERY | {
        "signature": sign(TOKEN, SAMPLE_QUERY["timestamp"], SAMPLE_QUERY["nonce"]),
        "encrypt_type": "aes",
    }
    body = f"<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><Encrypt><![CDATA[{SAMPLE_ENCRYPT}]]></Encrypt></xml>"
    response = await client.post("/wechat", params=query, data=body.encode())
    assert response.status == 200
    text = WeChatServers(client, "safe").read(await response.text(), SAMPLE_USER)
    assert "直播带货赛事助手" in text  # `abcdteT` is no keyword: the menu
    [processed] = await rows(client, ProcessedEvent)
    assert processed.event_id == "m:6054768590064713728"


@pytest.mark.parametrize("mode", MODES)
async def test_signup_filing_and_ranking_answer_as_on_dev_messages(
    client: TestClient, clock: FrozenClock, mode: str
) -> None:
    wechat = WeChatServers(client, mode)
    answers = litong_answers("王小文", "13812345678", "2万", "5000元")
    for text in ["报名", "litong-2024", *answers, "我的"]:
        assert await wechat.say("o-wechat-user", text) == await dev_say(client, "dev-user", text)
    [_dev_reg, reg] = sorted(await rows(client, Registration), key=lambda r: r.channel)
    assert (reg.channel, reg.user_id, reg.group_key) == ("wechat", "o-wechat-user", "expert")
    # Two streamers now rank differently, so 排名 is compared with what the flows answer this
    # very user (it changes nothing, so asking twice is fair).
    ranking = await client.server.app[DISPATCHER].handle(
        Incoming(channel="wechat", user="o-wechat-user", text="排名")
    )
    expected = "\n\n".join(r.render_text() for r in ranking)
    assert "【排名】" in expected and await wechat.say("o-wechat-user", "排名") == expected
    # A filing in the competition phase, step by step as on every channel.
    clock.set(shanghai(2024, 9, 15, 10, 0))
    plan = "主推枸杞和滩羊肉，抽奖引流。"
    for text in ["报备", "9月17日 20:00", "2小时", "抖音", "1", plan]:
        assert await wechat.say("o-wechat-user", text) == await dev_say(client, "dev-user", text)
    assert "报备成功" in await wechat.say("o-wechat-user", "确认")
    [filing] = await rows(client, Filing)
    assert (filing.registration_id, filing.minutes, filing.status) == (reg.id, 120, "pending")


async def test_three_deliveries_of_one_message_change_state_once(client: TestClient) -> None:
    wechat = WeChatServers(client, "safe")
    await wechat.say("o-u1", "报名")
    await wechat.say("o-u1", "litong-2024")
    answers = [await wechat.say("o-u1", "王小文", msg_id=777) for _ in range(3)]
    assert answers[0] == answers[1] == answers[2] and "第2步" in answers[0]
    [conv] = await rows(client, Conversation)
    assert conv.step == "mobile" and conv.history.count("name") == 1
    # The next message is the mobile number, not a second name.
    assert "第3步" in await wechat.say("o-u1", "13812345678")


async def test_retried_scan_event_is_handled_once(client: TestClient) -> None:
    wechat = WeChatServers(client)
    xml = push_xml("o-u2", "event", 1725760000, Event="subscribe", EventKey="qrscene_demo")
    answers = [await wechat.reply(xml, "o-u2") for _ in range(3)]
    assert answers[0] == answers[1] == answers[2] and "第1步" in answers[0]
    assert len(await rows(client, ProcessedEvent)) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_a_bad_signature_gets_403_and_changes_nothing(client: TestClient, mode: str) -> None:
    wechat = WeChatServers(client, mode)
    xml = push_xml("o-u3", "text", 1725760000, Content="报名", MsgId=1)
    assert (await wechat.post(xml, token="not-our-token")).status == 403
    if mode != "plain":
        assert (await wechat.post(xml, tamper=True)).status == 403
    assert await rows(client, ProcessedEvent) == [] and await rows(client, ChannelUser) == []


HOSTILE = {
    "xxe": (
        '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        + push_xml("o-evil", "text", 1, Content="x", MsgId=9).replace("<![CDATA[x]]>", "&xxe;")
    ),
    "billion laughs": (
        '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "报名报名报名报名">'
        + "".join(
            f'<!ENTITY {c} "{("&" + p + ";") * 10}">'
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        )
        + "]>"
        + push_xml("o-evil", "text", 1, Content="x", MsgId=9).replace("<![CDATA[x]]>", "&i;")
    ),
    "deep nesting": push_xml("o-evil", "text", 1, MsgId=9).replace(
        "</xml>", "<Content>" + "<a>" * 5000 + "</a>" * 5000 + "</Content></xml>"
    ),
    "nested content": push_xml("o-evil", "text", 1, MsgId=9).replace(
        "</xml>", "<Content><b>报名</b></Content></xml>"
    ),
    "huge create time": push_xml("o-evil", "event", 10**200, Event="subscribe"),
    "not xml": "报名",
    "wrong root": "<html><MsgType>text</MsgType></html>",
    "no message type": "<xml><FromUserName>o-evil</FromUserName></xml>",
    "bad message id": push_xml("o-evil", "text", 1, Content="报名", MsgId="abc"),
    "not utf-8": "<xml>\xff</xml>",
}


@pytest.mark.parametrize("mode", ["plain", "safe"])
@pytest.mark.parametrize("name", list(HOSTILE))
async def test_hostile_xml_is_refused_without_processing(
    client: TestClient, mode: str, name: str
) -> None:
    wechat = WeChatServers(client, mode)
    payload = HOSTILE[name]
    if name == "not utf-8" and mode == "plain":
        response = await client.post(
            "/wechat",
            params={"signature": sign(TOKEN, "1", "2"), "timestamp": "1", "nonce": "2"},
            data=payload.encode("latin-1"),
        )
    else:
        response = await wechat.post(payload)
    assert response.status == 400
    for model in (ProcessedEvent, ChannelUser, Conversation):
        assert await rows(client, model) == []


async def test_an_oversized_body_is_refused(client: TestClient) -> None:
    response = await WeChatServers(client).post(push_xml("o", "text", 1, Content="x" * 70_000))
    assert response.status == 413


async def test_cdata_breakers_in_user_text_cannot_break_the_reply(client: TestClient) -> None:
    wechat = WeChatServers(client)
    for text in ["报名", "litong-2024", "王小文", "13812345678", "25", "电商从业者", "抖音"]:
        await wechat.say("o-u4", text)
    handle = "a]]><MsgType>image</MsgType><![CDATA[b"
    for text in [handle, "8000", "300", "同意"]:
        reply = await wechat.say("o-u4", text)
    assert f"平台账号：{handle}" in reply


@given(
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1).filter(
        lambda t: t == t.strip()
    )
)
def test_cdata_escaping_round_trips_any_text(text: str) -> None:
    xml = TextReply(source="gh", target="o", content=cdata(text), time=1).render()
    assert xmltodict.parse(xml)["xml"]["Content"] == text


# Message types --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("msg_type", "fields", "hint"),
    [
        (
            "voice",
            {"MediaId": "m1", "Format": "amr"},
            "暂时听不懂语音哦，请发文字。回复「帮助」查看可用的关键词。",
        ),
        (
            "location",
            {"Location_X": "23.1", "Location_Y": "113.3", "Scale": "20", "Label": "x"},
            "位置",
        ),
        ("link", {"Title": "t", "Description": "d", "Url": "https://example.com"}, "链接"),
        ("video", {"MediaId": "m1", "ThumbMediaId": "t1"}, "视频"),
        ("shortvideo", {"MediaId": "m1", "ThumbMediaId": "t1"}, "视频"),
        ("miniprogrampage", {"Title": "t", "AppId": "wx1"}, "这类消息"),
    ],
)
async def test_unreadable_types_get_a_friendly_hint(
    client: TestClient, msg_type: str, fields: dict[str, str], hint: str
) -> None:
    wechat = WeChatServers(client)
    reply = await wechat.reply(push_xml("o-u5", msg_type, 1725760000, MsgId=5, **fields), "o-u5")
    assert hint in reply and "「帮助」" in reply
    [seen] = await rows(client, ChannelUser)  # a message all the same: it opens the window
    assert seen.user_id == "o-u5"


async def test_an_image_reaches_the_flows_as_a_picture(client: TestClient) -> None:
    wechat = WeChatServers(client)
    await wechat.say("o-u6", "报名")
    await wechat.say("o-u6", "litong-2024")
    xml = push_xml(
        "o-u6", "image", 1725760001, PicUrl="http://x/p.jpg", MediaId="MEDIA-1", MsgId=66
    )
    reply = await wechat.reply(xml, "o-u6")
    assert "这一步请回复文字" in reply  # the engine saw an image where it wants text


async def test_menu_clicks_are_the_chat_keywords(client: TestClient) -> None:
    wechat = WeChatServers(client)
    assert await wechat.event("o-u7", "CLICK", "报名") == await dev_say(client, "d7", "报名")
    assert await wechat.event("o-u8", "CLICK", "我的") == await dev_say(client, "d8", "我的")
    # A click, a follow or a scan opens the 48-hour window as a message does; leaving does not.
    await wechat.event("o-u9", "unsubscribe")
    assert sorted(u.user_id for u in await rows(client, ChannelUser)) == ["o-u7", "o-u8"]


async def test_a_follow_without_a_scene_gets_the_welcome_and_menu(client: TestClient) -> None:
    reply = await WeChatServers(client).event("o-u9", "subscribe")
    assert "直播带货赛事助手" in reply and "「报名」" in reply


@pytest.mark.parametrize("event", ["unsubscribe", "VIEW", "LOCATION", "TEMPLATESENDJOBFINISH"])
async def test_events_with_nothing_to_say_answer_success(client: TestClient, event: str) -> None:
    assert await WeChatServers(client).event("o-u10", event, "x") == ""
    assert await rows(client, ProcessedEvent) == []


@pytest.mark.parametrize("event", ["subscribe", "SCAN"])
async def test_a_qr_scene_leads_to_a_completed_signup(client: TestClient, event: str) -> None:
    wechat = WeChatServers(client, "safe")
    key = "qrscene_demo:demo-youth" if event == "subscribe" else "demo:demo-youth"
    first = await wechat.event("o-u11", event, key)
    assert "第1步/共10步" in first and "演示团县委" in first
    answers = ["王小文", "13812345678", "25", "电商从业者", "抖音", "wxw", "8000", "300"]
    for text in [*answers, "不组队", "同意"]:
        await wechat.say("o-u11", text)
    assert "报名成功" in await wechat.say("o-u11", "确认")
    [reg] = await rows(client, Registration)
    assert (reg.campaign_id, reg.unit_key, reg.channel) == ("demo", "demo-youth", "wechat")


# Deadline -------------------------------------------------------------------------------------
class SlowDispatcher:
    """The real dispatcher behind a gate the test opens: a slow database, a long flow."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.gate = asyncio.Event()

    async def handle(self, incoming: Incoming, prelude: Prelude | None = None) -> list[Reply]:
        await self.gate.wait()
        return await self.real.handle(incoming, prelude=prelude)


async def test_a_slow_answer_is_success_then_a_customer_service_message(
    client: TestClient, fake_api: tuple[FakeWeChat, str]
) -> None:
    fake = fake_api[0]
    channel = client.server.app[WECHAT]
    slow = SlowDispatcher(channel.dispatcher)
    channel.dispatcher, channel.deadline = slow, 0  # past the deadline before it starts
    wechat = WeChatServers(client, "safe")
    assert await wechat.say("o-slow", "帮助", msg_id=4242) == ""
    assert await wechat.say("o-slow", "帮助", msg_id=4242) == ""  # WeChat's retry
    assert fake.custom == []
    slow.gate.set()
    await channel.drain()
    [sent] = fake.custom
    assert sent["touser"] == "o-slow" and "直播带货赛事助手" in sent["text"]
    # A retry after the late reply went out is still `success`, and nothing is sent twice.
    assert await wechat.say("o-slow", "帮助", msg_id=4242) == ""
    await channel.drain()
    assert len(fake.custom) == 1
    assert [p.event_id for p in await rows(client, ProcessedEvent)].count("m:4242") == 1


async def test_a_late_reply_that_cannot_go_is_queued_in_the_outbox(
    client: TestClient, fake_api: tuple[FakeWeChat, str]
) -> None:
    fake = fake_api[0]
    fake.fail("/cgi-bin/message/custom/send", 45047)
    channel = client.server.app[WECHAT]
    channel.deadline = 0
    assert await WeChatServers(client).say("o-late", "帮助", msg_id=5151) == ""
    await channel.drain()
    [queued] = await rows(client, Outbox)
    assert (queued.channel, queued.recipient, queued.kind) == ("wechat", "o-late", "reply")
    assert "直播带货赛事助手" in queued.text and fake.custom == []


class LongAnswers:
    """Flows whose answer is longer than one passive reply may be (WeChat shows 2048 bytes)."""

    async def handle(self, incoming: Incoming, prelude: Prelude | None = None) -> list[Reply]:
        return [Reply("第一段"), Reply("长" * 1000)]


async def test_an_answer_too_long_for_one_reply_follows_in_order(
    client: TestClient, fake_api: tuple[FakeWeChat, str]
) -> None:
    channel = client.server.app[WECHAT]
    channel.dispatcher = LongAnswers()
    assert await WeChatServers(client).say("o-long", "帮助") == ""
    await channel.drain()
    texts = [m["text"] for m in fake_api[0].custom]
    assert len(texts) == 3 and all(len(t.encode()) <= 2048 for t in texts)
    assert "".join(texts).split() == ["第一段", "长" * 1000]


def test_long_replies_are_packed_into_messages_within_the_limit() -> None:
    replies = ["第一条", "长" * 1000, "第三条\n第三条第二行"]
    chunks = pack(replies, limit=2048)
    assert all(len(c.encode()) <= 2048 for c in chunks)
    assert "".join(chunks).replace("\n", "") == "".join(replies).replace("\n", "")
    assert pack(["一", "二"]) == ["一\n\n二"]
    assert pack([]) == []


async def test_routes_and_sender_exist_only_when_configured(
    aiohttp_client: AiohttpClient, db_url: str, clock: FrozenClock, all_campaigns: Campaigns
) -> None:
    bare = await aiohttp_client(
        create_app(settings_for(db_url), clock=clock, campaigns=all_campaigns)
    )
    assert (await bare.get("/wechat")).status == 404
    assert (await bare.post("/wechat", data=b"<xml/>")).status == 404
    assert "wechat" not in bare.server.app[SENDERS]


async def test_the_custom_menu_offers_only_known_keywords() -> None:
    menu = build_menu({"报名", "我的", "帮助"})
    assert menu == {
        "button": [
            {"name": "参赛", "sub_button": [{"type": "click", "name": "报名", "key": "报名"}]},
            {"name": "查询", "sub_button": [{"type": "click", "name": "我的", "key": "我的"}]},
            {"type": "click", "name": "帮助", "key": "帮助"},
        ]
    }
