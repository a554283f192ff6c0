"""Case 8: log injection.

Values carrying CR, LF, CRLF, NEL, U+2028/U+2029, ANSI escape sequences,
``</script>`` and Markdown link/table syntax, in messages, field values,
field names and stdlib messages. Pass: exactly one JSONL line per record
(split on ``\\n`` and by ``str.splitlines``, which also breaks on U+2028),
no raw CR or ESC byte in any file, and every value read back unchanged.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

import structlog_belog as belog
from structlog_belog._config import Config

from .conftest import read_lines

PAYLOADS = (
    "line one\nline two",
    "carriage\rreturn",
    'crlf\r\n{"event": "forged", "level": "critical"}',
    "next line\x85here",
    "line\u2028separator",
    "paragraph\u2029separator",
    "\x1b[31mred\x1b[0m \x1b]0;window title\x07 \x1b[2J",
    "</script><script>alert(1)</script>",
    "[click me](https://evil.example/steal?c=1) ![img](x)",
    "| col | col |\n|---|---|\n| forged | row |",
    "`code` **bold** <b>html</b> # heading",
)


class TestLogInjection:
    """Hostile text cannot forge or split records."""

    def test_one_line_per_record(self, belog_config: Config, figure: Any) -> None:
        """Every record is one line, by any line splitter; values read back unchanged."""
        slog = structlog.get_logger("rel.inject")
        stdlog = logging.getLogger("rel.inject.stdlib")
        expected: dict[str, str] = {}
        with belog.session("injection", package=False) as run:
            for i, text in enumerate(PAYLOADS):
                expected[f"m{i}"] = text
                slog.info(text, case=f"m{i}")
                expected[f"f{i}"] = text
                slog.info("field", case=f"f{i}", v=text)
                expected[f"k{i}"] = text
                slog.info("key", case=f"k{i}", **{text: text})
                expected[f"s{i}"] = text
                stdlog.info("%s", text, extra={"case": f"s{i}"})
        assert run.directory is not None
        path = run.directory / "processing.jsonl"
        data = path.read_bytes()
        records, tail = read_lines(path)
        by_case = {str(r["case"]): r for r in records if "case" in r}
        unchanged = 0
        for case, text in expected.items():
            rec = by_case[case]
            value = {"m": rec["event"], "f": rec.get("v"), "k": rec.get(text), "s": rec["event"]}[
                case[0]
            ]
            unchanged += value == text
        lines = data.decode("utf-8").splitlines()
        figure("records with injection payloads", len(expected))
        figure("lines (split on \\n / str.splitlines)", f"{len(records)} / {len(lines)}")
        cr, esc = data.count(b"\r"), data.count(b"\x1b")
        figure("raw CR / ESC bytes in the file", f"{cr} / {esc}")
        figure("values read back unchanged", f"{unchanged}/{len(expected)}")
        assert b"" == tail
        assert len(records) == len(lines)
        assert len(expected) + 2 == len(records)  # plus session_start and session_end
        assert 0 == data.count(b"\r")
        assert 0 == data.count(b"\x1b")
        assert len(expected) == unchanged
