"""What measuring a BELog record's fields costs per task, at 10k files in the working dir.

Run: python benchmarks/bench_belog_fields.py [--files N] [--tasks T] [--rounds R]

Makes a working directory holding N files (100 per folder), configures
structlog-belog there with its log folder inside it (so the watcher has to
skip it), and runs T tasks per round. Each task writes one file, declares it
with ``add_output``, reads one with ``add_input`` and logs one record — the
shape of a pipeline step — with no LLM call, so what is measured is the
record's bookkeeping, not a model. In this one process, alternating rounds:

- **baseline**: ``configure(watch=False)``: the task and its record, fields
  derived (score, suggestions, risk, connections) but no file watching;
- **measured**: the default, the working directory watched (inotify on Linux).

Reported per task, timed directly around the code that measures (medians
over every task of the measured rounds): the watcher's lookup, ``begin`` and
``end``; the file-connection index (loading a blueprint's records once, then
remembering each record; a mean, so the one-time load is spread);
what the task's records cost it (`Task.note_record`, per task), and
`memory.measure.complete` (``metrics``, dependencies, connections, score,
risk, suggestions); their sum is "measuring the fields". End to end, for
context: the median task time of each mode and their ratio (on a shared
machine this difference is within the noise). Also: the one-time set-up of
the watcher at N files, and the portable snapshot backend's ``begin`` +
``end`` at N files (it refuses more than `MAX_SCAN_FILES`; the cap is lifted
to time it).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import structlog_belog as belog
from structlog_belog.core import config as _config
from structlog_belog.memory import measure as _belog_measure
from structlog_belog.memory import recording as _belog
from structlog_belog.memory import task as _task
from structlog_belog.memory import watch as _belog_watch


def make_tree(root: Path, files: int) -> None:
    """*files* small files under *root*, 100 per folder."""
    for i in range(files):
        folder = root / "data" / f"d{i // 100:04d}"
        if i % 100 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:05d}.txt").write_text("x")


def run_tasks(root: Path, tasks: int, tag: str) -> float:
    """Seconds per task for *tasks* tasks (each: write, declare, read, log)."""
    out = root / "out"
    out.mkdir(exist_ok=True)
    source = root / "data" / "d0000" / "f00000.txt"
    log = __import__("logging").getLogger("bench.step")
    with belog.session("bench", blueprint_id="bp_bench", package=False) as run:
        start = time.perf_counter()
        for i in range(tasks):
            with run.task(f"step {i % 5}"):
                run.add_input(source)
                target = out / f"{tag}_{i}.json"
                target.write_text("{}")
                run.add_output(target)
                log.info("wrote %s", target.name)
        return (time.perf_counter() - start) / tasks


def configure(root: Path, *, watch: bool) -> None:
    """Configure into root/logs, watching the working directory or not."""
    _belog.close_store()
    _belog_watch.reset_watcher()
    _config.reset()
    belog.configure(log_dir=root / "logs", console=False, watch=None if watch else False)


def timed_rounds(
    root: Path, tasks: int, rounds: int
) -> tuple[list[float], list[float], dict[str, list[float]]]:
    """Alternate rounds without and with watching; time the measuring code inside."""
    timings: dict[str, list[float]] = {
        k: [] for k in ("complete", "begin", "end", "records", "lookup", "connections")
    }
    patched = [
        (_belog_measure, "complete", "complete"),
        (_belog_watch.FileWatcher, "begin", "begin"),
        (_belog_watch.FileWatcher, "end", "end"),
        (_task.Task, "note_record", "records"),
        (_belog_measure, "file_watcher", "lookup"),
        (_task, "_connections", "connections"),
        (_belog_measure, "remember", "connections"),
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patched]

    def timer(fn: Any, key: str) -> Any:
        def timed(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                timings[key].append(time.perf_counter() - t)

        return timed

    for (owner, name, key), (_, _, fn) in zip(patched, originals, strict=True):
        setattr(owner, name, timer(fn, key))
    base: list[float] = []
    measured: list[float] = []
    try:
        for r in range(rounds):
            # Alternate which goes first: the store grows as the rounds go.
            for watch in (False, True) if r % 2 == 0 else (True, False):
                configure(root, watch=watch)
                took = run_tasks(root, tasks, f"{'m' if watch else 'b'}{r}")
                (measured if watch else base).append(took)
    finally:
        for owner, name, fn in originals:
            setattr(owner, name, fn)
    return base, measured, timings


def scan_cost(root: Path, files: int) -> float:
    """Median seconds of the snapshot backend's begin + end over *root*."""
    # The fallback refuses more than MAX_SCAN_FILES files; lift the cap to time it.
    _belog_watch.MAX_SCAN_FILES = 10 * files  # type: ignore[misc]
    scan = _belog_watch.FileWatcher([root], [root / "logs"], backend="scan")
    times = []
    for _ in range(5):
        t = time.perf_counter()
        scan.end(scan.begin())
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_tree(root, args.files)
        os.chdir(root)
        t0 = time.perf_counter()
        watcher = _belog_watch.FileWatcher([root], [root / "logs"])
        setup = time.perf_counter() - t0
        backend = watcher.backend
        watcher.close()
        base, measured, timings = timed_rounds(root, args.tasks, args.rounds)
        scan = scan_cost(root, args.files)

    b, m = statistics.median(base), statistics.median(measured)
    tasks = args.tasks * args.rounds * 2  # complete and note_record run in both modes
    derive = statistics.median(timings["complete"])
    watching = sum(statistics.median(timings[k]) for k in ("lookup", "begin", "end"))
    records = sum(timings["records"]) / tasks
    links = sum(timings["connections"]) / tasks
    total = derive + watching + records + links
    ms = 1000.0
    print(f"python {platform.python_version()} on {platform.system()} {platform.machine()}")
    print(f"{args.files} files in the working directory, {args.tasks} tasks x {args.rounds} rounds")
    print(f"watcher backend: {backend}; one-time set-up: {setup * ms:.1f} ms")
    print("measuring the fields, per task (timed directly):")
    print(f"  watcher lookup + begin + end:      {watching * ms:8.3f} ms")
    print(f"  file links: load + remember:       {links * ms:8.3f} ms")
    print(f"  records seen by the task:          {records * ms:8.3f} ms")
    print(f"  deriving the fields (complete):    {derive * ms:8.3f} ms")
    print(f"  total:                             {total * ms:8.3f} ms   (budget 5 ms)")
    print("end to end, median per task:")
    print(f"  watch off (baseline):              {b * ms:8.3f} ms")
    print(f"  working directory watched:         {m * ms:8.3f} ms   ratio {m / b:.2f}")
    print(f"snapshot backend begin+end at {args.files} files: {scan * ms:.1f} ms (fallback)")


if __name__ == "__main__":
    main()
