"""Sign-up (报名): every field of the seeds' registration forms, the group by the campaign's
rules, the recommending unit from the QR scene or a choice, an optional team, the pledge."""

from __future__ import annotations

import secrets
from dataclasses import replace
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam
from sqlmodel import select

from bot.engine import Context, Flow, Invalid, Step, Stop
from bot.messages import Reply
from bot.rules.eligibility import (
    Profile,
    age_refusal,
    assign_group,
    fans_refusal,
    group_rule_text,
    no_group_reason,
    registration_refusal,
)
from bot.rules.formatting import fmt_amount, fmt_when
from bot.rules.parsing import parse_age, parse_amount, parse_count, parse_mobile
from bot.rules.platforms import PLATFORMS, canonical_platform
from config.campaign import Campaign
from storage.models import Registration, Team

NO_UNIT = "无（个人报名）"
TEAM_NONE, TEAM_CREATE, TEAM_JOIN = "不组队", "创建团队", "加入团队"
AGREE, DISAGREE = "同意", "不同意"
STATUS_WORDS = {"pending": "待审核", "approved": "已报名", "rejected": "未通过"}
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud and typed


# Built once: most messages look the sender up, and building the statement cost as much as
# running it.
_REGISTRATION = select(Registration).where(
    Registration.campaign_id == bindparam("campaign"),
    Registration.channel == bindparam("channel"),
    Registration.user_id == bindparam("user"),
)


def registration_of(ctx: Context, campaign: Campaign) -> Registration | None:
    sender = {"campaign": campaign.id, "channel": ctx.incoming.channel, "user": ctx.incoming.user}
    return ctx.session.exec(_REGISTRATION, params=sender).first()


def describe(ctx: Context, reg: Registration) -> str:
    """One registration as the streamer sees it (我的, second sign-up)."""
    campaign = ctx.campaigns.get(reg.campaign_id)
    group = campaign.group(reg.group_key) if campaign else None
    lines = [
        f"「{campaign.title if campaign else reg.campaign_id}」{STATUS_WORDS.get(reg.status, reg.status)}",
        f"姓名：{reg.name}　手机：{reg.mobile}",
        f"平台：{reg.platform} @{reg.handle}　粉丝：{fmt_amount(reg.fans)}",
        f"参赛组：{group.name if group else reg.group_key}",
    ]
    unit = campaign.unit(reg.unit_key) if campaign else None
    if unit:
        lines.append(f"推荐单位：{unit.name}")
    if reg.team_id:
        team = ctx.session.get(Team, reg.team_id)
        if team:
            lines.append(f"团队：{team.name}（邀请码 {team.code}）")
    return "\n".join(lines)


# Parsers ------------------------------------------------------------------------------------
def _name(text: str, _ctx: Context) -> str:
    if not 2 <= len(text) <= 20 or any(ch.isdigit() for ch in text):
        raise Invalid("姓名需要2-20个字，不含数字，例如：王小文。")
    return text


def _mobile(text: str, ctx: Context) -> str:
    mobile = parse_mobile(text)
    if mobile is None:
        raise Invalid("手机号需要是11位大陆手机号，例如：13812345678。")
    taken = ctx.session.exec(
        select(Registration.id).where(
            Registration.campaign_id == ctx.require_campaign.id,
            Registration.mobile == mobile,
            (Registration.channel != ctx.incoming.channel)
            | (Registration.user_id != ctx.incoming.user),
        )
    ).first()
    if taken is not None:
        raise Invalid("这个手机号已经报过名了。每人只能报名一次，如有疑问请联系组委会。")
    return mobile


def _age(text: str, ctx: Context) -> int:
    age = parse_age(text, ctx.now.date())
    if age is None:
        raise Invalid("请回复年龄（如：25）或出生日期（如：2000-05-01）。")
    refusal = age_refusal(ctx.require_campaign.eligibility, age)
    if refusal:
        raise Stop(Reply(f"{refusal}\n如果填写有误，回复「报名」重新开始。"))
    return age


def _platform(text: str, ctx: Context) -> str:
    platform = canonical_platform(text)
    allowed = _platforms(ctx)
    if platform is None or platform not in allowed:
        raise Invalid(f"请选择本赛事支持的平台：{'、'.join(allowed)}。")
    return platform


def _handle(text: str, _ctx: Context) -> str:
    handle = text.lstrip("@")
    if not 1 <= len(handle) <= 64:
        raise Invalid("账号名称最长64个字，请回复你在平台上的账号名或账号ID。")
    return handle


