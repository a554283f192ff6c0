"""The run report page's data and HTML, read back with the standard library's parsers."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from structlog_belog.package import report_page
from structlog_belog.package.report_check import report_problems
from structlog_belog.package.report_page import PageBuilder, render_page


class _Scripts(HTMLParser):
    """Collects <script> and <style> elements and the page's policy."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None], str]] = []
        self.csp: str | None = None
        self._open: tuple[str, dict[str, str | None]] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "meta" and a.get("http-equiv") == "Content-Security-Policy":
            self.csp = a.get("content")
        if tag in ("script", "style"):
            self._open, self._text = (tag, a), []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._open is not None and tag == self._open[0]:
            self.elements.append((tag, self._open[1], "".join(self._text)))
            self._open = None


def _parse(html: bytes) -> _Scripts:
    parser = _Scripts()
    parser.feed(html.decode("utf-8"))
    return parser


def _sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


class TestRenderPage:
    def test_one_data_block_one_script_one_style_admitted_by_hash(self) -> None:
        """The policy admits exactly the inline script and style, by their SHA-256."""
        parsed = _parse(render_page({"texts": ["</script><script>alert(1)</script>"]}))
        kinds = [(tag, attrs.get("type")) for tag, attrs, _ in parsed.elements]
        assert [("style", None), ("script", "application/json"), ("script", None)] == kinds
        style, _, script = (body for _, __, body in parsed.elements)
        assert parsed.csp is not None
        policy = dict(part.strip().split(" ", 1) for part in parsed.csp.split(";"))
        assert {
            "default-src": "'none'",
            "script-src": _sha(script),
            "style-src": _sha(style),
            "base-uri": "'none'",
            "form-action": "'none'",
        } == policy

    @settings(deadline=None)  # no timed assertions: the machine may be busy
    @given(
        st.recursive(
            st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
            lambda inner: (
                st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4)
            ),
            max_leaves=20,
        )
    )
    def test_any_data_round_trips_and_cannot_close_its_element(self, data: Any) -> None:
        """Whatever the data, the JSON block parses back to it and holds no < > & U+2028/9."""
        parsed = _parse(render_page({"value": data}))
        blocks = [body for tag, attrs, body in parsed.elements if attrs.get("type")]
        assert 1 == len(blocks)
        assert not re.search("[<>&\u2028\u2029]", blocks[0])
        assert {"value": data} == json.loads(blocks[0])

    def test_template_markers_in_data_are_not_expanded(self) -> None:
        """A value that spells a template marker stays as it is."""
        parsed = _parse(render_page({"t": "@@SCRIPT@@ @@CSP@@"}))
        block = next(body for _, attrs, body in parsed.elements if attrs.get("type"))
        assert {"t": "@@SCRIPT@@ @@CSP@@"} == json.loads(block)


def _row(row: bytes | list[Any]) -> dict[str, Any]:
    """A call's row (JSON or parsed) by the names of its fields."""
    values = json.loads(row) if isinstance(row, bytes) else row
    assert len(report_page.CALL_FIELDS) == len(values)
    return dict(zip(report_page.CALL_FIELDS, values, strict=True))


