"""The finalizer against a bare parse of the same records, and its memory profile.

Run from the repository root (after ``pip install -e '.[dev]'``)::

    python benchmarks/bench_finalize.py [--records N] [--small N] [--rounds R] [--calls N] [--json]

Four ratios, each against a baseline measured in the same run:

- ``finalize / bare parse``: building the whole package (one streaming pass,
  report, zstd members, metadata, summary, SHA256SUMS, rename) of a session of
  N records, divided by a bare ``for line in file: orjson.loads(line)`` pass
  over the same files. Goal ≤ 1.5. The fastest of R interleaved rounds is kept.
- ``report_page_cost``: building the package with its run report page
  (``execution_report.html``) divided by building it without, minus one.
  Goal ≤ 0.10. ``--calls N`` adds N audited LLM calls (1.5 KB prompts, 1.2 KB
  answers) to both sessions, the page's main content. After one untimed
  warm-up build, each round builds both, in alternating order;
  ``report_page_cost_cpu_paired`` is the median of the rounds' own CPU ratios.
  Two separate builds differ by more than the page from round to round on a
  shared machine, so the page is also timed *inside* each build with it:
  ``report_page_cost_cpu_inbuild`` is the median over rounds of the CPU time
  the build's own thread spends on the page's work (every `PageBuilder`
  method the pass calls, ``page_data``, ``page_pieces`` and ``write_page``:
  the JSON, SHA-256 and writing of the file) divided by the rest of that
  same build's CPU time (``time.process_time``, zstd's workers included).
  What it cannot see: effects of the page on the rest of the build (memory
  it holds, caches it evicts); ``report_page_rest_vs_no_page`` (the rest
  divided by the build without the page, minus one, median of the rounds)
  shows whether those are large, within the same noise as the paired figure.
  Beside it: the page's CPU seconds per round, their split by step
  (``report_page_steps_cpu_s_median``, with the garbage collector's runs
  inside the page's steps and outside them), and what the clock itself adds
  (``report_page_clock_overhead_s``: counted in the page's time, not taken out).
- ``peak RSS N / peak RSS small``: the peak resident memory of a child process
  that finalizes N records, divided by that of one finalizing *small* records.
  Goal ≤ 1.2 (memory stays flat however large the session).
- ``pipeline belog / plain structlog``: a simulated pipeline — 50 LLM calls to
  the offline fake model at 20 ms each and 20k log records — with belog
  (configure, session, stages, audited client, package at exit) divided by the
  same work with plain structlog writing JSON lines to a file. Goal ≤ 1.05.
  Needs the audit (``structlog_belog.audit.wrap``, ``_fake_llm``); skipped without.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

SID = "sess_2025-01-18_17-30-00_bench000"
LEVELS = ("info",) * 16 + ("debug",) * 2 + ("warning",) + ("error",)


def write_session(log_dir: Path, n: int, shards: int = 1) -> Path:
    """A session of *n* records shaped like real ones, split over *shards* files."""
    d = log_dir / "sessions" / SID
    d.mkdir(parents=True, exist_ok=True)
    files = [open(d / "processing.jsonl", "wb")]  # noqa: SIM115 - closed below
    files += [open(d / f"processing.{1000 + i}.jsonl", "wb") for i in range(1, shards)]  # noqa: SIM115
    dumps = orjson.dumps
    try:
        files[0].write(dumps({
            "timestamp": "2025-01-18T17:30:00.000000Z", "level": "info",
            "logger": "structlog_belog.session", "event": "session_start", "kind": "session_start",
            "title": "bench", "session_id": SID, "host": "h", "python": "3", "belog_version": "0",
        }) + b"\n")  # fmt: skip
        stages = ("preprocessing", "generation", "validation")
        for i in range(n):
            sec, us = divmod(i * 37, 1_000_000)
            minute, sec = divmod(sec + 1, 60)
            rec = {
                "timestamp": f"2025-01-18T{17 + (30 + minute) // 60:02d}:{(30 + minute) % 60:02d}:"
                f"{sec:02d}.{us:06d}Z",
                "level": LEVELS[i % len(LEVELS)],
                "logger": "lyfe_kt.pipeline",
                "event": f"processed item {i}",
                "session_id": SID,
                "stage": stages[i * 3 // n],
                "user": "alice",
                "items": i % 17,
                "ratio": 0.5,
                "ok": True,
            }
            files[i % shards].write(dumps(rec) + b"\n")
        files[0].write(dumps({
            "timestamp": "2025-01-18T23:59:59.000000Z", "level": "info",
            "logger": "structlog_belog.session", "event": "session_end", "kind": "session_end",
            "success": True, "duration_s": 1.0, "records_dropped": 0, "session_id": SID,
        }) + b"\n")  # fmt: skip
    finally:
        for f in files:
            f.close()
    return d


_WORDS = (
    "signal", "journal", "question", "yield", "task", "evidence", "value", "blueprint",
    "note", "outcome", "insight", "wealth", "judgement", "compound", "interest", "build",
)  # fmt: skip
_SYSTEM = "You write supertasks: one JSON object with title, steps and reflection. " * 10


def _prose(seed: int, chars: int) -> str:
    words = [_WORDS[(seed * 7 + i * 13 + i // 5) % len(_WORDS)] for i in range(chars // 6 + 1)]
    return f"[{seed}] " + " ".join(words)[:chars]


def write_calls(directory: Path, n: int) -> None:
    """*n* audited LLM calls in ``prompts.jsonl`` (a shared system prompt, a 1.5 KB
    prompt and a 1.2 KB answer each, every tenth retried, one in fifty failed) and
    one output file per ten calls in ``processing.jsonl``."""
    if not n:
        return
    dumps = orjson.dumps
    with open(directory / "prompts.jsonl", "wb") as calls, \
            open(directory / "processing.jsonl", "ab") as records:  # fmt: skip
        for i in range(n):
            sec, us = divmod(i * 1_000_003, 1_000_000)
            minute, sec = divmod(sec + 1, 60)
            hour, minute = divmod(30 + minute, 60)
            ts = f"2025-01-18T{17 + hour:02d}:{minute:02d}:{sec:02d}.{us:06d}Z"
            failed = i % 50 == 49
            attempts = [{"attempt": 1, "status_code": 500 if failed else 200, "duration_ms": 812.5,
                         "request_id": f"req_{i:08x}"}]  # fmt: skip
            if i % 10 == 9:
                attempts.insert(0, {"attempt": 0, "status_code": 429, "duration_ms": 20.0,
                                    "request_id": f"req_r{i:08x}", "retry_after": "1"})  # fmt: skip
            rec = {
                "timestamp": ts, "level": "error" if failed else "info",
                "logger": "structlog_belog.audit", "event": "llm_call", "kind": "llm_call",
                "call_id": f"llm_bench{i:011d}", "api": "chat.completions", "model": "gpt-4o-mini",
                "request": {"model": "gpt-4o-mini", "temperature": 0.7, "messages": [
                    {"role": "system", "content": _SYSTEM},
                    {"role": "user", "content": _prose(i, 1500)}]},
                "response": None if failed else {"id": f"chatcmpl-{i}",
                                                 "output_text": _prose(i + 7, 1200),
                                                 "finish_reason": "stop", "tool_calls": None},
                "usage": {"input_tokens": 420, "output_tokens": 300, "total_tokens": 720,
                          "cached_tokens": 0, "reasoning_tokens": 0},
                "latency_ms": 812.5 + i % 97, "stream": False,
                "status": "error" if failed else "ok",
                "error": {"type": "InternalServerError", "message": "upstream broke",
                          "status_code": 500, "request_id": f"req_{i:08x}"} if failed else None,
                "attempts": attempts, "cost_usd": 0.000243, "session_id": SID,
                "stage": "generation", "task": f"Generate item {i // 100}",
            }  # fmt: skip
            calls.write(dumps(rec) + b"\n")
            if i % 10 == 9:
                records.write(dumps({
                    "timestamp": ts, "level": "info", "logger": "structlog_belog.session",
                    "event": "output", "kind": "output", "path": f"work/03_output/item-{i}.json",
                    "call_ids": [f"llm_bench{j:011d}" for j in range(i - 9, i + 1)],
                    "session_id": SID, "stage": "generation",
                }) + b"\n")  # fmt: skip


def bare_parse(directory: Path) -> int:
    """The baseline: read every line of every file and parse it with orjson."""
    loads = orjson.loads
    count = 0
    for path in sorted(directory.glob("processing*.jsonl")):
        with open(path, "rb") as fh:
            for line in fh:
                loads(line)
                count += 1
    return count


LEVEL: list[int | bool] = [True]  # set by --level


def finalize(directory: Path, package_dir: Path, *, html_report: bool = True) -> Path:
    """The measured operation: build the package (without its report page: the yardstick)."""
    from structlog_belog.package.packager import build_package

    return build_package(directory, package_dir, compress=LEVEL[0], html_report=html_report)


class PageClock:
    """CPU time the building thread spends on the page, from what `install` wraps.

    ``time.thread_time``: the page's work runs on the thread that builds; the
    zstd workers compressing the logs meanwhile are not the page's.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        #: The same split by step (the outermost wrapped function's name).
        self.steps: dict[str, float] = {}
        #: CPU time of the garbage collector's runs inside the page's steps, and outside.
        self.gc_page = self.gc_rest = 0.0
        #: Calls of the wrapped steps, and what one costs the clock itself (see `calibrate`).
        self.calls = 0
        self.cost_per_call = 0.0
        self._depth = 0
        self._gc_start = 0.0

    def reset(self) -> None:
        """Start a new build."""
        self.seconds = self.gc_page = self.gc_rest = 0.0
        self.steps = {}
        self.calls = 0

    def calibrate(self, n: int = 20_000) -> None:
        """Time *n* calls of a wrapped no-op: the clock's own cost, counted in `seconds`.

        The pass calls the page's steps per batch (some 3,000 times for a
        million records: the error records of each batch), so that cost is
        reported beside the page's time (``report_page_clock_overhead_s``),
        not taken from it: the in-build figure errs high, never low.
        """

        def nothing() -> None:
            pass

        timed = self.timed(nothing)
        start = time.thread_time()
        for _ in range(n):
            timed()
        self.cost_per_call = (time.thread_time() - start) / n
        self.reset()

    def _gc(self, phase: str, _: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.thread_time()
        elif self._depth:
            self.gc_page += time.thread_time() - self._gc_start
        else:
            self.gc_rest += time.thread_time() - self._gc_start

    def timed(self, fn: Any) -> Any:
        """*fn*, its CPU time added to `seconds` (not twice when nested)."""
        name = fn.__name__

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if self._depth:  # inside a timed step: already counted, no clock read
                return fn(*args, **kwargs)
            self._depth += 1
            self.calls += 1
            start = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self._depth -= 1
                spent = time.thread_time() - start
                self.seconds += spent
                self.steps[name] = self.steps.get(name, 0.0) + spent

        return wrapper

    def install(self) -> None:
        """Wrap the page's steps where the packager looks them up, for this process."""
        from structlog_belog.package import packager, report_page

        base = report_page.PageBuilder
        methods = {
            name: self.timed(getattr(base, name))
            # What the pass calls (fold_calls per batch: `call`, per record, is inside it).
            for name in ("__init__", "errors", "index_outputs", "fold_calls", "task")
        }
        timed: dict[Any, Any] = {"PageBuilder": type("TimedPageBuilder", (base,), methods)}
        for module, name in ((report_page, "page_data"), (report_page, "page_pieces"),
                             (packager, "write_page")):  # fmt: skip
            timed[name] = self.timed(getattr(module, name))
            setattr(module, name, timed[name])
        vars(report_page)["PageBuilder"] = timed["PageBuilder"]
        gc.callbacks.append(self._gc)


def time_pair(directory: Path, tmp: Path, rounds: int) -> dict[str, Any]:
    """Fastest of *rounds* interleaved (bare, finalize, finalize without the page) timings.

    CPU time (this process, zstd's worker threads included) is reported beside
    wall-clock time: on a shared machine it is the steadier of the two.
    ``report_page_cost`` is what writing ``execution_report.html`` adds to the
    finalizer, as a fraction of the finalizer without it (goal ≤ 0.10).
    """
    wall: dict[str, list[float]] = {"bare": [], "finalize": [], "no_page": []}
    cpu: dict[str, list[float]] = {"bare": [], "finalize": [], "no_page": []}
    clock = PageClock()
    clock.install()
    clock.calibrate()
    page_s: list[float] = []  # the page's share of each timed build with it
    steps: list[dict[str, float]] = []  # and its split by step
    overhead: list[float] = []  # what the clock itself adds to the page's time, about
    gc_no_page: list[float] = []  # the collector's CPU time in the builds without the page
    # One untimed build first: the first package pays for imports (jinja2, the
    # page's templates) that no later one does.
    finalize(directory, tmp / "warm-up")
    for r in range(rounds):
        runs = [
            ("finalize", lambda r=r: finalize(directory, tmp / f"packages-{r}")),
            (
                "no_page",
                lambda r=r: finalize(directory, tmp / f"no-page-{r}", html_report=False),
            ),
        ]
        # A and B alternate which goes first, so neither always follows the bare parse.
        for name, work in [("bare", lambda: bare_parse(directory)), *runs[:: 1 - 2 * (r % 2)]]:
            clock.reset()
            w0, c0 = time.perf_counter(), time.process_time()
            work()
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
            if name == "finalize":
                page_s.append(clock.seconds)
                steps.append({**clock.steps, "gc_in_page": clock.gc_page, "gc_rest": clock.gc_rest})
                overhead.append(clock.calls * clock.cost_per_call)
            elif name == "no_page":
                gc_no_page.append(clock.gc_rest)
    paired = [a / b - 1 for a, b in zip(cpu["finalize"], cpu["no_page"], strict=True)]
    rest = [total - page for total, page in zip(cpu["finalize"], page_s, strict=True)]
    inbuild = [page / r for page, r in zip(page_s, rest, strict=True)]
    rest_vs = [r / b - 1 for r, b in zip(rest, cpu["no_page"], strict=True)]
    return {
        "bare_parse_s": round(min(wall["bare"]), 3),
        "finalize_s": round(min(wall["finalize"]), 3),
        "finalize_ratio": round(min(wall["finalize"]) / min(wall["bare"]), 3),
        "bare_parse_cpu_s": round(min(cpu["bare"]), 3),
        "finalize_cpu_s": round(min(cpu["finalize"]), 3),
        "finalize_ratio_cpu": round(min(cpu["finalize"]) / min(cpu["bare"]), 3),
        "finalize_no_page_s": round(min(wall["no_page"]), 3),
        "finalize_no_page_cpu_s": round(min(cpu["no_page"]), 3),
        "report_page_cost": round(min(wall["finalize"]) / min(wall["no_page"]) - 1, 3),
        "report_page_cost_cpu": round(min(cpu["finalize"]) / min(cpu["no_page"]) - 1, 3),
        # Each round's pair (built one after the other) against the same load:
        # the median of the rounds' ratios is steadier than a ratio of minimums.
        "report_page_cost_cpu_paired": round(statistics.median(paired), 3),
        "report_page_cost_cpu_rounds": [round(x, 3) for x in paired],
        # The page timed inside each build with it, against the rest of that build.
        "report_page_cost_cpu_inbuild": round(statistics.median(inbuild), 3),
        "report_page_cost_cpu_inbuild_rounds": [round(x, 3) for x in inbuild],
        "report_page_cpu_s_median": round(statistics.median(page_s), 3),
        "report_page_cpu_s_rounds": [round(x, 3) for x in page_s],
        "finalize_rest_cpu_s_median": round(statistics.median(rest), 3),
        "finalize_no_page_cpu_s_median": round(statistics.median(cpu["no_page"]), 3),
        "report_page_rest_vs_no_page": round(statistics.median(rest_vs), 3),
        "report_page_clock_overhead_s": round(statistics.median(overhead), 4),
        "gc_cpu_s_median_no_page": round(statistics.median(gc_no_page), 4),
        # Medians by step over the rounds (gc_rest: the collector outside the page's steps).
        "report_page_steps_cpu_s_median": {
            key: round(statistics.median(s.get(key, 0.0) for s in steps), 4)
            for key in sorted({k for s in steps for k in s})
        },
    }


def child_rss(directory: Path, package_dir: Path) -> int:
    """Peak RSS (KiB, ``VmHWM``) of a fresh interpreter that finalizes *directory*.

    ``VmHWM`` rather than ``ru_maxrss``: Linux carries ``ru_maxrss`` across
    ``exec``, so a child would report its parent's peak.
    """
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from structlog_belog.package.packager import build_package\n"
        "build_package(Path(sys.argv[1]), Path(sys.argv[2]))\n"
        "status = Path('/proc/self/status').read_text()\n"
        "print(next(x.split()[1] for x in status.splitlines() if x.startswith('VmHWM')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(directory), str(package_dir)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return int(out.split()[-1])


# -- the simulated pipeline ------------------------------------------------------------


def _pipeline_work(client: Any, log: Any, records: int, calls: int) -> None:
    per_call = records // calls
    for c in range(calls):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"item {c}"}]
        )
        for i in range(per_call):
            log.info("processed", item=i, call=c, user="alice", ok=True)