def _fans(text: str, ctx: Context) -> int:
    fans = parse_count(text)
    if fans is None:
        raise Invalid("请回复粉丝数量，例如：8000、1.2万、2w。")
    refusal = fans_refusal(ctx.require_campaign.eligibility, fans)
    if refusal:
        raise Stop(Reply(f"{refusal}\n如果填写有误，回复「报名」重新开始。"))
    return fans


def _past_sales(text: str, ctx: Context) -> str:
    amount = parse_amount(text)
    if amount is None:
        raise Invalid("请回复金额（元），例如：300、3000元、1.5万；没有带过货请回复 0。")
    if _group_for(ctx, amount) is None:
        raise Stop(
            Reply(f"{no_group_reason(ctx.require_campaign)}\n如果填写有误，回复「报名」重新开始。")
        )
    return str(amount)


def _team_name(text: str, ctx: Context) -> str:
    if not 2 <= len(text) <= 20:
        raise Invalid("团队名称需要2-20个字。")
    exists = ctx.session.exec(
        select(Team.id).where(Team.campaign_id == ctx.require_campaign.id, Team.name == text)
    ).first()
    if exists is not None:
        raise Invalid("这个团队名称已被使用，换一个吧；要加入它请回复「上一步」选择「加入团队」。")
    return text


def _team_code(text: str, ctx: Context) -> str:
    code = text.upper().replace(" ", "")
    team = _team_by_code(ctx, code)
    if team is None:
        raise Invalid("没有找到这个邀请码，请向队长确认（6位字母数字，如 K7Q2MX）。")
    limit = ctx.require_campaign.registration.teams.max_members
    members = ctx.session.exec(select(Registration.id).where(Registration.team_id == team.id)).all()
    if len(members) >= limit:
        raise Invalid(f"团队「{team.name}」已满{limit}人，无法加入。")
    return code


def _pledge(text: str, _ctx: Context) -> str:
    if text != AGREE:
        raise Stop(Reply("需要同意大赛规则和诚信承诺才能报名。想好了随时回复「报名」重新开始。"))
    return text


# Helpers ------------------------------------------------------------------------------------
def _platforms(ctx: Context) -> list[str]:
    return ctx.require_campaign.eligibility.platforms or list(PLATFORMS)


def _group_for(ctx: Context, past_sales: Decimal) -> Any:
    d = ctx.data
    profile = Profile(
        age=d["age"],
        identity=d["identity"],
        platform=d["platform"],
        fans=d["fans"],
        past_sales=past_sales,
    )
    return assign_group(ctx.require_campaign.groups, profile)


def _team_by_code(ctx: Context, code: str) -> Team | None:
    return ctx.session.exec(
        select(Team).where(Team.campaign_id == ctx.require_campaign.id, Team.code == code)
    ).first()


def _new_code(ctx: Context) -> str:
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(6))
        if not ctx.session.exec(select(Team.id).where(Team.code == code)).first():
            return code


def _scene_unit(ctx: Context) -> str | None:
    return ctx.data.get("_scene_unit")


def _asks_unit(ctx: Context) -> bool:
    return _has_unit_choice(ctx) and _scene_unit(ctx) is None


def _teams_on(ctx: Context) -> bool:
    return ctx.require_campaign.registration.teams.enabled


def _as_of(ctx: Context) -> str:
    as_of = ctx.require_campaign.eligibility.stats_as_of
    return f"（截至{as_of.year}年{as_of.month}月{as_of.day}日）" if as_of else ""


def _welcome(ctx: Context) -> str:
    c = ctx.require_campaign
    unit = c.unit(_scene_unit(ctx))
    via = f"（推荐单位：{unit.name}）" if unit else ""
    return f"欢迎报名「{c.title}」{via}！\n请输入你的真实姓名。"


def _sales_display(value: Any, ctx: Context) -> str:
    group = _group_for(ctx, Decimal(value)) if value is not None else None
    shown = f"{fmt_amount(Decimal(value))}元"
    return f"{shown}（将分入「{group.name}」）" if group else shown


def _unit_choices(ctx: Context) -> list[str]:
    return [u.name for u in ctx.require_campaign.units] + [NO_UNIT]


def _unit_display(value: Any, _ctx: Context) -> str:
    return str(value or NO_UNIT)


def _pledge_prompt(ctx: Context) -> str:
    c = ctx.require_campaign
    return (
        f"最后一步：请阅读并同意大赛规则和诚信承诺。\n{c.registration.pledge}\n回复「同意」继续。"
    )


