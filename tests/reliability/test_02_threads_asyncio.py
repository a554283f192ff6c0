"""Case 2: 16 threads x 10,000 and 200 asyncio tasks x 100 over 4 concurrent sessions.

The threads are started every way the design supports (``asyncio.to_thread``,
a shared `structlog_belog.ThreadPoolExecutor`, ``threading.Thread`` with
`structlog_belog.propagate`); records come from structlog and stdlib loggers
alike. Pass: 0 of 180,000 records in another session's file (or the global one).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import structlog

import structlog_belog as belog
from structlog_belog.core.config import Config

from .conftest import read_lines, session_records

SESSIONS = 4
THREAD_RECORDS = 10_000
TASKS_PER_SESSION = 50
TASK_RECORDS = 100


def _work(k: int, via: str, n: int) -> None:
    slog = structlog.get_logger("rel.threads")
    stdlog = logging.getLogger("rel.threads.stdlib")
    for i in range(n):
        if i % 2:
            slog.info("rec", k=k, via=via, i=i)
        else:
            stdlog.info("rec", extra={"k": k, "via": via, "i": i})


async def _session(k: int, pool: belog.ThreadPoolExecutor, ids: dict[int, str]) -> None:
    async with belog.session(f"threads-{k}", package=False) as run:
        ids[k] = run.id

        async def task(t: int) -> None:
            log = structlog.get_logger("rel.tasks")
            for i in range(TASK_RECORDS):
                log.info("rec", k=k, via=f"task{t}", i=i)
                if i % 10 == 0:
                    await asyncio.sleep(0)

        thread = threading.Thread(
            target=belog.propagate(_work), args=(k, "propagate", THREAD_RECORDS)
        )
        thread.start()
        futures = [
            asyncio.wrap_future(pool.submit(_work, k, f"pool{j}", THREAD_RECORDS)) for j in range(2)
        ]
        await asyncio.gather(
            asyncio.to_thread(_work, k, "to_thread", THREAD_RECORDS),
            *futures,
            *(task(t) for t in range(TASKS_PER_SESSION)),
            asyncio.to_thread(thread.join),
        )


class TestConcurrentSessions:
    """Threads and asyncio tasks of four sessions at once."""

    def test_no_record_misrouted(self, belog_config: Config, figure: Any) -> None:
        """Every one of 180,000 records lands in its own session's file."""
        ids: dict[int, str] = {}

        async def main() -> None:
            with belog.ThreadPoolExecutor(max_workers=8) as pool:
                await asyncio.gather(*(_session(k, pool, ids) for k in range(SESSIONS)))

        asyncio.run(main())

        per_session: Counter[int] = Counter()
        misrouted = 0
        seen: set[tuple[int, str, int]] = set()
        for k, sid in ids.items():
            for rec in session_records(belog_config.log_dir / "sessions" / sid):
                if rec["event"] != "rec":
                    continue
                per_session[k] += 1
                seen.add((int(rec["k"]), str(rec["via"]), int(rec["i"])))
                if rec["k"] != k or rec["session_id"] != sid:
                    misrouted += 1
        global_file = Path(belog_config.log_dir) / f"{belog_config.app_name}.jsonl"
        in_global = sum(1 for r in read_lines(global_file)[0] if r["event"] == "rec")
        total = SESSIONS * (4 * THREAD_RECORDS + TASKS_PER_SESSION * TASK_RECORDS)
        figure("records", total)
        figure("misrouted", misrouted + in_global)
        figure("distinct records found", len(seen))
        assert 180_000 == total
        assert 0 == misrouted
        assert 0 == in_global
        assert total == len(seen) == sum(per_session.values())
