"""Carrying the current session into threads and child processes."""

from __future__ import annotations

import concurrent.futures
import contextvars
import functools
import os
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from . import context as _context
from . import tracing as _tracing
from .state import ensure_pipeline

__all__ = ["ThreadPoolExecutor", "propagate", "session_env"]

P = ParamSpec("P")
R = TypeVar("R")


def propagate(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap *fn* so it runs in the context current now, wherever it is called.

    Threads do not inherit context variables (before Python 3.14): pass
    ``propagate(work)`` as a thread's target and its records stay in the
    session (and stage, task, bound fields) that was current when it was
    wrapped. Each call runs in a copy of that context, so calls in several
    threads at once never share one.
    """
    if not callable(fn):
        msg = f"fn must be callable, got {fn!r}"
        raise TypeError(msg)
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def run_in_context(*args: P.args, **kwargs: P.kwargs) -> R:
        return ctx.copy().run(fn, *args, **kwargs)

    return run_in_context


class ThreadPoolExecutor(concurrent.futures.ThreadPoolExecutor):
    """A `concurrent.futures.ThreadPoolExecutor` whose tasks run in the submitter's context.

    Every `submit` (and so `map`) captures the context current at submission,
    so records logged by the task belong to the submitter's session.
    """

    def submit(
        self, fn: Callable[..., R], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[R]:
        """Schedule ``fn(*args, **kwargs)`` in a copy of the current context."""
        ctx = contextvars.copy_context()
        return super().submit(ctx.run, fn, *args, **kwargs)


def session_env() -> dict[str, str]:
    """Environment variables that let a child process join the current session.

    Pass them to `subprocess` (``env={**os.environ, **belog.session_env()}``) or
    set them before starting a ``spawn``/``forkserver`` multiprocessing child;
    the child calls `configure()` and its records go to the session's shard
    files (``processing.<pid>.jsonl``). Outside a session, only the log folder
    is passed on. With `structlog_belog.otel` instrumented, the session's span
    is passed on too (``BELOG_TRACEPARENT``), so the child's spans and records
    join the run's trace.
    """
    config = ensure_pipeline().config
    env = {"BELOG_DIR": str(config.log_dir), "BELOG_PACKAGE_DIR": str(config.package_dir)}
    run = _context.current_session()
    if run is None:
        run = _context.REGISTRY.joined or _context.REGISTRY.sole
    if run is not None:
        env["BELOG_SESSION_ID"] = run.id
        env["BELOG_SESSION_PID"] = str(run.pid or os.getpid())
        env["BELOG_SESSION_TITLE"] = run.title
        env.update(_tracing.environment(run))
    return env
