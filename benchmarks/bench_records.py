"""µs per record: belog's structlog and stdlib paths against their baselines.

Run: python benchmarks/bench_records.py [--records N] [--repeat R]

Every configuration writes N records of the same shape to a real file in a
temporary folder, in this one process; each is timed R times and the best run
is kept (the least disturbed by the rest of the machine). Ratios compare
configurations measured in the same run:

- structlog's fastest documented configuration (orjson + BytesLogger)
- belog's structlog path (inside a session)
- stdlib logging + python-json-logger JsonFormatter on a FileHandler
- belog's stdlib path (inside a session)
- loguru with serialize=True
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

FIELDS = {"user": "alice", "items": 3, "ratio": 0.5, "ok": True}


def _time(fn: Callable[[int], None], n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn(n)
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e6


def bench_structlog_fastest(tmp: Path, n: int, repeat: int) -> float:
    structlog.reset_defaults()
    f = (tmp / "structlog.jsonl").open("wb")
    structlog.configure(
        cache_logger_on_first_use=True,
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        logger_factory=structlog.BytesLoggerFactory(file=f),
    )
    log = structlog.get_logger()

    def run(k: int) -> None:
        for i in range(k):
            log.info("request handled", i=i, **FIELDS)

    us = _time(run, n, repeat)
    f.close()
    structlog.reset_defaults()
    return us


def bench_belog_structlog(tmp: Path, n: int, repeat: int) -> float:
    import structlog_belog as belog

    belog.configure(log_dir=tmp / "belog_sl", console=False, handle_signals=False)
    log = structlog.get_logger("bench")
    with belog.session("bench", package=False):

        def run(k: int) -> None:
            for i in range(k):
                log.info("request handled", i=i, **FIELDS)

        us = _time(run, n, repeat)
    _reset_belog()
    return us


def bench_stdlib_pjl(tmp: Path, n: int, repeat: int) -> float:
    from pythonjsonlogger.json import JsonFormatter

    logger = logging.getLogger("bench.pjl")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.FileHandler(tmp / "pjl.jsonl")
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger.addHandler(handler)

    def run(k: int) -> None:
        for i in range(k):
            logger.info("request handled", extra={"i": i, **FIELDS})

    us = _time(run, n, repeat)
    logger.removeHandler(handler)
    handler.close()
    return us


def bench_belog_stdlib(tmp: Path, n: int, repeat: int) -> float:
    import structlog_belog as belog

    belog.configure(log_dir=tmp / "belog_std", console=False, handle_signals=False)
    logger = logging.getLogger("bench.belog")
    with belog.session("bench", package=False):

        def run(k: int) -> None:
            for i in range(k):
                logger.info("request handled", extra={"i": i, **FIELDS})

        us = _time(run, n, repeat)
    _reset_belog()
    return us


def bench_loguru(tmp: Path, n: int, repeat: int) -> float:
    from loguru import logger

    logger.remove()
    sink_id = logger.add(tmp / "loguru.jsonl", serialize=True, level="INFO")

    def run(k: int) -> None:
        for i in range(k):
            logger.bind(i=i, **FIELDS).info("request handled")

    us = _time(run, n, repeat)
    logger.remove(sink_id)
    return us


def _reset_belog() -> None:
    from structlog_belog import _config

    _config.reset()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        r = {
            "structlog_fastest": bench_structlog_fastest(tmp, args.records, args.repeat),
            "belog_structlog": bench_belog_structlog(tmp, args.records, args.repeat),
            "stdlib_pjl": bench_stdlib_pjl(tmp, args.records, args.repeat),
            "belog_stdlib": bench_belog_stdlib(tmp, args.records, args.repeat),
            "loguru": bench_loguru(tmp, args.records, args.repeat),
        }
    ratios = {
        "belog_structlog / structlog_fastest": r["belog_structlog"] / r["structlog_fastest"],
        "belog_stdlib / stdlib_pjl": r["belog_stdlib"] / r["stdlib_pjl"],
        "belog_structlog / loguru": r["belog_structlog"] / r["loguru"],
    }
    if args.json:
        print(json.dumps({"us_per_record": r, "ratios": ratios}, indent=2))
        return 0
    print(f"python {platform.python_version()}, {args.records} records x best of {args.repeat}")
    for name, us in r.items():
        print(f"  {name:<20} {us:8.2f} µs/record")
    for name, ratio in ratios.items():
        print(f"  {name:<38} {ratio:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
