"""OpenTelemetry spans for sessions, stages, tasks and LLM calls; trace IDs on records.

`instrument` installs three things, each undone by `uninstrument`:

- a `core.tracing.Tracer`: a session, stage or task starts a span when it starts,
  makes it current (so the app's own spans and other instrumentations nest in
  it) and ends it when it ends; `session_env()` passes the session's span to
  child processes (``BELOG_TRACEPARENT``);
- a wrapper around the audit's `audit.call.sink`: each ``llm_call`` record
  becomes a span with the GenAI semantic-convention attributes, timed by the
  call's latency, current while the record is written;
- `core.pipeline.trace_fields`: every record written while a span is current —
  belog's or the app's — gets ``trace_id`` and ``span_id``.

Nothing here raises into the application or loses a record: failures are
counted (`failure_count`) and reported once on stderr.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ._otel_genai import call_attributes as _call_attributes
from ._otel_genai import clean_attributes as _attributes
from .audit import call as _audit_call
from .core import context as _context
from .core import pipeline as _pipeline
from .core import tracing as _tracing
from .core.failures import FailureCounter
from .core.pipeline import fallback_session

if TYPE_CHECKING:
    from .audit.call import Call
    from .core.session import Run, Stage
    from .memory.task import Task

__all__ = [
    "add_trace_ids",
    "failure_count",
    "instrument",
    "is_instrumented",
    "uninstrument",
]

#: The instrumentation scope of belog's spans.
SCOPE: Final = "structlog_belog"

_lock = threading.Lock()
#: ``(tracer_provider, spans)`` while instrumented, else None.
_installed: tuple[Any, bool] | None = None
#: The sink `_traced_sink` hands records to (the one found at `instrument`).
_inner_sink: Callable[[dict[str, Any], str], None] | None = None
_tracer: trace.Tracer | None = None


# -- failures ------------------------------------------------------------------


_FAILURES: Final = FailureCounter("OpenTelemetry", "records and the app are unaffected")
#: Count a failure of the OpenTelemetry side; the first is reported on stderr. Never raises.
_note_failure: Final = _FAILURES.note


def failure_count() -> int:
    """How many times the OpenTelemetry side failed in this process (records were unaffected)."""
    return _FAILURES.count


# -- trace IDs on records --------------------------------------------------------

# The last span context seen and its IDs as hex: records logged in one span
# format its IDs once. One tuple, swapped whole, so threads never see a mix.
_ids_cache: tuple[Any, str, str] = (None, "", "")


def _set_ids(event_dict: dict[str, Any], span_context: trace.SpanContext) -> None:
    global _ids_cache  # noqa: PLW0603 - a one-entry cache shared by all threads
    cached = _ids_cache
    if cached[0] is not span_context:
        cached = (
            span_context,
            trace.format_trace_id(span_context.trace_id),
            trace.format_span_id(span_context.span_id),
        )
        _ids_cache = cached
    event_dict["trace_id"] = cached[1]
    event_dict["span_id"] = cached[2]


def _trace_fields(event_dict: dict[str, Any], session: Any) -> None:
    """The record path's hook: IDs of the current span, else of *session*'s span."""
    try:
        if "trace_id" in event_dict:  # the caller's own value is kept
            return
        span_context = trace.get_current_span().get_span_context()
        if not span_context.is_valid:
            # A thread that did not inherit the context but whose record
            # belongs to a session (sole open session): that session's span.
            owner = _span_of(session)
            if owner is None:
                return
            span_context = owner.get_span_context()
        _set_ids(event_dict, span_context)
    except Exception as exc:  # noqa: BLE001 - the record is written without IDs
        _note_failure("adding trace IDs to a record", exc)


def add_trace_ids(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """A structlog processor: add ``trace_id`` and ``span_id`` of the current span.

    For hand-made chains (see `structlog_belog.processors`); the chain
    `configure()` builds does this by itself once `instrument` was called.
    Outside any span, or when the event dict already has a ``trace_id``,
    it adds nothing. 32 and 16 lower-case hex digits, as W3C Trace Context.
    """
    if "trace_id" not in event_dict:
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            _set_ids(event_dict, span_context)
    return event_dict


# -- spans -------------------------------------------------------------------------


def _detach(token: Any) -> None:
    """Restore the context *token* replaced. Never raises."""
    if isinstance(token, contextvars.Token):
        # What otel's `detach` does, without its logged error when the span is
        # ended from another context (a signal handler, an exit hook): then
        # there is nothing of ours to restore there.
        try:
            token.var.reset(token)
        except (ValueError, RuntimeError):
            pass
    else:  # pragma: no cover - another runtime context (OTEL_PYTHON_CONTEXT); otel ships none
        otel_context.detach(token)


def _redact(text: str) -> str:
    """*text* through the configured `SecretRedactor`, if redaction is on."""
    from .core.config import _STATE
    from .core.redact import SecretRedactor

    pipeline = _STATE.pipeline
    if pipeline is not None:
        for processor in pipeline.processors:
            if isinstance(processor, SecretRedactor):
                return processor.redact_text(text)
    return text


def _fail(span: trace.Span, exc: BaseException) -> None:
    """Mark *span* failed with *exc*, its message and traceback redacted."""
    import traceback

    message = _redact(str(exc))
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {message}"))
    span.record_exception(
        exc,
        attributes={
            "exception.message": message,
            "exception.stacktrace": _redact("".join(traceback.format_exception(exc))),
        },
        escaped=True,
    )


class _Handle:
    """A started belog span, current in the context that started it."""

    __slots__ = ("finish", "span", "token")

    def __init__(
        self,
        span: trace.Span,
        finish: Callable[[trace.Span, BaseException | None], None],
    ) -> None:
        self.span = span
        self.finish = finish
        self.token = otel_context.attach(trace.set_span_in_context(span))

    def __repr__(self) -> str:
        return f"<span {trace.format_span_id(self.span.get_span_context().span_id)}>"

    def end(self, exc: BaseException | None) -> None:
        """Set the final attributes and status, end the span, restore the context."""
        try:
            self.finish(self.span, exc)
            if exc is not None:
                _fail(self.span, exc)
        except Exception as err:  # noqa: BLE001 - the span still ends
            _note_failure("finishing a span", err)
        try:
            self.span.end()
        except Exception as err:  # noqa: BLE001 - a span processor failed
            _note_failure("ending a span", err)
        _detach(self.token)


# The parent's session span in a child process that joined it, by traceparent.
_remote_spans: dict[str, trace.Span | None] = {}


def _span_of(owner: Any) -> trace.Span | None:
    """The span of a run or task: its own, or the parent process's session span."""
    handle = getattr(owner, "_span", None)
    if isinstance(handle, _Handle):
        return handle.span
    traceparent = getattr(owner, "_traceparent", None)
    if not isinstance(traceparent, str):
        return None
    if traceparent not in _remote_spans:
        carrier = {"traceparent": traceparent}
        span = trace.get_current_span(TraceContextTextMapPropagator().extract(carrier))
        _remote_spans[traceparent] = span if span.get_span_context().is_valid else None
    return _remote_spans[traceparent]


