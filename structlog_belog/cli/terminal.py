"""Everything the ``belog`` command prints goes through here, neutralised.

`SafeConsole` is a rich `Console` whose rendered text passes through the
shared sanitiser (`visible`) segment by segment, after rich has laid it out and
before its own styling codes are added: data cannot bring an ESC, a C1 control
or a bidi override to the terminal, whatever renderable (table, tree, rule,
markup) carried it. `write_text` and `write_json` do the same for output
written without rich (raw Markdown, JSON documents and lines).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import orjson
from rich.console import Console
from rich.segment import Segment

from ..core.sanitize import json_visible, visible

__all__ = ["SafeConsole", "one_line", "write_json", "write_json_line", "write_text"]


class SafeConsole(Console):
    """A rich `Console` that shows control and bidi characters from data as escapes."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        # Control segments are rich's own (cursor moves); every text segment may
        # hold data. Styles are rendered by rich after this, from its own codes.
        cleaned = (
            seg if seg.control else Segment(visible(seg.text), seg.style, seg.control)
            for seg in buffer
        )
        return super()._render_buffer(cleaned)


def write_text(text: str) -> None:
    """Write *text* to stdout with control and bidi characters shown as escapes."""
    sys.stdout.write(visible(text))


def write_json(data: Any) -> None:
    """Write *data* to stdout as indented JSON; DEL, C1 and bidi characters escaped."""
    text = orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str).decode()
    sys.stdout.write(json_visible(text) + "\n")


def write_json_line(data: Any) -> None:
    """Write *data* to stdout as one JSON line; DEL, C1 and bidi characters escaped."""
    sys.stdout.write(json_visible(orjson.dumps(data, default=str).decode()) + "\n")


def one_line(text: str) -> str:
    """*text* (an error message) on one line."""
    return " ".join(text.split("\n")).strip() or "unknown error"
