"""Per-call audit overhead on a busy machine: interleaved single calls, low percentiles.

Run: python benchmarks/bench_audit_percentiles.py [BENCH_AUDIT_PY]

`bench_audit.py` keeps the best of 100-call rounds, which a machine shared with
other work (load well above its cores) blurs. This times each call alone, bare
and audited interleaved (the same `Replay` transport and clients as
`bench_audit.py`, loaded from BENCH_AUDIT_PY, by default the one next to this
file), and reports the 10th and 25th percentiles of each and their difference:
the audit's cost per call, which interference lengthens less than it does the
means. To compare two checkouts, run each one's copy alternately with its own
``PYTHONPATH`` (docs/performance.md).
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog_belog as belog


def _bench(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("bench_audit", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _quantile(values: list[int], q: float) -> float:
    return sorted(values)[int(len(values) * q)] / 1000


def main() -> int:
    """Print bare and audited percentiles (µs) and the audit's overhead per scenario."""
    here = Path(__file__).with_name("bench_audit.py")
    bench = _bench(Path(sys.argv[1]) if len(sys.argv) > 1 else here)
    tmp = Path(tempfile.mkdtemp(prefix="bench_audit_pct_"))
    belog.configure(log_dir=tmp / "logs", console=False, handle_signals=False)
    rows = []
    with belog.session("bench_audit_percentiles", package=False):
        for name, tokens, stream, calls in (
            ("non-streamed", 20, False, 4000),
            ("stream (200 chunks)", 200, True, 400),
        ):
            transport = bench.Replay(tokens)
            bare = bench._client(transport)
            audited = belog.instrument_openai(bench._client(transport))

            def once(client: Any, stream: bool = stream) -> None:
                create = client.chat.completions.create
                if stream:
                    for _ in create(model="gpt-4o-mini", messages=bench.MESSAGES, stream=True):
                        pass
                else:
                    create(model="gpt-4o-mini", messages=bench.MESSAGES)

            for _ in range(50):  # warm up imports, pools and caches
                once(bare)
                once(audited)
            times: dict[str, list[int]] = {"bare": [], "audited": []}
            clock = time.perf_counter_ns
            for i in range(calls):  # alternate which goes first
                for label in ("bare", "audited") if i % 2 else ("audited", "bare"):
                    client = bare if label == "bare" else audited
                    t0 = clock()
                    once(client)
                    times[label].append(clock() - t0)
            b, a = times["bare"], times["audited"]
            rows.append(
                (name, _quantile(b, 0.1), _quantile(a, 0.1), _quantile(b, 0.25), _quantile(a, 0.25))
            )
    print(
        f"{'scenario':<22}{'bare p10':>10}{'aud. p10':>10}{'overhead':>10}{'p25 overhead':>14} µs"
    )
    for name, b10, a10, b25, a25 in rows:
        print(f"{name:<22}{b10:>10.1f}{a10:>10.1f}{a10 - b10:>10.1f}{a25 - b25:>14.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
