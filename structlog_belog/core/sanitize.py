"""Neutralise control characters in text taken from logs before showing it.

Log records, file and folder names hold whatever an application (or an
attacker feeding it) put there. Printed raw, an ESC starts a terminal control
sequence (retitle the window, clear the screen, fake a prompt), a C1 character
does the same on terminals that honour 8-bit controls, and a bidi override
(U+202A to U+202E, U+2066 to U+2069) makes text read in another order than it is
stored. Every command-line view and the Markdown summary pass data through
the one function here, `visible`, which replaces each such character with a
visible escape (``\\x1b``, ``\\u202e``): the reader sees that it was there, and
nothing acts on it.

Kept as they are: tab and newline (the views' own layout needs them; a newline
inside a value is already escaped by the JSON or Markdown around it).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["UNSAFE_CHARS", "json_visible", "visible"]

#: Every character `visible` replaces, as a regex character class.
UNSAFE_CHARS: Final = (
    "\x00-\x08\x0b-\x1f"  # C0 but tab and newline
    "\x7f-\x9f"  # DEL and C1 (NEL, CSI, OSC...)
    "\u061c\u200e\u200f"  # bidi marks
    "\u202a-\u202e"  # bidi embeddings and overrides
    "\u2066-\u2069"  # bidi isolates
    "\u2028\u2029"  # line and paragraph separators
)
_UNSAFE: Final = re.compile(f"[{UNSAFE_CHARS}]")
_UNSAFE_IN_JSON: Final = re.compile(f"[{UNSAFE_CHARS}]".replace("\x00-\x08\x0b-\x1f", ""))


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _json_escape(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


def visible(text: str) -> str:
    """*text* with control, C1 and bidi-override characters shown as escapes.

    ``"a\\x1b[2Jb"`` becomes ``"a\\\\x1b[2Jb"``: printed, it reads ``a\\x1b[2Jb``
    and clears nothing. Tab and newline are kept. Text without such characters
    is returned as it is (one regex search).
    """
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_escape, text)


def json_visible(text: str) -> str:
    """A JSON document's text with the same characters as JSON ``\\uXXXX`` escapes.

    JSON encoders escape C0 characters but write DEL, C1 and bidi characters
    raw; written as escapes they read back as the same strings, and a terminal
    showing the document acts on none of them. (The characters can only occur
    inside JSON strings, where an escape means the same character.)
    """
    if _UNSAFE_IN_JSON.search(text) is None:
        return text
    return _UNSAFE_IN_JSON.sub(_json_escape, text)
