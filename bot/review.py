"""Organizer decisions: the review queue, 通过/驳回/撤销, deductions and disqualification.

Items are named by a type word and the row id, stable for the item's life and unambiguous across
types: 报名3 (registration), 报备12 (filing), 作品5 (video), 战报7 (stream report), 扣分2
(deduction, only to revoke it). A bare number is accepted where it names exactly one waiting item
of the organizer's campaigns; otherwise the answer lists the candidates to choose from.

Every change is audited (AuditLog: actor, time, action, before/after, reason) and the streamer is
told through the outbox (kind `review_result`, key `review_result:<audit id>`, one per decision).
Decisions are reversible: re-deciding (驳回 after 通过 or the other way) is a new audited decision;
`撤销` restores the state before the item's latest decision, once, if nothing changed since.

`decide` is the entry point chat commands and card buttons share; authorisation is inside it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.messages import Incoming
from bot.organizers import organizer_campaigns
from bot.rules.anomalies import (
    Anomaly,
    Claim,
    DayPair,
    StreamerTotals,
    figure_outliers,
    self_over_import,
    shared_links,
)
from bot.rules.formatting import fmt_amount, fmt_minutes, fmt_when, mask_name
from config.campaign import Campaign
from storage.models import AuditLog, Deduction, Filing, Registration, StreamReport, Video
from storage.outbox import enqueue

NO_PERMISSION = "无权限：这是组委会的操作，你不是本赛事的组委会成员。"
REF_PATTERN = r"(?:报名|报备|作品|战报|扣分)?\s*#?\s*\d{1,9}"
_REF = re.compile(r"(?P<word>报名|报备|作品|战报|扣分)?\s*#?\s*(?P<id>\d{1,9})")
MAX_POINTS = Decimal(100)
KIND_NOTIFY = "review_result"


@dataclass(frozen=True)
class Kind:
    key: str
    word: str  # the type word of its references
    model: Any  # the table class
    waiting: tuple[str, ...]  # statuses listed in the queue
    decidable: tuple[str, ...]  # statuses an organizer may decide from
    approved: str
    rejected: str
    audited: tuple[str, ...]  # fields recorded before/after and restored by 撤销
    status_words: dict[str, str]


REVIEW_FIELDS = ("status", "review_reason", "reviewed_by")
KINDS: dict[str, Kind] = {
    k.word: k
    for k in (
        Kind(
            key="registration",
            word="报名",
            model=Registration,
            waiting=("pending",),
            decidable=("pending", "approved", "rejected"),
            approved="approved",
            rejected="rejected",
            audited=("status",),
            status_words={"pending": "待审核", "approved": "已通过", "rejected": "未通过"},
        ),
        Kind(
            key="filing",
            word="报备",
            model=Filing,
            waiting=("pending",),
            decidable=("pending", "approved", "rejected"),
            approved="approved",
            rejected="rejected",
            audited=(*REVIEW_FIELDS, "reviewed_at"),
            status_words={
                "pending": "待审核",
                "approved": "已通过",
                "rejected": "已驳回",
                "cancelled": "已取消",
            },
        ),
        Kind(
            key="video",
            word="作品",
            model=Video,
            waiting=("review", "flagged"),
            decidable=("review", "flagged", "accepted", "rejected"),
            approved="accepted",
            rejected="rejected",
            audited=REVIEW_FIELDS,
            status_words={
                "review": "待核实",
                "flagged": "待核实",
                "accepted": "已通过",
                "rejected": "已驳回",
            },
        ),
        Kind(
            key="report",
            word="战报",
            model=StreamReport,
            waiting=("unverified",),
            decidable=("unverified", "confirmed", "rejected"),
            approved="confirmed",
            rejected="rejected",
            audited=("status",),
            status_words={
                "unverified": "待确认",
                "confirmed": "已确认",
                "rejected": "已驳回",
                "superseded": "已被平台数据取代",
            },
        ),
    )
}
BY_KEY = {k.key: k for k in KINDS.values()}


@dataclass(frozen=True)
class Outcome:
    """What an organizer action did: `text` is the answer to show (chat line, card toast)."""

    ok: bool
    text: str
    changed: bool = False
    ref: str | None = None  # e.g. 报备12
    status: str | None = None  # the item's status afterwards


@dataclass(frozen=True)
class QueueItem:
    ref: str
    line: str


@dataclass(frozen=True)
class Queue:
    campaign: Campaign
    sections: list[tuple[str, list[QueueItem], int]]  # (type word, shown items, total waiting)

    @property
    def total(self) -> int:
        return sum(n for _w, _i, n in self.sections)


# Actors and references -----------------------------------------------------------------------
def actor_of(actor: Incoming | str) -> Incoming:
    """A card callback may pass 'channel:user'; it is checked like a chat message (no group)."""
    if isinstance(actor, Incoming):
        return actor
    channel, _, user = actor.partition(":")
    return Incoming(channel=channel, user=user)


def actor_id(incoming: Incoming) -> str:
    return f"{incoming.channel}:{incoming.user}"


def split_refs(text: str) -> list[str]:
    """'报备12 报名3, #5' -> ['报备12', '报名3', '5']."""
    return [m.group(0).replace(" ", "").replace("#", "") for m in _REF.finditer(text)]


def _lookup(
    session: Session, campaign_ids: list[str], ref: str, *, waiting_only: bool
) -> tuple[Kind, Any] | str:
    """The item a reference names within these campaigns, or why there is none."""
    match = _REF.fullmatch(ref.strip())
    if match is None:
        return f"「{ref}」不是有效的编号，例如：报备12、报名3、作品5、战报7。"
    number = int(match["id"])
    if match["word"] == "扣分":
        return f"扣分记录不需要审核；要撤销请回复「撤销 扣分{number}」。"
    kinds = [KINDS[match["word"]]] if match["word"] else list(KINDS.values())
    found = []
    for kind in kinds:
        item = session.get(kind.model, number)
        if item is None or item.campaign_id not in campaign_ids:
            continue
        if match["word"] is None and waiting_only and item.status not in kind.waiting:
            continue
        found.append((kind, item))
    if not found and match["word"] is None and waiting_only:
        return (
            f"没有编号为{number}的待审核项目。回复「审核」查看编号；"
            f"改判已审核的请带上类别，如「驳回 报备{number} 理由」。"
        )
    if not found:
        return f"没有找到{ref}。回复「审核」查看待审核的编号。"
    if len(found) > 1:
        options = "、".join(f"{k.word}{number}" for k, _i in found)
        return f"编号{number}对应多项：{options}。请带上类别，例如「通过 {found[0][0].word}{number}」。"
    return found[0]


def _clean(reason: str | None) -> str | None:
    """A reason as it goes into a sentence: trimmed, without closing punctuation; None if empty."""
    return (reason or "").strip().rstrip("。.!！;；") or None


def _ref(kind: Kind, item: Any) -> str:
    return f"{kind.word}{item.id}"


def item_ref(kind: str, item_id: int) -> str:
    """The reference of an item by its kind key (registration | filing | video | report)."""
    return f"{BY_KEY[kind].word}{item_id}"


# Snapshots for the audit log ----------------------------------------------------------------
def _snapshot(kind: Kind, item: Any) -> dict[str, Any]:
    values = {f: getattr(item, f) for f in kind.audited}
    # UTC, so a snapshot taken now equals one of the same row read back from the database.
    return {
        f: v.astimezone(UTC).isoformat() if isinstance(v, datetime) else v
        for f, v in values.items()
    }


def _restore(kind: Kind, item: Any, snapshot: dict[str, Any]) -> None:
    for f in kind.audited:
        value = snapshot.get(f)
        if f == "reviewed_at" and isinstance(value, str):
            value = datetime.fromisoformat(value)
        setattr(item, f, value)


def _audit(
    session: Session,
    campaign_id: str,
    actor: str,
    action: str,
    target: tuple[str, int | None],
    before: dict[str, Any],
    after: dict[str, Any],
    reason: str | None,
    now: datetime,
) -> AuditLog:
    row = AuditLog(
        campaign_id=campaign_id,
        actor=actor,
        action=action,
        target_type=target[0],
        target_id=target[1],
        before=before,
        after=after,
        reason=reason,
        created_at=now,
    )
    session.add(row)
    session.flush()  # the id keys the notification
    return row


def _notify(
    session: Session, campaign: Campaign, reg: Registration, audit: AuditLog, text: str
) -> None:
    enqueue(
        session,
        key=f"{KIND_NOTIFY}:{audit.id}",
        channel=reg.channel,
        recipient=reg.user_id,
        kind=KIND_NOTIFY,
        text=f"【{campaign.title}】{text}",
        now=audit.created_at,
        campaign_id=campaign.id,
        payload={"target": audit.target_type, "id": audit.target_id, "action": audit.action},
    )


def _registration(session: Session, kind: Kind, item: Any) -> Registration:
    reg = item if kind.key == "registration" else session.get(Registration, item.registration_id)
    assert reg is not None
    return reg


def _what(kind: Kind, item: Any, campaign: Campaign) -> str:
    """The item as its streamer knows it."""
    if kind.key == "registration":
        return f"在「{campaign.title}」的报名"
    if kind.key == "filing":
        return f"报备的直播（{fmt_when(item.start_at)}，{fmt_minutes(item.minutes)}）"
    if kind.key == "video":
        return f"提交的作品（{item.url}）"
    return f"{_day(item.stream_date)}的战报"


def _day(day: date) -> str:
    return f"{day.month}月{day.day}日"


def _decision_text(kind: Kind, item: Any, campaign: Campaign, reason: str | None) -> str:
    what = _what(kind, item, campaign)
    if item.status == kind.approved:
        follow = {
            "registration": "回复「报备」提交直播计划。",
            "filing": "请按时开播，直播结束后回复「战报」上报数据。",
            "video": "已计入作品数。",
            "report": "已计入成绩。",
        }[kind.key]
        note = f"备注：{reason}。" if reason else ""
        return f"你{what}已通过审核。{note}{follow}"
    follow = "可修改后重新报备（回复「报备」）。" if kind.key == "filing" else ""
    return f"你{what}未通过审核。理由：{reason}。{follow}如有疑问请联系组委会。"


# Decisions ----------------------------------------------------------------------------------
def decide(
    session: Session,
    campaigns: dict[str, Campaign],
    actor: Incoming | str,
    item_ref: str,
    approve: bool,
    reason: str | None,
    now: datetime,
) -> Outcome:
    """Approve or reject one item (通过 / 驳回). A rejection needs a reason. The caller commits."""
    incoming = actor_of(actor)
    mine = organizer_campaigns(session, campaigns, incoming)
    if not mine:
        return Outcome(False, NO_PERMISSION)
    reason = _clean(reason)
    if not approve and reason is None:
        return Outcome(False, f"驳回需要写明理由，例如：驳回 {item_ref} 场地不符合要求")
    found = _lookup(session, [c.id for c in mine], item_ref, waiting_only=True)
    if isinstance(found, str):
        return Outcome(False, found)
    kind, item = found
    campaign = campaigns[item.campaign_id]
    ref = _ref(kind, item)
    target = kind.approved if approve else kind.rejected
    if item.status not in kind.decidable:
        state = kind.status_words.get(item.status, item.status)
        return Outcome(False, f"{ref}当前是「{state}」，无需审核。", ref=ref, status=item.status)
    if item.status == target:
        state = kind.status_words[target]
        return Outcome(True, f"{ref}已经是「{state}」，无需重复操作。", ref=ref, status=target)
    before = _snapshot(kind, item)
    item.status = target
    _set_review(kind, item, actor_id(incoming), reason, now)
    session.add(item)
    audit = _audit(
        session,
        campaign.id,
        actor_id(incoming),
        "approve" if approve else "reject",
        (kind.key, item.id),
        before,
        _snapshot(kind, item),
        reason,
        now,
    )
    reg = _registration(session, kind, item)
    _notify(session, campaign, reg, audit, _decision_text(kind, item, campaign, reason))
    verb = "通过" if approve else "驳回"
    return Outcome(
        True, f"已{verb} {ref}（{reg.name}），已通知主播。", changed=True, ref=ref, status=target
    )


def _set_review(kind: Kind, item: Any, actor: str, reason: str | None, now: datetime) -> None:
    if "review_reason" in kind.audited:
        item.review_reason = reason
        item.reviewed_by = actor
    if "reviewed_at" in kind.audited:
        item.reviewed_at = now
    if hasattr(item, "updated_at"):
        item.updated_at = now


def revert(
    session: Session,
    campaigns: dict[str, Campaign],
    actor: Incoming | str,
    item_ref: str,
    now: datetime,
) -> Outcome:
    """撤销: undo the item's latest decision (or revoke a deduction: 撤销 扣分2)."""
    incoming = actor_of(actor)
    mine = organizer_campaigns(session, campaigns, incoming)
    if not mine:
        return Outcome(False, NO_PERMISSION)
    if item_ref.startswith("扣分"):
        return _revoke_deduction(session, campaigns, mine, incoming, item_ref, now)
    found = _lookup(session, [c.id for c in mine], item_ref, waiting_only=False)
    if isinstance(found, str):
        return Outcome(False, found)
    kind, item = found
    ref = _ref(kind, item)
    latest = session.exec(
        select(AuditLog)
        .where(AuditLog.target_type == kind.key, AuditLog.target_id == item.id)
        .order_by(col(AuditLog.id).desc())
        .limit(1)
    ).first()
    if latest is None or latest.action not in ("approve", "reject"):
        return Outcome(False, f"{ref}没有可撤销的审核决定。", ref=ref, status=item.status)
    current = _snapshot(kind, item)
    if current != latest.after:
        return Outcome(False, f"{ref}在审核之后已有变化，不能撤销；可以重新通过或驳回。", ref=ref)
    _restore(kind, item, latest.before)
    if hasattr(item, "updated_at"):
        item.updated_at = now
    session.add(item)
    campaign = campaigns[item.campaign_id]
    audit = _audit(
        session,
        campaign.id,
        actor_id(incoming),
        "revert",
        (kind.key, item.id),
        current,
        _snapshot(kind, item),
        f"撤销审核记录 {latest.id}",
        now,
    )
    state = kind.status_words.get(item.status, item.status)
    reg = _registration(session, kind, item)
    what = _what(kind, item, campaign)
    _notify(session, campaign, reg, audit, f"你{what}的审核结果已撤销，当前状态：{state}。")
    return Outcome(
        True, f"已撤销 {ref} 的审核，恢复为「{state}」。", changed=True, ref=ref, status=item.status
    )


