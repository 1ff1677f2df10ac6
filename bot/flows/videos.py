"""Video links (作品): paste a link or the whole share text. The bot extracts the URL, knows the
platform, checks the campaign hashtag (or asks the streamer to confirm it and marks the video for
review), refuses one's own duplicates, flags a link another streamer already claimed, enforces
the video window and shows progress toward the phase's minimum."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from bot.engine import Context, Flow, Invalid, Step, Stop, normalise
from bot.flows.signup import NOT_REGISTERED, registered_campaigns, registration_of
from bot.messages import Reply
from bot.rules.sharetext import has_required_hashtag, normalise_url, parse_share_text
from bot.rules.videos import open_video_phase, progress_text, required_videos, window_refusal
from storage.models import Registration, Video

YES, NO = "带了话题", "没有带"
COUNTED = ("accepted", "review", "flagged")


def _registration(ctx: Context) -> Registration:
    reg = registration_of(ctx, ctx.require_campaign)
    assert reg is not None
    return reg


def _tags(ctx: Context) -> list[str]:
    return ctx.require_campaign.hashtags(open_video_phase(ctx.require_campaign, ctx.now))


def _link(text: str, ctx: Context) -> dict[str, Any]:
    shared = parse_share_text(text)
    if shared is None:
        raise Invalid(
            "没有找到链接。请粘贴作品的分享链接，或App里「分享→复制链接」得到的整段文字。"
        )
    allowed = ctx.require_campaign.videos.platforms
    if allowed and shared.platform not in allowed:
        raise Invalid(f"本赛事只收这些平台的作品：{'、'.join(allowed)}。")
    key = normalise_url(shared.url)
    mine = ctx.session.exec(
        select(Video.id).where(
            Video.campaign_id == ctx.require_campaign.id,
            Video.registration_id == _registration(ctx).id,
            Video.url_key == key,
        )
    ).first()
    if mine is not None:
        raise Stop(Reply(f"这个作品你已经提交过了（作品{mine}），不用重复提交。"))
    tags = _tags(ctx)
    return {
        "url": shared.url,
        "url_key": key,
        "platform": shared.platform,
        "title": shared.title,
        "hashtag_ok": not tags or has_required_hashtag(text, tags),
    }


# How people say yes or no besides the option itself: anything else is asked again, never guessed.
_SAID_YES = {"是", "是的", "有", "带了", "对", "嗯", "yes", "y"}
_SAID_NO = {"否", "不是", "没有", "没", "没带", "不", "no", "n"}


def _confirm_tag(text: str, ctx: Context) -> str:
    word = normalise(text).casefold()
    if text == NO or word in _SAID_NO:
        tag = _tags(ctx)[0]
        raise Stop(Reply(f"作品需要带话题 {tag} 才算参赛。补上话题后再回复「作品」提交吧。"))
    if text == YES or word in _SAID_YES:
        return YES
    raise Invalid(f"请回复 1（{YES}）或 2（{NO}）。")


def _tag_prompt(ctx: Context) -> str:
    tags = " 或 ".join(_tags(ctx))
    return f"分享文字里没看到话题 {tags}。你的作品发布时带了这个话题吗？（将由组委会核实）"


STEPS = (
    Step(
        "link",
        "作品链接",
        lambda ctx: (
            "请粘贴作品的分享链接或整段分享文字（发布时需带话题 " + " ".join(_tags(ctx)) + "）。"
            if _tags(ctx)
            else "请粘贴作品的分享链接或整段分享文字。"
        ),
        _link,
        show=lambda v, _c: v["url"],
    ),
    Step(
        "tag_confirm",
        "话题",
        _tag_prompt,
        _confirm_tag,
        choices=(YES, NO),
        when=lambda ctx: "link" in ctx.data and not ctx.data["link"]["hashtag_ok"],
    ),
)


def _begin(ctx: Context) -> list[Reply] | None:
    campaign = ctx.require_campaign
    reg = registration_of(ctx, campaign)
    if reg is None:
        return [Reply(f"你还没有报名「{campaign.title}」，回复「报名」先报名。")]
    if reg.disqualified_reason:
        return [Reply(f"你的参赛资格已被取消（{reg.disqualified_reason}），不能提交作品。")]
    refusal = window_refusal(campaign, ctx.now)
    return [Reply(refusal)] if refusal else None


def _finish(ctx: Context) -> list[Reply]:
    campaign = ctx.require_campaign
    reg = _registration(ctx)
    link = ctx.data["link"]
    phase = open_video_phase(campaign, ctx.now)
    assert phase is not None
    claimed = ctx.session.exec(
        select(Video.id).where(
            Video.campaign_id == campaign.id,
            Video.url_key == link["url_key"],
            Video.registration_id != reg.id,
        )
    ).first()
    status = "flagged" if claimed is not None else ("accepted" if link["hashtag_ok"] else "review")
    video = Video(
        campaign_id=campaign.id,
        registration_id=reg.id,
        phase_key=phase.key,
        url=link["url"],
        url_key=link["url_key"],
        platform=link["platform"],
        title=link["title"],
        hashtag_ok=link["hashtag_ok"],
        status=status,
        created_at=ctx.now,
    )
    ctx.session.add(video)
    ctx.session.flush()
    statuses = ctx.session.exec(
        select(Video.status).where(
            Video.registration_id == reg.id,
            Video.phase_key == phase.key,
            col(Video.status).in_(COUNTED),
        )
    ).all()
    pending = sum(1 for s in statuses if s != "accepted")
    platform = link["platform"] or "未知平台"
    head = {
        "accepted": f"作品已收到（作品{video.id}，{platform}）。",
        "review": f"作品已收到（作品{video.id}，{platform}），话题待组委会核实。",
        "flagged": f"作品已收到（作品{video.id}），但这个链接已被其他选手提交，已转组委会核实。",
    }[status]
    need = required_videos(campaign, phase)
    return [Reply(f"{head}\n「{phase.name}」{progress_text(len(statuses), need, pending)}")]


FLOW = Flow(
    key="videos",
    title="作品",
    version=1,
    steps=STEPS,
    finish=_finish,
    candidates=registered_campaigns,
    no_campaign=NOT_REGISTERED,
    begin=_begin,
    confirm=False,
)
