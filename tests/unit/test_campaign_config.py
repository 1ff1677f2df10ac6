"""The shipped campaign files load and say what their documents say; broken files are refused
with messages that name the file and the field."""

from __future__ import annotations

import copy
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.clock import SHANGHAI
from config.campaign import (
    Campaign,
    CampaignConfigError,
    Condition,
    Rule,
    campaign_files,
    load_campaign_file,
    load_campaigns,
)

CAMPAIGN_DIR = Path(__file__).resolve().parents[2] / "config" / "campaigns"
SEED_IDS = ["jiangle-2022", "litong-2024", "litong-2025", "jiangxi-2020"]
LITONG_IDENTITIES = ["在校大学生", "退役军人", "返乡创业人员", "电商从业者"]  # no 其他
JIANGXI_CITIES = [
    "南昌",
    "九江",
    "景德镇",
    "萍乡",
    "新余",
    "鹰潭",
    "赣州",
    "宜春",
    "上饶",
    "吉安",
    "抚州",
]


@pytest.fixture(scope="module")
def campaigns() -> dict[str, Campaign]:
    return load_campaigns(campaign_files(CAMPAIGN_DIR))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def phase(campaign: Campaign, key: str):
    return next(p for p in campaign.phases if p.key == key)


# A minimal evaluator of the documented Rule semantics, to check the thresholds by example.
def _holds(cond: Condition, profile: dict[str, Any]) -> bool:
    value = profile[cond.field]
    return {
        "lt": lambda: value < cond.value,
        "le": lambda: value <= cond.value,
        "gt": lambda: value > cond.value,
        "ge": lambda: value >= cond.value,
        "eq": lambda: value == cond.value,
        "ne": lambda: value != cond.value,
        "in": lambda: value in cond.value,
    }[cond.op]()


def _matches(rule: Rule | None, profile: dict[str, Any]) -> bool:
    if rule is None:
        return True
    if not all(_holds(c, profile) for c in rule.all):
        return False
    return not rule.any or any(_holds(c, profile) for c in rule.any)


def groups_for(campaign: Campaign, profile: dict[str, Any]) -> list[str]:
    return [g.key for g in campaign.groups if _matches(g.rule, profile)]


def prize_total(campaign: Campaign) -> Decimal:
    p = campaign.prizes
    tiers = [t for ts in p.groups.values() for t in ts]
    tiers += [*p.teams, *p.units, *p.videos]
    tiers += [t for ph in campaign.phases for t in ph.prizes]
    return sum((t.count * t.amount for t in tiers), Decimal(0))


# ---- shipped files ---------------------------------------------------------------------------


def test_every_shipped_file_loads_together(campaigns: dict[str, Campaign]) -> None:
    assert set(campaigns) == {"demo", *SEED_IDS}


@pytest.mark.parametrize("path", campaign_files(CAMPAIGN_DIR), ids=lambda p: p.name)
def test_each_shipped_file_loads_and_is_named_by_its_id(path: Path) -> None:
    campaign = load_campaign_file(path)
    assert campaign.id == path.stem
    assert campaign.name and campaign.organizer_name
    assert sum(m.weight for m in campaign.scoring.metrics) == 100


@pytest.mark.parametrize("cid", SEED_IDS)
def test_seed_has_registration_before_first_competition(
    campaigns: dict[str, Campaign], cid: str
) -> None:
    c = campaigns[cid]
    registration = c.phases_of("registration")
    competition = c.phases_of("competition")
    assert registration and competition
    assert min(p.start for p in registration) < min(p.start for p in competition)


@pytest.mark.parametrize("cid", SEED_IDS)
def test_seed_leaves_organizer_ids_empty(campaigns: dict[str, Campaign], cid: str) -> None:
    assert campaigns[cid].organizers.web == []


@pytest.mark.parametrize(
    ("cid", "profile", "expected"),
    [
        ("litong-2024", {"fans": 9999, "past_sales": 500}, ["rookie"]),
        ("litong-2024", {"fans": 10000, "past_sales": 0}, ["expert"]),
        ("litong-2024", {"fans": 0, "past_sales": 3000}, ["expert"]),
        ("litong-2024", {"fans": 0, "past_sales": 1000}, []),  # the document's gap
        ("litong-2025", {"fans": 9999, "past_sales": 500}, ["rookie"]),
        ("litong-2025", {"fans": 0, "past_sales": 3000}, []),
        ("litong-2025", {"fans": 0, "past_sales": 15000}, ["expert"]),
        ("litong-2025", {"fans": 12000, "past_sales": 0}, ["expert"]),
        ("jiangxi-2020", {"fans": 1000}, ["main"]),
        ("jiangxi-2020", {"fans": 999}, []),
        ("jiangle-2022", {"fans": 0, "past_sales": 0}, ["main"]),
    ],
)
def test_group_rules(
    campaigns: dict[str, Campaign], cid: str, profile: dict[str, Any], expected: list[str]
) -> None:
    assert groups_for(campaigns[cid], profile) == expected


