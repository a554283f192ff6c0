"""Case 8: log injection.

Values carrying CR, LF, CRLF, NEL, U+2028/U+2029, ANSI escape sequences,
``</script>`` and Markdown link/table syntax, in messages, field values,
field names and stdlib messages. Pass: exactly one JSONL line per record
(split on ``\\n`` and by ``str.splitlines``, which also breaks on U+2028),
no raw CR or ESC byte in any file, and every value read back unchanged.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import structlog

import structlog_belog as belog
from structlog_belog.core.config import Config
from structlog_belog.core.state import emit

from .conftest import read_lines

_PIPE = re.compile(r"(?<!\\)\|")

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


def _table_violations(summary: str) -> tuple[int, int, list[str]]:
    """(tables, cells, problems): rows whose cell count differs from their header's,
    table lines that do not start and end with a pipe, raw CR/ESC/line separators."""
    problems = [repr(ch) for ch in ("\r", "\x1b", "\x85", "\u2028", "\u2029") if ch in summary]
    lines = summary.split("\n")
    tables = cells = 0
    i = 0
    while i < len(lines) - 1:
        if lines[i].startswith("|") and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[i + 1]):
            tables += 1
            width = len(_PIPE.findall(lines[i]))
            j = i + 2
            while j < len(lines) and lines[j].strip():
                row = lines[j]
                cells += width - 1
                if not (row.startswith("|") and row.endswith("|")):
                    problems.append(f"broken row: {row[:60]!r}")
                elif len(_PIPE.findall(row)) != width:
                    problems.append(f"cell count: {row[:60]!r}")
                j += 1
            i = j
        else:
            i += 1
    problems += [f"forged: {ln!r}" for ln in lines if ln.strip() in ("| forged | row |",)]
    return tables, cells, problems


def _fail(text: str) -> None:
    raise ValueError(text)


class TestSummaryInjection:
    """Hostile text cannot break the execution summary's tables."""

    def test_summary_cells_hold(self, belog_config: Config, figure: Any) -> None:
        """0 raw newlines or escape bytes inside summary table cells."""
        slog = structlog.get_logger("rel.inject")
        p = PAYLOADS
        with belog.session(
            p[2], execution_context=p[0], blueprint_id=p[9], blueprint_version=p[6]
        ) as run:
            for i, text in enumerate(p):
                try:
                    with run.stage(f"{text} {i}"):
                        slog.error(text, case=i)
                        logging.getLogger(f"lib.{text}").error("failed: %s", text)
                        run.set_metric(f"{text} {i}", text)
                        emit(
                            "llm_call",
                            kind="llm_call",
                            call_id=f"call_{i}",
                            api="chat.completions",
                            model=f"{text} {i}",
                            status="ok",
                            usage={"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
                            latency_ms=1.0,
                        )
                        with run.task(f"{text} {i}", expected_outcome=text) as task:
                            task.suggest(text)
                        run.add_output(f"out/{text}.json")
                        _fail(text)
                except ValueError:
                    pass
        assert run.package_path is not None
        summary = (Path(run.package_path) / "logs" / "execution_summary.md").read_text()
        tables, cells, problems = _table_violations(summary)
        figure("summary tables / cells checked", f"{tables} / {cells}")
        figure("raw newlines or escape bytes inside cells", len(problems))
        assert tables >= 6
        assert [] == problems