def pipeline_plain(tmp: Path, records: int, calls: int) -> float:
    """Plain structlog to a JSONL file, an un-audited fake client."""
    import structlog

    from structlog_belog.audit.fake_llm import FakeLLM, fake_openai_client

    client = fake_openai_client(transport=FakeLLM(latency=0.02))
    with open(tmp / "plain.jsonl", "wb") as fh:
        log = structlog.wrap_logger(
            structlog.BytesLogger(fh),
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.JSONRenderer(serializer=orjson.dumps),
            ],
        )
        t0 = time.perf_counter()
        _pipeline_work(client, log, records, calls)
        return time.perf_counter() - t0


def pipeline_belog(tmp: Path, records: int, calls: int) -> float:
    """The same with belog: configure, a session with a stage, an audited client, a package."""
    import structlog

    import structlog_belog as belog
    from structlog_belog.audit.fake_llm import FakeLLM, fake_openai_client
    from structlog_belog.audit.wrap import instrument_openai
    from structlog_belog.core import config as _config

    client = instrument_openai(fake_openai_client(transport=FakeLLM(latency=0.02)))
    belog.configure(log_dir=tmp / "logs", package_dir=tmp / "packages", console=False,
                    handle_signals=False)  # fmt: skip
    try:
        log = structlog.get_logger("bench")
        t0 = time.perf_counter()
        with belog.session("bench pipeline") as run, run.stage("generation"):
            _pipeline_work(client, log, records, calls)
        return time.perf_counter() - t0
    finally:
        _config.reset()


