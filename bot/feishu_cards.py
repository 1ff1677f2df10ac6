"""Feishu interactive cards (message card JSON 1.0) from plain data: a question with its choices
as buttons, a digest leaderboard, and a review item with 通过 / 驳回.

Pure functions: no SDK, no I/O. Everything a user typed goes in `plain_text` (never `lark_md`),
so a name cannot smuggle links or an @all into a card. Button values are objects, as Feishu
requires; a click comes back as `card.action.trigger` carrying the value.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, NotRequired, TypedDict

from bot.messages import Reply
from bot.rules.formatting import fmt_when

Card = dict[str, Any]


class BoardEntry(TypedDict):
    rank: int
    name: str  # already masked
    score: float
    detail: NotRequired[str]  # e.g. "GMV 1.2万 · 直播3天"


class BoardGroup(TypedDict):
    name: str
    entries: list[BoardEntry]


class DigestSection(TypedDict):
    title: str
    lines: list[str]


class DigestData(TypedDict):
    """What a digest card shows; JSON-ready, so it can ride in an outbox row's payload."""

    title: str
    as_of: str  # ISO-8601 instant
    groups: list[BoardGroup]
    sections: NotRequired[list[DigestSection]]  # totals, movers, pending reviews, anomalies


class ReviewItem(TypedDict):
    """One waiting item of the review queue (bot/review.py names items like 报备12)."""

    ref: str  # e.g. 报备12
    line: str  # what the queue shows: who, when, what
    campaign: NotRequired[str]  # its campaign's short name, shown in the title


class ReviewDecision(TypedDict):
    approved: bool
    by: str  # the organizer's Feishu open_id, or another actor id
    at: str  # ISO-8601 instant
    reason: NotRequired[str]


def _text(content: str) -> dict[str, str]:
    return {"tag": "plain_text", "content": content}


def _div(content: str) -> dict[str, Any]:
    return {"tag": "div", "text": _text(content)}


def _bold(content: str) -> dict[str, Any]:
    # Only our own labels go through lark_md.
    return {"tag": "div", "text": {"tag": "lark_md", "content": f"**{content}**"}}


def _note(content: str) -> dict[str, Any]:
    return {"tag": "note", "elements": [_text(content)]}


def _button(label: str, value: dict[str, Any], kind: str = "default") -> dict[str, Any]:
    return {"tag": "button", "text": _text(label), "type": kind, "value": value}


def _card(title: str, template: str, elements: list[dict[str, Any]], *, shared: bool) -> Card:
    # update_multi: one card seen by everyone in a group, so an update reaches them all.
    return {
        "config": {"wide_screen_mode": True, "update_multi": shared},
        "header": {"title": _text(title), "template": template},
        "elements": elements,
    }


# Answers -----------------------------------------------------------------------------------
def reply_card(reply: Reply, chat_id: str | None = None) -> Card | None:
    """A question with choices (or a summary to confirm) as a card with one button per option;
    None when plain text says it all. A click answers with the option's text."""
    buttons = list(reply.choices) or list((reply.card or {}).get("buttons", []))
    if not buttons:
        return None
    title = (reply.card or {}).get("title") or "请选择"

    def value(option: str) -> dict[str, Any]:
        return {"text": option, "chat": chat_id} if chat_id else {"text": option}

    actions = [
        _button(option, value(option), "primary" if option == "确认" else "default")
        for option in buttons
    ]
    elements = [_div(reply.text), {"tag": "action", "actions": actions}]
    return _card(title, "blue", elements, shared=False)


def clicked_text(value: Any) -> tuple[str, str | None] | None:
    """The text a choice button stands for and its group chat, or None for other buttons."""
    if not isinstance(value, dict) or not isinstance(value.get("text"), str):
        return None
    chat = value.get("chat")
    return value["text"], chat if isinstance(chat, str) and chat else None


# Digests -----------------------------------------------------------------------------------
def _score(score: float) -> str:
    return f"{score:.1f}".rstrip("0").rstrip(".")


