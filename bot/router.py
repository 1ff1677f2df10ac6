"""Which flow takes an Incoming: a QR scene, the active conversation, or a keyword.

Keywords never eat a conversation in progress: a one-shot command (排名, 我的) is answered and
the current question asked again; another flow's keyword is told to wait for 取消.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.engine import CANCEL_WORDS, Context, Engine, Flow, normalise
from bot.flows import common, filing, groups, organizer, ranking, report, signup, videos
from bot.messages import Reply
from bot.rules.scene import parse_scene
from bot.rules.sharetext import extract_urls
from storage.models import Conversation

Command = Callable[[Context], list[Reply]]
PatternCommand = Callable[[Context, re.Match[str]], list[Reply]]

FLOW_KEYWORDS: dict[str, Flow] = {
    "报名": signup.FLOW,
    "修改报名": signup.EDIT_FLOW,
    "报备": filing.FLOW,
    "战报": report.FLOW,
    "作品": videos.FLOW,
}
COMMANDS: dict[str, Command] = {
    "我的": common.mine,
    "我的报备": filing.my_filings,
    "排名": ranking.show,
    "帮助": common.menu,
    "菜单": common.menu,
    "help": common.menu,
    **organizer.COMMANDS,
}
# Commands with arguments (organizer commands such as `通过 3 5`), tried in order.
PATTERNS: list[tuple[re.Pattern[str], PatternCommand]] = [
    (filing.CANCEL_PATTERN, filing.cancel_filing),
    (groups.BIND_PATTERN, groups.bind),
    *organizer.PATTERNS,
]
FLOWS: list[Flow] = list(FLOW_KEYWORDS.values())


def match_pattern(word: str, text: str) -> tuple[PatternCommand, re.Match[str]] | None:
    """The command whose pattern fits the normalised `word`. The text as typed is used instead
    when it reads the same but for the reason, so a reason keeps its full-width punctuation
    (时间太远，请…) while ids and numbers typed full-width still count."""
    for pattern, command in PATTERNS:
        match = pattern.fullmatch(word)
        if match:
            typed = pattern.fullmatch(text.strip())
            same = typed is not None and all(
                typed[g] == match[g] for g in pattern.groupindex if g != "reason"
            )
            return command, typed if typed is not None and same else match
    return None


class Router:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def route(self, ctx: Context) -> list[Reply]:
        notes: list[Reply] = []
        conv = self.engine.active(ctx)
        if conv is not None and self.engine.expired(conv, ctx.now):
            title = self.engine.flows[conv.flow].title if conv.flow in self.engine.flows else "对话"
            ctx.session.delete(conv)
            ctx.session.flush()
            conv = None
            notes.append(Reply(f"上次的「{title}」太久没有回复，已自动结束，需要时重新开始。"))
        event = ctx.incoming.event
        if event is not None and event.scene:
            return notes + self._scan(ctx, event.scene, had_conversation=conv is not None)
        text = ctx.incoming.text
        if event is not None and event.key:
            text = event.key
        word = normalise(text)
        if conv is not None:
            return notes + self._in_conversation(ctx, conv, word, text)
        if word in FLOW_KEYWORDS:
            return self.engine.start(ctx, FLOW_KEYWORDS[word], notes=notes)
        if word in COMMANDS:
            return notes + COMMANDS[word](ctx)
        pattern = match_pattern(word, text)
        if pattern is not None:
            return notes + pattern[0](ctx, pattern[1])
        if word in CANCEL_WORDS:
            return [*notes, Reply("当前没有进行中的操作。"), *common.menu(ctx)]
        if extract_urls(text):
            return notes + self._pasted_link(ctx, text)
        return notes + common.menu(ctx)

    def _pasted_link(self, ctx: Context, text: str) -> list[Reply]:
        """A share text pasted without 作品 first: start the video flow and give it the text."""
        replies = self.engine.start(ctx, videos.FLOW)
        conv = self.engine.active(ctx)
        if conv is None or conv.step != videos.STEPS[0].key:
            return replies  # refused, or asking which campaign first
        return self.engine.resume(ctx, conv, text)

    def _in_conversation(
        self, ctx: Context, conv: Conversation, word: str, text: str
    ) -> list[Reply]:
        flow = self.engine.flows.get(conv.flow)
        if word in COMMANDS and word not in ("帮助", "help"):
            answer = COMMANDS[word](ctx)
            title = flow.title if flow else ""
            return [*answer, Reply(f"继续「{title}」："), *self.engine.current_prompt(ctx, conv)]
        other = FLOW_KEYWORDS.get(word)
        if other is not None and flow is not None:
            if other.key == flow.key:
                return self.engine.current_prompt(ctx, conv)
            return [
                Reply(
                    f"你正在「{flow.title}」。先回复「取消」结束它，再回复「{word}」；或继续回答："
                ),
                *self.engine.current_prompt(ctx, conv),
            ]
        return self.engine.resume(ctx, conv, text)

    def _scan(self, ctx: Context, scene: str, *, had_conversation: bool) -> list[Reply]:
        """A registration QR code: sign-up with the campaign and unit filled in."""
        parsed = parse_scene(scene)
        campaign = ctx.campaigns.get(parsed[0]) if parsed else None
        if campaign is None:
            return [Reply("这个二维码已失效或不属于任何赛事。"), *common.menu(ctx)]
        conv = self.engine.active(ctx)
        notes = []
        if conv is not None and had_conversation:
            ctx.session.delete(conv)
            ctx.session.flush()
            notes.append(Reply("已结束之前未完成的操作。"))
        ctx.campaign = campaign
        unit = campaign.unit(parsed[1]) if parsed else None
        prefill = {"_scene_unit": unit.key} if unit else {}
        return self.engine.start(ctx, signup.FLOW, prefill, notes=notes)
