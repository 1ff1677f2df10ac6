"""Campaign configuration: the schema of `config/campaigns/*.yaml` and its loader.

One file per campaign. Every concept of a contest lives here (phases, groups and their rules,
eligibility, filing and video rules, scoring, prizes, units, organizers, reminders, digests,
products), so the code reads rules from data. A wrong file is refused with messages that name
the file and the field, e.g. ``litong-2024.yaml: phases[2].end: before start``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bot.clock import SHANGHAI

SLUG = r"^[a-z0-9][a-z0-9_-]*$"
CHANNELS = ("web", "wechat", "feishu", "wecom")
PhaseKind = Literal[
    "publicity", "registration", "selection", "training", "competition", "video", "review", "award"
]
MetricKey = Literal[
    "net_gmv",
    "gmv",
    "orders",
    "stream_count",
    "stream_days",
    "stream_hours",
    "avg_daily_hours",
    "viewers",
    "peak_viewers",
    "likes",
    "video_count",
    "video_views",
    "video_shares",
    "video_likes",
]
ProfileField = Literal["fans", "past_sales", "age", "identity", "platform", "likes"]
DEFAULT_IDENTITIES = ["在校大学生", "退役军人", "返乡创业人员", "电商从业者", "其他"]


def _instant(value: Any, *, end_of_day: bool) -> Any:
    """Dates and naive times in the files are Asia/Shanghai; a bare end date means its last second."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = datetime.fromisoformat(text) if (":" in text) else date.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(
                f"not a date or time: {text!r} (use 2024-09-12 or 2024-09-12 20:00)"
            ) from exc
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=SHANGHAI)
    if isinstance(value, date):
        day_time = time(23, 59, 59) if end_of_day else time(0, 0)
        return datetime.combine(value, day_time, tzinfo=SHANGHAI)
    return value


StartInstant = Annotated[datetime, BeforeValidator(lambda v: _instant(v, end_of_day=False))]
EndInstant = Annotated[datetime, BeforeValidator(lambda v: _instant(v, end_of_day=True))]


def parse_offset(text: str) -> timedelta:
    """'1d', '2h', '30m', '1d12h' -> timedelta (reminder offsets)."""
    match = re.fullmatch(r"\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*", text)
    if not match or not any(match.groups()):
        raise ValueError(f"not a duration: {text!r} (use 1d, 2h, 30m or 1d12h)")
    days, hours, minutes = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes)


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(Model):
    field: ProfileField
    op: Literal["lt", "le", "gt", "ge", "eq", "ne", "in"]
    value: float | str | list[str]


class Rule(Model):
    """Matches when every `all` condition holds and, if `any` is given, at least one of them."""

    all: list[Condition] = []
    any: list[Condition] = []


class Group(Model):
    key: str = Field(pattern=SLUG)
    name: str
    description: str = ""
    rule: Rule | None = None


class PrizeTier(Model):
    name: str
    count: int = Field(ge=0)
    amount: Decimal = Field(default=Decimal(0), ge=0)
    extras: str = ""


class Prizes(Model):
    groups: dict[str, list[PrizeTier]] = {}
    teams: list[PrizeTier] = []
    units: list[PrizeTier] = []
    videos: list[PrizeTier] = []
    budget: Decimal | None = None


class Phase(Model):
    key: str = Field(pattern=SLUG)
    name: str
    kind: PhaseKind
    start: StartInstant
    end: EndInstant
    description: str = ""
    min_streams: int | None = Field(default=None, ge=1)
    min_stream_minutes: int | None = Field(default=None, ge=1)
    min_videos: int | None = Field(default=None, ge=1)
    video_deadline: EndInstant | None = None
    hashtags: list[str] = []
    prizes: list[PrizeTier] = []

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, end: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start")
        if start is not None and end <= start:
            raise ValueError("before start")
        return end

    def contains(self, when: datetime) -> bool:
        return self.start <= when <= self.end


class Unit(Model):
    key: str = Field(pattern=SLUG, max_length=32)
    name: str


class Eligibility(Model):
    min_age: int = Field(default=18, ge=0)
    max_age: int | None = None
    identities: list[str] = Field(default_factory=lambda: list(DEFAULT_IDENTITIES), min_length=1)
    platforms: list[str] = []  # empty: every platform the bot knows
    min_fans: int | None = None
    stats_as_of: date | None = None  # 截至日期 of fans and past-year sales