# Streamers: deductions and disqualification ---------------------------------------------------
def find_streamers(session: Session, campaign_ids: list[str], who: str) -> list[Registration]:
    """By registration id ('12' or '报名12'), platform handle ('@' optional) or name."""
    who = who.strip().lstrip("@")
    found: dict[int, Registration] = {}
    number = re.fullmatch(r"(?:报名)?#?(\d{1,9})", who)
    if number:
        reg = session.get(Registration, int(number.group(1)))
        if reg is not None and reg.campaign_id in campaign_ids:
            found[int(reg.id or 0)] = reg
    if not who.startswith("报名"):
        rows = session.exec(
            select(Registration).where(
                col(Registration.campaign_id).in_(campaign_ids),
                (func.lower(Registration.handle) == who.casefold()) | (Registration.name == who),
            )
        ).all()
        found.update((int(r.id or 0), r) for r in rows)
    return sorted(found.values(), key=lambda r: r.id or 0)


def _one_streamer(
    session: Session, campaigns: list[Campaign], who: str, example: Callable[[str], str]
) -> Registration | str:
    regs = find_streamers(session, [c.id for c in campaigns], who)
    if not regs:
        return f"没有找到主播「{who}」。可以用报名编号、姓名或平台账号。"
    if len(regs) > 1:
        lines = "\n".join(f"报名{r.id} {r.name}（{r.platform}@{r.handle}）" for r in regs[:10])
        return f"「{who}」对应多位主播，请改用报名编号，例如「{example(f'报名{regs[0].id}')}」：\n{lines}"
    return regs[0]


