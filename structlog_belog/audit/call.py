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

from ..core import config as _config
from ..core import context as _context
from ..core.config import ensure_pipeline
from ..core.failures import FailureCounter
from ..core.redact import Vetted, VettedList
from .prices import Price, price_of, validate_prices
from .record import (
    describe_error,
    jsonable,
    scrub_request,
    scrub_response,
    vet_error,
    vet_response,
    vet_usage,
)

__all__ = [
    "ACTIVE",
    "Call",
    "audit_failures",
    "describe_attempts",
    "last_outside_session",
    "note_failure",
]

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

    __slots__ = ("counter", "prefix")

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self.prefix = "llm_" + os.urandom(6).hex()
        self.counter = itertools.count(1)


_ids = _CallIds()
_perf_counter: Final = time.perf_counter


def _ms(seconds: float) -> float:
    """Seconds as milliseconds to the microsecond (``round(x, 3)`` without its decimal code)."""
    return round(seconds * 1_000_000) / 1000


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
        "raw",
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
        self.started = _perf_counter()
        self.ctx = _context.current()
        self.call_id = f"{_ids.prefix}{next(_ids.counter):08x}"
        self.api = api
        self.name = name
        self.request = request
        model = request.get("model")
        # The model is written at the top level as given: made JSON-safe (and finite) here.
        self.model = model if model is None or type(model) is str else jsonable(model)
        self.capture_content = capture_content
        self.stream = stream
        self.first_token: float | None = None
        #: Each HTTP attempt as the hooks saw it: ``[sent]``, then ``[sent, answered, response]``.
        self.attempts: list[list[Any]] = []
        #: Made through ``with_raw_response``: the result is the response's ``parse()``.
        self.raw = False
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
        # Few functions from here to the write, on purpose: the audit runs once
        # per call, after a millisecond of SDK code has evicted it from the CPU's
        # caches, so each function it enters costs several times what it does
        # in a loop (docs/performance.md).
        try:
            ended = _perf_counter()
            request = self.request
            if not self.capture_content:
                request = scrub_request(request)
                if response is not None:
                    response = scrub_response(response)
            # Each part is redacted here, where its shape is known, and marked
            # Vetted: the record path then writes it without a second walk.
            pipeline = _config._STATE.pipeline or ensure_pipeline()
            redactor = pipeline.redactor
            model = self.model
            if redactor is None:
                redact = None
                name = self.name
            else:
                redact = redactor.redact_value
                name = None if self.name is None else redact(self.name)
                request = redact(request)
                if type(model) is str and model is request.get("model"):
                    model = request["model"]  # redacted with the request
                elif model is not None:
                    model = redact(model)
            if type(request) is not Vetted:
                request = Vetted(request)
            if usage is not None:
                usage = vet_usage(usage, redact)
            attempts = self.attempts
            # Its parts are Vetted (redacted and finite); the record itself is a
            # plain dict, so what the context adds to it is checked as usual.
            record: dict[str, Any] = {
                "timestamp": None,
                "level": None,
                "logger": _LOGGER,
                "event": "llm_call",
                "kind": "llm_call",
                "call_id": self.call_id,
                "name": name,
                "provider": "openai",
                "api": self.api,
                "model": model,
                "request": request,
                "response": None if response is None else vet_response(response, redact),
                "usage": usage,
                "latency_ms": _ms(ended - self.started),
                "stream": self.stream,
                "status": status,
                "error": None if error is None else vet_error(describe_error(error), redact),
                "attempts": VettedList(describe_attempts(attempts, error)) if attempts else None,
                "cost_usd": _cost(self.model, usage),
            }
            if self.stream:
                record["time_to_first_token_ms"] = (
                    None if self.first_token is None else _ms(self.first_token - self.started)
                )
            self._publish(record, "warning" if status == "error" else "info")
        except Exception as exc:  # noqa: BLE001 - the audit never breaks the caller
            note_failure("finishing a call record", exc)
            return None
        return record

    def _publish(self, record: dict[str, Any], level: str) -> None:
        """Write *record* in the call's own context and tell its session and task."""
        global _last_outside  # noqa: PLW0603 - the last call made outside sessions
        ctx = self.ctx
        token = None if _context.current() is ctx else _context.set_context(ctx)
        try:
            sink(record, level)
            run = ctx.session
            if run is None:
                _last_outside = record
            else:
                run.note_call(record)
            task = ctx.task
            if task is not None:
                task.note_call(record)
        finally:
            if token is not None:
                _context.reset(token)


