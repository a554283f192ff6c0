"""Case 7: a corpus of values strict JSON cannot carry as they are.

Cycles, lone surrogates, NaN and infinities, bytes, huge integers, non-string
keys, objects whose ``repr`` raises, 10,000-deep nesting, sets, arbitrary
objects — logged (in a child, away from pytest's own log capture) as
structlog fields, as the structlog event itself, as stdlib ``extra=``
fields, as stdlib message arguments and as the stdlib message itself. Pass: every log call
leaves exactly one line, every line parses with a strict parser (orjson:
no NaN, no lone surrogates), 0 exceptions. A 100 MB string is truncated with
peak RSS growth under 3x the cap (measured after a warm-up with a value 8x
the cap at the same baseline, so it is the growth the value's size costs;
the warm-up's own growth is reported too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .conftest import child_json, read_lines, run_child


class TestBadValues:
    """The hostile value corpus through every logging path."""

    def test_one_strict_line_per_call(
        self, tmp_path: Path, subprocess_env: dict[str, str], figure: Any
    ) -> None:
        """Every call leaves one line that strict JSON parses; no exception escapes."""
        log_dir = tmp_path / "logs"
        r = child_json(run_child(subprocess_env, "bad_values", str(log_dir)))
        records, tail = read_lines(log_dir / "sessions" / r["session_id"] / "processing.jsonl")
        lines_per_case: dict[str, int] = {}
        for rec in records:
            if "case" in rec:
                lines_per_case[str(rec["case"])] = lines_per_case.get(str(rec["case"]), 0) + 1
        calls = r["calls"]
        wrong = {c: lines_per_case.get(c, 0) for c in calls if lines_per_case.get(c, 0) != 1}
        figure("log calls with hostile values", len(calls))
        figure("lines parsed strictly", len(records))
        figure("calls without exactly one line", len(wrong))
        figure("exceptions", len(r["exceptions"]))
        assert b"" == tail
        assert [] == r["exceptions"]
        assert {} == wrong

    def test_100_mb_string(
        self, tmp_path: Path, subprocess_env: dict[str, str], figure: Any
    ) -> None:
        """A 100 MB value is truncated, and peak RSS grows by less than 3x the cap."""
        log_dir = tmp_path / "logs"
        r = child_json(run_child(subprocess_env, "big_string", str(log_dir), "100"))
        records, tail = read_lines(log_dir / "sessions" / r["session_id"] / "processing.jsonl")
        big = [x for x in records if x["event"] == "big" or str(x["event"]).startswith("xxx")]
        longest = max(len(orjson_line) for orjson_line in (str(x) for x in big))
        figure("truncation cap (chars)", r["cap_chars"])
        figure("peak RSS growth logging 3 x 100 MB, after warm-up (KiB)", r["rss_growth_kib"])
        figure("peak RSS growth of the cap-sized warm-up itself (KiB)", r["warmup_growth_kib"])
        figure("Python heap peak during the 3 calls (KiB)", round(r["heap_peak_kib"]))
        figure("RSS growth / cap", round(r["rss_growth_kib"] * 1024 / r["cap_chars"], 2))
        figure("seconds for the 3 calls", round(r["seconds"], 3))
        assert b"" == tail
        assert 6 == len(big)
        assert longest < 2 * r["cap_chars"]
        assert r["rss_growth_kib"] * 1024 < 3 * r["cap_chars"]
