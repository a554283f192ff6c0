"""ns per record of each record processor, against baselines from the same run.

Run from the repository root::

    python benchmarks/bench_processors.py [--records N] [--rounds R]

Baselines, measured in the same process in interleaved rounds (A B C …,
A B C …; the fastest round of each is kept, so load on a shared machine
disturbs all alike):

- ``orjson.dumps``: what rendering costs in structlog's fastest configuration;
- ``structlog chain``: structlog's fastest documented processors
  (``add_log_level``, ``TimeStamper(fmt="iso", utc=True)``,
  ``JSONRenderer(serializer=orjson.dumps)``) on the same record, without I/O.

Records:

- ``typical``: what the core builds for ``log.info("record", user="alice",
  items=3, ratio=0.5, ok=True)`` in a session: timestamp, level, logger,
  event, session_id and the five-field payload (the event and four fields);
- ``unique message``: the same with an event text that differs every time
  (a stdlib message with its arguments applied), so no cache helps;
- ``llm call``: a nested chat request with two messages and headers;
- ``llm answer``: a 2 KB answer that differs every time, in the words of
  technical prose (``key``, ``token``, ``author``, ``passage`` among them, so
  the name rules of `SecretRedactor` have stems to look at), as a new
  response or a growing conversation brings; ``--records`` / 10 of them,
  since each costs tens of microseconds.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from structlog_belog.core.redact import SecretRedactor
from structlog_belog.core.render import render_jsonl
from structlog_belog.core.truncate import ValueTruncator

_SID = "sess_2025-01-18_17-30-00_1a2b3c4d"
Processor = Callable[[Any, str, dict[str, Any]], Any]


def _typical(i: int) -> dict[str, Any]:
    return {
        "timestamp": f"2025-01-18T17:30:{i % 60:02d}.{i % 1_000_000:06d}Z",
        "level": "info",
        "logger": "lyfe_kt.preprocess",
        "event": "record",
        "session_id": _SID,
        "user": "alice",
        "items": 3,
        "ratio": 0.5,
        "ok": True,
    }


def _message(i: int) -> dict[str, Any]:
    record = _typical(i)
    record["event"] = f"parsed content_{i}.md in {i % 97} ms"
    return record


def _llm_call(i: int) -> dict[str, Any]:
    record = _typical(i)
    record.update(
        event="llm_call",
        kind="llm_call",
        request={
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You write supertasks as JSON."},
                {"role": "user", "content": f"Generate a beginner supertask number {i}."},
            ],
            "temperature": 0.2,
        },
        usage={"input_tokens": 120, "output_tokens": 310, "total_tokens": 430},
    )
    return record


# About one word in thirty holds a stem of a name rule ("key", "token",
# "author", "passage"), as in technical prose (docs/design.md has about one
# in twenty).
_PROSE = (  # noqa: SIM905 - prose reads better as prose than as a list of words
    "the key point of this design is that every record carries its session id "
    "a reader of the log finds which prompt produced which output file and when "
    "each stage hands its results to the next one and the audit keeps the request "
    "and the response with usage latency and cost for every call made in the run "
    "while the summary written at the end explains how the run went and what the "
    "next attempt should change so that the whole pipeline can be compared across "
    "runs on the same blueprint with the same model and the same input documents "
    "an author of a task may read the passage again and count the token budget"
).split()


def _answer(i: int) -> dict[str, Any]:
    rng = random.Random(i)
    words: list[str] = []
    size = 0
    while size < 2048:
        word = rng.choice(_PROSE)
        words.append(word)
        size += len(word) + 1
    record = _typical(i)
    record.update(event="llm_answer", output_text=" ".join(words))
    return record


def _structlog_chain() -> Processor:
    procs: list[Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.JSONRenderer(serializer=orjson.dumps),
    ]

    def run(logger: Any, name: str, event_dict: dict[str, Any]) -> Any:
        result: Any = event_dict
        for proc in procs:
            result = proc(logger, name, result)
        return result

    return run


def _orjson(_: Any, __: str, event_dict: dict[str, Any]) -> bytes:
    return orjson.dumps(event_dict, option=orjson.OPT_APPEND_NEWLINE)


def _noop(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return event_dict


def _round(proc: Processor, records: list[dict[str, Any]]) -> float:
    batch = [dict(r) for r in records]  # shallow copies: processors change the top level
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for record in batch:
            proc(None, "info", record)
        return (time.perf_counter_ns() - start) / len(batch)
    finally:
        gc.enable()


def main() -> None:
    """Print ns/record per processor and its ratio to the baselines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    procs: dict[str, Processor] = {
        "loop": _noop,
        "orjson.dumps": _orjson,
        "structlog chain": _structlog_chain(),
        "SecretRedactor": SecretRedactor(),
        "ValueTruncator": ValueTruncator(),
        "render_jsonl": render_jsonl,
    }
    print(f"Python {sys.version.split()[0]}, {args.records} records, best of {args.rounds} rounds")
    shapes = (
        ("typical", _typical, 1),
        ("unique message", _message, 1),
        ("llm call", _llm_call, 1),
        ("llm answer", _answer, 10),
    )
    for label, make, fewer in shapes:
        records = [make(i) for i in range(args.records // fewer)]
        best = dict.fromkeys(procs, float("inf"))
        for _ in range(args.rounds):
            for name, proc in procs.items():
                best[name] = min(best[name], _round(proc, records))
        loop = best.pop("loop")
        net = {name: ns - loop for name, ns in best.items()}
        dumps, chain = net["orjson.dumps"], net["structlog chain"]
        print(f"{label} record ({len(records[0])} top-level fields; loop {loop:.0f} ns subtracted)")
        for name, ns in net.items():
            print(
                f"  {name:16s} {ns:6.0f} ns/record  {ns / dumps:5.2f}x orjson.dumps"
                f"  {ns / chain:5.2f}x structlog chain"
            )


if __name__ == "__main__":
    main()
