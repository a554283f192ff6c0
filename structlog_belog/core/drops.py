"""What a process that joined a session lost, reported once at its exit."""

from __future__ import annotations

import os
from typing import Final

from . import context as _context
from .state import STATE, emit

__all__ = ["report_drops"]

_LOGGER: Final = "structlog_belog.session"


def report_drops() -> None:
    """At exit, tell each session this process joined how many of its records were lost.

    A session's own process reports its drops in ``session_end``. A process
    that joined it — forked while it was open, or started with `session_env()`
    — writes no ``session_end``, so it writes a ``drops`` record into its own
    shard instead; the finalizer adds them up. Only what was not reported yet
    is written, so running twice (atexit and a multiprocessing finalizer)
    counts nothing twice.
    """
    pipeline = STATE.pipeline
    router = None if pipeline is None else pipeline.router
    if router is None or not router.drops.total:
        return
    me = os.getpid()
    runs = {run.id: run for run in _context.REGISTRY.open_sessions()}
    joined = _context.REGISTRY.joined
    if joined is not None:
        runs.setdefault(joined.id, joined)
    for run in runs.values():
        if run.pid == me:
            continue
        count = router.take_unreported(run.id)
        if count <= 0:
            continue
        token = _context.push(session=run, stage=None, task=None)
        emit(
            "records_dropped",
            level="warning",
            logger=_LOGGER,
            kind="drops",
            records_dropped=count,
        )
        _context.reset(token)
