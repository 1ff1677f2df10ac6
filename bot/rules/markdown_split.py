"""Splitting a long message into pieces a platform accepts (WeCom robot markdown: 4096 bytes).

Pieces break between lines so a table row or a ranking line is never cut; only a single line
longer than the limit is cut, between characters (never inside a UTF-8 sequence).
"""

from __future__ import annotations

WECOM_MARKDOWN_BYTES = 4096


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _cut_line(line: str, limit: int) -> list[str]:
    """A line too long for one piece, cut into pieces of at most `limit` bytes."""
    pieces: list[str] = []
    current = ""
    for char in line:
        if current and _size(current + char) > limit:
            pieces.append(current)
            current = ""
        current += char
    if current:
        pieces.append(current)
    return pieces


def split_markdown(text: str, limit: int = WECOM_MARKDOWN_BYTES) -> list[str]:
    """Pieces of `text`, each at most `limit` UTF-8 bytes and not empty; joined by newlines they
    give the text back (less an empty line where it broke). Empty text gives no pieces."""
    if limit < 4:
        raise ValueError("limit must hold at least one character (4 bytes)")
    if not text:
        return []
    pieces: list[str] = []
    current: str | None = None
    for line in text.split("\n"):
        candidate = line if current is None else f"{current}\n{line}"
        if _size(candidate) <= limit:
            current = candidate
            continue
        if current:  # an empty line at a break is dropped: the break shows as much
            pieces.append(current)
        if _size(line) <= limit:
            current = line
        else:
            *whole, current = _cut_line(line, limit) or [""]
            pieces.extend(whole)
    if current:
        pieces.append(current)
    return pieces
