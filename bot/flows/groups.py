"""Organizer group chats, channel-neutral: the bot's introduction when it joins a group,
`绑定 <赛事>` (an organizer binds the group to a campaign, so it receives the digests), and which
campaign a statistics file sent in chat is for."""

from __future__ import annotations

import re

from sqlmodel import Session

from bot.engine import Context, normalise
from bot.messages import Incoming, Reply
from bot.organizers import is_organizer, organizer_campaigns
from config.campaign import Campaign
from storage.models import AuditLog, BoundGroup

BIND_PATTERN = re.compile(r"绑定\s*(\S+)")


def intro(campaigns: dict[str, Campaign]) -> Reply:
    names = "、".join(f"「{c.title}」" for c in campaigns.values()) or "（暂无赛事）"
    return Reply(
        "大家好，我是直播带货赛事助手。\n"
        f"组委会成员 @我 发送「绑定 赛事简称」把本群绑定到赛事（可选：{names}），"
        "之后本群会收到战况播报；@我 发送「榜单」「审核」查看榜单和待审核事项。"
    )


def find_campaign(campaigns: dict[str, Campaign], word: str) -> Campaign | None:
    """By id, short name or full name."""
    word = normalise(word).casefold()
    for campaign in campaigns.values():
        if word in {campaign.id, campaign.title.casefold(), campaign.name.casefold()}:
            return campaign
    return None


def bind(ctx: Context, match: re.Match[str]) -> list[Reply]:
    incoming = ctx.incoming
    if incoming.chat_id is None:
        return [Reply("请在组委会群里 @我 发送「绑定 赛事简称」，把那个群绑定到赛事。")]
    campaign = find_campaign(ctx.campaigns, match.group(1))
    if campaign is None:
        known = "、".join(f"「{c.title}」" for c in ctx.campaigns.values())
        return [Reply(f"没有找到赛事「{match.group(1)}」。可绑定的赛事：{known}。")]
    if not is_organizer(ctx.session, campaign, incoming):
        return [Reply(f"无权限：只有「{campaign.title}」的组委会成员可以绑定群。")]
    key = (incoming.channel, incoming.chat_id, campaign.id)
    if ctx.session.get(BoundGroup, key) is not None:
        return [Reply(f"本群已绑定「{campaign.title}」，会照常收到战况播报。")]
    actor = f"{incoming.channel}:{incoming.user}"
    ctx.session.add(
        BoundGroup(
            channel=incoming.channel,
            chat_id=incoming.chat_id,
            campaign_id=campaign.id,
            bound_by=actor,
            created_at=ctx.now,
        )
    )
    ctx.session.add(
        AuditLog(
            campaign_id=campaign.id,
            actor=actor,
            action="bind_group",
            target_type="group",
            after={"channel": incoming.channel, "chat_id": incoming.chat_id},
            created_at=ctx.now,
        )
    )
    return [
        Reply(
            f"已把本群绑定到「{campaign.title}」，之后的战况播报会发到这里。"
            "@我 发送「榜单」「审核」查看榜单和待审核事项。"
        )
    ]


def import_targets(
    session: Session, campaigns: dict[str, Campaign], incoming: Incoming
) -> list[Campaign]:
    """The campaigns whose statistics this organizer may import here: in a group chat only the
    campaigns it is bound to, one-to-one every campaign they organize."""
    mine = organizer_campaigns(session, campaigns, incoming)
    if incoming.chat_id is None:
        return mine
    return [
        c
        for c in mine
        if session.get(BoundGroup, (incoming.channel, incoming.chat_id, c.id)) is not None
    ]
