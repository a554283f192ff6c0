"""A small multi-stage pipeline logged with structlog-belog.

Run it with no arguments (no network, no API key)::

    python examples/pipeline.py

It configures structlog-belog in one line, runs three stages — one of them
fanned out over worker threads with `belog.ThreadPoolExecutor` — logs with
both structlog and the standard `logging` module (including a library-style
logger), and prints where the session's logs are. Logs go to ``./logs``, or to
``$BELOG_DIR`` when it is set.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import structlog

import structlog_belog as belog

# A library's logger, created at import time as libraries do: it needs no change.
http_log = logging.getLogger("urllib3.connectionpool")
worker_log = logging.getLogger("demo.worker")
log = structlog.get_logger("demo.pipeline")

TEXT = "the quick brown fox jumps over the lazy dog while the cat sleeps"


def fetch(chunk: int) -> list[str]:
    """Pretend to download one chunk of text (deterministic, offline)."""
    http_log.info("GET /chunks/%d HTTP/1.1 200", chunk)
    rng = random.Random(chunk)
    words = TEXT.split()
    return [rng.choice(words) for _ in range(200)]


def count_words(chunk: int) -> dict[str, int]:
    """Count the words of one chunk; runs in a worker thread."""
    words = fetch(chunk)
    counts: dict[str, int] = {}
    for word in words:
        counts[word] = counts.get(word, 0) + 1
    worker_log.info("chunk %d counted", chunk, extra={"chunk": chunk, "distinct": len(counts)})
    if counts.get("cat", 0) > 18:
        worker_log.warning("chunk %d is mostly about cats", chunk, extra={"chunk": chunk})
    return counts


def main() -> Path:
    """Run the demo pipeline; return the session's log folder."""
    log_dir = Path(os.environ.get("BELOG_DIR") or "logs")
    belog.configure(
        log_dir=log_dir,
        package_dir=os.environ.get("BELOG_PACKAGE_DIR") or log_dir / "packages",
    )
    with belog.session(
        "word_count_demo",
        execution_context="Count words in eight chunks of text",
        blueprint_id="bp_demo",
        blueprint_version="v1",
    ) as run:
        with run.stage("ingest"):
            run.add_input(__file__)
            log.info("inputs_ready", chunks=8)

        with run.stage("count"), belog.ThreadPoolExecutor(max_workers=4) as pool:
            # Each worker thread logs into this session and stage.
            results = list(pool.map(count_words, range(8)))

        with run.stage("report"):
            total: dict[str, int] = {}
            for counts in results:
                for word, n in counts.items():
                    total[word] = total.get(word, 0) + n
            top = sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
            log.info("top_words", top=top, distinct=len(total))
            run.set_metric("distinct_words", len(total))

    return log_dir.absolute() / "sessions" / run.id


if __name__ == "__main__":
    folder = main()
    print(f"session logs: {folder}")
    for path in sorted(folder.glob("*.jsonl")):
        with path.open("rb") as f:
            print(f"  {path.name}: {sum(1 for _ in f)} records")
