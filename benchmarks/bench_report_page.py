"""The run report page alone: two versions of ``report_page.py`` built over the same calls.

Run from the repository root (after ``pip install -e '.[dev]'``)::

    python benchmarks/bench_report_page.py --base OLD/report_page.py [--calls N] [--rounds R]
    python benchmarks/bench_report_page.py --only MODE [--base FILE] [--calls N]   # under valgrind

A session of 1,000 records and N calls (``bench_finalize``'s ``write_session``
and ``write_calls``) is scanned once; its calls are parsed once, each with
the outputs it produced. Then each round builds the page with the module
given as ``--base`` and with this checkout's, in alternating order: the
fold of every call (``PageBuilder.fold_calls`` in batches of 4,096 as the
scan hands them, or ``call`` one by one for a module without it), ``page_data``, ``page_pieces`` and
``write_page`` (JSON, SHA-256, write and fsync), in CPU time. Reported: the
fastest and median of each, and the median of the rounds' own ratios
(this checkout / base). The base module is run with this checkout's
templates: only the time matters here, not whether its page reads them.

``--only none|fold|page`` does the setup and then nothing, the fold, or the
whole page once, with this checkout's module (or ``--base``'s): run it under
``valgrind --tool=callgrind`` and subtract ``none``'s instruction count from
the others' for the page's instructions, load-independently.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_finalize import write_calls, write_session
from structlog_belog.package import report_page
from structlog_belog.package.members import write_page
from structlog_belog.package.scan import scan_session


def _load(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("base_report_page", path)
    if spec is None or spec.loader is None:
        msg = f"--base must be a Python file, got {path!r}"
        raise SystemExit(msg)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build(module: Any, report: Any, calls: list[dict[str, Any]], out: Path | None) -> float:
    """Fold *calls*, then (with *out*) write the page; the fold's CPU seconds."""
    start = time.process_time()
    page = module.PageBuilder()
    page.index_outputs([o["path"] for o in report.outputs])
    fold = getattr(page, "fold_calls", None)
    if fold is None:  # a module from before batches
        for rec in calls:
            page.call(rec)
    else:  # batches as the scan hands them (merged_batches' 4096 records)
        for start in range(0, len(calls), 4096):
            fold(calls[start : start + 4096])
    folded = time.process_time() - start
    if out is not None:
        write_page(out, module.page_pieces(module.page_data(report, page)))
    return folded


def main() -> int:
    """Build the session, then time or count the page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--base", help="another checkout's structlog_belog/package/report_page.py")
    parser.add_argument("--only", choices=("none", "fold", "page"))
    args = parser.parse_args()
    if args.base is None and args.only is None:
        parser.error("give --base FILE (timing) or --only MODE (for callgrind)")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        directory = write_session(tmp / "logs", 1_000)
        write_calls(directory, args.calls)
        report = scan_session(directory)
        produced: dict[str, list[str]] = {}
        for output in report.outputs:
            for call_id in output["call_ids"]:
                produced.setdefault(call_id, []).append(output["path"])
        with open(directory / "prompts.jsonl", "rb") as fh:
            calls = [orjson.loads(line) for line in fh]
        for rec in calls:
            rec["outputs"] = produced.get(rec["call_id"], [])
        if args.only is not None:
            module = report_page if args.base is None else _load(args.base)
            if args.only != "none":
                _build(module, report, calls, tmp / "p.html" if args.only == "page" else None)
            return 0
        modules = {"base": _load(args.base), "this": report_page}
        fold: dict[str, list[float]] = {"base": [], "this": []}
        total: dict[str, list[float]] = {"base": [], "this": []}
        for r in range(args.rounds):
            for key in ("base", "this")[:: 1 - 2 * (r % 2)]:
                start = time.process_time()
                fold[key].append(_build(modules[key], report, calls, tmp / f"{key}-{r}.html"))
                total[key].append(time.process_time() - start)
    for key in ("base", "this"):
        print(
            f"{key:>5}: page fastest {min(total[key]):.3f} s, median "
            f"{statistics.median(total[key]):.3f} s; fold fastest {min(fold[key]):.3f} s, "
            f"median {statistics.median(fold[key]):.3f} s"
        )
    ratios = [b / a for a, b in zip(total["base"], total["this"], strict=True)]
    print(f"this / base, page: fastest {min(total['this']) / min(total['base']):.3f}, "
          f"median of the rounds' ratios {statistics.median(ratios):.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