def digest_card(data: DigestData, image_key: str | None = None) -> Card:
    elements: list[dict[str, Any]] = []
    for group in data["groups"]:
        elements.append(_bold(group["name"]))
        lines = [
            f"{e['rank']}. {e['name']}  {_score(e['score'])}分"
            + (f"  {e['detail']}" if e.get("detail") else "")
            for e in group["entries"]
        ]
        elements.append(_div("\n".join(lines) if lines else "暂无上榜选手"))
    for section in data.get("sections", []):
        if section["lines"]:
            elements.append({"tag": "hr"})
            elements.append(_bold(section["title"]))
            elements.append(_div("\n".join(section["lines"])))
    if image_key:
        elements.append({"tag": "img", "img_key": image_key, "alt": _text("榜单图")})
    as_of = fmt_when(datetime.fromisoformat(data["as_of"]))
    elements.append(_note(f"截至 {as_of} · 名字已隐去部分字"))
    return _card(data["title"], "red", elements, shared=True)


# Reviews -----------------------------------------------------------------------------------
REVIEW_ACTION = "review"
REASON_FIELD = "reason"
OPEN_ID = re.compile(r"ou_[0-9a-zA-Z_-]{1,64}")


def review_value(item: ReviewItem, approve: bool) -> dict[str, Any]:
    # The line rides along so the answered card can still show what was decided.
    return {
        "action": REVIEW_ACTION,
        "ref": item["ref"],
        "line": item["line"],
        "campaign": item.get("campaign", ""),
        "decision": "approve" if approve else "reject",
    }


def _title(item: ReviewItem) -> str:
    return f"{item['campaign']} {item['ref']}" if item.get("campaign") else item["ref"]


def _who(actor: str) -> dict[str, Any]:
    """Feishu shows an open_id as the person's name; other actors as they are."""
    if OPEN_ID.fullmatch(actor):
        return {"tag": "lark_md", "content": f"<at id={actor}></at>"}
    return _text(actor)


def review_card(item: ReviewItem, decision: ReviewDecision | None = None) -> Card:
    """A waiting item with a reason box and 通过 / 驳回; once decided: the verdict, who decided
    and when, no buttons (Feishu shows the update to everyone in the group)."""
    elements: list[dict[str, Any]] = [_div(item["line"])]
    if decision is None:
        form = {
            "tag": "form",
            "name": "review",
            "elements": [
                {
                    "tag": "input",
                    "name": REASON_FIELD,
                    "placeholder": _text("驳回理由（驳回时必填，通过时可写备注）"),
                },
                {
                    **_button("通过", review_value(item, True), "primary"),
                    "action_type": "form_submit",
                    "name": "approve",
                },
                {
                    **_button("驳回", review_value(item, False), "danger"),
                    "action_type": "form_submit",
                    "name": "reject",
                },
            ],
        }
        elements.append(form)
        return _card(f"待审核：{_title(item)}", "orange", elements, shared=True)
    verdict = "已通过" if decision["approved"] else "已驳回"
    reason = decision.get("reason")
    elements.append(
        _div(
            f"{verdict}（{'备注' if decision['approved'] else '理由'}：{reason}）"
            if reason
            else verdict
        )
    )
    when = fmt_when(datetime.fromisoformat(decision["at"]))
    elements.append(
        {"tag": "note", "elements": [_text("处理人："), _who(decision["by"]), _text(f" · {when}")]}
    )
    template = "green" if decision["approved"] else "red"
    return _card(f"{verdict}：{_title(item)}", template, elements, shared=True)


class ReviewClick(TypedDict):
    item: ReviewItem
    approve: bool
    reason: str | None


def review_click(value: Any, form_value: Any = None) -> ReviewClick | None:
    """A 通过 / 驳回 click (with the reason typed in the card), or None for other buttons."""
    if not isinstance(value, dict) or value.get("action") != REVIEW_ACTION:
        return None
    ref, line, campaign = value.get("ref"), value.get("line"), value.get("campaign")
    decision = value.get("decision")
    if not (isinstance(ref, str) and ref and isinstance(line, str)):
        return None
    if decision not in ("approve", "reject"):
        return None
    item = ReviewItem(ref=ref, line=line)
    if isinstance(campaign, str) and campaign:
        item["campaign"] = campaign
    reason = form_value.get(REASON_FIELD) if isinstance(form_value, dict) else None
    reason = reason.strip() if isinstance(reason, str) else ""
    return ReviewClick(item=item, approve=decision == "approve", reason=reason or None)
