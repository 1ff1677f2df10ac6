"""Security evidence on a real server process in production mode (SQLite and PostgreSQL), with
WeChat, Feishu and the web chat on (tests/e2e/channel_server.py):

- every channel endpoint refuses a bad signature or token, and such a request changes nothing;
- organizer commands are refused to everyone else over WeChat and Feishu, including someone
  whose id is an organizer's on the other channel (the web: tests/flow/test_organizer.py);
- /dev/* does not exist outside BOT_ENV=dev;
- export links are signed and expire: any change to one, or a link signed with another key
  (the public dev default among them), is refused;
- personal data (mobile numbers, full names) stays out of the public board, the digests posted
  to organizer groups, and the server's log.

"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from io import BytesIO
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from bot.clock import parse_instant
from bot.exporting import EXPORTS, LINK_TTL, export_path, link_valid
from config.settings import Settings
from tests.channel.test_wechat import TOKEN, push_xml, sign
from tests.conftest import database_url
from tests.e2e.channel_server import (
    NOW,
    ORG_FEISHU,
    ORG_GROUP,
    ORG_WECHAT,
    PUSHER,
    Server,
    feishu_say,
    run_cli,
    serving,
    wait_for,
    wechat_of,
)
from tests.fakes.feishu_api import Pusher

SECRET = f"e2e-{uuid.uuid4().hex}"  # BOT_SECRET_KEY of the module's server
DEFAULT_SECRET = Settings.model_fields["secret_key"].default
LITONG_TITLE = "“我在利通带好货”系列活动（第一期）"  # as the choice of campaign shows it
COOKIE = "bot_uid"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(f"security-{request.param}")
    with (
        database_url(request.param, tmp) as db_url,
        serving(db_url, tmp, with_demo=True, BOT_SECRET_KEY=SECRET) as running,
    ):
        yield running


def export_link(path_and_query: str) -> tuple[str, dict[str, str]]:
    path, _, query = path_and_query.partition("?")
    return path, dict(urllib.parse.parse_qsl(query))


def sign_link(secret: str, campaign: str, what: str, expires: int) -> str:
    message = f"{campaign}/{what}/{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def web_chat(server: Server, text: str, cookie: str | None = None) -> tuple[str, str, list[str]]:
    """POST /api/chat as the chat page does: (user, the cookie to send next, reply texts)."""
    headers = {"Content-Type": "application/json"}
    if cookie:
        headers["Cookie"] = f"{COOKIE}={cookie}"
    response = server.post("/api/chat", json.dumps({"text": text}).encode(), headers=headers)
    assert response.status == 200, response.text
    data = response.json()
    issued = re.search(rf"{COOKIE}=([^;]+)", response.headers.get("Set-Cookie", ""))
    return (
        data["user"],
        issued.group(1) if issued else (cookie or ""),
        [r["text"] for r in data["replies"]],
    )


# /dev ------------------------------------------------------------------------------------------
def test_dev_endpoints_do_not_exist_in_production(server: Server) -> None:
    """BOT_ENV unset (production): /dev is 404 and a claimed identity is ignored."""
    assert server.post("/dev/messages", b'{"user": "organizer", "text": "x"}').status == 404
    assert server.get("/dev/outbox").status == 404
    assert server.get("/dev/messages").status == 404
    response = server.post(
        "/api/chat",
        json.dumps({"user": "organizer", "text": "导出"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    data = response.json()
    assert data["user"] != "organizer" and "/exports/" not in json.dumps(data)


# Bad signatures and tokens ---------------------------------------------------------------------
def _wechat_query(token: str = TOKEN) -> dict[str, str]:
    timestamp, nonce = str(int(time.time())), uuid.uuid4().hex[:8]
    return {"signature": sign(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}


def _wechat_push(user: str) -> bytes:
    return push_xml(user, "text", int(time.time()), Content="报名", MsgId=int(time.time())).encode()


def _feishu(
    event_of: Pusher, user: str, *, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    return event_of.request(event_of.text(user, "报名"), timestamp or int(time.time()))


def _forged_requests() -> list[tuple[str, int, tuple[str, str, dict[str, Any]]]]:
    """(what, expected status, (method, path, request kwargs)); each would start a sign-up or
    serve data if it got in."""
    user = f"o-forger-{uuid.uuid4().hex[:6]}"
    bad_sig = _wechat_query() | {"signature": "0" * 40}
    safe = _wechat_query() | {"encrypt_type": "aes", "msg_signature": "0" * 40}
    sealed = f"<xml><ToUserName>gh</ToUserName><Encrypt>{'A' * 64}</Encrypt></xml>"
    body, headers = _feishu(PUSHER, "ou_forger")
    wrong_sig = headers | {"X-Lark-Signature": "0" * 64}
    stale_body, stale = _feishu(PUSHER, "ou_forger", timestamp=int(time.time()) - 3600)
    impostor = Pusher(token="guessed-token", app_id=PUSHER.app_id)
    imp_body, imp_headers = _feishu(impostor, "ou_forger")
    challenge, ch_headers = impostor.request(impostor.challenge("c-1"), int(time.time()))
    no_key = Pusher(token="guessed-token", encrypt_key=None, app_id=PUSHER.app_id)
    plain_challenge, plain_headers = no_key.request(no_key.challenge("c-2"), int(time.time()))
    return [
        ("wechat url check, bad signature", 403, ("GET", "/wechat", {"params": bad_sig | {"echostr": "e"}})),
        ("wechat url check, other token", 403, ("GET", "/wechat", {"params": _wechat_query("x") | {"echostr": "e"}})),
        ("wechat push, bad signature", 403, ("POST", "/wechat", {"params": bad_sig, "body": _wechat_push(user)})),
        ("wechat push, no signature", 403, ("POST", "/wechat", {"body": _wechat_push(user)})),
        ("wechat safe mode, bad msg_signature", 403, ("POST", "/wechat", {"params": safe, "body": sealed.encode()})),
        ("feishu event, bad signature", 401, ("POST", "/feishu/events", {"body": body, "headers": wrong_sig})),
        ("feishu event, replayed an hour later", 401, ("POST", "/feishu/events", {"body": stale_body, "headers": stale})),
        ("feishu event, wrong token", 403, ("POST", "/feishu/events", {"body": imp_body, "headers": imp_headers})),
        ("feishu challenge, wrong token", 403, ("POST", "/feishu/events", {"body": challenge, "headers": ch_headers})),
        ("feishu challenge in plain, wrong token", 403, ("POST", "/feishu/events", {"body": plain_challenge, "headers": plain_headers})),
        ("export link, no signature", 403, ("GET", "/exports/litong-2024/registrations.xlsx", {})),
        ("export link, bad signature", 403, ("GET", "/exports/litong-2024/registrations.xlsx", {"params": {"expires": "9999999999", "sig": "0" * 64}})),
    ]  # fmt: skip


def test_every_channel_endpoint_refuses_a_bad_signature_or_token(server: Server) -> None:
    server.settle()
    before, sent = server.counts(), len(server.feishu.sent)
    for what, status, (method, path, kwargs) in _forged_requests():
        response = server.request(method, path, **kwargs)
        assert response.status == status, (what, response.status, response.text)
        assert "challenge" not in response.text and response.text != "e", what
    assert server.settle() == before
    assert len(server.feishu.sent) == sent


def test_a_web_cookie_forged_with_another_key_is_not_that_user(server: Server) -> None:
    """The chat page's identity is an HMAC-signed cookie: one signed with the public dev default
    (the server has its own BOT_SECRET_KEY), or unsigned, gives a new identity instead."""
    victim, cookie, _ = web_chat(server, "帮助")
    _, uid_sig = cookie.split(".", 1)
    forged = (
        "organizer."
        + hmac.new(DEFAULT_SECRET.encode(), b"organizer", hashlib.sha256).hexdigest()[:32]
    )
    for attempt in (
        forged,
        "organizer",
        f"organizer.{uid_sig}",
        f"{victim}.",
        f"{victim}.{'0' * 32}",
    ):
        user, _, replies = web_chat(server, "审核", attempt)
        assert user not in ("organizer", victim), attempt
        assert not any("待审核" in r for r in replies), replies
    assert web_chat(server, "帮助", cookie)[0] == victim  # the real cookie still works


def test_a_cookie_with_non_ascii_characters_gets_a_new_identity(server: Server) -> None:
    response = server.post(
        "/api/chat",
        json.dumps({"text": "帮助"}).encode(),
        headers={"Content-Type": "application/json", "Cookie": f"{COOKIE}=organizer.\u00e9"},
    )
    assert response.status == 200 and response.json()["user"] != "organizer"


# Organizer commands ----------------------------------------------------------------------------
ORGANIZER_COMMANDS = ["审核", "通过 报名1", "驳回 报备1 场地冲突", "撤销 报备1", "扣分 报名1 5 投诉",
                      "取消资格 报名1 刷单", "恢复 报名1", "导出", "导出 报备", "榜单", "单位榜"]  # fmt: skip


async def test_organizer_commands_are_refused_to_everyone_else(server: Server) -> None:
    """Over WeChat and Feishu: a streamer, and someone whose id is an organizer's on the OTHER
    channel, get 无权限 for every organizer command and nothing changes; the organizers
    themselves are answered (so the refusal is about who asks)."""
    streamer = f"o-streamer-{uuid.uuid4().hex[:6]}"
    async with wechat_of(server) as wechat:
        assert "第1步/" in await wechat.event(streamer, "subscribe", "qrscene_litong-2024")
        await wechat.say(streamer, "取消")
        server.settle()
        before = server.counts()
        for user in (streamer, ORG_FEISHU):  # ORG_FEISHU is an organizer on Feishu only
            for command in ORGANIZER_COMMANDS:
                reply = await wechat.say(user, command)
                assert reply.startswith("无权限"), (user, command, reply)
        after = server.counts()
        assert {k: after[k] - before[k] for k in after if after[k] != before[k]}.keys() <= {
            "processed_event",
            "channel_user",
        }  # each message is recorded as delivered, and the sender as seen: nothing else
        assert after["audit_log"] == before["audit_log"] == 0
        assert "待审核" in await wechat.say(ORG_WECHAT, "审核")
        assert "/exports/litong-2024/registrations.xlsx?" in await wechat.say(ORG_WECHAT, "导出")

    before = server.counts()
    for user in ("ou_streamer_e2e_000000000000001", ORG_WECHAT):
        for command in ("审核", "导出", "扣分 报名1 5 投诉", "榜单"):
            reply = feishu_say(server, user, command)
            assert reply.startswith("无权限"), (user, command, reply)
    after = server.counts()
    assert (after["audit_log"], after["deduction"]) == (before["audit_log"], before["deduction"])
    assert "/exports/litong-2024/" in feishu_say(server, ORG_FEISHU, "导出")


# Export links ----------------------------------------------------------------------------------
async def test_export_links_are_signed_and_expire(server: Server) -> None:
    async with wechat_of(server) as wechat:
        reply = await wechat.say(ORG_WECHAT, "导出")
    found = re.search(r"(/exports/\S+)", reply)
    assert found, reply
    path, query = export_link(found.group(1))
    assert path == "/exports/litong-2024/registrations.xlsx"
    expires = int(query["expires"])
    clock = int(parse_instant(NOW).timestamp())  # the server's clock runs on from --now
    assert 0 <= expires - clock - LINK_TTL.total_seconds() < 600  # a day from now

    ok = server.get(path, params=query)
    assert ok.status == 200 and ok.headers["Content-Type"].startswith(
        "application/vnd.openxmlformats"
    )
    load_workbook(BytesIO(ok.body))  # a real workbook
    # The access log names the download but not its signature (a log reader could use it).
    wait_for(lambda: "GET /exports/litong-2024/registrations.xlsx" in server.log(), "access log")
    assert query["sig"] not in server.log()

    def status(p: str, q: dict[str, str]) -> int:
        return server.get(p, params=q).status

    assert status(path, query | {"expires": str(expires + 86400)}) == 403  # extended
    assert status(path, query | {"expires": str(expires - 1)}) == 403  # any other expiry
    assert status(path, query | {"sig": query["sig"].upper()}) == 403
    assert status(path.replace("litong-2024", "demo"), query) == 403  # another campaign
    assert status(path.replace("registrations", "filings"), query) == 403  # another sheet
    assert status(path, {"expires": query["expires"]}) == 403
    # Signed with the server's key: good until it expires, refused after.
    later = clock + 3600
    assert status(path, {"expires": str(later), "sig": sign_link(SECRET, "litong-2024", "registrations", later)}) == 200  # fmt: skip
    gone = clock - 1
    expired = server.get(path, params={"expires": str(gone), "sig": sign_link(SECRET, "litong-2024", "registrations", gone)})  # fmt: skip
    assert expired.status == 403 and "获取新的链接" in expired.text
    # Signed with any other key, the public dev default among them: refused.
    for key in (DEFAULT_SECRET, SECRET + "x", ""):
        assert status(path, {"expires": str(later), "sig": sign_link(key, "litong-2024", "registrations", later)}) == 403  # fmt: skip


SLUGS = st.from_regex(r"\A[a-z0-9][a-z0-9-]{0,12}\Z")
INSTANTS = st.integers(min_value=1_600_000_000, max_value=2_000_000_000)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    secret=st.text(min_size=1, max_size=20),
    campaign=SLUGS,
    what=st.sampled_from(sorted(EXPORTS)),
    issued=INSTANTS,
    change=st.sampled_from(["secret", "campaign", "what", "expires", "sig"]),
    other=st.text(min_size=1, max_size=20),
)
def test_an_export_link_is_valid_only_as_signed_and_until_it_expires(
    secret: str, campaign: str, what: str, issued: int, change: str, other: str
) -> None:
    now = datetime.fromtimestamp(issued).astimezone()
    link, expires_at = export_path(secret, campaign, what, now)
    _, query = export_link(link)
    args = {"secret": secret, "campaign_id": campaign, "what": what} | query
    assert link_valid(now=now, **args)
    assert link_valid(now=expires_at, **args)
    assert not link_valid(now=expires_at + timedelta(seconds=1), **args)
    changed = dict(args)
    if change == "expires":
        changed["expires"] = str(int(query["expires"]) + len(other))
    elif change == "sig":
        changed["sig"] = other if other != query["sig"] else other + "x"
    else:
        key = "campaign_id" if change == "campaign" else change
        changed[key] = str(changed[key]) + other
    assert not link_valid(now=now, **changed)


# Personal data ---------------------------------------------------------------------------------
STREAMERS = {  # channel: (full name, mobile, masked name, handle)
    "wechat": ("欧阳娜娜", "13912345678", "欧**娜", "nana_live"),
    "feishu": ("诸葛明亮", "13712345678", "诸**亮", "liang_live"),
    "web": ("司马相如", "13612345678", "司**如", "xiangru_live"),
}


def _answers(name: str, mobile: str, handle: str) -> list[str]:
    # a mistyped mobile number first: a refused answer is traffic too
    return [
        name,
        mobile[:-1],
        mobile,
        "25",
        "电商从业者",
        "抖音",
        handle,
        "8000",
        "300",
        "同意",
        "确认",
    ]


async def test_personal_data_stays_out_of_the_board_the_digests_and_the_log(
    server: Server,
) -> None:
    """Three streamers sign up (WeChat in safe mode, Feishu, the web chat) with a mobile number
    and a full name, look at their data, the organizers look at the full list and export it, the
    public board is read and the evening digest goes out (`run_bot.py digest`, to the Feishu
    organizer group and the web organizer). The mobile numbers and full names are in the export
    (so they were there to leak), but never on the board, in a digest, or in the log."""
    wx_user, fs_user = f"o-pii-{uuid.uuid4().hex[:6]}", f"ou_pii_{uuid.uuid4().hex[:24]}"
    async with wechat_of(server) as wechat:
        name, mobile, _masked, handle = STREAMERS["wechat"]
        assert "第1步/" in await wechat.event(wx_user, "subscribe", "qrscene_litong-2024")
        for text in _answers(name, mobile, handle):
            reply = await wechat.say(wx_user, text)
        assert "报名成功" in reply, reply
        await wechat.say(wx_user, "我的")

    name, mobile, _masked, handle = STREAMERS["feishu"]
    assert LITONG_TITLE in feishu_say(server, fs_user, "报名")  # which campaign?
    reply = feishu_say(server, fs_user, LITONG_TITLE)
    assert "第1步/" in reply, reply
    for text in _answers(name, mobile, handle):
        reply = feishu_say(server, fs_user, text)
    assert "报名成功" in reply, reply
    feishu_say(server, fs_user, "我的")

    name, mobile, _masked, handle = STREAMERS["web"]
    _user, cookie, replies = web_chat(server, "报名")
    _user, cookie, replies = web_chat(server, LITONG_TITLE, cookie)
    for text in _answers(name, mobile, handle):
        _user, cookie, replies = web_chat(server, text, cookie)
    assert "报名成功" in replies[-1], replies
    web_chat(server, "我的", cookie)

    board_for_organizers = feishu_say(server, ORG_FEISHU, "榜单")
    assert all(s[0] in board_for_organizers for s in STREAMERS.values())  # full names: theirs
    async with wechat_of(server) as wechat:
        link = re.search(r"(/exports/\S+)", await wechat.say(ORG_WECHAT, "导出"))
    assert link
    path, query = export_link(link.group(1))
    exported = server.get(path, params=query)
    sheet = load_workbook(BytesIO(exported.body)).active
    assert sheet is not None
    cells = {str(c.value) for row in sheet.iter_rows() for c in row}
    assert all({s[0], s[1]} <= cells for s in STREAMERS.values())  # the data is really there

    board = server.get("/api/campaigns/litong-2024/leaderboard")
    page = server.get("/board/litong-2024")
    assert board.status == 200 and page.status == 200
    digest = run_cli(
        server, "digest", "--campaign", "litong-2024", "--now", "2024-09-08T21:05:00+08:00"
    )
    assert digest.returncode == 0, digest.stderr + digest.stdout
    server.settle()
    posted = server.rows(
        "select channel, recipient, text, payload from outbox where kind = 'digest'"
    )
    assert {(r[0], r[1]) for r in posted} == {("feishu", ORG_GROUP), ("web", "organizer")}
    card = [s for s in server.feishu.sent if s.receive_id == ORG_GROUP]
    assert card, "the digest card reached the Feishu organizer group"

    public = {
        "the board JSON": json.dumps(board.json(), ensure_ascii=False),
        "the board page": page.text,
        "the digests": json.dumps([list(r[2:]) for r in posted], ensure_ascii=False, default=str),
        "the digest card": json.dumps([c.content for c in card], ensure_ascii=False),
        "the digest command's output": digest.stdout,
    }
    for where, text in public.items():
        for full, mobile, _masked, _handle in STREAMERS.values():
            for secret in (full, mobile, json.dumps(full)[1:-1]):  # also JSON-escaped
                assert secret not in text, (where, secret)
        if where != "the board page":  # the page fills itself from the JSON
            assert all(s[2] in text for s in STREAMERS.values()), (where, text[:2000])

    log = server.log() + digest.stderr
    assert "POST /wechat" in log and "POST /feishu/events" in log and "POST /api/chat" in log
    for full, mobile, _masked, _handle in STREAMERS.values():
        for secret in (full, mobile, json.dumps(full)[1:-1], repr(full.encode())[2:-1]):
            assert secret not in log, secret


def test_a_name_with_a_nul_signs_up_and_writes_no_personal_data_to_the_log(
    server: Server,
) -> None:
    """A name with a NUL character (the chat page's JSON allows it) could not be stored on
    PostgreSQL: control characters are dropped on the way in, and a failure's log line would
    not carry its parameters anyway (hide_parameters). The mobile number must not be logged."""
    start = server.log_size()
    mobile = "13512345678"
    _user, cookie, _ = web_chat(server, "报名")
    _user, cookie, _ = web_chat(server, LITONG_TITLE, cookie)
    replies: list[str] = []
    for text in _answers("王\x00文", mobile, "nul_live"):
        _user, cookie, answer = web_chat(server, text, cookie)
        replies += answer
    logged = server.log(start)
    assert mobile not in logged
    assert not any("出了点问题" in r for r in replies), replies  # refused with a reason, or stored
