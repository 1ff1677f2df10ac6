"""The small flow engine: declarative steps with stable keys, a prompt, a parser that returns a
value or raises `Invalid(hint)`; `取消`, `上一步`, `帮助` at every step; progress (第3步/共9步);
a summary to `确认` or `修改 N`. State is one `Conversation` row per (channel, user), written in
the caller's transaction, so a crash or a second instance resumes exactly where the user was.

Step keys are stable: a flow whose steps change bumps `version`; a conversation at a step that
no longer exists restarts with a note instead of breaking.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from bot.messages import Incoming, Reply
from config.campaign import Campaign
from storage.models import Conversation

CAMPAIGN_STEP = "_campaign"
CONFIRM_STEP = "_confirm"
MISSES_BEFORE_HELP = 3

CANCEL_WORDS = {"取消", "退出", "cancel"}
BACK_WORDS = {"上一步", "返回", "back"}
HELP_WORDS = {"帮助", "help", "?", "？"}
CONFIRM_WORDS = {"确认", "确定", "提交", "是", "ok"}


class Invalid(Exception):
    """A wrong answer: the hint says what to type. `miss=False` for a clarifying question."""

    def __init__(self, hint: str, *, miss: bool = True) -> None:
        super().__init__(hint)
        self.hint = hint
        self.miss = miss


class Stop(Exception):
    """Ends the flow with these replies: a refusal no other answer can change (e.g. under age)."""

    def __init__(self, *replies: Reply) -> None:
        super().__init__(replies[0].text if replies else "")
        self.replies = list(replies)


@dataclass
class Context:
    """What a flow sees: the database session, the message, the time, the campaign, answers."""

    session: Session
    incoming: Incoming
    now: datetime
    campaigns: dict[str, Campaign]
    campaign: Campaign | None = None
    data: dict[str, Any] = field(default_factory=dict)
    services: Any = None  # the app's helpers flows may use (outbox, settings)

    @property
    def require_campaign(self) -> Campaign:
        if self.campaign is None:
            raise RuntimeError("flow step needs a campaign")
        return self.campaign


Text = str | Callable[[Context], str]
Choices = Sequence[str] | Callable[[Context], Sequence[str]]


@dataclass(frozen=True)
class Step:
    key: str
    label: str  # how the summary names the answer
    prompt: Text
    parse: Callable[[str, Context], Any] | None = None  # gets the chosen option when choices
    choices: Choices | None = None
    when: Callable[[Context], bool] | None = None
    show: Callable[[Any, Context], str] | None = None
    in_summary: bool = True
    accepts_image: bool = False  # a picture answers it (a 战报 screenshot): its channel reference
    # A rule between this answer and others (refunds ≤ GMV, no overlap): a hint or None. Run on
    # the parsed answer, and again before the summary and at 确认, because 修改 N of another
    # answer, or the time passing, can break it after this step was answered.
    check: Callable[[Any, Context], str | None] | None = None

    def applies(self, ctx: Context) -> bool:
        return self.when is None or self.when(ctx)

    def options(self, ctx: Context) -> tuple[str, ...]:
        if self.choices is None:
            return ()
        return tuple(self.choices(ctx) if callable(self.choices) else self.choices)

    def question(self, ctx: Context) -> str:
        return self.prompt(ctx) if callable(self.prompt) else self.prompt

    def display(self, ctx: Context) -> str:
        value = ctx.data.get(self.key)
        if self.show is not None:
            return self.show(value, ctx)
        return "（未填）" if value in (None, "") else str(value)


@dataclass(frozen=True)
class Flow:
    key: str
    title: str
    version: int
    steps: tuple[Step, ...]
    finish: Callable[[Context], list[Reply]]
    # Which campaigns the flow may run in; None: it needs no campaign.
    candidates: Callable[[Context], list[Campaign]] | None = None
    no_campaign: Text = "目前没有可参加的赛事。"
    # A refusal before any question (closed phase, already signed up); None lets it start.
    begin: Callable[[Context], list[Reply] | None] = lambda _ctx: None
    confirm: bool = True
    summary_title: str = "请核对以下信息："
    # Answers known before asking (修改 an existing record): the flow opens at the summary,
    # where 修改 N changes one of them.
    prefill: Callable[[Context], dict[str, Any]] | None = None

    def step(self, key: str) -> Step | None:
        return next((s for s in self.steps if s.key == key), None)

    def applicable(self, ctx: Context) -> list[Step]:
        return [s for s in self.steps if s.applies(ctx)]


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()


def choose(answer: str, options: Sequence[str]) -> str | None:
    """An option by its number or its text (case and spacing ignored)."""
    answer = normalise(answer)
    if answer.isdigit() and 1 <= int(answer) <= len(options):
        return options[int(answer) - 1]
    folded = answer.casefold().replace(" ", "")
    for option in options:
        if normalise(option).casefold().replace(" ", "") == folded:
            return option
    return None


class Engine:
    def __init__(self, flows: Sequence[Flow], idle: timedelta) -> None:
        self.flows = {f.key: f for f in flows}
        self.idle = idle

    # Entry points -----------------------------------------------------------------------
    def start(
        self,
        ctx: Context,
        flow: Flow,
        prefill: dict[str, Any] | None = None,
        *,
        notes: Sequence[Reply] = (),
    ) -> list[Reply]:
        """Begin `flow` for the user (the caller checked no flow is active)."""
        ctx.data = dict(prefill or {})
        conv = Conversation(
            channel=ctx.incoming.channel,
            user_id=ctx.incoming.user,
            flow=flow.key,
            flow_version=flow.version,
            step=CAMPAIGN_STEP,
            campaign_id=ctx.campaign.id if ctx.campaign else None,
            data=ctx.data,
            history=[],
            updated_at=ctx.now,
        )
        if flow.candidates is not None and ctx.campaign is None:
            candidates = flow.candidates(ctx)
            if not candidates:
                return [*notes, Reply(_text(flow.no_campaign, ctx))]
            if len(candidates) > 1:
                conv.data = {**ctx.data, "_candidates": [c.id for c in candidates]}
                ctx.session.add(conv)
                return [*notes, self._campaign_question(flow, candidates)]
            ctx.campaign = candidates[0]
            conv.campaign_id = ctx.campaign.id
        return [*notes, *self._after_campaign(ctx, flow, conv)]

    def active(self, ctx: Context) -> Conversation | None:
        return ctx.session.get(Conversation, (ctx.incoming.channel, ctx.incoming.user))

    def expired(self, conv: Conversation, now: datetime) -> bool:
        return now - conv.updated_at > self.idle

    def current_prompt(self, ctx: Context, conv: Conversation) -> list[Reply]:
        """The question the user is on, e.g. after answering a one-shot command mid-flow."""
        flow = self.flows[conv.flow]
        self._load(ctx, conv)
        if conv.step == CAMPAIGN_STEP:
            return [self._campaign_question(flow, self._candidates(ctx, conv))]
        if conv.step == CONFIRM_STEP:
            return [self._summary(ctx, flow)]
        step = flow.step(conv.step)
        return [self._ask(ctx, flow, step)] if step else []

    def resume(self, ctx: Context, conv: Conversation, text: str) -> list[Reply]:
        """The user's next message inside an active conversation."""
        flow = self.flows.get(conv.flow)
        if flow is None or (
            conv.flow_version != flow.version
            and conv.step not in (CAMPAIGN_STEP, CONFIRM_STEP)
            and flow.step(conv.step) is None
        ):
            ctx.session.delete(conv)
            title = flow.title if flow else "对话"
            return [Reply(f"「{title}」已更新，请回复「{title}」重新开始，抱歉。")]
        self._load(ctx, conv)
        conv.flow_version = flow.version
        word = normalise(text).casefold()
        if word in CANCEL_WORDS:
            ctx.session.delete(conv)
            return [
                Reply(
                    f"已取消「{flow.title}」，填写的内容没有保存。需要时回复「{flow.title}」重新开始。"
                )
            ]
        if conv.step == CAMPAIGN_STEP:
            return self._answer_campaign(ctx, flow, conv, text)
        if word in BACK_WORDS:
            return self._back(ctx, flow, conv)
        if conv.step == CONFIRM_STEP:
            return self._answer_confirm(ctx, flow, conv, text)
        step = flow.step(conv.step)
        assert step is not None
        if word in HELP_WORDS:
            lead = (
                f"你正在「{flow.title}」。照下面的问题回复即可：有选项的回复编号或选项文字；"
                "「上一步」改上一个答案，「取消」退出（已填的不会保存）。"
            )
            return [self._ask(ctx, flow, step, lead=lead)]
        return self._answer_step(ctx, flow, conv, step, text)

    # Steps -------------------------------------------------------------------------------
    def _after_campaign(self, ctx: Context, flow: Flow, conv: Conversation) -> list[Reply]:
        refusal = flow.begin(ctx)
        if refusal is not None:
            if conv in ctx.session:
                ctx.session.delete(conv)
            return refusal
        if flow.prefill is not None:
            ctx.data = {**flow.prefill(ctx), **ctx.data}
            conv.editing = True
        if conv not in ctx.session:
            ctx.session.add(conv)
        return self._advance(ctx, flow, conv, after=None)

    def _advance(
        self, ctx: Context, flow: Flow, conv: Conversation, *, after: str | None
    ) -> list[Reply]:
        """Move to the next applicable step without an answer (or to the summary)."""
        applicable = flow.applicable(ctx)
        keys = [s.key for s in applicable]
        start = keys.index(after) + 1 if after in keys else 0
        if conv.editing:
            # After 修改 N only the steps that the change made necessary are asked.
            pending = [s for s in applicable[start:] if s.key not in ctx.data]
        else:
            pending = applicable[start:]
        if pending:
            conv.step = pending[0].key
            self._save(ctx, conv)
            return [self._ask(ctx, flow, pending[0])]
        broken = self._recheck(ctx, flow, conv)
        if broken:
            return broken
        if flow.confirm:
            conv.step = CONFIRM_STEP
            conv.editing = False
            self._save(ctx, conv)
            return [self._summary(ctx, flow)]
        return self._finish(ctx, flow, conv)

    def _answer_step(
        self, ctx: Context, flow: Flow, conv: Conversation, step: Step, text: str
    ) -> list[Reply]:
        try:
            value = self._parse(ctx, step, text)
        except Stop as stop:
            ctx.session.delete(conv)
            return stop.replies
        except Invalid as bad:
            if bad.miss:
                conv.misses += 1
            self._save(ctx, conv)
            lead = bad.hint
            if conv.misses >= MISSES_BEFORE_HELP:
                lead += "\n看起来不太顺利？回复「帮助」查看说明，或回复「取消」退出。"
            return [self._ask(ctx, flow, step, lead=lead)]
        # Drop answers of steps that no longer apply (e.g. team code after switching to 不组队).
        ctx.data = {**ctx.data, step.key: value}
        for other in flow.steps:
            if other.key in ctx.data and not other.applies(ctx):
                ctx.data.pop(other.key)
        conv.misses = 0
        conv.history = [*conv.history, step.key]
        return self._advance(ctx, flow, conv, after=step.key)

    def _parse(self, ctx: Context, step: Step, text: str) -> Any:
        if ctx.incoming.image:
            if not step.accepts_image:
                raise Invalid("这一步请回复文字。")
            return f"{ctx.incoming.channel}:{ctx.incoming.image}"
        # Keywords and choices are matched normalised; free text keeps what the user typed.
        answer = text.strip()
        if not normalise(answer):
            raise Invalid("没有收到内容哦。")
        options = step.options(ctx)
        if options:
            chosen = choose(answer, options)
            if chosen is None and step.parse is None:
                raise Invalid(f"请回复选项编号（1-{len(options)}）或选项文字。")
            answer = chosen if chosen is not None else answer
        value = step.parse(answer, ctx) if step.parse else answer
        hint = step.check(value, ctx) if step.check else None
        if hint:
            raise Invalid(hint)
        return value

    def _recheck(self, ctx: Context, flow: Flow, conv: Conversation) -> list[Reply]:
        """Sends the user back to the first answer that a rule between answers now refuses."""
        for step in flow.applicable(ctx):
            if step.check is None or step.key not in ctx.data:
                continue
            hint = step.check(ctx.data[step.key], ctx)
            if hint:
                conv.step = step.key
                conv.editing = True
                self._save(ctx, conv)
                return [self._ask(ctx, flow, step, lead=f"{hint}\n请修改「{step.label}」：")]
        return []

    def _back(self, ctx: Context, flow: Flow, conv: Conversation) -> list[Reply]:
        history = list(conv.history)
        current = None if conv.step == CONFIRM_STEP else conv.step
        while history and (history[-1] == current or flow.step(history[-1]) is None):
            history.pop()
        if not history:
            step = flow.step(conv.step)
            lead = "已经是第一步了。"
            return [self._ask(ctx, flow, step, lead=lead)] if step else [self._summary(ctx, flow)]
        previous = history.pop()
        conv.history = history
        conv.step = previous
        conv.editing = False
        self._save(ctx, conv)
        step = flow.step(previous)
        assert step is not None
        return [self._ask(ctx, flow, step)]

    def _answer_confirm(
        self, ctx: Context, flow: Flow, conv: Conversation, text: str
    ) -> list[Reply]:
        answer = normalise(text).casefold()
        if answer in CONFIRM_WORDS:
            return self._recheck(ctx, flow, conv) or self._finish(ctx, flow, conv)
        match = re.fullmatch(r"(?:修改|改)\s*(\d+)", answer)
        rows = self._summary_steps(ctx, flow)
        if match and 1 <= int(match.group(1)) <= len(rows):
            step = rows[int(match.group(1)) - 1]
            conv.step = step.key
            conv.editing = True
            self._save(ctx, conv)
            return [self._ask(ctx, flow, step)]
        hint = f"请回复「确认」提交，或「修改 N」（N 为 1-{len(rows)}）修改对应一项。"
        return [Reply(hint), self._summary(ctx, flow)]

    def _finish(self, ctx: Context, flow: Flow, conv: Conversation) -> list[Reply]:
        replies = flow.finish(ctx)
        ctx.session.delete(conv)
        return replies

    # Campaign choice ---------------------------------------------------------------------
    def _candidates(self, ctx: Context, conv: Conversation) -> list[Campaign]:
        ids = conv.data.get("_candidates", [])
        return [ctx.campaigns[i] for i in ids if i in ctx.campaigns]

    def _campaign_question(self, flow: Flow, candidates: list[Campaign]) -> Reply:
        return Reply(
            f"【{flow.title}】现在有多个赛事，请选择一个（回复编号）。回复「取消」退出。",
            choices=tuple(c.name for c in candidates),
        )

    def _answer_campaign(
        self, ctx: Context, flow: Flow, conv: Conversation, text: str
    ) -> list[Reply]:
        candidates = self._candidates(ctx, conv)
        chosen = choose(text, [c.name for c in candidates])
        if chosen is None:
            word = normalise(text)
            named = [c for c in candidates if word in (c.id, c.title)] or [
                c  # part of a name (利通), never a number out of range (5 in 利通2025)
                for c in candidates
                if len(word) >= 2 and not word.isdigit() and word in c.name
            ]
            chosen = named[0].name if len(named) == 1 else None
        if chosen is None:
            hint = f"没有找到这个赛事，请回复编号（1-{len(candidates)}）。"
            return [Reply(hint), self._campaign_question(flow, candidates)]
        ctx.campaign = next(c for c in candidates if c.name == chosen)
        conv.campaign_id = ctx.campaign.id
        ctx.data = {k: v for k, v in ctx.data.items() if k != "_candidates"}
        return self._after_campaign(ctx, flow, conv)

    # Rendering ---------------------------------------------------------------------------
    def _ask(self, ctx: Context, flow: Flow, step: Step, *, lead: str = "") -> Reply:
        applicable = flow.applicable(ctx)
        keys = [s.key for s in applicable]
        position = keys.index(step.key) + 1 if step.key in keys else len(keys)
        footer = "回复「上一步」返回，「取消」退出。" if position > 1 else "回复「取消」退出。"
        body = f"【{flow.title} 第{position}步/共{len(keys)}步】{step.question(ctx)}\n{footer}"
        return Reply(f"{lead}\n{body}" if lead else body, choices=step.options(ctx))

    def _summary_steps(self, ctx: Context, flow: Flow) -> list[Step]:
        return [s for s in flow.applicable(ctx) if s.in_summary]

    def _summary(self, ctx: Context, flow: Flow) -> Reply:
        rows = [(s.label, s.display(ctx)) for s in self._summary_steps(ctx, flow)]
        lines = "\n".join(f"{i}. {label}：{value}" for i, (label, value) in enumerate(rows, 1))
        text = (
            f"【{flow.title}】{flow.summary_title}\n{lines}\n"
            "回复「确认」提交，「修改 N」修改第N项，「上一步」返回，「取消」放弃。"
        )
        card = {"title": f"{flow.title}：请核对", "rows": rows, "buttons": ["确认", "取消"]}
        return Reply(text, card=card)

    def _load(self, ctx: Context, conv: Conversation) -> None:
        ctx.data = dict(conv.data)
        if conv.campaign_id:
            ctx.campaign = ctx.campaigns.get(conv.campaign_id)

    def _save(self, ctx: Context, conv: Conversation) -> None:
        # A new dict each time: JSON columns do not notice in-place changes.
        conv.data = dict(ctx.data)
        conv.updated_at = ctx.now
        ctx.session.add(conv)


def _text(text: Text, ctx: Context) -> str:
    return text(ctx) if callable(text) else text