def main() -> int:
    """Run the benchmark and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shards", type=int, default=1, help="files the session is split into")
    parser.add_argument("--pipeline-rounds", type=int, default=3)
    parser.add_argument("--level", type=int, help="zstd level (default: the package default)")
    parser.add_argument(
        "--calls", type=int, default=0, help="audited LLM calls in the session (write_calls)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.level is not None:
        LEVEL[0] = args.level
    results: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "records": args.records,
        "small": args.small,
        "shards": args.shards,
        "calls": args.calls,
        "zstd_level": args.level or "default (3)",
    }
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        big = write_session(tmp / "big", args.records, args.shards)
        write_calls(big, args.calls)
        results.update(time_pair(big, tmp, args.rounds))
        small = write_session(tmp / "small", args.small, args.shards)
        write_calls(small, args.calls)
        rss_small = child_rss(small, tmp / "rss-small")
        rss_big = child_rss(big, tmp / "rss-big")
        results.update(rss_small_kib=rss_small, rss_big_kib=rss_big,
                       rss_ratio=round(rss_big / rss_small, 3))  # fmt: skip
        try:
            import structlog_belog.audit.fake_llm
            import structlog_belog.audit.wrap  # noqa: F401 - only checks that it imports
        except ImportError:
            results["pipeline_ratio"] = None
        else:
            plain, with_belog = [], []
            for r in range(args.pipeline_rounds):
                plain.append(pipeline_plain(tmp, 20_000, 50))
                with_belog.append(pipeline_belog(tmp / f"pipe-{r}", 20_000, 50))
            results.update(pipeline_plain_s=round(min(plain), 3),
                           pipeline_belog_s=round(min(with_belog), 3),
                           pipeline_ratio=round(min(with_belog) / min(plain), 3))  # fmt: skip
    results["peak_rss_parent_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for key, value in results.items():
            print(f"{key:>36}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
