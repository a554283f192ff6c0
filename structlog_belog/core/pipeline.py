"""The record path: one chain for structlog, stdlib, audit and BELog records.

``add_session → level/timestamp → SecretRedactor → ValueTruncator →
render_jsonl → SessionRouter``, run in the caller's thread. structlog loggers
reach it directly (it is their only processor); stdlib records reach it through
`structlog_belog.stdlib.SessionHandler`; the audit and BELog code through
`emit`. Nothing here raises into the application.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol

import structlog.contextvars

from . import context as _context
from .redact import LOG_CALL, SecretRedactor
from .render import render_jsonl
from .reserved import RESERVED, demote_reserved, demoted_key
from .truncate import ValueTruncator

if TYPE_CHECKING:
    from .router import SessionRouter
    from .settings import Config

__all__ = ["Pipeline", "format_timestamp", "normalize_level", "reference"]

Processor = Callable[[Any, str, dict[str, Any]], Any]


class Capture(Protocol):
    """What the pipeline hands each record to (`structlog_belog.testing` makes them)."""

    def _add(self, event_dict: dict[str, Any]) -> None:
        """Keep one record as it was written."""


_LEVELS: Final = {
    "debug": "debug",
    "info": "info",
    "msg": "info",
    "warning": "warning",
    "warn": "warning",
    "error": "error",
    "exception": "error",
    "critical": "critical",
    "fatal": "critical",
    "notset": "notset",
}
_ERROR_LEVELS: Final = frozenset(("error", "critical"))

#: Which file a record of a given ``kind`` goes to (default: processing).
_STREAM_OF_KIND: Final = {"llm_call": "prompts", "belog": "belog"}
#: Kinds also written to the global file.
_GLOBAL_KINDS: Final = frozenset(("session_start", "session_end"))
#: Fields kept in the one-line reference an llm_call/belog record leaves in processing.jsonl.
_REF_KEYS: Final[tuple[str, ...]] = (
    "timestamp",
    "level",
    "logger",
    "event",
    "session_id",
    "stage",
    "task",
    "pid",
    "trace_id",
    "span_id",
    "kind",
    "call_id",
    "api",
    "model",
    "status",
    "latency_ms",
    "usage",
    "cost_usd",
    "error",
    "execution_trace_id",
    "task_name",
    "success",
    "efficiency_score",
    "execution_time",
)

_REF_KEY_SET: Final = frozenset(_REF_KEYS)

# structlog's bound contextvars, merged into every record. Read through the
# module's registry so we look only at structlog's variables, not at every
# variable in the context (which `merge_contextvars` walks).
_STRUCTLOG_VARS: Final = structlog.contextvars._CONTEXT_VARS
_STRUCTLOG_PREFIX_LEN: Final = len(structlog.contextvars.STRUCTLOG_KEY_PREFIX)


_pid = os.getpid()


def _reset_pid() -> None:
    global _pid  # noqa: PLW0603 - this process's ID, cached: getpid is a system call
    _pid = os.getpid()


os.register_at_fork(after_in_child=_reset_pid)
_current = _context.current

#: Adds ``trace_id``/``span_id`` to a record: ``trace_fields(event_dict, session)``.
#: Set by `structlog_belog.otel.instrument`; None costs one global read per record.
trace_fields: Callable[[dict[str, Any], Any], None] | None = None


def normalize_level(name: str) -> str:
    """Map a structlog method name or a stdlib level name to a record level."""
    return _LEVELS.get(name.lower(), name.lower())


_ts_cache: tuple[int, str] = (-1, "")


def format_timestamp(t: float) -> str:
    """ISO 8601 UTC with microseconds and ``Z`` for epoch seconds *t*.

    The date-and-seconds prefix is cached per second: formatting it is most of
    the cost of a timestamp and it changes once a second.
    """
    global _ts_cache  # noqa: PLW0603 - a per-process cache of one entry
    # Rounded to the nearest microsecond, as datetime does: truncating turned
    # x.000001 (stored as x.00000099...) into x.000000.
    sec = int(t)
    us = round((t - sec) * 1_000_000)
    if us == 1_000_000:
        sec, us = sec + 1, 0
    cached_sec, prefix = _ts_cache
    if sec != cached_sec:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec))
        _ts_cache = (sec, prefix)
    # zfill beats a width format spec by half here (measured).
    return prefix + str(us).zfill(6) + "Z"


def format_exception(exc_info: Any) -> str | None:
    """A formatted traceback for structlog's/stdlib's ``exc_info`` conventions."""
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if not isinstance(exc_info, tuple) or len(exc_info) != 3 or exc_info[0] is None:
        return None
    return "".join(traceback.format_exception(*exc_info)).rstrip("\n")


def _merge_structlog_contextvars(ed: dict[str, Any]) -> None:
    for key, var in _STRUCTLOG_VARS.items():
        value = var.get(Ellipsis)
        if value is not Ellipsis:
            name = key[_STRUCTLOG_PREFIX_LEN:]
            if name in RESERVED:  # bound by the application: data, not routing
                name = demoted_key(name, ed)
            ed.setdefault(name, value)


def fallback_session() -> tuple[Any, bool]:
    """The session for a record logged with none in its context.

    A child process that joined a session through `session_env()` logs to it;
    otherwise, with exactly one session open in the process, the record is
    attributed to it (and marked so). Returns ``(run or None, attributed)``.
    """
    reg = _context.REGISTRY
    if reg.joined is not None:
        return reg.joined, False
    sole = reg.sole
    if sole is not None:
        return sole, True
    return None, False


class Pipeline:
    """The configured chain. Built once by `configure()`; called per record.

    Each of *processors* is called as ``proc(logger, level, fields)`` with
    *logger* `LOG_CALL` for a record a log call made (the `SecretRedactor`
    then moves its reserved fields under ``app.<name>``) and None for one
    belog made itself.
    """

    def __init__(
        self,
        config: Config,
        router: SessionRouter | None,
        processors: tuple[Processor, ...],
        console: Callable[[dict[str, Any]], None] | None = None,
        truncator: ValueTruncator | None = None,
    ) -> None:
        self.config = config
        self.router = router
        self.processors = processors
        #: The chain's `SecretRedactor`, for code that builds records already redacted.
        self.redactor: SecretRedactor | None = next(
            (p for p in processors if isinstance(p, SecretRedactor)), None
        )
        self.truncator = truncator
        # A rendered line no longer than the smallest cap cannot hold a value
        # over it (a value renders to at least its own length): only longer
        # lines pay for the truncator's walk over the record.
        self.truncate_over = (
            sys.maxsize if truncator is None else min(truncator.max_chars, truncator.max_bytes)
        )
        self.console = console
        self.captures: tuple[Capture, ...] = ()
        self.failures = 0
        #: ``logger`` of records from structlog loggers made without a name.
        self.default_logger = config.app_name

    # structlog calls this as its only processor.
    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> Any:
        level = _LEVELS.get(method_name, method_name)
        if "logger" not in event_dict:
            event_dict["logger"] = logger.name or self.default_logger
        if "exc_info" in event_dict or method_name == "exception":
            exc_info = event_dict.pop("exc_info", None)
            formatted = format_exception(True if exc_info is None else exc_info)
            if formatted is not None:
                event_dict["exception"] = formatted
        self.process(event_dict, level, time.time())
        return _NOTHING

    def process(  # noqa: PLR0915 - inlined on purpose, see below
        self,
        ed: dict[str, Any],
        level: str,
        created: float,
        *,
        vetted: bool = False,
        own: bool = False,
    ) -> None:
        """Run the event dict *ed* through the chain and write it. Never raises.

        *vetted* says the code that built *ed* has already redacted it (the
        LLM audit does, part by part): only the fields merged from the context
        are then redacted here. *own* (implied by *vetted*) says belog itself
        made the record: only then may it carry the reserved fields (``kind``,
        ``ref``, ``session_id``...); in a log call's record they are kept as
        data under ``app.<name>`` (see `_reserved`).
        """
        # One function, one try block (free in CPython 3.11+): a call per
        # record saved on the hot path.
        try:
            # A log call's reserved fields become data: the redactor moves them
            # as it judges the keys (no extra pass); without one, a set test.
            if not (own or vetted or self.redactor is not None or RESERVED.isdisjoint(ed)):
                demote_reserved(ed)
            ctx = _current()
            # A vetted record gets the context's fields apart, to redact only them.
            fields = {} if vetted else ed
            if _STRUCTLOG_VARS:
                _merge_structlog_contextvars(fields)
            if ctx.fields:
                for key, value in ctx.fields.items():
                    fields.setdefault(key, value)
            if fields:
                # Redact before adding what the record path itself sets (time,
                # level, session, stage, task): fewer keys to walk, same result.
                who = None if own or vetted else LOG_CALL
                for proc in self.processors:
                    fields = proc(who, level, fields)
                if vetted:
                    for key, value in fields.items():
                        ed.setdefault(key, value)
                else:
                    ed = fields
            ed["timestamp"] = format_timestamp(created)
            ed["level"] = level
            session = ctx.session
            if session is not None:
                sid = session.id
                ed.update(ctx.record_fields)
            else:
                ed.update(ctx.record_fields)  # stage/task set outside any session
                session, attributed = fallback_session()
                if session is None:
                    sid = None
                else:
                    sid = session.id
                    if attributed:
                        ed["attributed"] = "sole_session"
                ed["session_id"] = sid
            shard = session is not None and session.pid != _pid
            if shard:
                ed["pid"] = _pid
            if trace_fields is not None:
                trace_fields(ed, session)
            task = ctx.task
            if task is not None:
                if level in _ERROR_LEVELS:
                    task.note_error(ed)
                task.note_record(ed)
            # A vetted record's parts are finite by construction: only the
            # fields merged from the context could hide a NaN.
            line = render_jsonl(None, level, ed, finite=vetted and not fields)
            # Rendered again only when a value was cut: a line long only
            # because it holds many short values is written as it is.
            if (
                len(line) > self.truncate_over
                and self.truncator is not None
                and self.truncator.cap_fields(ed)
            ):
                line = render_jsonl(None, level, ed)
            kind = ed.get("kind")
            router = self.router
            if router is not None:
                if kind is None:
                    router.write(sid, "processing", shard, line)
                else:
                    self._route_kind(router, ed, kind, sid, shard, line, level)
            if self.captures:
                for capture in self.captures:
                    capture._add(ed)
            if self.console is not None:
                # An llm_call or BELog record is shown as its reference line, as
                # processing.jsonl shows it; the whole record is in its own file.
                stream = None if kind is None else _STREAM_OF_KIND.get(kind)
                self.console(ed if stream is None else reference(ed, stream))
        except Exception as exc:  # noqa: BLE001 - a log call never raises
            self.failures += 1
            if self.router is not None:
                self.router._drop(ed.get("session_id"), exc, 1)

    @staticmethod
    def _route_kind(
        router: SessionRouter,
        ed: dict[str, Any],
        kind: Any,
        sid: str | None,
        shard: bool,
        line: bytes,
        level: str,
    ) -> None:
        stream = _STREAM_OF_KIND.get(kind, "processing")
        router.write(sid, stream, shard, line)
        if stream != "processing" and sid is not None:
            ref = reference(ed, stream)
            router.write(sid, "processing", shard, render_jsonl(None, level, ref))
        if kind in _GLOBAL_KINDS and sid is not None:
            router.write(None, "processing", False, line)


def reference(ed: dict[str, Any], stream: str) -> dict[str, Any]:
    """The one-line reference to a record written to *stream*, as processing.jsonl holds it."""
    # Built in C: the record's own order, the keys a reader of processing.jsonl wants.
    keys = list(filter(_REF_KEY_SET.__contains__, ed))
    ref = dict(zip(keys, map(ed.__getitem__, keys), strict=True))
    ref["ref"] = stream
    return ref


_NOTHING: Final[tuple[tuple[()], dict[str, Any]]] = ((), {})
