"""BELog records: one Blueprint Execution Log record per task.

`task(name, **fields)` is a decorator and a context manager (sync and async).
While it is open it is the context's `TaskObserver`: the record path tells it
about every error-level record and the audit about every LLM call made inside
it. When it closes it measures what can be measured — time, success, errors,
files changed, the APIs called, how this attempt compares with the past ones —
and writes one record of kind ``belog`` through the same record path as every
log record, then indexes it in the BELog store.
"""

from __future__ import annotations

import functools
import inspect
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, overload

from ..core import context as _context
from ..core import hooks as _hooks
from ..core import tracing as _tracing
from ..core.pipeline import format_timestamp
from ..core.state import redact_name
from . import measure as _measure
from .changes import _changed, _git_snapshot, _watch_snapshot
from .evidence import Observed
from .recording import (
    _connections,
    _count_failure,
    _latest_known,
    _past_attempts,
    _write,
    close_store,
    failure_counts,
    get_latest_blueprint_version,
)
from .scoring import percentile_score
from .watch import display_path

if TYPE_CHECKING:
    from ..core.session import Run
    from .store import BELogStore

__all__ = [
    "RISK_LEVELS",
    "Scorer",
    "Task",
    "close_store",
    "failure_counts",
    "get_latest_blueprint_version",
    "new_trace_id",
    "percentile_score",
    "task",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: Levels of ``potential_breakage_risk``, lowest first; ``unknown``: not assessed.
RISK_LEVELS = _measure.RISK_ORDER

#: ``scorer(execution_time, success, past_attempts) -> 0..100``; *past_attempts*
#: are the task's earlier BELog records, newest first, failed ones included.
Scorer = Callable[[float, bool, Sequence[Mapping[str, Any]]], float]

#: How many past attempts a new attempt is scored against.
HISTORY = 50

#: The clock execution times are measured with (tests replace it).
_clock = time.perf_counter


def new_trace_id(now: datetime | None = None) -> str:
    """A new execution trace ID: ``belog_YYYYmmddTHHMMSSZ_<12 hex>`` (UTC, sortable by time)."""
    now = now or datetime.now(UTC)
    return f"belog_{now:%Y%m%dT%H%M%S}Z_{secrets.token_hex(6)}"


# --- the task ----------------------------------------------------------------------

_FIELDS = frozenset(
    {
        "blueprint_id",
        "blueprint_version",
        "execution_context",
        "expected_outcome",
        "files_changed",
        "watch",
        "dependencies_affected",
        "pipeline_connections",
        "potential_breakage_risk",
        "cross_check_required",
        "improvement_suggestions",
        "scorer",
        "store",
        "history",
        "_run",  # set by Run.task: the run the task belongs to
    }
)


def _score(
    scorer: Scorer, elapsed: float, success: bool, past: Sequence[Mapping[str, Any]]
) -> float | None:
    """*scorer*'s score, or None for the default one (counted) when it fails or leaves 0..100."""
    try:
        score = float(scorer(elapsed, success, past))
    except Exception as exc:  # noqa: BLE001 - a user scorer must not break the task
        _count_failure("scorer", exc)
        return None
    if not 0.0 <= score <= 100.0:
        _count_failure("scorer", ValueError(f"scorer must return 0..100, got {score!r}"))
        return None
    return score


def _str_list(name: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Iterable):
        msg = f"{name} must be a list of strings, got {value!r}"
        raise TypeError(msg)
    return [os.fspath(v) if isinstance(v, os.PathLike) else str(v) for v in value]


def _check_risk(level: str) -> str:
    if level not in RISK_LEVELS:
        msg = f"risk level must be one of {', '.join(RISK_LEVELS)}, got {level!r}"
        raise ValueError(msg)
    return level


def _dedup(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


class Task:
    """One unit of work that leaves one BELog record; made by `task`.

    Use it as ``with``/``async with`` block (the block's value is the task)
    or as a decorator (each call is one attempt). Inside, `suggest`, `risk`,
    `cross_check`, `expect` and `changed` add to the record. After the block,
    `record` holds the record written.
    """

    def __init__(self, name: str, **fields: Any) -> None:
        if not isinstance(name, str) or not name.strip():
            msg = f"task name must be a non-empty string, got {name!r}"
            raise ValueError(msg)
        unknown = sorted(set(fields) - _FIELDS)
        if unknown:
            msg = (
                f"task() got unknown BELog field(s) {', '.join(map(repr, unknown))}; "
                f"expected some of {', '.join(sorted(_FIELDS))}"
            )
            raise TypeError(msg)
        self.name = name
        files = fields.get("files_changed")
        if isinstance(files, str) and files != "git":
            msg = f"files_changed must be a list of paths or 'git', got {files!r}"
            raise ValueError(msg)
        self._files_mode: Literal["git", "list"] = "git" if files == "git" else "list"
        self._files = [] if files == "git" else _str_list("files_changed", files)
        self._watch = [Path(p) for p in _str_list("watch", fields.get("watch"))]
        risk = fields.get("potential_breakage_risk") or "unknown"
        if not isinstance(risk, str | Mapping):
            msg = (
                "potential_breakage_risk must be a level or {'level': ..., 'reasons': [...]}, "
                f"got {risk!r}"
            )
            raise TypeError(msg)
        self._risk = _check_risk(risk if isinstance(risk, str) else risk.get("level", "unknown"))
        self._risk_reasons = (
            [] if isinstance(risk, str) else _str_list("reasons", risk.get("reasons"))
        )
        for key in ("blueprint_id", "blueprint_version", "execution_context", "expected_outcome"):
            if fields.get(key) is not None and not isinstance(fields[key], str):
                msg = f"{key} must be a string or None, got {fields[key]!r}"
                raise TypeError(msg)
        scorer = fields.get("scorer")
        if scorer is not None and not callable(scorer):
            msg = f"scorer must be callable(execution_time, success, past_attempts), got {scorer!r}"
            raise TypeError(msg)
        self._scorer: Scorer | None = scorer
        history = fields.get("history", HISTORY)
        if not isinstance(history, int) or history < 0:
            msg = f"history must be a non-negative int, got {history!r}"
            raise ValueError(msg)
        self._history = history
        self._store: BELogStore | str | os.PathLike[str] | None = fields.get("store")
        self._given: dict[str, Any] = {
            k: fields.get(k) for k in ("blueprint_id", "blueprint_version", "execution_context")
        }
        self._expected: str | None = fields.get("expected_outcome")
        self._deps = _str_list("dependencies_affected", fields.get("dependencies_affected"))
        self._connections = _str_list("pipeline_connections", fields.get("pipeline_connections"))
        self._cross = _str_list("cross_check_required", fields.get("cross_check_required"))
        self._suggestions = _str_list(
            "improvement_suggestions", fields.get("improvement_suggestions")
        )
        self._run: Run | None = fields.get("_run")
        self._created_in = self._run or _context.current_session()
        self._fields = fields
        self._lock = threading.Lock()
        self._running = False
        self.record: dict[str, Any] | None = None
        self._reset_state()

    def _reset_state(self) -> None:
        self.trace_id = ""
        self._at = 0.0
        self._errors: dict[str, None] = {}
        self._observed = Observed()
        self._watch_token: int | None = None
        self._stage: str | None = None
        self._added_files: list[str] = []
        self._added_suggestions: list[str] = []
        self._added_cross: list[str] = []
        self._added_reasons: list[str] = []
        self._level = self._risk
        self._expected_now = self._expected
        self._closed = False
        self._span: _tracing.SpanHandle | None = None

    def _fresh(self) -> Task:
        return Task(self.name, **self._fields)

    def __repr__(self) -> str:
        return f"Task({self.name!r}, trace_id={self.trace_id or None!r})"

    # --- what the record path and the user tell it ------------------------------

    def note_error(self, event_dict: Mapping[str, Any]) -> None:
        """Record an error-level record logged inside the task (called by the record path)."""
        if self._closed:
            return
        text = str(event_dict.get("event", ""))
        error = event_dict.get("error")
        if isinstance(error, Mapping):
            detail = ": ".join(str(error[k]) for k in ("type", "message") if error.get(k))
            text = f"{text}: {detail}" if detail else text
        elif isinstance(error, str) and error:
            text = f"{text}: {error}"
        exc = event_dict.get("exception")
        if isinstance(exc, str) and exc.strip():
            text = f"{text} ({exc.strip().splitlines()[-1]})"
        self._errors[text] = None

    def note_call(self, record: Mapping[str, Any]) -> None:
        """Record an audited LLM call made inside the task (called by the audit)."""
        if self._closed:
            return
        self._observed.calls.append(record)

    def note_record(self, event_dict: Mapping[str, Any]) -> None:
        """Take the hosts, services and files a record logged inside names (the record path)."""
        if not self._closed:
            self._observed.note_record(event_dict, str(event_dict.get("logger", "")))

    def suggest(self, text: str) -> None:
        """Add an improvement suggestion for the next attempt."""
        self._added_suggestions.append(str(text))

    def risk(self, level: str, reason: str) -> None:
        """Raise the potential breakage risk to *level* (one of `RISK_LEVELS`) and say why.

        Raises:
            ValueError: *level* is not one of `RISK_LEVELS`.
        """
        level = _check_risk(level)
        if RISK_LEVELS.index(level) > RISK_LEVELS.index(self._level):
            self._level = level
        self._added_reasons.append(str(reason))

    def cross_check(self, text: str) -> None:
        """Ask for a cross-check of something this task did (``cross_check_required``)."""
        self._added_cross.append(str(text))

    def expect(self, outcome: str) -> None:
        """Set (or replace) the expected outcome of the task."""
        self._expected_now = str(outcome)

    def changed(self, *paths: str | os.PathLike[str]) -> None:
        """Add paths to ``files_changed`` by hand (on top of any measured ones)."""
        self._added_files.extend(os.fspath(p) for p in paths)

    # --- entering and leaving -------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._running:
                msg = (
                    f"task {self.name!r} is already running; open a new belog.task(...) "
                    "for a concurrent attempt"
                )
                raise RuntimeError(msg)
            self._running = True
        # The name goes into the record, the store's index and the summary.
        self.name = redact_name(self.name)
        self._reset_state()
        self._session = self._run or _context.current_session()
        if self._session is None:
            from ..core.pipeline import fallback_session

            self._session = fallback_session()[0] or self._created_in
        self.trace_id = new_trace_id()
        self._stage = _context.current().stage
        self._before = self._snapshot()
        self._watcher = None
        try:
            self._watcher = _measure.file_watcher()
            if self._watcher is not None:
                self._watch_token = self._watcher.begin()
        except Exception as exc:  # noqa: BLE001 - measuring never fails the task
            _count_failure("files", exc)
        if self._run is not None:
            self._token = _context.push(session=self._run, task=self)
        else:
            self._token = _context.push(task=self)
        self._span = _tracing.start_task(self)
        self._t0 = _clock()

    def _finish(self, exc: BaseException | None) -> None:
        elapsed = _clock() - self._t0
        try:
            if exc is not None:
                self._errors[f"{type(exc).__name__}: {exc}".rstrip(": ")] = None
            self._closed = True
            self.record = self._build(elapsed, exc is None)
            _write(self.record, self._store, self._at)
        except Exception as err:  # noqa: BLE001 - never raise into the app's task
            _count_failure("record", err)
        finally:
            _tracing.end(self._span, exc)
            self._span = None
            _context.reset(self._token)
            with self._lock:
                self._running = False

    def _snapshot(self) -> dict[str, str] | None:
        try:
            if self._files_mode == "git":
                return _git_snapshot()
            if self._watch:
                return _watch_snapshot(self._watch)
        except (OSError, subprocess.SubprocessError) as exc:
            _count_failure("files", exc)
        return None

    def _files_changed(self) -> list[str]:
        files = list(self._files)
        if self._before is not None:
            after = self._snapshot()
            if after is not None:
                files += _changed(self._before, after)
        if self._watcher is not None and self._watch_token is not None:
            try:
                files += self._watcher.end(self._watch_token)
            except Exception as exc:  # noqa: BLE001 - measuring never fails the task
                _count_failure("files", exc)
        cwd = os.getcwd()
        outputs = [display_path(p, cwd) for p in self._observed.outputs]
        return _dedup(files + outputs + self._added_files)

    def _build(self, elapsed: float, success: bool) -> dict[str, Any]:
        session = self._session
        given = self._given

        def inherited(key: str) -> Any:
            if given[key] is not None:
                return given[key]
            return None if session is None else getattr(session, key, None)

        past = _past_attempts(self.name, self._history, self._store)
        blueprint = inherited("blueprint_id")
        self._at = time.time()
        record: dict[str, Any] = {
            "timestamp": format_timestamp(self._at),
            "blueprint_id": inherited("blueprint_id"),
            "blueprint_version": inherited("blueprint_version"),
            "execution_context": inherited("execution_context"),
            "task_name": self.name,
            "expected_outcome": self._expected_now,
            "execution_time": round(elapsed, 6),
            "files_changed": self._files_changed(),
            "dependencies_affected": list(self._deps),
            "pipeline_connections": list(self._connections),
            "errors_encountered": list(self._errors),
            "success": success,
            "efficiency_score": None,
            "potential_breakage_risk": None,
            "cross_check_required": [],
            "execution_trace_id": self.trace_id,
            "previous_attempts": [
                str(a["execution_trace_id"]) for a in past if a.get("execution_trace_id")
            ],
            "improvement_suggestions": [],
            "session_id": None if session is None else session.id,
            "stage": self._stage,
        }
        _measure.complete(
            record,
            observed=self._observed,
            past=past,
            index=_connections(self._store, blueprint),
            given_level=self._level,
            given_reasons=[*self._risk_reasons, *self._added_reasons],
            given_checks=[*self._cross, *self._added_cross],
            given_suggestions=[*self._suggestions, *self._added_suggestions],
            scored=None if self._scorer is None else _score(self._scorer, elapsed, success, past),
        )
        return record

    def __enter__(self) -> Task:
        self._start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finish(exc)

    async def __aenter__(self) -> Task:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finish(exc)

    # --- decorator -----------------------------------------------------------------------

    @overload
    def __call__(self, fn: Callable[_P, Awaitable[_R]]) -> Callable[_P, Awaitable[_R]]: ...

    @overload
    def __call__(self, fn: Callable[_P, _R]) -> Callable[_P, _R]: ...

    def __call__(self, fn: Callable[_P, Any]) -> Callable[_P, Any]:
        """Decorate *fn* (sync or async): every call is one attempt with its own record."""
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Any:
                async with self._fresh():
                    return await fn(*args, **kwargs)

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Any:
            with self._fresh():
                return fn(*args, **kwargs)

        return wrapper


@overload
def task(name: str, /, **fields: Any) -> Task: ...


@overload
def task(name: Callable[_P, _R], /) -> Callable[_P, _R]: ...


def task(name: str | Callable[..., Any], /, **fields: Any) -> Any:
    """Open a BELog task: a context manager (sync and async) and a decorator.

    ``with belog.task("Generate supertask", expected_outcome="valid JSON") as t:``
    writes one BELog record when the block ends, whether it succeeds or raises
    (the exception propagates). ``@belog.task("name")`` or bare ``@belog.task``
    writes one record per call.

    Args:
        name: The task's name; attempts of one task share it.
        blueprint_id, blueprint_version, execution_context: Default to the
            current session's.
        expected_outcome: What success looks like (also `Task.expect`).
        files_changed: A list of paths, or ``"git"`` to record the paths the
            working tree changed between start and end.
        watch: Paths (files or folders) whose content hashes are compared
            before and after; the ones that changed go to ``files_changed``.
        dependencies_affected, pipeline_connections, cross_check_required,
        improvement_suggestions: Lists of strings, added to during the task.
        potential_breakage_risk: A level from `RISK_LEVELS`, or
            ``{"level": ..., "reasons": [...]}``.
        scorer: Replaces the default score (`scoring.efficiency_score`):
            ``scorer(execution_time, success, past_attempts) -> 0..100``.
        store: The store to read history from and index into (a `BELogStore`
            or an `open_store` location); default the store in ``log_dir``.
        history: How many past attempts to score against (default 50).

    Raises:
        TypeError: an unknown field or a field of the wrong type.
        ValueError: an empty name, an unknown risk level, a bad ``files_changed``.
    """
    if callable(name) and not isinstance(name, str):
        return Task(getattr(name, "__qualname__", repr(name)), **fields)(name)
    return Task(name, **fields)


_hooks.register(make_task=task, latest_version=_latest_known)