class Teams(Model):
    enabled: bool = False
    max_members: int = Field(default=10, ge=2)


class Registration(Model):
    review: bool = False  # 资格审核: registrations wait for an organizer
    ask_unit: bool = False  # ask the recommending unit when no QR scene brought one
    pledge: str = "我承诺遵守大赛规则，诚信直播，不刷单、不刷流量，保证所售商品质量和售后服务。"
    teams: Teams = Teams()


class Filing(Model):
    required: bool = True
    approval: bool = True  # False: filings are approved at once
    min_notice_hours: float = Field(default=0, ge=0)
    min_minutes: int | None = Field(default=None, ge=1)
    max_minutes: int | None = Field(default=None, ge=1)
    min_products: int = Field(default=0, ge=0)
    require_plan: bool = False
    official_venue: str | None = None
    allow_other_venue: bool = True  # another venue needs a reason and an organizer's approval

    @model_validator(mode="after")
    def _range(self) -> Filing:
        if self.min_minutes and self.max_minutes and self.max_minutes < self.min_minutes:
            raise ValueError("max_minutes: below min_minutes")
        return self


class Videos(Model):
    hashtags: list[str] = []
    platforms: list[str] = []
    min_count: int = Field(default=0, ge=0)


class Metric(Model):
    key: MetricKey
    weight: float = Field(gt=0)
    label: str = ""


class Scoring(Model):
    """Each metric is scaled 0–100 relative to the group's best, then weighted (see docs)."""

    metrics: list[Metric] = Field(min_length=1)
    count_unverified: bool = True
    phases: list[str] = []  # which phases' streams count; empty: every competition phase


class Organizers(Model):
    web: list[str] = []
    wechat: list[str] = []
    feishu: list[str] = []
    wecom: list[str] = []
    group_members: bool = False  # members of bound organizer groups count as organizers

    def ids(self, channel: str) -> list[str]:
        return list(getattr(self, channel, []))


class Robot(Model):
    name: str
    url_env: str = Field(
        pattern=r"^[A-Z][A-Z0-9_]*$"
    )  # the webhook URL holds a key: keep it in env


class OrganizerGroups(Model):
    feishu: list[str] = []
    wecom_robots: list[Robot] = []


class Reminders(Model):
    deadline_offsets: list[str] = ["1d", "2h"]
    before_stream: str | None = "30m"
    after_stream: str | None = "15m"
    progress: bool = True

    @field_validator("deadline_offsets")
    @classmethod
    def _offsets(cls, offsets: list[str]) -> list[str]:
        for offset in offsets:
            parse_offset(offset)
        return offsets

    @field_validator("before_stream", "after_stream")
    @classmethod
    def _offset(cls, offset: str | None) -> str | None:
        if offset is not None:
            parse_offset(offset)
        return offset


class Digest(Model):
    cron: str  # minute hour day month weekday, Asia/Shanghai
    top_n: int = Field(default=5, ge=1, le=50)

    @field_validator("cron")
    @classmethod
    def _cron(cls, cron: str) -> str:
        try:
            CronTrigger.from_crontab(cron, timezone=SHANGHAI)
        except ValueError as exc:
            raise ValueError(f"not a crontab expression: {cron!r} ({exc})") from exc
        return cron


class Product(Model):
    name: str
    price: Decimal | None = None
    supplier: str = ""


# What a template field shows: the message, the campaign's title, or when it was written.
TemplateSource = Literal["text", "campaign", "time"]


def _template_id_only(value: Any) -> Any:
    return {"id": value} if isinstance(value, str) else value


class WeChatTemplate(Model):
    """A template from the account's template library. `fields` maps its keywords (thing1,
    time2 …, as the library shows them) to what they show; without them, the classic
    first/keyword1/keyword2/remark layout (templates added before WeChat's 2023 change)."""

    id: str = Field(min_length=1, max_length=64)
    fields: dict[Annotated[str, Field(pattern=r"^[a-z_]+[0-9]*$")], TemplateSource] = {}


class WeChatTemplates(Model):
    reminder: Annotated[WeChatTemplate | None, BeforeValidator(_template_id_only)] = None
    review_result: Annotated[WeChatTemplate | None, BeforeValidator(_template_id_only)] = None


