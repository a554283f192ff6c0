"""One audited LLM call: its state from start to the one record it writes.

A `Call` is made when an audited create call starts. It remembers the context
the call was made in (session, stage, task), so the record lands in that
session even when a stream is consumed — or dropped and collected — somewhere
else. `Call.finish` is idempotent and never raises: the first finish writes the
record, later ones do nothing.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, Final

from . import _context
from ._audit_record import (
    describe_error,
    scrub_request,
    scrub_response,
    vet_error,
    vet_request,
    vet_response,
    vet_usage,
)
from ._config import ensure_pipeline, get_config
from ._failures import FailureCounter
from ._prices import cost_usd, validate_prices
from ._redact import VettedList

__all__ = ["ACTIVE", "Call", "audit_failures", "last_outside_session", "note_failure"]

#: The audited call in progress in this context (nested audited calls pass through).
ACTIVE: ContextVar[Call | None] = ContextVar("structlog_belog.audit.active", default=None)

_LOGGER: Final = "structlog_belog.audit"
_finish_lock = threading.Lock()
_last_outside: Mapping[str, Any] | None = None


_FAILURES: Final = FailureCounter("the LLM audit", "the call itself went on")
#: Count an internal audit failure; the first is reported on stderr. Never raises.
note_failure: Final = _FAILURES.note


def audit_failures() -> int:
    """How many times the audit failed internally in this process (calls were unaffected)."""
    return _FAILURES.count


def last_outside_session() -> Mapping[str, Any] | None:
    """The most recent call record made outside any session in this process."""
    return _last_outside


def _emit(record: dict[str, Any], level: str) -> None:
    # The record is built in writing order (timestamp, level, logger, event
    # first) and is itself what the chain completes and writes.
    ensure_pipeline().process(record, level, time.time(), vetted=True)


#: Where finished records go; a test may replace it to look at records in memory.
sink: Callable[[dict[str, Any], str], None] = _emit


class _CallIds:
    """Unique call IDs without a system call each: a random per-process prefix and a counter."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self.prefix = "llm_" + os.urandom(6).hex()
        self.counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.counter):08x}"


_new_call_id = _CallIds()


class Call:
    """The state of one audited call, from its start to its record."""

    __slots__ = (
        "api",
        "attempts",
        "call_id",
        "capture_content",
        "ctx",
        "done",
        "first_token",
        "model",
        "name",
        "request",
        "started",
        "stream",
    )

    def __init__(
        self,
        *,
        api: str,
        name: str | None,
        request: dict[str, Any],
        capture_content: bool,
        stream: bool,
    ) -> None:
        self.started = time.perf_counter()
        self.ctx = _context.current()
        self.call_id = _new_call_id()
        self.api = api
        self.name = name
        self.request = request
        self.model = request.get("model")
        self.capture_content = capture_content
        self.stream = stream
        self.first_token: float | None = None
        self.attempts: list[dict[str, Any]] = []
        self.done = False

    def __repr__(self) -> str:
        return f"Call(call_id={self.call_id!r}, api={self.api!r}, model={self.model!r})"

    def mark_first_token(self) -> None:
        """Remember when the first content of a stream arrived."""
        if self.first_token is None:
            self.first_token = time.perf_counter()

    def finish(
        self,
        status: str,
        *,
        response: dict[str, Any] | None = None,
        usage: dict[str, Any] | None = None,
        error: BaseException | None = None,
    ) -> dict[str, Any] | None:
        """Write the call's one record (first call only); return it. Never raises."""
        with _finish_lock:  # a stream may be closed and collected from two threads at once
            if self.done:
                return None
            self.done = True
        try:
            record = self._record(status, response, usage, error)
            self._publish(record, "warning" if status == "error" else "info")
        except Exception as exc:  # noqa: BLE001 - the audit never breaks the caller
            note_failure("finishing a call record", exc)
            return None
        return record

    def _record(
        self,
        status: str,
        response: dict[str, Any] | None,
        usage: dict[str, Any] | None,
        error: BaseException | None,
    ) -> dict[str, Any]:
        ended = time.perf_counter()
        for attempt in self.attempts:
            if attempt.pop("_t0", None) is not None:  # sent, but no HTTP response came
                attempt["duration_ms"] = None
                attempt["error"] = "no response" if error is None else type(error).__name__
        request = self.request if self.capture_content else scrub_request(self.request)
        if response is not None and not self.capture_content:
            response = scrub_response(response)
        # Each part is redacted here, where its shape is known, and marked
        # Vetted: the record path then writes it without a second walk.
        redactor = ensure_pipeline().redactor
        redact = None if redactor is None else redactor.redact_value
        if usage is not None:
            usage = vet_usage(usage, redact)
        record: dict[str, Any] = {
            "timestamp": None,
            "level": None,
            "logger": _LOGGER,
            "event": "llm_call",
            "kind": "llm_call",
            "call_id": self.call_id,
            "name": self.name if redact is None else redact(self.name),
            "provider": "openai",
            "api": self.api,
            "model": self.model if redact is None else redact(self.model),
            "request": vet_request(request, redact),
            "response": None if response is None else vet_response(response, redact),
            "usage": usage,
            "latency_ms": round((ended - self.started) * 1000, 3),
            "stream": self.stream,
            "status": status,
            "error": None if error is None else vet_error(describe_error(error), redact),
            "attempts": VettedList(self.attempts) if self.attempts else None,
            "cost_usd": cost_usd(self.model, usage, _price_overrides()),
        }
        if self.stream:
            record["time_to_first_token_ms"] = (
                None
                if self.first_token is None
                else round((self.first_token - self.started) * 1000, 3)
            )
        return record

    def _publish(self, record: dict[str, Any], level: str) -> None:
        global _last_outside  # noqa: PLW0603 - the last call made outside sessions
        token = None if _context.current() is self.ctx else _context.set_context(self.ctx)
        try:
            sink(record, level)
            run = self.ctx.session
            if run is None:
                _last_outside = record
            else:
                run.note_call(record)
            task = self.ctx.task
            if task is not None:
                task.note_call(record)
        finally:
            if token is not None:
                _context.reset(token)


_overrides_cache: tuple[object, Mapping[str, Any] | None] = (object(), None)


def _price_overrides() -> Mapping[str, Any] | None:
    """The configured price overrides as `Price` objects, validated once per config."""
    global _overrides_cache  # noqa: PLW0603 - one cache per process
    config = get_config()
    prices = None if config is None else config.prices
    if prices is None:
        return None
    if _overrides_cache[0] is not prices:
        _overrides_cache = (prices, validate_prices(prices))
    return _overrides_cache[1]