def deduct(
    session: Session,
    campaigns: dict[str, Campaign],
    actor: Incoming | str,
    who: str,
    points: Decimal,
    reason: str | None,
    now: datetime,
) -> Outcome:
    """扣分: points off the streamer's composite score (a row; revoke with 撤销 扣分N)."""
    incoming = actor_of(actor)
    mine = organizer_campaigns(session, campaigns, incoming)
    if not mine:
        return Outcome(False, NO_PERMISSION)
    reason = _clean(reason)
    if reason is None:
        return Outcome(False, f"扣分需要写明理由，例如：扣分 {who} {points} 直播中违规宣传")
    if not 0 < points <= MAX_POINTS:
        return Outcome(False, f"扣分分值需在0到{MAX_POINTS}分之间，例如：扣分 {who} 5 投诉属实")
    reg = _one_streamer(session, mine, who, lambda r: f"扣分 {r} {points} {reason}")
    if isinstance(reg, str):
        return Outcome(False, reg)
    campaign = campaigns[reg.campaign_id]
    row = Deduction(
        campaign_id=campaign.id,
        registration_id=int(reg.id or 0),
        points=float(points),
        reason=reason,
        actor=actor_id(incoming),
        created_at=now,
    )
    session.add(row)
    session.flush()
    after = {"points": float(points), "reason": reason}
    audit = _audit(
        session,
        campaign.id,
        actor_id(incoming),
        "deduct",
        ("deduction", row.id),
        {},
        after,
        reason,
        now,
    )
    _notify(
        session,
        campaign,
        reg,
        audit,
        f"因「{reason}」，你的综合得分被扣除{fmt_amount(points)}分。如有异议请联系组委会。",
    )
    ref = f"扣分{row.id}"
    return Outcome(
        True,
        f"已扣分 {ref}：{reg.name}（报名{reg.id}）扣{fmt_amount(points)}分，理由：{reason}。排名已更新；"
        f"如需撤销，回复「撤销 {ref}」。",
        changed=True,
        ref=ref,
    )


