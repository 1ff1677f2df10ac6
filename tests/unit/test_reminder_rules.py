"""When reminders and digests are due (bot/rules/reminders.py): tables and properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.clock import SHANGHAI
from bot.rules.reminders import (
    Deadline,
    deadlines,
    digest_due,
    due_offset,
    filing_cutoff,
    fmt_left,
    fmt_offset,
    last_fire,
    progress_due,
)
from config.campaign import Campaign, parse_offset
from tests.conftest import shanghai

DAY, HOUR, MINUTE = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
CLOSE = shanghai(2024, 9, 11, 23, 59, 59)  # 利通 第一期: registration closes
OFFSETS = [DAY, 2 * HOUR]


@pytest.mark.parametrize(
    ("now", "due"),
    [
        (CLOSE - DAY - MINUTE, None),  # before the first window
        (CLOSE - DAY, DAY),  # the 1d window opens
        (CLOSE - 3 * HOUR, DAY),
        (CLOSE - 2 * HOUR, 2 * HOUR),  # the smaller window wins where both hold
        (CLOSE - MINUTE, 2 * HOUR),
        (CLOSE, None),  # the deadline itself: too late
        (CLOSE + DAY, None),  # past deadlines are never reminded
    ],
)
def test_due_offset_windows(now: datetime, due: timedelta | None) -> None:
    assert due_offset(CLOSE, OFFSETS, now) == due


def test_due_offset_without_offsets_or_with_zero() -> None:
    assert due_offset(CLOSE, [], CLOSE - HOUR) is None
    assert due_offset(CLOSE, [timedelta(0)], CLOSE) is None


@given(
    st.lists(st.integers(min_value=1, max_value=7 * 24 * 60), max_size=5),
    st.integers(min_value=-10 * 24 * 60, max_value=10 * 24 * 60),
)
def test_due_offset_is_the_smallest_window_holding_now(minutes: list[int], before: int) -> None:
    offsets = [timedelta(minutes=m) for m in minutes]
    now = CLOSE - timedelta(minutes=before)
    due = due_offset(CLOSE, offsets, now)
    holding = [o for o in offsets if CLOSE - o <= now < CLOSE]
    if due is None:
        assert not holding
    else:
        assert due in offsets and due == min(holding)
        assert now < CLOSE  # never once the deadline passed


def test_litong_deadlines(all_campaigns: dict[str, Campaign]) -> None:
    found = [
        (d.kind, d.at, d.phase_keys, d.required) for d in deadlines(all_campaigns["litong-2024"])
    ]
    assert found[0] == ("registration", CLOSE, ("registration",), 0)
    # Filing cut-off: 24 h of notice before the phase ends.
    assert ("filing", shanghai(2024, 9, 29, 23, 59, 59), ("meet",), 0) in found
    assert ("video", shanghai(2024, 10, 15, 23, 59, 59), ("explore",), 1) in found
    # Two phases whose videos close at the same instant share one deadline.
    newyear = shanghai(2025, 1, 10, 23, 59, 59)
    assert [f for f in found if f[1] == newyear] == [
        ("video", newyear, ("newyear", "newyear-video"), 1)
    ]
    assert [f[1] for f in found] == sorted(f[1] for f in found)


def test_filing_cutoff_and_minimum_streams(all_campaigns: dict[str, Campaign]) -> None:
    litong = all_campaigns["litong-2025"]
    double11 = next(p for p in litong.phases if p.key == "double11")
    assert filing_cutoff(litong, double11) == double11.end - timedelta(hours=24)
    deadline = next(d for d in deadlines(litong) if d.phase_keys == ("double11",))
    assert (deadline.kind, deadline.required) == ("filing", 15)


@pytest.mark.parametrize(
    ("day", "due"),
    [(1, False), (15, False), (16, True), (28, True), (29, False), (30, False)],
)
def test_progress_from_half_way_until_the_deadline(
    all_campaigns: dict[str, Campaign], day: int, due: bool
) -> None:
    litong = all_campaigns["litong-2025"]
    deadline = next(d for d in deadlines(litong) if d.phase_keys == ("double11",))
    # 11-01 00:00 .. cut-off 11-29 23:59:59: from half way (11-15 noon) until the 1d reminder.
    assert progress_due(deadline, OFFSETS, shanghai(2025, 11, day, 11, 0)) is due


def test_no_progress_without_a_minimum(all_campaigns: dict[str, Campaign]) -> None:
    phase = all_campaigns["litong-2024"].phases[1]
    deadline = Deadline("filing", phase.end, (phase,), required=0)
    assert not progress_due(deadline, OFFSETS, phase.end - HOUR)


@pytest.mark.parametrize(
    ("cron", "now", "fire"),
    [
        ("0 21 * * *", shanghai(2024, 9, 12, 21, 30), shanghai(2024, 9, 12, 21, 0)),
        ("0 21 * * *", shanghai(2024, 9, 12, 21, 0), shanghai(2024, 9, 12, 21, 0)),
        ("0 21 * * *", shanghai(2024, 9, 12, 20, 59), shanghai(2024, 9, 11, 21, 0)),
        ("*/15 * * * *", shanghai(2024, 9, 12, 10, 7), shanghai(2024, 9, 12, 10, 0)),
        ("0 9 1 * *", shanghai(2024, 9, 12, 10, 0), shanghai(2024, 9, 1, 9, 0)),
        ("0 9 1 1 *", shanghai(2024, 9, 12, 10, 0), shanghai(2024, 1, 1, 9, 0)),
    ],
)
def test_last_fire(cron: str, now: datetime, fire: datetime) -> None:
    assert last_fire(cron, now) == fire.astimezone(UTC)


@pytest.mark.parametrize(
    ("now", "period"),
    [
        (shanghai(2024, 9, 12, 20, 59), None),
        (shanghai(2024, 9, 12, 21, 0), shanghai(2024, 9, 12, 21, 0)),
        (shanghai(2024, 9, 12, 21, 59), shanghai(2024, 9, 12, 21, 0)),
        (shanghai(2024, 9, 12, 22, 1), None),  # over an hour late: skipped
    ],
)
def test_digest_due_within_the_grace(now: datetime, period: datetime | None) -> None:
    expected = period.astimezone(UTC) if period else None
    assert digest_due("0 21 * * *", now) == expected


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)))
def test_last_fire_is_the_latest_fire_not_after_now(naive: datetime) -> None:
    now = naive.replace(tzinfo=SHANGHAI)
    fire = last_fire("30 8,20 * * *", now)
    assert fire is not None and fire <= now
    local = fire.astimezone(SHANGHAI)
    assert (local.hour, local.minute, local.second) in ((8, 30, 0), (20, 30, 0))
    assert now - fire < timedelta(hours=12)  # no later fire was skipped


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(days=1, hours=2, minutes=5), "1天2小时"),
        (timedelta(days=2), "2天"),
        (timedelta(hours=2), "2小时"),
        (timedelta(hours=1, minutes=59, seconds=59), "1小时59分钟"),
        (timedelta(minutes=45), "45分钟"),
        (timedelta(seconds=30), "0分钟"),
        (timedelta(seconds=-5), "0分钟"),
    ],
)
def test_fmt_left(delta: timedelta, text: str) -> None:
    assert fmt_left(delta) == text


@pytest.mark.parametrize("text", ["1d", "2h", "30m", "1d12h", "2h30m", "1d1h1m"])
def test_fmt_offset_round_trips(text: str) -> None:
    assert fmt_offset(parse_offset(text)) == text
