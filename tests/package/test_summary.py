"""The execution summary: packaged Jinja2 template, Markdown escaping, overrides."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from structlog_belog.package.scan import scan_session
from structlog_belog.package.summary import (
    _one_line,
    cell,
    code_span,
    default_template,
    escape_md,
    render_summary,
)
from tests.session_files import SID, call, end, full_session, rec, session_dir, start, write

SECTIONS = (
    "## Session Information",
    "## Pipeline Stages Executed",
    "## Content Generated",
    "## AI Model Usage",
    "## Quality Metrics",
    "## Errors",
    "## Outputs and the Prompts Behind Them",
    "## BELog Tasks",
    "## Issues Detected",
)
HOSTILE = "a | b `code` *em* _u_ [link](http://x) <script>alert(1)</script>\n# heading\r\n~~s~~ \\"


class TestEscapeMd:
    @given(st.text())
    def test_one_safe_line(self, text: str) -> None:
        """Any text becomes one line with no raw pipe, backtick, bracket or HTML tag."""
        out = escape_md(text)
        assert "\n" not in out
        assert "\r" not in out
        assert "<" not in out
        assert ">" not in out
        assert re.search(r"(?<!\\)[|`*\[\]]", out.replace("\\\\", "")) is None

    def test_known(self) -> None:
        """Markdown punctuation is backslash-escaped, HTML becomes entities, newlines ⏎."""
        expected = "a \\| b \\`c\\` &lt;b&gt; ⏎ \\#x"
        assert expected == escape_md("a | b `c` <b>\n#x")

    def test_non_strings(self) -> None:
        """Numbers and other objects are escaped through str()."""
        assert "\\[1, 2\\]" == escape_md([1, 2])


def _parse(text: str) -> list[Any]:
    """The summary's tokens, as a CommonMark + GFM-tables renderer (rich's) reads them."""
    return MarkdownIt("commonmark").enable("table").parse(text)


def _inline_codes(text: str) -> list[str]:
    return [
        c.content for t in _parse(text) if t.children for c in t.children if c.type == "code_inline"
    ]


class TestCodeSpans:
    @settings(deadline=None)  # no timed assertions: the machine may be busy
    @given(st.text())
    def test_any_value_reads_back_exactly(self, value: str) -> None:
        """In a list item or a table cell, a code span reads back as the value, on one line."""
        expected = _one_line(value)
        if not expected.strip():
            return
        listed = _inline_codes(f"- {code_span(value)}\n")
        table = _inline_codes(f"| a | b |\n|---|---|\n| {cell(value, code=True)} | x |\n")
        assert [expected] == listed
        assert [expected] == table

    def test_ids_are_verbatim_for_grep_and_the_cli(self, tmp_path: Path) -> None:
        """The session ID, names and paths appear in the file as they are, not escaped."""
        d = full_session(tmp_path)
        text = render_summary(scan_session(d))
        summary = tmp_path / "summary.md"
        summary.write_text(text, "utf-8")
        found = subprocess.run(
            ["grep", "-c", "-F", SID, str(summary)], capture_output=True, text=True, check=False
        )
        assert 0 == found.returncode
        assert f"| Session ID | `{SID}` |" in text
        assert "\\_" not in text.split("## Errors")[0]

    def test_backticks_inside_values(self) -> None:
        """A value with backtick runs gets a longer fence, and padding at its ends."""
        assert "``a`b``" == code_span("a`b")
        assert "``` ``x` ```" == code_span("``x`")
        assert "—" == code_span(None)

    def test_how_to_read_and_schema_version(self, tmp_path: Path) -> None:
        """The summary says how to read it and shows the schema versions."""
        text = render_summary(scan_session(full_session(tmp_path)))
        assert "> **How to read this.**" in text
        assert "| Schema version |" in text
        assert "`1.0` (`metadata.json`)" in text


class TestRenderSummary:
    def test_sections_and_figures(self, tmp_path: Path) -> None:
        """Every PRD section is present with the right figures."""
        text = render_summary(scan_session(full_session(tmp_path)))
        for section in SECTIONS:
            assert section in text
        assert "| 1 | `preprocessing` | ✅ | 1.00 s | 4 | 0 | 0 |" in text
        assert "| 2 | `generation` | ❌ | 1.00 s | 8 | 2 | 1 |" in text
        assert "- Calls: 2 (0 failed, success rate 100.0 %)" in text
        assert "| `gpt-4` | 1 | 0 | 10 | 20 | 30 | $0.0010 | 100 ms |" in text
        assert "| `schema_compliance` | 0.5 |" in text
        assert "| 2 | `gen` | parse failed (ValueError: bad json) |" in text
        assert "| `Generate beginner` | ✅ | 500 ms | 100 | 0 | Cache the template |" in text
        assert "  - `c1` — `gpt-4`, ok: “prompt c1”" in text
        assert "✅ Success" in text

    def test_crashed_run_says_so(self, tmp_path: Path) -> None:
        """A session without session_end is marked as not ended, in words."""
        d = session_dir(tmp_path)
        write(d / "processing.jsonl", [start(0), rec(1, "working")])
        text = render_summary(scan_session(d))
        assert "⚠️ Did not end (crashed or killed)" in text
        assert "**The run did not end.**" in text
        assert "❌ The run did not end: no session\\_end record" in text

    def test_hostile_values_cannot_break_tables(self, tmp_path: Path) -> None:
        """Log values full of Markdown and HTML leave every table row intact."""
        d = session_dir(tmp_path)
        write(d / "processing.jsonl", [
            start(0, title=HOSTILE, execution_context=HOSTILE),
            rec(1, HOSTILE, level="error", logger=HOSTILE, stage=HOSTILE,
                exception=f"Traceback\n{HOSTILE}"),
            rec(2, "metric", kind="metric", name=HOSTILE, value=HOSTILE),
            rec(3, "output", kind="output", path=HOSTILE, call_ids=["c|1"]),
            end(4),
        ])  # fmt: skip
        write(d / "prompts.jsonl", [call(2.5, "c|1", model=HOSTILE,
              request={"messages": [{"role": "user", "content": HOSTILE}]})])  # fmt: skip
        text = render_summary(scan_session(d))
        tokens = _parse(text)
        assert [] == [t.type for t in tokens if t.type.startswith("html")]
        # Names show exactly as they are (one line), as code: the script is text.
        one_line = HOSTILE.replace("\r\n", " ⏎ ").replace("\n", " ⏎ ")
        codes = [
            c.content for t in tokens if t.children for c in t.children if c.type == "code_inline"
        ]
        assert one_line in codes
        assert "&lt;script&gt;" in text  # prose keeps its entities
        for line in text.splitlines():
            if line.startswith("|"):
                cells = re.split(r"(?<!\\)\|", line)
                header = next(
                    h for h in text.splitlines() if h.startswith("|") and h.count("|") > 1
                )
                assert line.endswith("|"), line
                assert cells[0] == ""
                assert len(cells) >= 3, (line, header)
        assert not any(line.startswith("# heading") for line in text.splitlines())
        rows = [line for line in text.splitlines() if line.startswith("| 1 |")]
        assert 1 == len(rows)  # the one error group row

    def test_custom_template(self, tmp_path: Path) -> None:
        """A template file replaces the packaged one; values are still escaped."""
        template = tmp_path / "mine.md.j2"
        template.write_text("Run {{ report.title }}: {{ report.records.total }} records\n")
        d = session_dir(tmp_path)
        write(d / "processing.jsonl", [start(0, title="a|b"), end(1)])
        assert "Run a\\|b: 2 records\n" == render_summary(scan_session(d), template=template)

    def test_raw_filter(self, tmp_path: Path) -> None:
        """The |raw filter lets a template print trusted text unescaped."""
        template = tmp_path / "raw.j2"
        template.write_text("{{ '**bold**'|raw }} {{ '**x**' }}")
        d = session_dir(tmp_path)
        assert "**bold** \\*\\*x\\*\\*" == render_summary(scan_session(d), template=template)

    @pytest.mark.parametrize(
        ("source", "match"),
        [("{{ report.nope }}", "nope"), ("{% if %}", "summary_template")],
    )
    def test_broken_template(self, tmp_path: Path, source: str, match: str) -> None:
        """A template that fails names itself and the Jinja2 error."""
        template = tmp_path / "bad.j2"
        template.write_text(source)
        with pytest.raises(ValueError, match=match):
            render_summary(scan_session(session_dir(tmp_path)), template=template)

    def test_missing_template(self, tmp_path: Path) -> None:
        """A template path that does not exist raises ValueError naming it."""
        with pytest.raises(ValueError, match=r"missing\.j2"):
            render_summary(scan_session(session_dir(tmp_path)), template=tmp_path / "missing.j2")

    def test_sandboxed(self, tmp_path: Path) -> None:
        """Templates run sandboxed: no reaching into Python internals."""
        template = tmp_path / "evil.j2"
        template.write_text("{{ report.__class__.__mro__ }}")
        with pytest.raises(ValueError, match="summary_template"):
            render_summary(scan_session(session_dir(tmp_path)), template=template)

    def test_packaged_template_is_a_resource(self) -> None:
        """The default template ships inside the package."""
        assert default_template().lstrip().startswith("{#-")


class TestFilters:
    @pytest.mark.parametrize(
        ("expression", "value", "expected"),
        [
            ("duration", 0.25, "250 ms"),
            ("duration", 90, "90.00 s"),
            ("duration", 754, "12 min 34 s"),
            ("duration", 7384, "2 h 3 min"),
            ("duration", True, "—"),
            ("duration", "soon", "—"),
            ("number", 1234567, "1,234,567"),
            ("number", 2.0, "2"),
            ("number", 3.14159, "3.142"),
            ("number", None, "—"),
            ("number", "n/a", "n/a"),
            ("percent", 0.256, "25.6 %"),
            ("percent", None, "—"),
            ("usd", 1234.5, "$1,234.5000"),
            ("usd", "free", "—"),
            ("status", True, "✅"),
            ("status", False, "❌"),
            ("status", None, "⚠️"),
        ],
    )
    def test_filter(self, tmp_path: Path, expression: str, value: object, expected: str) -> None:
        """Each formatting filter turns a metadata value into its documented text."""
        template = tmp_path / "f.j2"
        template.write_text(f"{{{{ metadata.v|{expression} }}}}")
        report = scan_session(session_dir(tmp_path))
        assert expected == render_summary(report, metadata={"v": value}, template=template)

    @pytest.mark.parametrize(
        ("value", "expected"),
        [(None, "—"), (True, "yes"), (False, "no"), (2.5, "2.5"), ("a*b", "a\\*b")],
    )
    def test_plain_values(self, tmp_path: Path, value: object, expected: str) -> None:
        """Unfiltered values: None is a dash, booleans are yes/no, numbers as is, text escaped."""
        template = tmp_path / "v.j2"
        template.write_text("{{ metadata.v }}")
        report = scan_session(session_dir(tmp_path))
        assert expected == render_summary(report, metadata={"v": value}, template=template)