def _revoke_deduction(
    session: Session,
    campaigns: dict[str, Campaign],
    mine: list[Campaign],
    incoming: Incoming,
    item_ref: str,
    now: datetime,
) -> Outcome:
    match = _REF.fullmatch(item_ref)
    row = session.get(Deduction, int(match["id"])) if match else None
    if row is None or row.campaign_id not in [c.id for c in mine]:
        return Outcome(False, f"没有找到{item_ref}。")
    ref = f"扣分{row.id}"
    if row.revoked_at is not None:
        return Outcome(True, f"{ref}已经撤销过了。", ref=ref)
    row.revoked_at = now
    session.add(row)
    campaign = campaigns[row.campaign_id]
    before = {"points": row.points, "reason": row.reason}
    audit = _audit(
        session,
        campaign.id,
        actor_id(incoming),
        "revoke",
        ("deduction", row.id),
        before,
        {**before, "revoked_at": now.isoformat()},
        None,
        now,
    )
    reg = session.get(Registration, row.registration_id)
    assert reg is not None
    points = fmt_amount(Decimal(str(row.points)))
    _notify(session, campaign, reg, audit, f"组委会已撤销对你的扣分（{points}分：{row.reason}）。")
    return Outcome(
        True, f"已撤销 {ref}（{reg.name} {points}分），排名已更新。", changed=True, ref=ref
    )


