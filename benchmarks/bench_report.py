"""The run report of a big session in a real headless Chromium: its size and how fast it opens.

Run from the repository root (after ``pip install -e '.[dev]'``; needs Debian's
``chromium`` or ``BELOG_CHROMIUM``)::

    python benchmarks/bench_report.py [--records N] [--calls N] [--rounds R] [--json]

A session of N records (default 1,000,000) and N calls (default 10,000, with
1.5 KB prompts and 1.2 KB answers) is packaged; its ``execution_report.html``
is opened R times in a fresh tab. Reported, fastest and slowest of the rounds:

- ``ready_ms``: navigation start to the page's ``data-ready`` (data parsed,
  overview drawn: the page is usable) — the target is ≤ 2000 ms;
- ``calls_tab_ms``: one click on *LLM calls* until its rows are drawn;
- ``search_ms``: typing a search until the table shows its two matches;
- ``ready_ratio``: ``ready_ms`` over the time the same Chromium takes to load
  the same page with its script removed (the baseline, measured in the same
  run: reading and parsing the file's bytes, data block included).

The size target is ≤ 20 MB.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.browser import chromium

from bench_finalize import write_calls, write_session

_READY = "document.body.dataset.ready === 'true'"


def _time_page(browser: Any, report: Path) -> dict[str, float]:
    page = browser.new_page()
    page.open(report, timeout=120)
    page.wait_for(_READY, timeout=60)
    ready = float(page.js("Number(document.body.dataset.readyMs)"))
    tab = page.js(
        "(() => { const a = performance.now();"
        " document.querySelector('#tabs button[data-tab=\"calls\"]').click();"
        " const n = document.querySelectorAll('#calls-body .vt-row').length;"
        " return [performance.now() - a, n]; })()"
    )
    assert tab[1] > 0, "the calls tab drew no rows"
    t0 = time.perf_counter()
    page.type_into("#f-search", "[9999] ")
    page.wait_for("document.getElementById('call-count').textContent.startsWith('2 of')")
    search = (time.perf_counter() - t0) * 1000
    assert [] == page.exceptions, page.exceptions
    assert [] == page.requests, page.requests
    page.send("Page.close")
    return {"ready_ms": ready, "calls_tab_ms": tab[0], "search_ms": search}


def _time_bare(browser: Any, path: Path) -> float:
    page = browser.new_page()
    page.open(path, timeout=120)
    value = float(page.js("performance.getEntriesByType('navigation')[0].loadEventEnd"))
    page.send("Page.close")
    return value


def main() -> int:
    """Build the package, time its report in Chromium, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from structlog_belog.package.packager import build_package

    results: dict[str, Any] = {"records": args.records, "calls": args.calls}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        directory = write_session(tmp / "logs", args.records)
        write_calls(directory, args.calls)
        t0 = time.perf_counter()
        package = build_package(directory, tmp / "packages")
        results["build_package_s"] = round(time.perf_counter() - t0, 3)
        report = package / "logs" / "execution_report.html"
        size = report.stat().st_size
        results["report_mb"] = round(size / 1e6, 2)
        html = report.read_bytes()
        start = html.rindex(b"<script>")
        bare = tmp / "bare.html"
        bare.write_bytes(html[:start] + html[html.index(b"</script>", start) + 9 :])
        rounds: list[dict[str, float]] = []
        baseline: list[float] = []
        with chromium() as browser:
            for _ in range(args.rounds):
                baseline.append(_time_bare(browser, bare))
                rounds.append(_time_page(browser, report))
        for key in ("ready_ms", "calls_tab_ms", "search_ms"):
            values = [r[key] for r in rounds]
            results[key] = {"min": round(min(values)), "max": round(max(values))}
        results["no_script_load_ms"] = {"min": round(min(baseline)), "max": round(max(baseline))}
        results["ready_ratio"] = round(
            min(r["ready_ms"] for r in rounds) / max(min(baseline), 1.0), 2
        )
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for key, value in results.items():
            print(f"{key:>18}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
