"""Hostile and random input to the web endpoints of a real server process: never a 500, and an
invalid request changes nothing."""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import free_port, serve

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# JSON objects that can never be a valid message: no usable user, or neither/both of text/event.
INVALID = st.one_of(
    st.dictionaries(st.sampled_from(["text", "event", "x"]), JSON, max_size=3),
    st.fixed_dictionaries(
        {"user": st.sampled_from(["", 5, None, [], "x" * 200]), "text": st.text()}
    ),
    # (an explicit null counts as absent, so both-given needs a non-null event)
    st.fixed_dictionaries(
        {"user": st.just("fuzz"), "text": st.text(), "event": JSON.filter(lambda v: v is not None)}
    ),
    st.fixed_dictionaries(
        {
            "user": st.just("fuzz"),
            "event": st.one_of(JSON, st.fixed_dictionaries({"type": st.text(max_size=10)})),
        }
    ),
)
FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    db = tmp_path_factory.mktemp("fuzz") / "bot.sqlite3"
    port = free_port()
    proc = serve(f"sqlite:///{db}", port, "2024-09-08T10:00:00+08:00")
    try:
        yield port, db
    finally:
        proc.terminate()
        proc.wait()


def post(port: int, path: str, body: bytes) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", body, {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def count_state(db: Path) -> tuple[int, int, int]:
    with sqlite3.connect(db) as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(f"select count(*) from {table}").fetchone()[0]
            for table in ("registration", "conversation", "processed_event")
        )


@FUZZ
@given(body=st.binary(max_size=3000) | JSON.map(lambda v: json.dumps(v).encode()))
def test_random_bodies_never_get_a_500(server: tuple[int, Path], body: bytes) -> None:
    port, _db = server
    for path in ("/dev/messages", "/api/chat"):
        assert post(port, path, body) in (200, 400, 413)


@FUZZ
@given(body=INVALID)
def test_invalid_messages_change_nothing(server: tuple[int, Path], body: dict[str, object]) -> None:
    port, db = server
    before = count_state(db)
    assert post(port, "/dev/messages", json.dumps(body).encode()) == 400
    assert count_state(db) == before


@FUZZ
@given(text=st.text(max_size=2000))
def test_any_text_gets_a_reply(server: tuple[int, Path], text: str) -> None:
    port, _db = server
    body = json.dumps({"user": "fuzz-text", "text": text}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/dev/messages", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        replies = json.load(response)["replies"]
    assert replies and all(r["text"] for r in replies)
    assert not any("出了点问题" in r["text"] for r in replies)