def disqualify(
    session: Session,
    campaigns: dict[str, Campaign],
    actor: Incoming | str,
    who: str,
    reason: str | None,
    now: datetime,
) -> Outcome:
    """取消资格: out of the rankings and prizes until 恢复."""
    incoming = actor_of(actor)
    mine = organizer_campaigns(session, campaigns, incoming)
    if not mine:
        return Outcome(False, NO_PERMISSION)
    reason = _clean(reason)
    if reason is None:
        return Outcome(False, f"取消资格需要写明理由，例如：取消资格 {who} 经核实存在刷单")
    reg = _one_streamer(session, mine, who, lambda r: f"取消资格 {r} {reason}")
    if isinstance(reg, str):
        return Outcome(False, reg)
    return _set_disqualified(session, campaigns, incoming, reg, reason, now)


def reinstate(
    session: Session,
    campaigns: dict[str, Campaign],
    actor: Incoming | str,
    who: str,
    now: datetime,
) -> Outcome:
    """恢复: undo 取消资格."""
    incoming = actor_of(actor)
    mine = organizer_campaigns(session, campaigns, incoming)
    if not mine:
        return Outcome(False, NO_PERMISSION)
    reg = _one_streamer(session, mine, who, lambda r: f"恢复 {r}")
    if isinstance(reg, str):
        return Outcome(False, reg)
    return _set_disqualified(session, campaigns, incoming, reg, None, now)


