"""Who is an organizer: the ids a campaign names per channel, plus, where the campaign says so,
anyone writing in one of its bound organizer group chats."""

from __future__ import annotations

from sqlmodel import Session, select

from bot.messages import Incoming
from config.campaign import Campaign
from storage.models import BoundGroup


def is_organizer(session: Session, campaign: Campaign, incoming: Incoming) -> bool:
    if incoming.user in campaign.organizers.ids(incoming.channel):
        return True
    if not (campaign.organizers.group_members and incoming.chat_id):
        return False
    bound = session.get(BoundGroup, (incoming.channel, incoming.chat_id, campaign.id))
    return bound is not None


def organizer_campaigns(
    session: Session, campaigns: dict[str, Campaign], incoming: Incoming
) -> list[Campaign]:
    return [c for c in campaigns.values() if is_organizer(session, c, incoming)]


def bound_groups(session: Session, campaign_id: str) -> list[BoundGroup]:
    return list(session.exec(select(BoundGroup).where(BoundGroup.campaign_id == campaign_id)))
