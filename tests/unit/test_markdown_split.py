"""Splitting digests for WeCom robots: pieces within the byte limit, broken between lines."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.rules.markdown_split import split_markdown


@pytest.mark.parametrize(
    ("text", "limit", "pieces"),
    [
        ("", 10, []),
        ("short", 10, ["short"]),
        ("a\nb\nc", 10, ["a\nb\nc"]),
        ("aaaa\nbbbb\ncccc", 9, ["aaaa\nbbbb", "cccc"]),
        ("aaaa\nbbbb\ncccc", 4, ["aaaa", "bbbb", "cccc"]),
        ("一二三\n四五六", 9, ["一二三", "四五六"]),  # 3 bytes each: a line is 9 bytes
        ("一二三四", 7, ["一二", "三四"]),  # one line too long: cut between characters
        ("ab\n" + "x" * 9 + "\ncd", 4, ["ab", "xxxx", "xxxx", "x\ncd"]),
    ],
)
def test_split(text: str, limit: int, pieces: list[str]) -> None:
    assert split_markdown(text, limit) == pieces


def test_limit_must_hold_a_character() -> None:
    with pytest.raises(ValueError):
        split_markdown("abc", 3)


@given(
    st.lists(
        st.text(
            # text that can be sent at all: no lone surrogates
            alphabet=st.characters(exclude_characters="\n", exclude_categories=("Cs",)),
            max_size=60,
        ),
        max_size=40,
    ),
    st.integers(min_value=4, max_value=120),
)
def test_pieces_fit_keep_everything_and_whole_lines(lines: list[str], limit: int) -> None:
    text = "\n".join(lines)
    pieces = split_markdown(text, limit)
    assert all(0 < len(p.encode()) <= limit for p in pieces)
    assert "".join(pieces).replace("\n", "") == text.replace("\n", "")
    piece_lines = {line for p in pieces for line in p.split("\n")}
    for line in lines:
        if line and len(line.encode()) <= limit:
            assert line in piece_lines  # a line that fits is never cut
    if all(0 < len(line.encode()) <= limit for line in lines):
        assert "\n".join(pieces) == text