def _set_disqualified(
    session: Session,
    campaigns: dict[str, Campaign],
    incoming: Incoming,
    reg: Registration,
    reason: str | None,
    now: datetime,
) -> Outcome:
    label = f"{reg.name}（报名{reg.id}）"
    if reg.disqualified_reason == reason:
        state = f"已被取消资格（{reason}）" if reason else "参赛资格正常"
        return Outcome(True, f"{label}{state}，无需重复操作。")
    campaign = campaigns[reg.campaign_id]
    before = {"disqualified_reason": reg.disqualified_reason}
    reg.disqualified_reason = reason
    reg.updated_at = now
    session.add(reg)
    action = "disqualify" if reason else "reinstate"
    audit = _audit(
        session,
        campaign.id,
        actor_id(incoming),
        action,
        ("registration", reg.id),
        before,
        {"disqualified_reason": reason},
        reason or before["disqualified_reason"],
        now,
    )
    if reason:
        _notify(
            session,
            campaign,
            reg,
            audit,
            f"你的参赛资格已被取消。理由：{reason}。如有异议请联系组委会。",
        )
        return Outcome(
            True,
            f"已取消{label}的参赛资格，已移出排名；恢复请回复「恢复 报名{reg.id}」。",
            changed=True,
        )
    _notify(session, campaign, reg, audit, "你的参赛资格已恢复，成绩重新计入排名。")
    return Outcome(True, f"已恢复{label}的参赛资格，已重新计入排名。", changed=True)


# The queue ----------------------------------------------------------------------------------
QUEUE_LIMIT = 10


def review_queue(session: Session, campaign: Campaign, limit: int = QUEUE_LIMIT) -> Queue:
    """What waits in one campaign, oldest first, per type: up to `limit` lines each."""
    sections = []
    for kind in KINDS.values():
        waiting = (
            kind.model.campaign_id == campaign.id,
            col(kind.model.status).in_(kind.waiting),
        )
        total = session.exec(select(func.count()).select_from(kind.model).where(*waiting)).one()
        if not total:
            continue
        if kind.key == "registration":
            regs = session.exec(
                select(Registration).where(*waiting).order_by(col(Registration.id)).limit(limit)
            )
            rows = [(reg, reg) for reg in regs]
        else:
            rows = list(
                session.exec(
                    select(kind.model, Registration)
                    .join(Registration, col(Registration.id) == kind.model.registration_id)
                    .where(*waiting)
                    .order_by(col(kind.model.id))
                    .limit(limit)
                ).all()
            )
        items = [
            QueueItem(_ref(kind, item), _line(kind, item, reg, campaign)) for item, reg in rows
        ]
        sections.append((kind.word, items, total))
    return Queue(campaign, sections)