#: Response headers an attempt keeps -> their names in it (rate limits go under "ratelimit").
_WANTED: Final = {
    b"x-request-id": "request_id",
    b"openai-processing-ms": "processing_ms",
    b"retry-after-ms": "retry_after_ms",
    b"retry-after": "retry_after",
    b"x-ratelimit-remaining-requests": "remaining_requests",
    b"x-ratelimit-remaining-tokens": "remaining_tokens",
    b"x-ratelimit-reset-requests": "reset_requests",
    b"x-ratelimit-reset-tokens": "reset_tokens",
}
_LIMIT_KEYS: Final = ("remaining_requests", "remaining_tokens", "reset_requests", "reset_tokens")


def describe_attempts(attempts: list[list[Any]], error: BaseException | None) -> list[Vetted]:
    """A record's ``attempts``, from what the hooks kept (``[sent, answered, response]`` each).

    An attempt sent without an HTTP response has no duration and names the
    call's error (``"no response"`` without one).
    """
    described: list[Vetted] = []
    for number, (sent, *answer) in enumerate(attempts, 1):
        # Vetted: status, timings and the server's own IDs and counters, written as they are.
        if not answer:
            described.append(
                Vetted(
                    attempt=number,
                    status_code=None,
                    duration_ms=None,
                    error="no response" if error is None else type(error).__name__,
                )
            )
            continue
        answered, response = answer
        attempt = Vetted(
            attempt=number,
            status_code=response.status_code,
            duration_ms=_ms(answered - sent),
        )
        try:
            _read_headers(attempt, response.headers)
        except Exception as exc:  # noqa: BLE001 - the audit never breaks the caller
            note_failure("reading an HTTP attempt's headers", exc)
        described.append(attempt)
    return described


def _read_headers(attempt: dict[str, Any], headers: Any) -> None:
    """Add the server's request ID, timing and rate-limit headers to *attempt*."""
    # One pass over httpx's (raw, lower-cased, value) triples, keeping only the
    # names wanted: httpx's own lookups scan and decode every header each time.
    triples = getattr(headers, "_list", None)
    if type(triples) is not list:  # not httpx's Headers: raw pairs, names in any case
        triples = [(name, name.lower(), value) for name, value in headers.raw]
    found: dict[str, bytes] = {}
    for _, name, value in triples:
        key = _WANTED.get(name)
        if key is not None:
            found[key] = value
    get = found.get
    request_id = get("request_id")
    attempt["request_id"] = None if request_id is None else request_id.decode("latin-1")
    processing = get("processing_ms")
    attempt["processing_ms"] = (
        None
        if processing is None
        else int(processing)
        if processing.isdigit()
        else processing.decode("latin-1")
    )
    retry_after = get("retry_after_ms") or get("retry_after")
    if retry_after is not None:
        attempt["retry_after"] = retry_after.decode("latin-1")
    limits = {key: found[key].decode("latin-1") for key in _LIMIT_KEYS if key in found}
    if limits:
        attempt["ratelimit"] = limits


#: The configured overrides (as given, then validated) and the prices looked up so far, by model.
_prices: tuple[object, Mapping[str, Price] | None, dict[str, Price | None]] = (object(), None, {})
_PRICES_MAX: Final = 1024
_UNKNOWN: Final = Price(input=-1.0)


def _cost(model: Any, usage: Mapping[str, Any] | None) -> float | None:
    """What a call cost in US dollars (configured, then built-in prices); None if unknown."""
    global _prices  # noqa: PLW0603 - one cache per process
    if not usage or type(model) is not str:
        return None
    config = _config._STATE.config
    given = None if config is None else config.prices
    known, overrides, book = _prices
    if known is not given:  # configured anew: validate once, forget what was looked up
        overrides = None if given is None else validate_prices(given)
        book = {}
        _prices = (given, overrides, book)
    price = book.get(model, _UNKNOWN)
    if price is _UNKNOWN:
        price = price_of(model, overrides)
        if len(book) < _PRICES_MAX:
            book[model] = price
    input_tokens = usage.get("input_tokens")
    if price is None or not isinstance(input_tokens, int):
        return None
    return price.cost(
        input_tokens, int(usage.get("output_tokens") or 0), int(usage.get("cached_tokens") or 0)
    )