def _parent(owner: trace.Span | None) -> otel_context.Context | None:
    """The context a belog span starts in: the current one if it is in *owner*'s trace.

    The current span is the natural parent (an app span inside a task, a stage
    inside a stage). When a stage, task or call is reached from a context that
    did not inherit its session's span (a plain thread) or that belongs to
    another trace (a stream consumed elsewhere), the span of its session or
    task — *owner* — is the parent instead.
    """
    if owner is None:
        return None
    current = trace.get_current_span().get_span_context()
    if current.is_valid and current.trace_id == owner.get_span_context().trace_id:
        return None
    return trace.set_span_in_context(owner)


def _success(span: trace.Span, exc: BaseException | None) -> None:
    span.set_attribute("belog.success", exc is None)


def _task_finish(task: Task) -> Callable[[trace.Span, BaseException | None], None]:
    def finish(span: trace.Span, exc: BaseException | None) -> None:
        record = task.record
        if record is None:
            span.set_attribute("belog.success", exc is None)
            return
        span.set_attributes(
            _attributes(
                {
                    "belog.success": record.get("success"),
                    "belog.efficiency_score": record.get("efficiency_score"),
                    "belog.execution_time": record.get("execution_time"),
                    "belog.errors_encountered": len(record.get("errors_encountered") or ()),
                }
            )
        )

    return finish


class _Leave:
    """Leaves an LLM call's span (restores the context) without ending it."""

    __slots__ = ("token",)

    def __init__(self, token: Any) -> None:
        self.token = token

    def end(self, exc: BaseException | None) -> None:
        _detach(self.token)


#: Spans of audited calls started and not yet recorded, by call ID.
_call_spans: dict[str, tuple[trace.Span, int]] = {}
_CALL_SPANS_MAX: Final = 10_000