def _line(kind: Kind, item: Any, reg: Registration, campaign: Campaign) -> str:
    if kind.key == "registration":
        group = campaign.group(reg.group_key)
        unit = campaign.unit(reg.unit_key)
        tail = f" 推荐：{unit.name}" if unit else ""
        return (
            f"{reg.name} {reg.platform}@{reg.handle} 粉丝{fmt_amount(reg.fans)} "
            f"{group.name if group else reg.group_key}{tail}"
        )
    if kind.key == "filing":
        venue = f" 场地：{item.venue}" if item.venue else ""
        why = f"（{item.venue_reason}）" if item.venue_reason else ""
        return f"{reg.name} {fmt_when(item.start_at)} {fmt_minutes(item.minutes)} {item.platform}{venue}{why}"
    if kind.key == "video":
        why = "同一链接已被他人提交" if item.status == "flagged" else "未见活动话题"
        return f"{reg.name} {item.url}（{why}）"
    return (
        f"{reg.name} {_day(item.stream_date)} 成交{fmt_amount(item.gmv)}元 "
        f"退款{fmt_amount(item.refunds)}元 观看{fmt_amount(item.viewers)} {fmt_minutes(item.minutes)}"
    )


# Anomalies ----------------------------------------------------------------------------------
COUNTED_REPORTS = ("unverified", "confirmed")


def _who(registration_id: int, name: str) -> str:
    """How anomalies name a streamer: masked, as they reach organizer groups, with the
    number organizers act on (扣分 报名3 …)."""
    return f"{mask_name(name)}（报名{registration_id}）"


def campaign_anomalies(session: Session, campaign: Campaign) -> list[Anomaly]:
    """bot/rules/anomalies.py over the campaign's figures: outliers, shared links, self-reports
    far above the platform's."""
    totals = session.exec(
        select(
            Registration.id,
            Registration.name,
            Registration.group_key,
            func.coalesce(func.sum(StreamReport.gmv), 0),
            func.coalesce(func.sum(StreamReport.refunds), 0),
            func.coalesce(func.sum(StreamReport.viewers), 0),
        )
        .join(StreamReport, col(StreamReport.registration_id) == Registration.id)
        .where(
            Registration.campaign_id == campaign.id,
            col(StreamReport.status).in_(COUNTED_REPORTS),
        )
        .group_by(Registration.id, Registration.name, Registration.group_key)
    ).all()
    figures = [
        StreamerTotals(rid, _who(rid, name), group, Decimal(gmv), Decimal(refunds), int(viewers))
        for rid, name, group, gmv, refunds, viewers in totals
    ]
    shared = (
        select(Video.url_key)
        .where(Video.campaign_id == campaign.id, Video.status != "rejected")
        .group_by(Video.url_key)
        .having(func.count(Video.registration_id.distinct()) > 1)
    )
    claims = session.exec(
        select(Video.url_key, Video.url, Registration.id, Registration.name)
        .join(Registration, col(Registration.id) == Video.registration_id)
        .where(Video.campaign_id == campaign.id, col(Video.url_key).in_(shared))
        .order_by(col(Video.id))
    ).all()
    return [
        *figure_outliers(figures),
        *shared_links([Claim(key, url, rid, _who(rid, name)) for key, url, rid, name in claims]),
        *self_over_import(_day_pairs(session, campaign)),
    ]


def _day_pairs(session: Session, campaign: Campaign) -> list[DayPair]:
    rows = session.exec(
        select(
            StreamReport.registration_id,
            Registration.name,
            StreamReport.stream_date,
            StreamReport.source,
            func.sum(StreamReport.gmv),
        )
        .join(Registration, col(Registration.id) == StreamReport.registration_id)
        .where(StreamReport.campaign_id == campaign.id, StreamReport.status != "rejected")
        .group_by(
            StreamReport.registration_id,
            Registration.name,
            StreamReport.stream_date,
            StreamReport.source,
        )
    ).all()
    by_day: dict[tuple[int, date], dict[str, Any]] = {}
    for rid, name, day, source, gmv in rows:
        by_day.setdefault((rid, day), {"name": _who(rid, name)})[source] = Decimal(gmv)
    return [
        DayPair(rid, v["name"], day, v["self"], v["import"])
        for (rid, day), v in sorted(by_day.items())
        if "self" in v and "import" in v
    ]