@pytest.mark.parametrize(
    ("cid", "phase_key", "kind", "start", "end"),
    [
        ("litong-2024", "meet", "competition", "2024-09-12 00:00", "2024-09-30 23:59:59"),
        ("litong-2024", "harvest", "competition", "2024-09-23 00:00", "2024-10-08 23:59:59"),
        ("litong-2024", "explore", "video", "2024-10-09 00:00", "2024-10-20 23:59:59"),
        ("litong-2024", "newyear", "competition", "2025-01-01 00:00", "2025-01-15 23:59:59"),
        ("litong-2025", "meet", "competition", "2025-02-07 00:00", "2025-03-14 23:59:59"),
        ("litong-2025", "shopping-618", "competition", "2025-06-14 00:00", "2025-06-20 23:59:59"),
        ("litong-2025", "double12", "competition", "2025-12-01 00:00", "2025-12-20 23:59:59"),
        ("jiangle-2022", "registration", "registration", "2022-01-01 00:00", "2022-01-10 17:30"),
        ("jiangle-2022", "round-county", "competition", "2022-02-01 00:00", "2022-03-31 23:59:59"),
        ("jiangle-2022", "video", "video", "2022-02-01 00:00", "2022-04-30 23:59:59"),
        ("jiangle-2022", "award", "award", "2022-10-01 00:00", "2022-12-31 23:59:59"),
        ("jiangxi-2020", "live", "competition", "2020-10-30 10:00", "2020-11-27 23:59:59"),
    ],
)
def test_phase_dates(
    campaigns: dict[str, Campaign], cid: str, phase_key: str, kind: str, start: str, end: str
) -> None:
    p = phase(campaigns[cid], phase_key)
    assert (p.kind, p.start, p.end) == (kind, at(start), at(end))


@pytest.mark.parametrize(
    ("cid", "where", "index", "name", "count", "amount"),
    [
        ("litong-2024", "groups.rookie", 0, "一等奖", 3, 5000),
        ("litong-2024", "groups.expert", 0, "一等奖", 3, 10000),
        ("litong-2024", "phase.double12", 2, "三等奖", 10, 1500),
        ("litong-2024", "phase.newyear-video", 1, "二等奖", 2, 5000),
        ("litong-2025", "groups.rookie", 0, "一等奖", 3, 10000),
        ("litong-2025", "phase.shopping-618", 2, "三等奖", 9, 4000),
        ("litong-2025", "phase.double11", 0, "一等奖", 3, 8000),
        ("litong-2025", "phase.explore", 2, "三等奖", 10, 3000),
        ("jiangle-2022", "groups.main", 0, "一等奖", 1, 10000),
        ("jiangle-2022", "groups.main", 3, "优秀奖", 10, 1000),
        ("jiangle-2022", "teams", 0, "优秀直播带货团队", 3, 5000),
        ("jiangle-2022", "videos", 3, "优秀奖", 10, 200),
        ("jiangxi-2020", "groups.main", 0, "特等奖", 1, 0),
        ("jiangxi-2020", "groups.main", 4, "优秀奖", 20, 0),
        ("jiangxi-2020", "units", 0, "优秀组织奖", 30, 0),
    ],
)
def test_prize_tiers(
    campaigns: dict[str, Campaign],
    cid: str,
    where: str,
    index: int,
    name: str,
    count: int,
    amount: int,
) -> None:
    c = campaigns[cid]
    kind, _, key = where.partition(".")
    tiers = {
        "groups": lambda: c.prizes.groups[key],
        "phase": lambda: phase(c, key).prizes,
        "teams": lambda: c.prizes.teams,
        "units": lambda: c.prizes.units,
        "videos": lambda: c.prizes.videos,
    }[kind]()
    tier = tiers[index]
    assert (tier.name, tier.count, tier.amount) == (name, count, Decimal(amount))


@pytest.mark.parametrize(
    ("cid", "phase_key", "total"),
    [  # each activity's “共计” in the 利通 document
        ("litong-2024", "harvest", 65000),
        ("litong-2024", "explore", 80000),
        ("litong-2024", "double11", 80000),
        ("litong-2024", "double12", 70000),
        ("litong-2024", "newyear", 75000),
        ("litong-2024", "newyear-video", 25000),
        ("litong-2025", "shopping-618", 96000),
        ("litong-2025", "harvest", 65000),
        ("litong-2025", "explore", 85000),
        ("litong-2025", "double11", 59000),
        ("litong-2025", "double12", 65000),
    ],
)
def test_litong_phase_prize_totals(
    campaigns: dict[str, Campaign], cid: str, phase_key: str, total: int
) -> None:
    assert sum(t.count * t.amount for t in phase(campaigns[cid], phase_key).prizes) == total