class Campaign(Model):
    id: str = Field(pattern=SLUG, max_length=24)
    name: str
    short_name: str = ""
    organizer_name: str = ""
    description: str = ""
    phases: list[Phase] = Field(min_length=1)
    groups: list[Group] = Field(min_length=1)
    eligibility: Eligibility = Eligibility()
    registration: Registration = Registration()
    filing: Filing = Filing()
    videos: Videos = Videos()
    scoring: Scoring
    prizes: Prizes = Prizes()
    units: list[Unit] = []
    organizers: Organizers = Organizers()
    organizer_groups: OrganizerGroups = OrganizerGroups()
    reminders: Reminders = Reminders()
    digests: list[Digest] = []
    products: list[Product] = []
    import_aliases: dict[str, list[str]] = {}
    wechat_templates: WeChatTemplates = WeChatTemplates()

    @model_validator(mode="after")
    def _references(self) -> Campaign:
        _unique("phases", [p.key for p in self.phases])
        _unique("groups", [g.key for g in self.groups])
        _unique("units", [u.key for u in self.units])
        group_keys = {g.key for g in self.groups}
        for key in self.prizes.groups:
            if key not in group_keys:
                raise ValueError(
                    f"prizes.groups.{key}: unknown group (known: {', '.join(group_keys)})"
                )
        phase_keys = {p.key for p in self.phases}
        for i, key in enumerate(self.scoring.phases):
            if key not in phase_keys:
                raise ValueError(f"scoring.phases[{i}]: unknown phase {key!r}")
        return self

    # Questions the flows ask of a campaign; pure, given the instant.
    @property
    def title(self) -> str:
        return self.short_name or self.name

    def phases_of(self, *kinds: str) -> list[Phase]:
        return [p for p in self.phases if p.kind in kinds]

    def phase_at(self, when: datetime, *kinds: str) -> Phase | None:
        return next((p for p in self.phases_of(*kinds) if p.contains(when)), None)

    def registration_open(self, when: datetime) -> bool:
        return self.phase_at(when, "registration") is not None

    def is_live(self, when: datetime) -> bool:
        """Open to streamers: from the first registration phase until the last phase ends."""
        first = min(p.start for p in self.phases)
        last = max(p.end for p in self.phases)
        return first <= when <= last

    def unit(self, key: str | None) -> Unit | None:
        return next((u for u in self.units if u.key == key), None)

    def group(self, key: str | None) -> Group | None:
        return next((g for g in self.groups if g.key == key), None)

    def hashtags(self, phase: Phase | None = None) -> list[str]:
        tags = list(self.videos.hashtags)
        for extra in phase.hashtags if phase else ():
            if extra not in tags:
                tags.append(extra)
        return tags


def _unique(field: str, keys: Iterable[str]) -> None:
    seen: set[str] = set()
    for i, key in enumerate(keys):
        if key in seen:
            raise ValueError(f"{field}[{i}].key: duplicate {key!r}")
        seen.add(key)


class CampaignConfigError(Exception):
    """Every problem found in the campaign files, one line each."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def _loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _messages(name: str, exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        where = _loc(tuple(p for p in err["loc"] if not str(p).startswith("function-")))
        lines.append(f"{name}: {where}: {msg}" if where else f"{name}: {msg}")
    return lines


def load_campaign_file(path: Path) -> Campaign:
    """One file; raises CampaignConfigError naming the file and the field."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CampaignConfigError([f"{path.name}: cannot read: {exc}"]) from exc
    if not isinstance(data, dict):
        raise CampaignConfigError([f"{path.name}: expected a mapping of campaign fields"])
    data.setdefault("id", path.stem)
    try:
        return Campaign.model_validate(data)
    except ValidationError as exc:
        raise CampaignConfigError(_messages(path.name, exc)) from exc


def load_campaigns(paths: Iterable[Path]) -> dict[str, Campaign]:
    """Every file, all errors at once; ids must be unique across files."""
    campaigns: dict[str, Campaign] = {}
    errors: list[str] = []
    for path in sorted(paths):
        try:
            campaign = load_campaign_file(path)
        except CampaignConfigError as exc:
            errors.extend(exc.errors)
            continue
        if campaign.id in campaigns:
            errors.append(f"{path.name}: id: {campaign.id!r} is used by another file")
        campaigns[campaign.id] = campaign
    if errors:
        raise CampaignConfigError(errors)
    return campaigns


def campaign_files(directory: Path) -> list[Path]:
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