class TestPageBuilder:
    def test_long_texts_are_capped_with_length_and_hash(self) -> None:
        """A text past the cap keeps its first characters, its length and its SHA-256."""
        page = PageBuilder()
        long = "ü" * (report_page.MAX_TEXT + 10)
        entry = page.texts[page.text(long)]  # type: ignore[index]
        assert {
            "p": long[: report_page.MAX_TEXT],
            "n": len(long),
            "h": hashlib.sha256(long.encode()).hexdigest(),
        } == entry

    def test_repeated_texts_are_stored_once(self) -> None:
        """The same system prompt in a thousand calls is one entry of the text table."""
        page = PageBuilder()
        for n in range(1000):
            page.call(
                {
                    "call_id": f"c{n}",
                    "request": {
                        "messages": [
                            {"role": "system", "content": "You are terse."},
                            {"role": "user", "content": f"question {n}"},
                        ]
                    },
                    "response": {"output_text": "yes"},
                }
            )
        assert 1002 == len(page.texts)

    def test_after_the_budget_texts_keep_less(self, monkeypatch: Any) -> None:
        """Once the page holds TEXT_BUDGET characters, new texts are cut to SMALL_TEXT."""
        monkeypatch.setattr(report_page, "TEXT_BUDGET", 10_000)
        page = PageBuilder()
        sizes = []
        for n in range(5):
            entry = page.texts[page.text(f"{n}" * 4000)]  # type: ignore[index]
            sizes.append(len(entry) if isinstance(entry, str) else len(entry["p"]))
        assert [4000, 4000, 4000, report_page.SMALL_TEXT, report_page.SMALL_TEXT] == sizes

    def test_long_texts_of_one_length_are_told_apart(self, monkeypatch: Any) -> None:
        """Capped texts of the same length: equal ones share an entry, others get their own."""
        monkeypatch.setattr(report_page, "TEXT_BUDGET", 0)
        page = PageBuilder()
        shared, other, near = "s" * 1000, "o" * 1000, "s" * 999 + "x"
        indexes = [page.text(t) for t in (shared, other, shared, other, near, shared)]
        assert [0, 1, 0, 1, 2, 0] == indexes
        expected = [hashlib.sha256(t.encode()).hexdigest() for t in (shared, other, near)]
        assert expected == [e["h"] for e in page.texts]

    def test_a_text_capped_before_and_after_the_budget_has_both_caps(
        self, monkeypatch: Any
    ) -> None:
        """A long text seen before the budget ran out and again after it is cut to SMALL_TEXT."""
        monkeypatch.setattr(report_page, "TEXT_BUDGET", 8000)
        page = PageBuilder()
        long = "L" * 5000
        first, second = page.text(long), page.text(long)
        page.text("f" * 4000)  # the budget is spent
        third = page.text(long)
        sizes = [len(page.texts[i]["p"]) for i in (first, second, third)]  # type: ignore[index]
        assert [report_page.MAX_TEXT, report_page.MAX_TEXT, report_page.SMALL_TEXT] == sizes
        assert first == second != third

    def test_calls_past_the_limit_are_counted(self, monkeypatch: Any) -> None:
        """The page lists MAX_CALLS calls and says how many there were."""
        monkeypatch.setattr(report_page, "MAX_CALLS", 3)
        page = PageBuilder()
        for n in range(5):
            page.call({"call_id": f"c{n}", "status": "ok"})
        ids = [_row(c)["id"] for c in page.calls]
        assert (["c0", "c1", "c2"], 5) == (ids, page.calls_total)

    def test_error_records_past_the_limit_are_counted(self, monkeypatch: Any) -> None:
        """The first MAX_ERROR_RECORDS error records are kept, in order; every one is counted."""
        monkeypatch.setattr(report_page, "MAX_ERROR_RECORDS", 3)
        page = PageBuilder()
        for batch in ([0, 1], [2, 3, 4, 5], [], [6]):
            page.errors([{"event": f"e{n}", "level": "error"} for n in batch])
        kept = [r["event"] for r in page.error_records]
        assert (["e0", "e1", "e2"], 7) == (kept, page.error_records_total)

    def test_a_call_whole(self) -> None:
        """Messages, parameters, answer, tool calls, usage, error and attempts are kept."""
        page = PageBuilder()
        page.index_outputs(["other.json", "out.json"])
        page.call(
            {
                "call_id": "llm_1",
                "timestamp": "2025-01-18T17:30:00.000000Z",
                "model": "gpt-4o",
                "api": "chat.completions",
                "status": "error",
                "request": {
                    "model": "gpt-4o",
                    "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                    "temperature": 0.2,
                },
                "response": {"output_text": None, "tool_calls": [{"name": "f"}]},
                "usage": {"input_tokens": 3, "output_tokens": 0, "total_tokens": 3},
                "error": {"type": "APIError", "message": "boom", "status_code": 500},
                "attempts": [{"attempt": 1, "status_code": 500, "duration_ms": 12.5}],
                "outputs": ["out.json", "unknown.json"],
            }
        )
        call = _row(page.calls[0])
        t = page.texts
        assert ["user", "hi"] == [call["msg"][0][0], t[call["msg"][0][1]]]
        assert {"temperature": 0.2} == json.loads(t[call["p"]])
        assert [{"name": "f"}] == json.loads(t[call["tc"]])
        assert [3, 0, 3, None, None] == call["u"]
        assert ("APIError", "boom", 500) == (
            call["e"]["type"],
            t[call["e"]["message"]],
            call["e"]["status_code"],
        )
        assert [[1, 500, 12.5, None, None]] == call["at"]
        assert [1] == call["o"]

    def test_a_row_keeps_an_integer_past_64_bits(self) -> None:
        """A value orjson cannot write goes through the standard library, exactly, page too."""
        page = PageBuilder()
        page.call({"call_id": "c0", "latency_ms": 2**70, "status": "ok"})
        page.call({"call_id": "c1", "latency_ms": 5, "status": "ok"})
        assert 2**70 == _row(page.calls[0])["l"]
        for extra in (0, 2**70):  # the rest of the data written by orjson, then by json
            parsed = _parse(render_page({"calls": report_page.CallRows(page.calls), "x": extra}))
            block = next(body for _, attrs, body in parsed.elements if attrs.get("type"))
            assert [2**70, 5] == [_row(c)["l"] for c in json.loads(block)["calls"]]

    def test_line_separators_are_escaped_with_or_without_other_0xe2_bytes(self) -> None:
        """U+2028 and U+2029 are escaped in the data block; a page without them is left alone."""
        for text in ("a\u2028b\u2029c", "a\u2028b — c", "plain — text"):
            raw = render_page({"texts": [text]})
            block = raw.split(b'id="belog-data">')[1].split(b"</script>")[0]
            assert "\u2028".encode() not in block
            assert "\u2029".encode() not in block
            assert [text] == json.loads(block)["texts"]