@pytest.mark.parametrize(
    ("cid", "budget", "total"),
    [
        ("litong-2024", Decimal(500000), Decimal(500000)),
        ("litong-2025", Decimal(500000), Decimal(500000)),
        ("jiangxi-2020", Decimal(0), Decimal(0)),
        ("jiangle-2022", None, Decimal(72000)),  # no total in the document; 若干 taken as 10
    ],
)
def test_budgets(
    campaigns: dict[str, Campaign], cid: str, budget: Decimal | None, total: Decimal
) -> None:
    c = campaigns[cid]
    assert c.prizes.budget == budget
    assert prize_total(c) == total


def fact(campaign: Campaign, path: str) -> Any:
    """'filing.approval', 'phases.double11.min_streams': phases are looked up by key."""
    value: Any = campaign
    parts = path.split(".")
    while parts:
        part = parts.pop(0)
        value = phase(campaign, parts.pop(0)) if part == "phases" else getattr(value, part)
    return value


@pytest.mark.parametrize(
    ("cid", "path", "expected"),
    [
        ("litong-2024", "eligibility.identities", LITONG_IDENTITIES),
        ("litong-2025", "eligibility.identities", LITONG_IDENTITIES),
        ("litong-2024", "eligibility.min_age", 18),
        ("litong-2024", "eligibility.stats_as_of", date(2024, 8, 31)),
        ("litong-2025", "eligibility.stats_as_of", date(2025, 1, 31)),
        ("litong-2024", "filing.required", True),
        ("litong-2024", "filing.approval", True),
        ("litong-2024", "filing.require_plan", True),
        ("litong-2024", "filing.official_venue", "利通区电子商务中心"),
        ("litong-2024", "filing.allow_other_venue", True),
        ("litong-2024", "filing.min_notice_hours", 24),
        ("litong-2024", "phases.double11.min_stream_minutes", 120),
        ("litong-2024", "phases.double12.min_stream_minutes", 120),
        ("litong-2024", "phases.explore.video_deadline", at("2024-10-15 23:59:59")),
        ("litong-2024", "phases.newyear.video_deadline", at("2025-01-10 23:59:59")),
        ("litong-2024", "videos.hashtags", ["#我在利通带好货#", "#我在利通区带好货#"]),
        ("litong-2025", "filing.approval", True),
        ("litong-2025", "phases.double11.min_streams", 15),
        ("litong-2025", "phases.double11.min_stream_minutes", 120),
        ("litong-2025", "phases.double12.min_streams", 10),
        ("litong-2025", "phases.double12.min_stream_minutes", 120),
        ("litong-2025", "phases.explore.min_videos", 3),
        ("litong-2025", "phases.explore.video_deadline", at("2025-10-10 23:59:59")),
        ("litong-2025", "phases.explore.hashtags", ["#我在利通带好货#"]),
        ("litong-2024", "units", []),
        ("jiangle-2022", "registration.review", True),
        ("jiangle-2022", "registration.teams.enabled", True),
        ("jiangle-2022", "videos.platforms", ["抖音"]),
        ("jiangle-2022", "products", []),
        ("jiangxi-2020", "registration.review", True),
        ("jiangxi-2020", "registration.ask_unit", True),
        ("jiangxi-2020", "eligibility.min_fans", 1000),
        ("jiangxi-2020", "videos.hashtags", ["#江西味道#"]),
        ("jiangxi-2020", "products", []),
    ],
)
def test_seed_facts(campaigns: dict[str, Campaign], cid: str, path: str, expected: Any) -> None:
    assert fact(campaigns[cid], path) == expected


@pytest.mark.parametrize(
    ("cid", "metrics"),
    [
        ("jiangxi-2020", ["net_gmv", "stream_days", "avg_daily_hours", "viewers", "likes"]),
        ("jiangle-2022", ["net_gmv", "stream_days"]),
    ],
)
def test_scoring_metrics(campaigns: dict[str, Campaign], cid: str, metrics: list[str]) -> None:
    assert [m.key for m in campaigns[cid].scoring.metrics] == metrics


@pytest.mark.parametrize("cid", ["litong-2024", "litong-2025"])
def test_litong_scoring_is_mostly_net_gmv(campaigns: dict[str, Campaign], cid: str) -> None:
    [first, *rest] = campaigns[cid].scoring.metrics
    assert first.key == "net_gmv" and first.weight > sum(m.weight for m in rest)


@pytest.mark.parametrize(
    ("cid", "units"),
    [
        ("jiangle-2022", {"将乐县团县委", "将乐县电商协会", "将乐县青创协会"}),
        ("jiangxi-2020", {f"{city}市团委" for city in JIANGXI_CITIES}),
    ],
)
def test_units(campaigns: dict[str, Campaign], cid: str, units: set[str]) -> None:
    assert units <= {u.name for u in campaigns[cid].units}


