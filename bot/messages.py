"""Channel-neutral message types: handlers turn platform payloads into `Incoming` and render
`Reply` in their platform's best form; flows only ever see these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    type: str  # scan | subscribe | click | added_to_group
    scene: str | None = None  # a QR scene: "<campaign>" or "<campaign>:<unit>"
    key: str | None = None  # a menu key


@dataclass(frozen=True)
class Incoming:
    channel: str  # web | wechat | feishu
    user: str
    text: str = ""
    event: Event | None = None
    image: str | None = None  # a channel reference to a picture (WeChat MediaId, Feishu image_key)
    message_id: str | None = None  # for retried deliveries
    chat_id: str | None = None  # a group chat; None for one-to-one

    @property
    def conversation_key(self) -> str:
        return f"{self.channel}:{self.user}"


@dataclass(frozen=True)
class Reply:
    text: str
    choices: tuple[str, ...] = ()  # the options of a question; text channels number them
    card: dict[str, Any] | None = field(default=None)  # a summary or review card (title, rows)

    def render_text(self) -> str:
        """The reply as plain text, choices numbered: what a text-only channel shows."""
        if not self.choices:
            return self.text
        options = "\n".join(f"{i}. {c}" for i, c in enumerate(self.choices, 1))
        return f"{self.text}\n{options}"

    def as_json(self) -> dict[str, Any]:
        """What the web and dev channels answer: the text with its choices numbered."""
        return {**self.to_dict(), "text": self.render_text()}

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"text": self.text}
        if self.choices:
            data["choices"] = list(self.choices)
        if self.card:
            data["card"] = self.card
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reply:
        """The inverse of `to_dict`, for stored replies (retried deliveries)."""
        return cls(text=data["text"], choices=tuple(data.get("choices", ())), card=data.get("card"))