def _pledge_display(value: Any, _ctx: Context) -> str:
    return "已同意" if value == AGREE else "未同意"


STEPS = (
    Step("name", "姓名", _welcome, _name),
    Step("mobile", "手机号", "请输入你的手机号（11位）。", _mobile),
    Step("age", "年龄", "请输入你的年龄，或出生日期（如 2000-05-01）。", _age),
    Step(
        "identity",
        "身份",
        "请选择你的身份类别（回复编号）。",
        choices=lambda ctx: ctx.require_campaign.eligibility.identities,
    ),
    Step(
        "platform",
        "直播平台",
        "你主要在哪个平台直播？（回复编号或平台名）",
        _platform,
        choices=_platforms,
    ),
    Step("handle", "平台账号", "请输入你在该平台的账号名称或账号ID。", _handle),
    Step(
        "fans",
        "全网粉丝量",
        lambda ctx: f"你的全网粉丝量是多少{_as_of(ctx)}？例如：8000、1.2万。",
        _fans,
        show=lambda v, _c: fmt_amount(v),
    ),
    Step(
        "past_sales",
        "近一年带货销售额",
        lambda ctx: f"近一年你在各平台直播带货的销售额是多少元{_as_of(ctx)}？没有请回复 0。",
        _past_sales,
        show=_sales_display,
    ),
    Step(
        "unit",
        "推荐单位",
        "请选择推荐你的单位（回复编号）。",
        choices=_unit_choices,
        when=_asks_unit,
        show=_unit_display,
    ),
    Step(
        "team_mode",
        "团队",
        "是否组队参赛？（可参评优秀直播带货团队）",
        choices=(TEAM_NONE, TEAM_CREATE, TEAM_JOIN),
        when=_teams_on,
    ),
    Step(
        "team_name",
        "团队名称",
        "请给团队起个名字（2-20个字）。",
        _team_name,
        when=lambda ctx: ctx.data.get("team_mode") == TEAM_CREATE,
    ),
    Step(
        "team_code",
        "团队邀请码",
        "请输入队长给你的6位邀请码。",
        _team_code,
        when=lambda ctx: ctx.data.get("team_mode") == TEAM_JOIN,
    ),
    Step(
        "pledge",
        "诚信承诺",
        _pledge_prompt,
        _pledge,
        choices=(AGREE, DISAGREE),
        show=_pledge_display,
    ),
)
# What a streamer may change after signing up; the rest decides the group, which is fixed.
EDITABLE = ("name", "mobile", "platform", "handle", "unit")


# Flow hooks ---------------------------------------------------------------------------------
def _candidates(ctx: Context) -> list[Campaign]:
    """Live campaigns, open ones first; else the one whose dates explain why sign-up is closed:
    the next to start, or the last to have ended."""
    live = [c for c in ctx.campaigns.values() if c.is_live(ctx.now)]
    if live:  # closed ones too: whoever picks one hears when its registration was
        return sorted(live, key=lambda c: not c.registration_open(ctx.now))
    starts = {c.id: min(p.start for p in c.phases) for c in ctx.campaigns.values()}
    upcoming = sorted(
        (c for c in ctx.campaigns.values() if starts[c.id] > ctx.now), key=lambda c: starts[c.id]
    )
    ended = sorted(ctx.campaigns.values(), key=lambda c: max(p.end for p in c.phases))
    return upcoming[:1] or ended[-1:]


def _no_campaign(_ctx: Context) -> str:
    return "目前没有正在报名的赛事。赛事开始报名时，扫描组委会发布的报名二维码或回复「报名」即可。"


def _begin(ctx: Context) -> list[Reply] | None:
    campaign = ctx.require_campaign
    existing = registration_of(ctx, campaign)
    if existing is not None:
        return [
            Reply(f"你已经报过名了：\n{describe(ctx, existing)}\n如需修改信息，回复「修改报名」。")
        ]
    refusal = registration_refusal(campaign, ctx.now)
    return [Reply(refusal)] if refusal else None


