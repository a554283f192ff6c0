"""µs per record: belog's structlog and stdlib paths against their baselines.

Run from the repository root (after ``pip install -e '.[dev]'``)::

    python benchmarks/bench_records.py [--records N] [--rounds R] [--json]

Every configuration writes records of the same shape (an event and five
fields) to a real file in a temporary folder, all in this one process. The
configurations are timed in interleaved rounds (A B C D E, A B C D E, ...) and
the fastest round of each is kept, so a burst of load on a shared machine
disturbs all of them alike rather than one. Time is the process's CPU time
(user + system, so the ``write`` system calls count): waiting for a core
while other processes run is not charged to the logger. Ratios compare configurations
measured in the same run:

- ``structlog_fastest``: structlog's fastest documented configuration
  (filtering bound logger, orjson `JSONRenderer`, `BytesLogger`) to a file
- ``belog_structlog``: a structlog logger after ``belog.configure()``, inside
  a session (session injection, secret redaction, truncation, routing)
- ``stdlib_pjl``: stdlib logging, python-json-logger's `JsonFormatter` on a
  `FileHandler`
- ``belog_stdlib``: a stdlib logger after ``belog.configure()``, inside a session
- ``loguru``: loguru with ``serialize=True`` to a file
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import structlog
from loguru import logger as loguru_logger
from pythonjsonlogger.json import JsonFormatter

import structlog_belog as belog
from structlog_belog.core import config as _config

FIELDS = {"user": "alice", "items": 3, "ratio": 0.5, "ok": True}
Runner = Callable[[int], None]


def structlog_fastest(tmp: Path) -> Runner:
    f = (tmp / "structlog.jsonl").open("wb")
    log = structlog.wrap_logger(
        structlog.BytesLogger(f),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
    )

    def run(k: int) -> None:
        for i in range(k):
            log.info("request handled", i=i, **FIELDS)

    return run


def belog_structlog(_: Path) -> Runner:
    log = structlog.get_logger("bench")

    def run(k: int) -> None:
        for i in range(k):
            log.info("request handled", i=i, **FIELDS)

    return run


def stdlib_pjl(tmp: Path) -> Runner:
    logger = logging.getLogger("bench.pjl")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.FileHandler(tmp / "pjl.jsonl")
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger.addHandler(handler)

    def run(k: int) -> None:
        for i in range(k):
            logger.info("request handled", extra={"i": i, **FIELDS})

    return run


def belog_stdlib(_: Path) -> Runner:
    logger = logging.getLogger("bench.belog")

    def run(k: int) -> None:
        for i in range(k):
            logger.info("request handled", extra={"i": i, **FIELDS})

    return run


def loguru(tmp: Path) -> Runner:
    loguru_logger.remove()
    loguru_logger.add(tmp / "loguru.jsonl", serialize=True, level="INFO")

    def run(k: int) -> None:
        for i in range(k):
            loguru_logger.bind(i=i, **FIELDS).info("request handled")

    return run


CONFIGURATIONS = {
    "structlog_fastest": structlog_fastest,
    "belog_structlog": belog_structlog,
    "stdlib_pjl": stdlib_pjl,
    "belog_stdlib": belog_stdlib,
    "loguru": loguru,
}


def measure(records: int, rounds: int) -> dict[str, float]:
    """Best µs per record of each configuration over interleaved rounds."""
    best = dict.fromkeys(CONFIGURATIONS, float("inf"))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        belog.configure(log_dir=tmp / "belog", console=False, handle_signals=False)
        runners = {name: make(tmp) for name, make in CONFIGURATIONS.items()}
        with belog.session("bench", package=False):
            for run in runners.values():
                run(1000)  # warm up: open files, fill caches
            for _ in range(rounds):
                for name, run in runners.items():
                    gc.collect()
                    t0 = time.process_time()
                    run(records)
                    best[name] = min(best[name], time.process_time() - t0)
        loguru_logger.remove()
        _config.reset()
    return {name: seconds / records * 1e6 for name, seconds in best.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000, help="records per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args(argv)
    us = measure(args.records, args.rounds)
    ratios = {
        "belog_structlog / structlog_fastest": us["belog_structlog"] / us["structlog_fastest"],
        "belog_stdlib / stdlib_pjl": us["belog_stdlib"] / us["stdlib_pjl"],
        "belog_structlog / loguru": us["belog_structlog"] / us["loguru"],
        "belog_stdlib / loguru": us["belog_stdlib"] / us["loguru"],
    }
    if args.json:
        print(json.dumps({"us_per_record": us, "ratios": ratios}, indent=2))
        return 0
    print(
        f"Python {platform.python_version()}, {args.records} records per round, "
        f"best of {args.rounds} interleaved rounds"
    )
    for name, value in us.items():
        print(f"  {name:<20} {value:8.2f} µs/record")
    for name, ratio in ratios.items():
        print(f"  {name:<38} {ratio:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