# ---- refusals ----------------------------------------------------------------------------------

VALID: dict[str, Any] = {
    "name": "测试赛",
    "phases": [
        {
            "key": "reg",
            "name": "报名",
            "kind": "registration",
            "start": "2024-09-01",
            "end": "2024-09-10",
        },
        {
            "key": "live",
            "name": "比赛",
            "kind": "competition",
            "start": "2024-09-12",
            "end": "2024-09-30",
        },
    ],
    "groups": [{"key": "main", "name": "参赛选手"}],
    "scoring": {"metrics": [{"key": "net_gmv", "weight": 100}]},
}


def _with(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(VALID)
    data.update(changes)
    return data


def _phases(**second: Any) -> list[dict[str, Any]]:
    return [VALID["phases"][0], {**VALID["phases"][1], **second}]


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            _dump(_with(phases=_phases(end="2024-09-11"))),
            "x.yaml: phases[1].end: before start",
            id="end-before-start",
        ),
        pytest.param(
            _dump(_with(bogus=1)),
            "x.yaml: bogus: Extra inputs are not permitted",
            id="unknown-field",
        ),
        pytest.param(
            _dump(_with(phases=[{**VALID["phases"][0], "colour": "red"}, VALID["phases"][1]])),
            "x.yaml: phases[0].colour: Extra inputs are not permitted",
            id="unknown-nested-field",
        ),
        pytest.param(
            _dump(_with(id="Bad Id")),
            "x.yaml: id: String should match pattern '^[a-z0-9][a-z0-9_-]*$'",
            id="bad-slug-id",
        ),
        pytest.param(
            _dump(_with(phases=_phases(key="reg"))),
            "x.yaml: phases[1].key: duplicate 'reg'",
            id="duplicate-phase-key",
        ),
        pytest.param(
            _dump(_with(prizes={"groups": {"nope": []}})),
            "x.yaml: prizes.groups.nope: unknown group (known: main)",
            id="unknown-prize-group",
        ),
        pytest.param(
            _dump(_with(digests=[{"cron": "61 * * * *"}])),
            "x.yaml: digests[0].cron: not a crontab expression: '61 * * * *' (",
            id="bad-cron",
        ),
        pytest.param(
            _dump(_with(phases=_phases(start="next monday"))),
            "x.yaml: phases[1].start: not a date or time: 'next monday' "
            "(use 2024-09-12 or 2024-09-12 20:00)",
            id="bad-date",
        ),
        pytest.param(
            "- just\n- a list\n",
            "x.yaml: expected a mapping of campaign fields",
            id="not-a-mapping",
        ),
        pytest.param("", "x.yaml: expected a mapping of campaign fields", id="empty-file"),
        pytest.param("name: [unclosed\n", "x.yaml: cannot read: ", id="yaml-syntax-error"),
    ],
)
def test_broken_file_is_refused(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CampaignConfigError) as raised:
        load_campaign_file(path)
    assert len(raised.value.errors) == 1
    [message] = raised.value.errors
    if expected.endswith(("(", ": ")):  # the rest comes from apscheduler / PyYAML
        assert message.startswith(expected)
    else:
        assert message == expected


def test_valid_minimal_file_loads_with_id_from_file_name(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(_dump(VALID), encoding="utf-8")
    assert load_campaign_file(path).id == "x"


def test_duplicate_id_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(_dump(_with(id="same")), encoding="utf-8")
    (tmp_path / "b.yaml").write_text(_dump(_with(id="same")), encoding="utf-8")
    with pytest.raises(CampaignConfigError) as raised:
        load_campaigns(campaign_files(tmp_path))
    assert raised.value.errors == ["b.yaml: id: 'same' is used by another file"]


def test_errors_from_several_files_are_reported_together(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        _dump(_with(phases=_phases(end="2024-09-11"))), encoding="utf-8"
    )
    (tmp_path / "b.yaml").write_text(_dump(_with(bogus=1, id="Bad Id")), encoding="utf-8")
    (tmp_path / "c.yaml").write_text("name: [unclosed\n", encoding="utf-8")
    (tmp_path / "d.yaml").write_text(_dump(VALID), encoding="utf-8")  # fine on its own
    with pytest.raises(CampaignConfigError) as raised:
        load_campaigns(campaign_files(tmp_path))
    errors = raised.value.errors
    assert errors[:3] == [
        "a.yaml: phases[1].end: before start",
        "b.yaml: id: String should match pattern '^[a-z0-9][a-z0-9_-]*$'",
        "b.yaml: bogus: Extra inputs are not permitted",
    ]
    assert errors[3].startswith("c.yaml: cannot read: ")
    assert len(errors) == 4
    assert str(raised.value) == "\n".join(errors)
