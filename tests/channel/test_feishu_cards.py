"""Feishu cards from plain data (pure): buttons carry objects, user text never goes through
lark_md, a decided review card names who and when and has no buttons left."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.feishu_cards import (
    DigestData,
    ReviewDecision,
    ReviewItem,
    clicked_text,
    digest_card,
    reply_card,
    review_card,
    review_click,
)
from bot.messages import Reply

SNEAKY = "王<at id=all></at>[点我](https://evil.example)**粗**"


def elements_of(card: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    found = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("tag") == tag:
                found.append(node)
            for key, value in node.items():
                if key != "value":
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card)
    return found


def buttons(card: dict[str, Any]) -> list[dict[str, Any]]:
    return elements_of(card, "button")


def lark_md(card: dict[str, Any]) -> str:
    return " ".join(e["content"] for e in elements_of(card, "lark_md"))


def test_plain_text_needs_no_card() -> None:
    assert reply_card(Reply("你好")) is None


def test_choices_become_buttons_whose_value_is_the_option() -> None:
    card = reply_card(Reply("【报名 第4步/共10步】身份？", choices=("在校大学生", "退役军人")))
    assert card is not None
    assert [b["text"]["content"] for b in buttons(card)] == ["在校大学生", "退役军人"]
    assert [b["value"] for b in buttons(card)] == [{"text": "在校大学生"}, {"text": "退役军人"}]
    assert elements_of(card, "plain_text")[1]["content"].startswith("【报名 第4步")
    json.dumps(card)  # sent as a JSON string


def test_group_buttons_remember_their_chat() -> None:
    card = reply_card(Reply("选哪个？", choices=("1",)), chat_id="oc_1")
    assert card is not None
    assert buttons(card)[0]["value"] == {"text": "1", "chat": "oc_1"}


def test_a_summary_gets_confirm_and_cancel() -> None:
    reply = Reply("请核对", card={"title": "报名：请核对", "rows": [], "buttons": ["确认", "取消"]})
    card = reply_card(reply)
    assert card is not None and card["header"]["title"]["content"] == "报名：请核对"
    assert [(b["text"]["content"], b["type"]) for b in buttons(card)] == [
        ("确认", "primary"),
        ("取消", "default"),
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"text": "2"}, ("2", None)),
        ({"text": "确认", "chat": "oc_9"}, ("确认", "oc_9")),
        ({"text": 2}, None),
        ("2", None),
        (None, None),
        ({"action": "review"}, None),
    ],
)
def test_clicked_text(value: Any, expected: tuple[str, str | None] | None) -> None:
    assert clicked_text(value) == expected


def test_user_text_never_reaches_lark_md() -> None:
    card = reply_card(Reply(SNEAKY, choices=(SNEAKY,)))
    assert card is not None and "evil" not in lark_md(card) and "all" not in lark_md(card)
    data: DigestData = {
        "title": "战况",
        "as_of": "2024-09-08T21:00:00+08:00",
        "groups": [{"name": "新秀组", "entries": [{"rank": 1, "name": SNEAKY, "score": 1}]}],
        "sections": [{"title": "异常", "lines": [SNEAKY]}],
    }
    assert "evil" not in lark_md(digest_card(data))
    item = ReviewItem(ref="报备1", line=SNEAKY)
    assert "evil" not in lark_md(review_card(item))


def test_digest_card_lists_each_group_and_section() -> None:
    data: DigestData = {
        "title": "利通 战况播报",
        "as_of": "2024-09-08T13:00:00+00:00",
        "groups": [
            {
                "name": "达人组",
                "entries": [
                    {"rank": 1, "name": "王*文", "score": 88.5, "detail": "净成交1.2万"},
                    {"rank": 2, "name": "李*", "score": 70.0},
                ],
            },
            {"name": "新秀组", "entries": []},
        ],
        "sections": [
            {"title": "今日数据", "lines": ["直播 3 场"]},
            {"title": "异常提示", "lines": []},
        ],
    }
    card = digest_card(data, image_key="img_v3_1")
    texts = [e["content"] for e in elements_of(card, "plain_text")]
    assert "1. 王*文  88.5分  净成交1.2万\n2. 李*  70分" in texts
    assert "暂无上榜选手" in texts and "直播 3 场" in texts
    assert "异常提示" not in lark_md(card)  # an empty section is left out
    assert elements_of(card, "img")[0]["img_key"] == "img_v3_1"
    assert any("2024年9月8日 21:00" in t for t in texts)  # Asia/Shanghai
    assert card["config"]["update_multi"] is True


def test_a_waiting_review_card_has_a_reason_box_and_two_object_buttons() -> None:
    item = ReviewItem(ref="报备12", line="王小文 2024年9月17日 20:00 2小时 抖音", campaign="利通")
    card = review_card(item)
    assert card["header"]["title"]["content"] == "待审核：利通 报备12"
    [form] = elements_of(card, "form")
    [box] = elements_of(form, "input")
    assert box["name"] == "reason"
    approve, reject = buttons(form)
    assert (approve["name"], approve["action_type"]) == ("approve", "form_submit")
    assert (reject["name"], reject["action_type"]) == ("reject", "form_submit")
    assert isinstance(approve["value"], dict) and approve["value"]["decision"] == "approve"
    click = review_click(reject["value"], {"reason": " 场地不符 "})
    assert click == {"item": item, "approve": False, "reason": "场地不符"}
    assert review_click(approve["value"], {"reason": ""}) == {
        "item": item,
        "approve": True,
        "reason": None,
    }


@pytest.mark.parametrize(
    "value",
    [
        None,
        "approve",
        {"text": "1"},
        {"action": "review", "ref": "报备1", "line": "x", "decision": "maybe"},
        {"action": "review", "ref": "", "line": "x", "decision": "approve"},
        {"action": "review", "ref": 1, "line": "x", "decision": "approve"},
    ],
)
def test_other_clicks_are_not_reviews(value: Any) -> None:
    assert review_click(value, {}) is None


def test_a_decided_review_card_names_who_and_when_and_has_no_buttons() -> None:
    item = ReviewItem(ref="报备12", line="王小文 9月17日")
    decided = ReviewDecision(
        approved=False, by="ou_abc123", at="2024-09-15T02:00:00+00:00", reason="场地不符"
    )
    card = review_card(item, decided)
    assert card["header"]["title"]["content"] == "已驳回：报备12"
    assert card["header"]["template"] == "red"
    assert buttons(card) == [] and elements_of(card, "form") == []
    texts = " ".join(e["content"] for e in elements_of(card, "plain_text"))
    assert "已驳回（理由：场地不符）" in texts and "2024年9月15日 10:00" in texts
    assert "<at id=ou_abc123></at>" in lark_md(card)  # Feishu shows the organizer's name
    cli = review_card(item, ReviewDecision(approved=True, by="cli", at=decided["at"]))
    assert "cli" in " ".join(e["content"] for e in elements_of(cli, "plain_text"))
    assert lark_md(cli) == ""
