"""Tests for the shared sanitiser of text shown on a terminal."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from structlog_belog.core.sanitize import json_visible, visible

UNSAFE = [
    *map(chr, [*range(9), *range(11, 32), *range(0x7F, 0xA0)]),
    "\u061c",
    "\u200e",
    "\u200f",
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
    "\u2028",
    "\u2029",
]


class TestVisible:
    """`visible` shows every control, C1 and bidi character as an escape."""

    def test_each_unsafe_character_escaped(self) -> None:
        """No unsafe character survives; each becomes a backslash escape."""
        for ch in UNSAFE:
            out = visible(f"a{ch}b")
            assert ch not in out
            assert out.startswith("a\\")
            assert out.endswith("b")

    def test_tab_newline_and_text_kept(self) -> None:
        """Tab, newline and ordinary text (accents, emoji, CJK) are untouched."""
        text = "tab\there\nnext é 💥 漢字 — ok"
        assert text == visible(text)

    def test_escape_sequence_readable(self) -> None:
        """An ESC sequence reads as its escape, not as a command."""
        assert "\\x1b[2J\\u202e" == visible("\x1b[2J\u202e")

    @given(st.text())
    def test_no_unsafe_output(self, text: str) -> None:
        """Whatever the input, the output holds no unsafe character."""
        out = visible(text)
        assert not set(out) & set(UNSAFE)


class TestJsonVisible:
    """`json_visible` keeps a JSON document equal while escaping DEL, C1 and bidi."""

    @given(st.dictionaries(st.text(), st.text()))
    def test_round_trip(self, data: dict[str, str]) -> None:
        """The escaped document parses to the same data and holds no unsafe character."""
        text = json_visible(orjson.dumps(data).decode())
        assert data == orjson.loads(text)
        assert not set(text) & set(UNSAFE)
