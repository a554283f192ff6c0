"""The seams where a tracer plugs into sessions, stages and tasks.

The core never imports a tracing library. `structlog_belog.otel` sets
`tracer` (and the record path's `pipeline.trace_fields`); while it is
``None`` every hook below is one global read. A hook returns an opaque span
handle that the session, stage or task keeps and hands back to `end`, so a
span started before the tracer was removed still ends.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeAlias

# The objects handed to a tracer are the session's `Run` and `Stage`, the
# memory layer's `Task` and the audit's `Call`. The core sits below all of them
# (and `session` imports this module), so they are typed `Any` here; a tracer
# names the real types in its own signatures.
Run: TypeAlias = Any
Stage: TypeAlias = Any
Task: TypeAlias = Any
Call: TypeAlias = Any

__all__ = [
    "SpanHandle",
    "Tracer",
    "end",
    "environment",
    "start_call",
    "start_session",
    "start_stage",
    "start_task",
    "tracer",
]


class SpanHandle(Protocol):
    """A started span, made current in the context that started it."""

    def end(self, exc: BaseException | None) -> None:
        """End the span (failed if *exc*) and restore the context. Never raises."""


class Tracer(Protocol):
    """What a tracer provides; every method never raises and may return None."""

    def start_session(self, run: Run) -> SpanHandle | None:
        """Start the span of *run* (called once the run is the current session)."""

    def start_stage(self, stage: Stage) -> SpanHandle | None:
        """Start the span of *stage* (called once the stage is current)."""

    def start_task(self, task: Task) -> SpanHandle | None:
        """Start the span of *task* (called once the task is current)."""

    def start_call(self, call: Call) -> SpanHandle | None:
        """Start the span of an audited LLM call, current until the handle's ``end``.

        The handle's ``end`` only leaves the span (restores the context when
        the create call returns, a stream's included); the span itself ends
        when the call's record is written.
        """

    def environment(self, run: Run) -> dict[str, str]:
        """Variables that let a child process joining *run* join its trace too."""


#: The installed tracer, or None (set by `structlog_belog.otel.instrument`).
tracer: Tracer | None = None


def start_session(run: Run) -> SpanHandle | None:
    """The span handle of *run*, or None when no tracer is installed."""
    current = tracer
    return None if current is None else current.start_session(run)


def start_stage(stage: Stage) -> SpanHandle | None:
    """The span handle of *stage*, or None when no tracer is installed."""
    current = tracer
    return None if current is None else current.start_stage(stage)


def start_task(task: Task) -> SpanHandle | None:
    """The span handle of *task*, or None when no tracer is installed."""
    current = tracer
    return None if current is None else current.start_task(task)


def start_call(call: Call) -> SpanHandle | None:
    """The span handle of an audited *call*, or None when no tracer is installed."""
    current = tracer
    return None if current is None else current.start_call(call)


def environment(run: Run) -> dict[str, str]:
    """What `session_env` adds for the tracer (``BELOG_TRACEPARENT``), or nothing."""
    current = tracer
    return {} if current is None else current.environment(run)


def end(handle: SpanHandle | None, exc: BaseException | None) -> None:
    """End *handle*'s span if there is one."""
    if handle is not None:
        handle.end(exc)
