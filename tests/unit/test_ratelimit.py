"""Sliding windows for outbound limits: the arithmetic on given times, no waiting."""

from __future__ import annotations

import pytest

from bot.senders.ratelimit import Limit, Pacer, SlidingWindow


def test_a_window_fills_and_frees_as_time_passes() -> None:
    window = SlidingWindow(Limit(3, 60.0))
    for t in (0.0, 10.0, 20.0):
        assert window.wait_for("robot", t) == 0
        window.record("robot", t)
    assert window.wait_for("robot", 30.0) == pytest.approx(30.0)  # the first frees at 60
    assert window.wait_for("other", 30.0) == 0  # per key
    assert window.wait_for("robot", 60.0) == 0


def test_room_for_several_at_once() -> None:
    window = SlidingWindow(Limit(3, 60.0))
    window.record("robot", 0.0)
    window.record("robot", 5.0)
    assert window.wait_for("robot", 6.0, n=1) == 0
    assert window.wait_for("robot", 6.0, n=2) == pytest.approx(54.0)
    assert window.wait_for("robot", 6.0, n=3) == pytest.approx(59.0)
    with pytest.raises(ValueError):
        window.wait_for("robot", 6.0, n=4)


def test_a_pause_holds_the_key_until_it_is_over() -> None:
    window = SlidingWindow(Limit(5, 1.0))
    window.pause("chat", until=12.5)
    assert window.wait_for("chat", 10.0) == pytest.approx(2.5)
    assert window.wait_for("chat", 12.5) == 0


async def test_pacer_records_in_every_window_and_reports_long_waits() -> None:
    now = [100.0]
    per_chat, per_app = SlidingWindow(Limit(1, 1.0)), SlidingWindow(Limit(10, 1.0))
    pacer = Pacer(time=lambda: now[0])
    slots = [(per_chat, "oc_1"), (per_app, "app")]
    assert await pacer.acquire(slots) == 0
    assert per_app.wait_for("app", now[0], n=10) > 0  # recorded in the app window too
    per_chat.pause("oc_1", until=130.0)
    assert await pacer.acquire(slots, max_wait=2.0) == pytest.approx(30.0)
