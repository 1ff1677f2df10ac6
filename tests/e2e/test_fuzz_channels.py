"""Hostile and random input to the WeChat and Feishu endpoints of a real server process (SQLite
and PostgreSQL): never a 500, a refused request changes nothing, and nothing fails in the
background; and one user's burst of concurrent WeChat messages is handled one after another,
none lost.

The server is tests/e2e/channel_server.py's: WeChat with Tencent's sample token and AES key,
Feishu with an Encrypt Key (so every event is signed) and a loopback fake of its open API.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from wechatpy.crypto import PrpCrypto, WeChatCrypto

from config.settings import ROOT
from tests.channel.test_wechat import ACCOUNT, AES_KEY, TOKEN, push_xml, sign
from tests.conftest import database_url
from tests.e2e.channel_server import (
    PUSHER,
    Server,
    serving,
    wait_for,
    wechat_of,
)
from tests.fakes.feishu_api import ENCRYPT_KEY, VERIFICATION_TOKEN, encrypt, signature
from tests.fakes.wechat_api import APPID

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same examples on every run
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
REFUSED = (400, 401, 403, 413)
# A log record starts with its time (run_bot.py's format); a traceback follows its record.
RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", re.MULTILINE)
BOT_CODE = f'File "{ROOT / "bot"}'


def failures(log: str) -> list[str]:
    """The records at ERROR or above, but the SDK's own refusal of a payload it cannot read
    (it logs one, with a traceback through lark_oapi only; we answer those 200)."""
    starts = [m.start() for m in RECORD.finditer(log)] + [len(log)]
    records = [log[a:b] for a, b in itertools.pairwise(starts)]
    bad = [r for r in records if r.split(" ", 3)[2] in ("ERROR", "CRITICAL")]
    return [r for r in bad if r.split(" ", 4)[3] != "Lark:" or BOT_CODE in r]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(f"fuzz-channels-{request.param}")
    with database_url(request.param, tmp) as db_url, serving(db_url, tmp) as running:
        yield running


@pytest.fixture
def quiet_log(server: Server) -> Iterator[None]:
    """What the test makes the server log: no traceback, no failure (a 500 logs one, and so
    does a Feishu event that breaks in the background)."""
    server.settle()
    start = server.log_size()
    yield
    server.settle()
    logged = server.log(start)
    assert "Error handling request" not in logged, logged[-4000:]  # aiohttp's 500
    assert failures(logged) == []


# Strategies ------------------------------------------------------------------------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
PRINTABLE = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=70)
QUERY_KEYS = st.sampled_from(
    ["signature", "timestamp", "nonce", "echostr", "encrypt_type", "msg_signature", "openid"]
) | st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8)
QUERY = st.dictionaries(QUERY_KEYS, st.text(max_size=60), max_size=7)
WECHAT_TAGS = st.sampled_from(
    [
        "ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId", "Event",
        "EventKey", "MediaId", "PicUrl", "Encrypt", "Ticket", "Status", "Format", "Recognition",
    ]
) | st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,8}\Z")  # fmt: skip
WECHAT_VALUES = st.sampled_from(
    [
        "text", "image", "event", "voice", "video", "link", "location", "subscribe", "SCAN",
        "CLICK", "unsubscribe", "VIEW", "qrscene_litong-2024", "报名", "取消", "1725760800",
        "-1", "99999999999999999999999", "]]>", "",
    ]
) | st.text(max_size=40)  # fmt: skip


def _node(tag: str, value: str | list[str], cdata: bool) -> str:
    if isinstance(value, list):
        return f"<{tag}>{''.join(value)}</{tag}>"
    inner = f"<![CDATA[{value}]]>" if cdata else escape(value)
    return f"<{tag}>{inner}</{tag}>"


ELEMENT = st.recursive(
    st.builds(_node, WECHAT_TAGS, WECHAT_VALUES, st.booleans()),
    lambda inner: st.builds(_node, WECHAT_TAGS, st.lists(inner, max_size=4), st.just(False)),
    max_leaves=12,
)
RANDOM_XML = st.builds(
    lambda root, children, cut: (f"<{root}>{''.join(children)}</{root}>")[: cut or None],
    st.sampled_from(["xml", "xml", "xml", "Xml", "root"]),
    st.lists(ELEMENT, max_size=8),
    st.sampled_from([0, 0, 0, 5, 17, 40]),
)
# Pushes shaped like WeChat's, every field drawn: mostly valid messages from random users.
SHAPED_PUSH = st.builds(
    lambda user, kind, created, fields: push_xml(user, kind, created, **fields),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=70),
    st.sampled_from(["text", "image", "event", "voice", "location", "link", "shortvideo", "新"]),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.dictionaries(
        st.sampled_from(["Content", "MsgId", "Event", "EventKey", "MediaId", "Status"]),
        WECHAT_VALUES | st.integers(min_value=-(2**70), max_value=2**70),
        max_size=5,
    ),
)
WECHAT_BODIES = (
    st.binary(max_size=2000)
    | RANDOM_XML.map(str.encode)
    | SHAPED_PUSH.map(str.encode)
    | st.just(b"")
)


def wechat_query(**extra: str) -> dict[str, str]:
    timestamp, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
    return {"signature": sign(TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce} | (
        extra
    )


def check_refused_changes_nothing(server: Server, response_status: int, before: Any) -> None:
    assert response_status != 500
    if response_status in REFUSED:
        assert server.counts() == before


# WeChat ----------------------------------------------------------------------------------------
@FUZZ
@given(query=QUERY)
def test_wechat_url_check_needs_the_signature(server: Server, query: dict[str, str]) -> None:
    assume(
        query.get("signature") != sign(TOKEN, query.get("timestamp", ""), query.get("nonce", ""))
    )
    response = server.get("/wechat", params=query)
    event(f"HTTP {response.status}")
    assert response.status == 403
    assert response.text == "bad signature"  # nothing of the request echoed


@FUZZ
@given(echostr=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80))
def test_wechat_url_check_echoes_exactly_with_a_good_signature(
    server: Server, echostr: str
) -> None:
    response = server.get("/wechat", params=wechat_query(echostr=echostr))
    event(f"HTTP {response.status}")
    assert (response.status, response.text) == (200, echostr)


@FUZZ
@given(query=QUERY, body=WECHAT_BODIES)
def test_wechat_unsigned_pushes_are_refused_unread(
    server: Server, quiet_log: None, query: dict[str, str], body: bytes
) -> None:
    assume(
        query.get("signature") != sign(TOKEN, query.get("timestamp", ""), query.get("nonce", ""))
    )
    before = server.counts()
    assert server.post("/wechat", body, params=query).status == 403
    assert server.counts() == before


@FUZZ
@given(body=WECHAT_BODIES, encrypt_type=st.sampled_from([None, "raw", "RAW", "", "rsa"]))
def test_wechat_signed_garbage_is_never_a_500(
    server: Server, quiet_log: None, body: bytes, encrypt_type: str | None
) -> None:
    """A good signature over anything: 200 for a push the bot can read (it may change state:
    it is a message), otherwise 400/413 and nothing changed."""
    before = server.counts()
    extra = {"encrypt_type": encrypt_type} if encrypt_type is not None else {}
    response = server.post("/wechat", body, params=wechat_query(**extra))
    event(f"HTTP {response.status}")
    assert response.status in (200, *REFUSED)
    check_refused_changes_nothing(server, response.status, before)
    if response.status == 200 and response.text != "success":
        assert response.text.startswith("<xml>")  # a passive reply, well-formed enough to read


SEALER = WeChatCrypto(TOKEN, AES_KEY, APPID)
# (how, what): sealed in the test, as wechatpy's encryption draws its padding from `random`.
ENCRYPT_VALUES = st.one_of(
    st.tuples(st.just("as-is"), st.text(max_size=200)),  # not base64, or not whole AES blocks
    st.tuples(st.just("base64"), st.binary(max_size=300)),
    # Properly encrypted for us, but garbage inside (not XML, or not a WeChat push).
    st.tuples(st.just("sealed"), st.text(max_size=200) | RANDOM_XML),
    # A real push, encrypted for another account.
    st.tuples(st.just("other-account"), st.just("")),
)


def seal(how: str, what: str | bytes) -> str:
    if how == "as-is":
        return str(what)
    if how == "base64":
        return base64.b64encode(bytes(what)).decode()  # type: ignore[arg-type]
    if how == "sealed":
        return str(PrpCrypto(SEALER.key).encrypt(what, APPID).decode())
    push = push_xml("o-evil", "text", 1725760800, Content="报名", MsgId=1)
    return str(PrpCrypto(SEALER.key).encrypt(push, "wx-other").decode())


@FUZZ
@given(encrypted=ENCRYPT_VALUES, good_msg_signature=st.booleans(), safe=st.booleans())
def test_wechat_encrypted_garbage_is_refused_and_changes_nothing(
    server: Server,
    quiet_log: None,
    encrypted: tuple[str, str | bytes],
    good_msg_signature: bool,
    safe: bool,
) -> None:
    sealed = seal(*encrypted)
    query = wechat_query(encrypt_type="aes")
    msg_signature = (
        sign(TOKEN, query["timestamp"], query["nonce"], sealed)
        if good_msg_signature
        else uuid.uuid4().hex
    )
    query["msg_signature"] = msg_signature
    element = f"<Encrypt><![CDATA[{sealed}]]></Encrypt>"
    plain = push_xml("o-plain-part", "text", 1725760800, Content="报名", MsgId=2)
    body = (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>{element}</xml>"
        if safe
        else plain.replace("</xml>", f"{element}</xml>")  # compatible: the plain part is ignored
    )
    before = server.counts()
    response = server.post("/wechat", body.encode(), params=query)
    event(f"HTTP {response.status}")
    assert response.status in (400, 403), response.text
    assert server.counts() == before


# Feishu ----------------------------------------------------------------------------------------
STREAMER = "ou_fuzz_streamer_000000000000001"


def feishu_headers(body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """Signed as Feishu signs: sha256(timestamp + nonce + encrypt key + body)."""
    stamp, nonce = str(timestamp or int(time.time())), uuid.uuid4().hex
    return {
        "Content-Type": "application/json; charset=utf-8",
        "X-Lark-Request-Timestamp": stamp,
        "X-Lark-Request-Nonce": nonce,
        "X-Lark-Signature": signature(stamp, nonce, ENCRYPT_KEY, body),
    }


def a_real_event() -> tuple[bytes, dict[str, str]]:
    """A text that would start a sign-up: what a forged request would like to get in."""
    return PUSHER.request(PUSHER.text(STREAMER, "报名"), int(time.time()))


FEISHU_BODIES = (
    st.binary(max_size=2000)
    | JSON.map(lambda v: json.dumps(v).encode())
    | st.dictionaries(st.sampled_from(["encrypt", "token", "type", "challenge"]), JSON).map(
        lambda v: json.dumps(v).encode()
    )
)


@FUZZ
@given(body=FEISHU_BODIES, headers=st.dictionaries(
    st.sampled_from(["X-Lark-Request-Timestamp", "X-Lark-Request-Nonce", "X-Lark-Signature"]),
    PRINTABLE,
))  # fmt: skip
def test_feishu_random_requests_are_refused(
    server: Server, quiet_log: None, body: bytes, headers: dict[str, str]
) -> None:
    before = server.counts()
    response = server.post("/feishu/events", body, headers=headers)
    event(f"HTTP {response.status}")
    assert response.status in (400, 401, 403), response.text
    assert server.counts() == before


TAMPERINGS = st.sampled_from(
    [
        "no-signature",
        "random-signature",
        "other-key",
        "stale",
        "future",
        "body-changed",
        "nonce-changed",
        "timestamp-not-a-number",
        "no-timestamp",
    ]
)


@FUZZ
@given(tampering=TAMPERINGS, junk=PRINTABLE)
def test_feishu_events_with_a_wrong_signature_change_nothing(
    server: Server, quiet_log: None, tampering: str, junk: str
) -> None:
    body, headers = a_real_event()
    stamp, nonce = headers["X-Lark-Request-Timestamp"], headers["X-Lark-Request-Nonce"]
    if tampering == "no-signature":
        del headers["X-Lark-Signature"]
    elif tampering == "random-signature":
        headers["X-Lark-Signature"] = junk
    elif tampering == "other-key":
        headers["X-Lark-Signature"] = signature(stamp, nonce, ENCRYPT_KEY + junk + "x", body)
    elif tampering in ("stale", "future"):
        moved = str(int(stamp) + (-1 if tampering == "stale" else 1) * 3600)
        headers["X-Lark-Request-Timestamp"] = moved
        headers["X-Lark-Signature"] = signature(moved, nonce, ENCRYPT_KEY, body)
    elif tampering == "body-changed":
        body = body.replace(b"}", b', "x": 1}', 1) if junk else body + b" "
    elif tampering == "nonce-changed":
        headers["X-Lark-Request-Nonce"] = nonce + "x" + junk
    elif tampering == "timestamp-not-a-number":
        headers["X-Lark-Request-Timestamp"] = f"{stamp}x{junk}"
    else:
        del headers["X-Lark-Request-Timestamp"]
    before, sent = server.counts(), len(server.feishu.sent)
    response = server.post("/feishu/events", body, headers=headers)
    event(f"HTTP {response.status}")
    assert response.status in (400, 401), response.text
    assert server.settle(quiet=0.2) == before and len(server.feishu.sent) == sent


# Signed garbage: the token may be inside, so some get through to the SDK (answered 200).
SIGNED_GARBAGE = st.one_of(
    st.binary(max_size=1000),
    JSON.map(lambda v: json.dumps(v).encode()),
    st.builds(
        lambda extra: json.dumps({"token": VERIFICATION_TOKEN, **extra}).encode(),
        st.dictionaries(st.sampled_from(["type", "schema", "event", "header", "uuid"]), JSON),
    ),
    st.text(max_size=200).map(lambda t: json.dumps({"encrypt": t}).encode()),
    st.text(max_size=200).map(lambda t: json.dumps({"encrypt": encrypt(ENCRYPT_KEY, t)}).encode()),
    JSON.map(lambda v: json.dumps({"encrypt": encrypt(ENCRYPT_KEY, json.dumps(v))}).encode()),
    st.builds(
        lambda header, event: json.dumps(
            {
                "encrypt": encrypt(
                    ENCRYPT_KEY,
                    json.dumps(
                        {"schema": "2.0", "header": {"token": VERIFICATION_TOKEN, **header}}
                        | ({"event": event} if event is not None else {})
                    ),
                )
            }
        ).encode(),
        st.fixed_dictionaries(
            {},
            optional={
                "event_type": st.sampled_from(
                    ["im.message.receive_v1", "card.action.trigger", "im.chat.member.bot.added_v1"]
                )
                | st.text(max_size=20),
                "event_id": st.text(max_size=20) | JSON,
                "create_time": JSON,
            },
        ),
        JSON,
    ),
)


@FUZZ
@given(body=SIGNED_GARBAGE)
def test_feishu_signed_garbage_is_never_a_500(server: Server, quiet_log: None, body: bytes) -> None:
    before = server.counts()
    response = server.post("/feishu/events", body, headers=feishu_headers(body))
    event(f"HTTP {response.status}")
    assert response.status in (200, 400, 403), response.text
    if response.status != 200:
        assert server.counts() == before


def _field(value: Any, default: Any) -> Any:
    return default if value is None else value


# Events of the kinds we handle, every field drawn: what a bug in Feishu (or in our reading of
# its schema) could send. They are signed and carry the token, so they are answered 200; what
# runs in the background must not break (the quiet_log fixture reads the log).
SHAPED_MESSAGE = st.builds(
    lambda kind, content, chat_type, mentions, sender_type, open_id, chat_id: (
        PUSHER.message(
            _field(open_id, STREAMER),
            {},
            message_type=kind,
            chat_id=chat_id,
            mentions=mentions,
        )
        | {"_content": content, "_chat_type": chat_type, "_sender_type": sender_type}
    ),
    st.sampled_from(["text", "post", "image", "file", "audio", "sticker", "interactive"])
    | st.text(max_size=10),
    JSON.map(json.dumps) | st.text(max_size=100),
    st.sampled_from(["p2p", "group", "topic"]) | st.text(max_size=6),
    st.lists(
        st.fixed_dictionaries(
            {"key": st.sampled_from(["@_user_1", "@_all", ""]) | st.text(max_size=6)},
            optional={"id": JSON, "name": JSON, "mentioned_type": JSON},
        ),
        max_size=3,
    )
    | st.none(),
    st.sampled_from(["user", "app", "bot"]) | st.text(max_size=6),
    st.none() | st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=30),
    st.none() | st.sampled_from(["oc_fuzz_group_0001"]),
)


def _shaped(event: dict[str, Any]) -> dict[str, Any]:
    content, chat_type, sender_type = (
        event.pop("_content"),
        event.pop("_chat_type"),
        event.pop("_sender_type"),
    )
    event["event"]["message"]["content"] = content
    event["event"]["message"]["chat_type"] = chat_type
    event["event"]["sender"]["sender_type"] = sender_type
    return event


CARD_ACTIONS = st.builds(
    lambda value, form, name: PUSHER.card_action(
        STREAMER, value, form_value=form, name=name, chat_id="oc_fuzz_group_0001"
    ),
    st.dictionaries(st.sampled_from(["text", "item", "approve", "ref", "kind"]), JSON),
    st.none() | st.dictionaries(st.sampled_from(["reason", "x"]), JSON),
    st.none() | st.text(max_size=10),
)


@FUZZ
@given(payload=SHAPED_MESSAGE.map(_shaped) | CARD_ACTIONS)
def test_feishu_odd_events_never_break_the_background(
    server: Server, quiet_log: None, payload: dict[str, Any]
) -> None:
    body, headers = PUSHER.request(payload, int(time.time()))
    response = server.post("/feishu/events", body, headers=headers)
    event(f"HTTP {response.status}")
    assert response.status == 200, response.text


@pytest.mark.parametrize("kind", ["text", "post", "image"])
def test_feishu_message_content_of_any_json_shape_is_answered(
    server: Server, quiet_log: None, kind: str
) -> None:
    """Feishu's `content` is a JSON object in a string; anything else (found by the fuzzing
    above: it broke the background task, and the sender never got an answer) reads as empty."""
    for content in ["null", "[1, 2]", "5", '"text"', '{"zh_cn": 5}', '{"content": 5}', "{bad"]:
        user = f"ou_shape_{uuid.uuid4().hex[:20]}"
        payload = PUSHER.message(user, {}, message_type=kind)
        payload["event"]["message"]["content"] = content
        body, headers = PUSHER.request(payload, int(time.time()))
        assert server.post("/feishu/events", body, headers=headers).status == 200
        wait_for(lambda u=user: bool(server.feishu.to(u)), f"an answer to {kind} {content}")


# Many concurrent messages from one user -------------------------------------------------------
BURST = 8


async def test_a_burst_from_one_wechat_user_is_handled_one_after_another(server: Server) -> None:
    """A streamer at step 9 of the sign-up sends 8 「上一步」 and 8 「我的」 at once (16 pushes,
    each its own MsgId). Strictly one after another, each 「上一步」 goes back from where the one
    before left: their replies name steps 8, 7, …, 1, each once; none is lost (16 answers, 16
    deliveries recorded, the conversation at step 1); and a 「我的」 never sees a half-done one."""
    user = f"o-burst-{uuid.uuid4().hex[:8]}"
    async with wechat_of(server) as wechat:
        first = await wechat.event(user, "subscribe", "qrscene_litong-2024")
        assert "第1步/" in first, first
        for answer in ["欧阳娜娜", "13912345678", "25", "电商从业者", "抖音", "nana_live", "8000"]:
            await wechat.say(user, answer)
        at = await wechat.say(user, "300")
        assert "第9步/" in at, at
        before = server.counts()

        texts = ["上一步", "我的"] * BURST
        replies = await asyncio.gather(*(wechat.say(user, text) for text in texts))

        back = [_step(r) for text, r in zip(texts, replies, strict=True) if text == "上一步"]
        assert sorted(back) == list(range(1, BURST + 1)), replies
        mine = [_step(r) for text, r in zip(texts, replies, strict=True) if text == "我的"]
        assert all(1 <= step <= 9 for step in mine), replies
        after = server.counts()
        assert after["processed_event"] - before["processed_event"] == len(texts)
        assert after["registration"] == before["registration"]
        assert _step(await wechat.say(user, "我的")) == 1


def _step(reply: str) -> int:
    found = re.findall(r"第(\d+)步/共\d+步", reply)
    assert found, reply
    return int(found[-1])


def test_the_module_server_is_the_one_configured(server: Server) -> None:
    """The fixture serves what the tests think: WeChat and Feishu on, /dev absent (production)."""
    assert server.get("/wechat").status == 403
    assert server.post("/feishu/events", b"{}").status == 403
    assert server.get("/dev/outbox").status == 404