class TestTimeline:
    def test_nesting_follows_time_and_never_loops(self) -> None:
        """Repeated and self-parented stage names nest by time; a task joins its latest stage."""
        stages = [
            {"name": "a", "parent": None, "start_time": "2025-01-01T00:00:00Z",
             "end_time": "2025-01-01T00:00:10Z", "success": True},
            {"name": "a", "parent": "a", "start_time": "2025-01-01T00:00:01Z",
             "end_time": "2025-01-01T00:00:02Z", "success": False},
            {"name": "b", "parent": "b", "start_time": "2025-01-01T00:00:11Z",
             "end_time": None, "success": None},
        ]  # fmt: skip
        tasks = [
            {"name": "t", "stage": "a", "end": "2025-01-01T00:00:01.500000Z", "duration": 0.25}
        ]
        rows = report_page._timeline(stages, tasks, 1735689600.0)
        assert [
            ("stage", "a", 0, False, False),
            ("stage", "a", 1, True, False),
            ("task", "t", 2, False, False),
            ("stage", "b", 0, False, True),
        ] == [(r["kind"], r["name"], r["depth"], r["failed"], r["open"]) for r in rows]
        assert (1.25, 1.5) == (rows[2]["x0"], rows[2]["x1"])


class TestReportProblems:
    def _page(self, tmp_path: Path) -> Path:
        path = tmp_path / "execution_report.html"
        path.write_bytes(render_page({"session": {"id": "sess_x"}, "texts": []}))
        return path

    def test_a_page_as_rendered_passes(self, tmp_path: Path) -> None:
        """The page render_page makes has no problem, its metadata entry matching."""
        path = self._page(tmp_path)
        raw = path.read_bytes()
        entry = {"sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}
        assert [] == report_problems(path, "sess_x", entry)

    def test_tampering_is_found(self, tmp_path: Path) -> None:
        """An edited script, a loading element or another session's data are each reported."""
        path = self._page(tmp_path)
        text = path.read_text("utf-8")
        path.write_text(
            text.replace("'use strict';", "'use strict'; alert(1);").replace(
                "<main>", '<main><img src="http://127.0.0.1:9/x.png">'
            ),
            "utf-8",
        )
        problems = report_problems(path, "sess_y", {"sha256": "0" * 64})
        assert [
            "execution_report.html: SHA-256 differs from metadata.json's package.report",
            "execution_report.html: the policy does not admit exactly the page's own script",
            "execution_report.html: elements that load resources: ['img']",
            "execution_report.html: the data is for session 'sess_x', not 'sess_y'",
        ] == problems

    def test_each_kind_of_damage_is_named(self, tmp_path: Path) -> None:
        """Unreadable, not UTF-8, policy missing or loose, style changed, data broken."""
        path = self._page(tmp_path)
        good = path.read_bytes()
        text = good.decode()
        policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="[^"]*">', text)
        assert policy is not None
        cases = {
            b"\xff\xfe" + good: "not UTF-8",
            text.replace(policy.group(), "").encode(): "0 Content-Security-Policy tags, not 1",
            text.replace("default-src 'none'", "default-src *").encode(): "default-src is not",
            text.replace("box-sizing", "box-sizing:x;").encode(): "exactly the page's own style",
            text.replace('id="belog-data">', 'id="belog-data">{').encode(): "is not JSON",
            text.replace("</body>", '<script type="application/json">{}</script></body>').encode():
                "2 data blocks, not 1",
        }  # fmt: skip
        for damaged, expected in cases.items():
            path.write_bytes(damaged)
            problems = report_problems(path, "sess_x")
            assert any(expected in p for p in problems), (expected, problems)
        path.unlink()
        assert ["execution_report.html: cannot be read (No such file or directory)"] == (
            report_problems(path, "sess_x")
        )

    def test_calls_and_data_version_are_checked(self, tmp_path: Path) -> None:
        """Calls that are not rows of call_fields, or another data version, are reported."""
        path = tmp_path / "execution_report.html"
        fields = list(report_page.CALL_FIELDS)
        good = [["c0", *[None] * (len(fields) - 1)]]
        cases: dict[str, dict[str, Any]] = {
            "not rows": {"call_fields": fields, "calls": [{"id": "c0"}]},
            "short row": {"call_fields": fields, "calls": [["c0"]]},
            "no fields": {"calls": good},
        }
        for label, data in cases.items():
            path.write_bytes(render_page({"v": 2, "session": {"id": "s"}, **data}))
            problems = report_problems(path, "s")
            assert [f"{path.name}: the calls are not rows of the fields call_fields names"] == (
                problems
            ), label
        path.write_bytes(render_page({"v": 1, "session": {"id": "s"}, "call_fields": fields,
                                      "calls": good}))  # fmt: skip
        assert [f"{path.name}: data version 1, metadata.json says 2"] == report_problems(
            path, "s", {"data_version": 2}
        )
        path.write_bytes(render_page([1, 2]))  # type: ignore[arg-type]
        assert [f"{path.name}: the data block is not a JSON object"] == report_problems(path, "s")

    def test_oversized_page_is_refused_unread(self, tmp_path: Path, monkeypatch: Any) -> None:
        """A page past MAX_REPORT_BYTES is reported without reading it."""
        from structlog_belog.package import report_check

        path = self._page(tmp_path)
        monkeypatch.setattr(report_check, "MAX_REPORT_BYTES", 10)
        (problem,) = report_problems(path, None)
        assert problem.endswith("bytes, more than a report page can be")