def _finish(ctx: Context) -> list[Reply]:
    campaign = ctx.require_campaign
    d = ctx.data
    past_sales = Decimal(d["past_sales"])
    group = _group_for(ctx, past_sales)
    team: Team | None = None
    if d.get("team_mode") == TEAM_CREATE:
        team = Team(
            campaign_id=campaign.id, name=d["team_name"], code=_new_code(ctx), created_at=ctx.now
        )
        ctx.session.add(team)
        ctx.session.flush()
    elif d.get("team_mode") == TEAM_JOIN:
        team = _team_by_code(ctx, d["team_code"])
    unit_name = d.get("unit")
    unit = next((u for u in campaign.units if u.name == unit_name), None) or campaign.unit(
        _scene_unit(ctx)
    )
    status = "pending" if campaign.registration.review else "approved"
    ctx.session.add(
        Registration(
            campaign_id=campaign.id,
            channel=ctx.incoming.channel,
            user_id=ctx.incoming.user,
            name=d["name"],
            mobile=d["mobile"],
            age=d["age"],
            identity=d["identity"],
            platform=d["platform"],
            handle=d["handle"],
            fans=d["fans"],
            past_sales=past_sales,
            unit_key=unit.key if unit else None,
            team_id=team.id if team else None,
            group_key=group.key,
            status=status,
            pledged_at=ctx.now,
            created_at=ctx.now,
            updated_at=ctx.now,
        )
    )
    lines = [f"报名成功！你已分入「{group.name}」（{group_rule_text(group)}）。"]
    if status == "pending":
        lines.append("当前状态：待审核。组委会审核后会通知你。")
    if unit:
        lines.append(f"推荐单位：{unit.name}")
    if team and d.get("team_mode") == TEAM_CREATE:
        lines.append(
            f"团队「{team.name}」已创建，邀请码：{team.code}。把邀请码发给队友，报名时选择「加入团队」。"
        )
    elif team:
        lines.append(f"已加入团队「{team.name}」。")
    competition = [p for p in campaign.phases_of("competition") if p.end > ctx.now]
    if competition:
        first = min(competition, key=lambda p: p.start)
        lines.append(f"比赛「{first.name}」{fmt_when(first.start)}开始。")
    lines.append("接下来：回复「报备」提交直播计划，「排名」查看排名，「我的」查看报名信息。")
    return [Reply("\n".join(lines))]


def _edit_begin(ctx: Context) -> list[Reply] | None:
    existing = registration_of(ctx, ctx.require_campaign)
    if existing is None:
        return [Reply("你还没有报名这个赛事，回复「报名」开始报名。")]
    return None


def _edit_finish(ctx: Context) -> list[Reply]:
    reg = registration_of(ctx, ctx.require_campaign)
    assert reg is not None
    d = ctx.data
    reg.name, reg.mobile, reg.platform, reg.handle = (
        d["name"],
        d["mobile"],
        d["platform"],
        d["handle"],
    )
    if "unit" in d:
        unit = next((u for u in ctx.require_campaign.units if u.name == d["unit"]), None)
        reg.unit_key = unit.key if unit else None
    reg.updated_at = ctx.now
    ctx.session.add(reg)
    return [Reply(f"已保存修改：\n{describe(ctx, reg)}")]


def _edit_prefill(ctx: Context) -> dict[str, Any]:
    """The current answers of the user's registration, for 修改报名."""
    campaign = ctx.require_campaign
    reg = registration_of(ctx, campaign)
    assert reg is not None
    data: dict[str, Any] = {
        "name": reg.name,
        "mobile": reg.mobile,
        "platform": reg.platform,
        "handle": reg.handle,
    }
    if _has_unit_choice(ctx):
        unit = campaign.unit(reg.unit_key)
        data["unit"] = unit.name if unit else NO_UNIT
    return data


def _has_unit_choice(ctx: Context) -> bool:
    c = ctx.require_campaign
    return bool(c.units) and c.registration.ask_unit


def _edit_step(step: Step) -> Step:
    if step.key == "name":
        return replace(step, prompt="请输入姓名。")
    if step.key == "unit":
        return replace(step, when=_has_unit_choice)
    return step


# What the streamer flows (报备, 战报, 作品) say when no live campaign has the user signed up.
NOT_REGISTERED = "你还没有报名正在进行的赛事，回复「报名」先报名。"


def registered_campaigns(ctx: Context) -> list[Campaign]:
    return [c for c in ctx.campaigns.values() if c.is_live(ctx.now) and registration_of(ctx, c)]


FLOW = Flow(
    key="signup",
    title="报名",
    version=1,
    steps=STEPS,
    finish=_finish,
    candidates=_candidates,
    no_campaign=_no_campaign,
    begin=_begin,
)

EDIT_FLOW = Flow(
    key="signup_edit",
    title="修改报名",
    version=1,
    steps=tuple(_edit_step(s) for s in STEPS if s.key in EDITABLE),
    finish=_edit_finish,
    candidates=registered_campaigns,
    no_campaign="你还没有报名正在进行的赛事，回复「报名」开始报名。",
    begin=_edit_begin,
    prefill=_edit_prefill,
)
