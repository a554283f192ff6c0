"""Micro-benchmark of the record processors: ns per record for a typical record.

Run: ``python benchmarks/bench_processors.py`` from the repository root.

Reports each processor's cost per record and its ratio to the baseline
measured in the same run: ``orjson.dumps`` of the same record, which is what
structlog's fastest configuration spends on rendering.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from structlog_belog._redact import SecretRedactor
from structlog_belog._render import render_jsonl
from structlog_belog._truncate import ValueTruncator

_SID = "sess_2025-01-18_17-30-00_1a2b3c4d"


def _typical(i: int) -> dict[str, Any]:
    """A 5-field record as the core builds it, plus one caller field."""
    return {
        "timestamp": f"2025-01-18T17:30:{i % 60:02d}.{i % 1000000:06d}Z",
        "level": "info",
        "logger": "lyfe_kt.preprocess",
        "event": "template_ready",
        "session_id": _SID,
        "sections": i % 7,
    }


def _message(i: int) -> dict[str, Any]:
    """A stdlib record whose message differs every time (args applied)."""
    record = _typical(i)
    record["event"] = f"parsed content_{i}.md in {i % 97} ms"
    return record


def _measure(fn: Callable[[Any, str, dict[str, Any]], Any], make: Callable[[int], Any]) -> float:
    n = 20_000
    records = [make(i) for i in range(n)]
    best = float("inf")
    for _ in range(5):
        batch = [dict(r) for r in records]
        start = time.perf_counter_ns()
        for r in batch:
            fn(None, "info", r)
        best = min(best, (time.perf_counter_ns() - start) / n)
    return best


def _baseline(_: Any, __: str, event_dict: dict[str, Any]) -> bytes:
    return orjson.dumps(event_dict, option=orjson.OPT_APPEND_NEWLINE)


def _noop(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return event_dict


def main() -> None:
    """Print ns/record per processor and the ratio to orjson.dumps."""
    redactor = SecretRedactor()
    truncator = ValueTruncator()
    for label, make in (("typical (recurring event)", _typical), ("unique message", _message)):
        loop = _measure(_noop, make)
        base = _measure(_baseline, make) - loop
        print(f"{label}: orjson.dumps baseline {base:.0f} ns/record (loop {loop:.0f} ns)")
        for name, proc in (
            ("SecretRedactor", redactor),
            ("ValueTruncator", truncator),
            ("render_jsonl", render_jsonl),
        ):
            ns = _measure(proc, make) - loop
            print(f"  {name:15s} {ns:6.0f} ns/record  {ns / base:5.2f}x orjson.dumps")


if __name__ == "__main__":
    main()
