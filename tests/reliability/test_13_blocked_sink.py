"""Case 13: a sink blocked for 5 s in ``durability="buffered"`` mode.

The router's background writer is held for 5 s (and until the calls are
done, up to 60 s) by its own flush lock, which it holds while it writes, so
it waits exactly as behind a ``write`` blocked in the kernel. (The sink was a
FIFO nobody read; the router now refuses FIFOs: it writes regular files
only, see case 15.) Meanwhile the application makes
100,000 log calls of about 1 KiB each (more than the 64 MiB buffer holds).
Pass: every call completes while the sink is still blocked, memory stays
bounded, drops are counted (and equal the lines missing). The log call's
latency during the block is measured and reported, not asserted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import child_json, read_lines, run_child

CALLS = 100_000


@pytest.mark.slow
class TestBlockedSink:
    """The application is never held up by its logs."""

    def test_calls_complete_while_blocked(
        self, tmp_path: Path, subprocess_env: dict[str, str], figure: Any
    ) -> None:
        """100,000 calls finish before the sink unblocks; drops counted exactly."""
        log_dir = tmp_path / "logs"
        r = child_json(
            run_child(subprocess_env, "blocked_sink", str(log_dir), str(CALLS), "1000", "5")
        )
        records, tail = read_lines(log_dir / "sessions" / r["session_id"] / "processing.jsonl")
        end = [x for x in records if x.get("kind") == "session_end"]
        written = sum(1 for x in records if x["event"] == "rec")
        figure("seconds to make 100,000 calls (sink blocked 5 s)", round(r["calls_done_at_s"], 2))
        figure(
            "log call p50 / p99 / max (us)",
            f"{r['p50_us']:.1f} / {r['p99_us']:.1f} / {r['max_us']:.0f}",
        )
        figure(
            "peak RSS growth (MiB) / buffer cap (MiB)",
            f"{r['rss_growth_mib']:.1f} / {r['buffer_cap_mib']:.0f}",
        )
        figure("dropped (counted) / missing", f"{r['dropped']}/{CALLS - written}")
        assert b"" == tail
        assert r["calls_done_at_s"] < r["unblocked_at_s"]
        assert CALLS == r["calls"]
        assert 0 < r["dropped"]
        assert CALLS - written == r["dropped"]
        assert [r["dropped"]] == [x["records_dropped"] for x in end]
        # Bounded: the buffer cap plus what Python keeps for the process, not the 100 MB logged.
        assert r["rss_growth_mib"] < 2 * r["buffer_cap_mib"]
