"""Filing and video rules: pure functions over campaign config."""

from __future__ import annotations

from datetime import datetime

import pytest

from bot.rules.filing import (
    duration_refusal,
    overlap_refusal,
    phases_for_start,
    products_refusal,
    report_minutes_refusal,
    start_refusal,
)
from bot.rules.formatting import fmt_minutes
from bot.rules.videos import open_video_phase, progress_text, required_videos, window_refusal
from config.campaign import Campaign
from tests.conftest import shanghai


@pytest.fixture(scope="module")
def litong(all_campaigns: dict[str, Campaign]) -> Campaign:
    return all_campaigns["litong-2024"]


@pytest.mark.parametrize(
    ("now", "start", "expected"),
    [
        (shanghai(2024, 9, 15, 10), shanghai(2024, 9, 17, 20), None),
        (shanghai(2024, 9, 15, 10), shanghai(2024, 9, 16, 9, 59), "至少提前24小时"),
        (shanghai(2024, 9, 15, 10), shanghai(2024, 9, 16, 10), None),  # exactly 24 h is enough
        (shanghai(2024, 9, 15, 10), shanghai(2024, 9, 15, 9), "已经过去"),
        (shanghai(2024, 9, 15, 10), shanghai(2024, 10, 12, 20), "不在比赛阶段内"),
        (shanghai(2025, 2, 1, 10), shanghai(2025, 2, 5, 20), "比赛阶段都已结束"),
    ],
)
def test_start_refusal(
    litong: Campaign, now: datetime, start: datetime, expected: str | None
) -> None:
    refusal = start_refusal(litong, now, start)
    assert refusal == expected if expected is None else expected in (refusal or "")


def test_overlapping_activities_both_contain_the_start(litong: Campaign) -> None:
    keys = [p.key for p in phases_for_start(litong, shanghai(2024, 9, 25, 20))]
    assert len(keys) == 2 and keys[0] == "meet"


@pytest.mark.parametrize(
    ("start", "minutes", "own", "expected"),
    [
        (shanghai(2024, 11, 10, 20), 120, [], None),
        (shanghai(2024, 11, 10, 20), 119, [], "不少于2小时"),
        (shanghai(2024, 11, 10, 20), 9, [], "至少10分钟"),
        (shanghai(2024, 11, 30, 23), 120, [], "超出了"),
        (
            shanghai(2024, 11, 10, 20),
            120,
            [(shanghai(2024, 11, 10, 21), shanghai(2024, 11, 10, 23))],
            "重叠",
        ),
        (
            shanghai(2024, 11, 10, 20),
            120,
            [(shanghai(2024, 11, 10, 22), shanghai(2024, 11, 10, 23))],
            None,
        ),
        (
            shanghai(2024, 11, 10, 20),
            120,
            [(shanghai(2024, 11, 10, 18), shanghai(2024, 11, 10, 20))],
            None,
        ),
    ],
)
def test_duration_refusal(
    litong: Campaign,
    start: datetime,
    minutes: int,
    own: list[tuple[datetime, datetime]],
    expected: str | None,
) -> None:
    [phase] = phases_for_start(litong, start)
    refusal = duration_refusal(litong, phase, start, minutes, own)
    assert refusal == expected if expected is None else expected in (refusal or "")


def test_campaign_range_and_products(all_campaigns: dict[str, Campaign]) -> None:
    demo = all_campaigns["demo"]
    start = shanghai(2030, 1, 1, 20)
    [phase] = phases_for_start(demo, start)
    assert "不超过4小时" in (duration_refusal(demo, phase, start, 241, []) or "")
    assert "不少于1小时" in (duration_refusal(demo, phase, start, 59, []) or "")
    assert products_refusal(demo, []) is not None
    assert products_refusal(demo, ["红枣"]) is None


@pytest.mark.parametrize(
    ("filed", "reported", "ok"),
    [(120, 125, True), (120, 240, True), (120, 241, False), (30, 90, True), (30, 91, False)],
)
def test_report_minutes_plausible(filed: int, reported: int, ok: bool) -> None:
    assert (report_minutes_refusal(filed, reported) is None) == ok


@pytest.mark.parametrize(
    ("minutes", "text"), [(45, "45分钟"), (60, "1小时"), (90, "1小时30分钟"), (120, "2小时")]
)
def test_fmt_minutes(minutes: int, text: str) -> None:
    assert fmt_minutes(minutes) == text


@pytest.mark.parametrize(
    ("now", "open_key", "refusal"),
    [
        (shanghai(2024, 10, 9, 0), "explore", None),
        (shanghai(2024, 10, 15, 23, 59), "explore", None),
        (shanghai(2024, 10, 16, 0), None, "10月15日 23:59截止"),
        (shanghai(2024, 9, 1), None, "2024年10月9日 00:00开始"),
    ],
)
def test_video_window(
    litong: Campaign, now: datetime, open_key: str | None, refusal: str | None
) -> None:
    phase = open_video_phase(litong, now)
    assert (phase.key if phase else None) == open_key
    result = window_refusal(litong, now)
    assert result is None if refusal is None else refusal in (result or "")


def test_video_minimum_and_progress(all_campaigns: dict[str, Campaign]) -> None:
    second = all_campaigns["litong-2025"]
    phase = open_video_phase(second, shanghai(2025, 10, 5, 10))
    assert phase is not None and required_videos(second, phase) == 3
    assert progress_text(2, 3) == "已提交 2/3，还差1个。"
    assert progress_text(3, 3) == "已提交 3/3，已达到要求。"
    assert progress_text(1, 0) == "已提交1个作品。"
    assert progress_text(2, 1) == "已提交2个，已达到要求（至少1个）。"
    assert progress_text(2, 3, 1) == "已提交 2/3（其中1个待组委会核实），还差1个。"
    assert (
        progress_text(3, 3, 1)
        == "已提交 3/3（其中1个待组委会核实），核实通过后即达到要求（至少3个）。"
    )
    assert progress_text(4, 3, 1) == "已提交4个（其中1个待组委会核实），已达到要求（至少3个）。"


def test_campaign_without_videos(all_campaigns: dict[str, Campaign]) -> None:
    demo = all_campaigns["demo"]
    no_videos = demo.model_copy(update={"phases": [p for p in demo.phases if p.kind != "video"]})
    assert "没有短视频作品环节" in (window_refusal(no_videos, shanghai(2030, 1, 1)) or "")


@pytest.mark.parametrize(
    ("start", "end", "overlaps"),
    [
        ((20, 0), (22, 0), True),  # the same slot
        ((21, 0), (21, 1), True),  # starts inside
        ((19, 0), (20, 1), True),  # runs into it
        ((18, 0), (20, 0), False),  # ends as it starts
        ((22, 0), (23, 0), False),  # starts as it ends
    ],
)
def test_overlap_is_half_open(start: tuple[int, int], end: tuple[int, int], overlaps: bool) -> None:
    own = [(shanghai(2024, 9, 18, 20, 0), shanghai(2024, 9, 18, 22, 0))]
    refusal = overlap_refusal(shanghai(2024, 9, 18, *start), shanghai(2024, 9, 18, *end), own)
    assert (refusal is not None) == overlaps
    if refusal:
        assert "2024年9月18日 20:00至2024年9月18日 22:00" in refusal