class _SpanTracer:
    """The `core.tracing.Tracer` of `instrument`: one span per session, stage and task."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    def _start(
        self,
        name: str,
        attributes: Callable[[], Mapping[str, Any]],
        owner: trace.Span | None,
        finish: Callable[[trace.Span, BaseException | None], None],
    ) -> _Handle | None:
        try:
            span = self.tracer.start_span(
                name,
                context=_parent(owner),
                kind=SpanKind.INTERNAL,
                attributes=_attributes(attributes()),
            )
            return _Handle(span, finish)
        except Exception as exc:  # noqa: BLE001 - the run goes on without its span
            _note_failure(f"starting span {name!r}", exc)
            return None

    def start_session(self, run: Run) -> _Handle | None:
        """Start the root span of *run* (a child of the current span, if any)."""

        def attributes() -> dict[str, Any]:
            context = run.execution_context
            return {
                "belog.session.id": run.id,
                "belog.session.title": run.title,
                "belog.session.parent_id": run.parent_id,
                "belog.blueprint.id": run.blueprint_id,
                "belog.blueprint.version": run.blueprint_version,
                "belog.execution_context": None if context is None else _redact(context),
            }

        return self._start(f"belog.session {run.title}", attributes, None, _success)

    def start_stage(self, stage: Stage) -> _Handle | None:
        """Start the span of *stage*, a child of the current span or of its session's."""

        def attributes() -> dict[str, Any]:
            return {
                "belog.session.id": stage.run.id,
                "belog.stage.name": stage.name,
                "belog.stage.parent": stage.parent,
            }

        return self._start(f"belog.stage {stage.name}", attributes, _span_of(stage.run), _success)

    def start_task(self, task: Task) -> _Handle | None:
        """Start the span of *task*, a child of the current span or of its session's."""
        session = task._session

        def attributes() -> dict[str, Any]:
            return {
                "belog.task.name": task.name,
                "belog.execution_trace_id": task.trace_id,
                "belog.session.id": None if session is None else session.id,
            }

        owner = _span_of(session)
        return self._start(f"belog.task {task.name}", attributes, owner, _task_finish(task))

    def start_call(self, call: Call) -> _Leave | None:
        """Start the CLIENT span of an audited call; it ends when its record is written."""
        begun = _call_spans.get(call.call_id)
        if begun is not None:  # awaited after a plain function returned it: the same span
            return _Leave(otel_context.attach(trace.set_span_in_context(begun[0])))
        try:
            attributes = _call_attributes(
                {
                    "api": call.api,
                    "model": call.model,
                    "call_id": call.call_id,
                    "name": call.name,
                    "stream": call.stream,
                    "request": call.request,
                }
            )
            model = attributes.get("gen_ai.request.model")
            operation = attributes["gen_ai.operation.name"]
            # Started when the call did, so its duration is the record's latency.
            start = time.time_ns() - int((time.perf_counter() - call.started) * 1e9)
            span = self.tracer.start_span(
                f"{operation} {model}" if model else operation,
                context=_parent(_call_owner()),
                kind=SpanKind.CLIENT,
                attributes=attributes,
                start_time=start,
            )
            if len(_call_spans) >= _CALL_SPANS_MAX:  # records that never came: end the oldest
                _call_spans.pop(next(iter(_call_spans)))[0].end()
            _call_spans[call.call_id] = (span, start)
            return _Leave(otel_context.attach(trace.set_span_in_context(span)))
        except Exception as exc:  # noqa: BLE001 - the call goes on; its span is made at the end
            _note_failure("starting an LLM call span", exc)
            return None

    def environment(self, run: Run) -> dict[str, str]:
        """``BELOG_TRACEPARENT``: *run*'s span, for a child process joining *run*."""
        try:
            span = _span_of(run)
            if span is None:
                return {}
            carrier: dict[str, str] = {}
            TraceContextTextMapPropagator().inject(carrier, trace.set_span_in_context(span))
            return {"BELOG_TRACEPARENT": carrier["traceparent"]}
        except Exception as exc:  # noqa: BLE001 - the child joins the session, not the trace
            _note_failure("passing the trace to a child process", exc)
            return {}


# -- LLM calls ---------------------------------------------------------------------


def _call_owner() -> trace.Span | None:
    """The span of the task, else the session, the call was made in."""
    ctx = _context.current()
    span = _span_of(ctx.task)
    if span is None:
        session = ctx.session if ctx.session is not None else fallback_session()[0]
        span = _span_of(session)
    return span


def _start_call_span(record: Mapping[str, Any]) -> tuple[trace.Span, Any] | None:
    tracer = _tracer
    if tracer is None:
        return None
    attributes = _call_attributes(record)
    end = time.time_ns()
    latency = record.get("latency_ms")
    start = end - int(latency * 1_000_000) if isinstance(latency, int | float) else end
    operation = attributes["gen_ai.operation.name"]
    model = attributes.get("gen_ai.request.model")
    span = tracer.start_span(
        f"{operation} {model}" if model else operation,
        context=_parent(_call_owner()),
        kind=SpanKind.CLIENT,
        attributes=attributes,
        start_time=start,
    )
    if record.get("status") == "error":
        error = record.get("error")
        description = str(error.get("type")) if isinstance(error, Mapping) else "error"
        span.set_status(Status(StatusCode.ERROR, description))
    return span, end


def _traced_sink(record: dict[str, Any], level: str) -> None:
    """Write *record* with its call's span current, then end the span."""
    started = None
    token = None
    try:
        begun = _call_spans.pop(record.get("call_id"), None)  # type: ignore[arg-type]
        if begun is not None:  # started with the call: complete it from the record
            span, start = begun
            span.set_attributes(_call_attributes(record))
            if record.get("status") == "error":
                error = record.get("error")
                description = str(error.get("type")) if isinstance(error, Mapping) else "error"
                span.set_status(Status(StatusCode.ERROR, description))
            latency = record.get("latency_ms")
            end = start + int(latency * 1_000_000) if isinstance(latency, int | float) else None
            started = (span, end)
        else:
            started = _start_call_span(record)
        if started is not None:
            token = otel_context.attach(trace.set_span_in_context(started[0]))
    except Exception as exc:  # noqa: BLE001 - the record is written without a span
        _note_failure("starting an LLM call span", exc)
    inner = _inner_sink or _audit_call._emit
    try:
        inner(record, level)
    finally:
        if started is not None:
            try:
                started[0].end(end_time=started[1])
            except Exception as exc:  # noqa: BLE001 - a span processor failed
                _note_failure("ending an LLM call span", exc)
        if token is not None:
            _detach(token)


# -- switching on and off ------------------------------------------------------------


def _check_provider(tracer_provider: Any) -> None:
    if tracer_provider is not None and not isinstance(tracer_provider, trace.TracerProvider):
        msg = (
            "tracer_provider must be an opentelemetry.trace.TracerProvider or None, "
            f"got {tracer_provider!r}"
        )
        raise TypeError(msg)


def instrument(tracer_provider: trace.TracerProvider | None = None, *, spans: bool = True) -> None:
    """Turn on OpenTelemetry: spans for belog's work and trace IDs on every record.

    Idempotent: calling it again with the same arguments does nothing; with
    other arguments it switches to them.

    Args:
        tracer_provider: Where belog's spans go. Default: the global provider
            (``opentelemetry.trace.set_tracer_provider``), looked up when a
            span starts, so it may be set after this call.
        spans: ``False`` makes no spans of belog's own: records only carry
            the IDs of the app's current span (for apps that trace themselves).

    Raises:
        TypeError: *tracer_provider* is not a ``TracerProvider``, or *spans*
            not a bool.
    """
    global _installed, _inner_sink, _tracer  # noqa: PLW0603 - the process-wide switch
    _check_provider(tracer_provider)
    if not isinstance(spans, bool):
        msg = f"spans must be a bool, got {spans!r}"
        raise TypeError(msg)
    with _lock:
        if _installed is not None and _installed[0] is tracer_provider and _installed[1] is spans:
            return
        _remove()
        if spans:
            from . import __version__

            _tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider)
            _tracing.tracer = _SpanTracer(_tracer)
            _inner_sink = _audit_call.sink
            _audit_call.sink = _traced_sink
        _pipeline.trace_fields = _trace_fields
        _installed = (tracer_provider, spans)


def _remove() -> None:
    global _installed, _inner_sink, _tracer  # noqa: PLW0603 - the process-wide switch
    _pipeline.trace_fields = None
    _tracing.tracer = None
    if _audit_call.sink is _traced_sink:
        _audit_call.sink = _inner_sink or _audit_call._emit
        _inner_sink = None
    # else something wrapped our sink since: it stays, and passes records on
    # to the sink it wrapped, spanless (no tracer).
    _tracer = None
    _installed = None


def uninstrument() -> None:
    """Turn OpenTelemetry off again. Spans already started still end.

    Idempotent; records logged from now on carry no trace IDs.
    """
    with _lock:
        _remove()


def is_instrumented() -> bool:
    """Whether `instrument` is in effect."""
    return _installed is not None
