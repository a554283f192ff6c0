"""What a BELog record says beyond what was given: dependencies, connections, risk, suggestions.

Everything here is derived from evidence the task observed — its LLM calls,
the HTTP client libraries' own log records, the inputs and outputs it
declared, the files it changed — and from the records of earlier attempts
and other tasks. Each derived text names the figure or the record it rests on,
so a reader (or an agent) can check it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from .scoring import TIME_FLOOR_S, Baseline, baseline, is_empty_answer
from .watch import display_path

__all__ = [
    "HTTP_LOGGERS",
    "REGRESSION_FACTOR",
    "ConnectionIndex",
    "Observed",
    "assess_risk",
    "derive_suggestions",
    "normal_error",
]

#: Loggers of HTTP client libraries whose records name the hosts contacted.
HTTP_LOGGERS: Final = frozenset(
    {
        "httpx",
        "httpcore",
        "urllib3.connectionpool",
        "requests",
        "aiohttp.client",
        "openai._base_client",
    }
)
#: A figure this many times its median is a regression (a suggestion, a risk reason).
REGRESSION_FACTOR: Final = 1.5
#: Token or cost growth worth a suggestion.
GROWTH_FACTOR: Final = 1.25
#: How many past attempts the failure history is read from.
RECENT: Final = 10

#: Record fields that name a service or database the task used.
_SERVICE_KEYS: Final = ("database", "db", "service", "collection", "table", "queue", "bucket")
_URL_KEYS: Final = ("url", "endpoint", "base_url", "dsn", "database_url")
_NAMING_KEYS: Final = frozenset((*_SERVICE_KEYS, *_URL_KEYS))
_URL: Final = re.compile(r"\b([a-z][a-z0-9+.-]*)://([^\s/\"'?#]+)", re.IGNORECASE)
_CONNECTION: Final = re.compile(r"connection \(\d+\): ([^\s:/]+)(?::(\d+))?", re.IGNORECASE)
_NUMBER: Final = re.compile(r"\b0x[0-9a-f]+\b|\b[0-9a-f]{8,}\b|\d+(?:\.\d+)?", re.IGNORECASE)


def normal_error(text: str) -> str:
    """*text* with numbers and hex IDs blanked and case folded, to spot the same error."""
    return _NUMBER.sub("#", " ".join(text.split())).casefold()


def _host(netloc: str) -> str:
    return netloc.rsplit("@", 1)[-1].casefold()  # never keep credentials


def _url_name(value: str) -> str | None:
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if not parts.scheme or not (parts.netloc or parts.path):
        return None
    host = _host(parts.netloc)
    if parts.scheme in {"http", "https", "ws", "wss"}:
        return f"http:{host}" if host else None
    return f"{parts.scheme}:{host}{parts.path}" if host else f"{parts.scheme}:{parts.path}"


@dataclass(slots=True)
class Observed:
    """What a task saw while it ran (filled by the record path, the audit and the run)."""

    calls: list[Mapping[str, Any]] = field(default_factory=list)
    inputs: dict[str, int | None] = field(default_factory=dict)
    outputs: dict[str, int | None] = field(default_factory=dict)
    services: dict[str, None] = field(default_factory=dict)

    def note_record(self, ed: Mapping[str, Any], logger: str) -> None:
        """Take the hosts, services and files a log record names."""
        kind = ed.get("kind")
        if kind in {"input", "output"}:
            path = ed.get("path")
            if isinstance(path, str):
                size = ed.get("size")
                target = self.inputs if kind == "input" else self.outputs
                target[path] = size if isinstance(size, int) else None
            return
        if kind is not None or logger.startswith("structlog_belog"):
            return
        if logger in HTTP_LOGGERS:
            text = str(ed.get("event", ""))
            for _scheme, netloc in _URL.findall(text):
                self.services[f"http:{_host(netloc)}"] = None
            for host, port in _CONNECTION.findall(text):
                self.services[f"http:{host.casefold()}{':' + port if port else ''}"] = None
            return
        if _NAMING_KEYS.isdisjoint(ed):
            return  # most records name nothing: one pass over their keys
        for key in _SERVICE_KEYS:
            value = ed.get(key)
            if isinstance(value, str) and value and len(value) <= 200:
                self.services[f"{key}:{value}"] = None
        for key in _URL_KEYS:
            value = ed.get(key)
            if isinstance(value, str) and "://" in value:
                name = _url_name(value)
                if name:
                    self.services[name] = None

    def dependencies(self, display: Any) -> list[str]:
        """``openai:<model>`` per model called, hosts and services named, ``file:<path>`` read."""
        deps: dict[str, None] = {}
        for call in self.calls:
            model = call.get("model")
            provider = call.get("provider") or "openai"
            deps[f"{provider}:{model}" if model else str(provider)] = None
            host = call.get("host") or call.get("server_address")
            if isinstance(host, str) and host:
                deps[f"http:{host}"] = None
        deps.update(self.services)
        for path in self.inputs:
            deps[f"file:{display(path)}"] = None
        return list(deps)


# --- connections --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Use:
    trace: str
    task: str
    stage: str | None
    session: str | None
    seq: int = 0  # the order records were indexed in: pipeline order within a run


class ConnectionIndex:
    """Which tasks wrote and read which files, over the records seen (this process and loaded)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._writers: dict[str, dict[str, _Use]] = {}
        self._readers: dict[str, dict[str, _Use]] = {}
        self.loaded: set[str] = set()
        self._count = 0

    def add(self, record: Mapping[str, Any]) -> None:
        """Index the files *record* wrote (``files_changed``) and read (``file:`` dependencies)."""
        task = record.get("task_name")
        trace = record.get("execution_trace_id")
        if not isinstance(task, str) or not isinstance(trace, str):
            return
        stage = record.get("stage")
        with self._lock:
            self._count += 1
            use = _Use(
                trace,
                task,
                stage if isinstance(stage, str) else None,
                record.get("session_id"),
                self._count,
            )
            for path in _strings(record.get("files_changed")):
                self._writers.setdefault(path, {})[task] = use
            for dep in _strings(record.get("dependencies_affected")):
                if dep.startswith("file:"):
                    self._readers.setdefault(dep[5:], {})[task] = use

    def add_many(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Index many records, oldest first."""
        for record in records:
            self.add(record)

    def readers(self, paths: Iterable[str], task: str) -> list[tuple[str, _Use]]:
        """(path, use) for every other task that read one of *paths*, in pipeline order."""
        with self._lock:
            found = [
                (p, use)
                for p in paths
                for name, use in self._readers.get(p, {}).items()
                if name != task
            ]
        return sorted(found, key=lambda pu: pu[1].seq)

    def writers(self, paths: Iterable[str], task: str) -> list[tuple[str, _Use]]:
        """(path, use) for every other task that wrote one of *paths*."""
        with self._lock:
            return [
                (p, use)
                for p in paths
                for name, use in self._writers.get(p, {}).items()
                if name != task
            ]


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _where(use: _Use) -> str:
    stage = f" in stage {use.stage!r}" if use.stage else ""
    return f"task {use.task!r}{stage}"


def connections(
    downstream: Sequence[tuple[str, _Use]], upstream: Sequence[tuple[str, _Use]]
) -> list[str]:
    """The ``pipeline_connections`` lines: who reads what this wrote, who wrote what it read."""
    lines = [f"downstream: {_where(u)} reads {p} ({u.trace})" for p, u in downstream]
    lines += [f"upstream: {_where(u)} wrote {p} ({u.trace})" for p, u in upstream]
    return list(dict.fromkeys(lines))


# --- risk ---------------------------------------------------------------------------


def assess_risk(
    *,
    success: bool,
    errors: Sequence[str],
    files_changed: Sequence[str],
    downstream: Sequence[tuple[str, _Use]],
    past: Sequence[Mapping[str, Any]],
    regressions: Sequence[str],
) -> tuple[str, list[str], list[str]]:
    """(level, reasons, cross-checks) from the evidence; level ``unknown`` when there is none.

    Downstream readers of a changed file make it ``medium`` (``high`` when this
    attempt failed); past failures ``low`` (``medium`` when half or more of
    the last `RECENT` failed, at least 2); a regression or this attempt's
    failure ``low``. With past attempts to judge by and none of these, ``none``.
    """
    levels = ["unknown"]
    reasons: list[str] = []
    checks: list[str] = []
    if downstream:
        levels.append("medium" if success else "high")
        tasks = sorted({u.task for _, u in downstream})
        reasons.append(
            f"{len({p for p, _ in downstream})} changed file(s) are read by "
            f"{len(tasks)} downstream task(s): {', '.join(map(repr, tasks))}"
            + ("" if success else ", and this attempt failed")
        )
        checks += [f"{_where(u)}: reads {p}, which this task changed" for p, u in downstream]
    recent = list(past[:RECENT])
    failed = [a for a in recent if a.get("success") is not True]
    if failed:
        levels.append("medium" if len(failed) >= 2 and 2 * len(failed) >= len(recent) else "low")
        reasons.append(
            f"{len(failed)} of its last {len(recent)} attempts failed "
            f"(latest {failed[0].get('execution_trace_id')})"
        )
    if not success:
        levels.append("low")
        reasons.append("this attempt failed" + (f": {errors[-1]}" if errors else ""))
    if regressions:
        levels.append("low")
        reasons += regressions
    if len(levels) == 1 and recent:
        levels.append("none")
        reasons.append(
            f"assessed: no downstream reader of its {len(files_changed)} changed file(s), "
            f"none of its last {len(recent)} attempts failed, no regression"
        )
    order = ("unknown", "none", "low", "medium", "high")
    return max(levels, key=order.index), reasons, list(dict.fromkeys(checks))


# --- suggestions ----------------------------------------------------------------------


def _times(value: float) -> str:
    return f"{value:.1f}x"


def regressions(
    record: Mapping[str, Any], past: Sequence[Mapping[str, Any]], base: Baseline | None = None
) -> list[str]:
    """Figures of *record* at least `REGRESSION_FACTOR` times the median of past successes."""
    base = baseline(past) if base is None else base
    if not base.attempts:
        return []
    out = []
    took = float(record.get("execution_time") or 0.0)
    median = base.get("time")
    if median and took >= REGRESSION_FACTOR * median and took - median > TIME_FLOOR_S:
        out.append(
            f"took {took:.3g} s, {_times(took / median)} the median {median:.3g} s "
            f"of its {base.attempts} past successful attempts"
        )
    metrics = record.get("metrics") or {}
    tokens, median_tokens = metrics.get("tokens"), base.get("tokens")
    if tokens and median_tokens and tokens >= GROWTH_FACTOR * median_tokens:
        out.append(
            f"used {tokens} tokens, {_times(tokens / median_tokens)} the median "
            f"{median_tokens:.0f} of its {base.attempts} past successful attempts"
        )
    cost, median_cost = metrics.get("cost_usd"), base.get("cost")
    if cost and median_cost and cost >= GROWTH_FACTOR * median_cost:
        out.append(
            f"cost ${cost:.4g}, {_times(cost / median_cost)} the median ${median_cost:.4g} "
            f"of its {base.attempts} past successful attempts"
        )
    return out


def derive_suggestions(
    record: Mapping[str, Any],
    past: Sequence[Mapping[str, Any]],
    observed: Observed,
    growth: Sequence[str],
) -> list[str]:
    """Concrete suggestions from the evidence, each naming the figure behind it."""
    out: list[str] = []
    metrics = record.get("metrics") or {}
    calls = metrics.get("llm_calls") or 0
    limited = metrics.get("rate_limited") or 0
    retried = (metrics.get("retries") or 0) - limited
    if limited:
        out.append(
            f"{limited} request(s) were rate-limited (HTTP 429) across {calls} LLM call(s): "
            "pace the calls (a client-side limit, batching) or raise the quota"
        )
    if retried > 0:
        out.append(
            f"{retried} request(s) were retried after errors across {calls} LLM call(s): "
            "check the provider's status, the timeout and the request size"
        )
    for text in growth:
        if text.startswith("took"):
            out.append(f"It {text}: find what slowed it down")
        elif text.startswith("used"):
            out.append(f"It {text}: trim the prompt or cache shared context")
        else:
            out.append(f"It {text}: check the model choice and the prompt size")
    out += _repeated_errors(record, past)
    for path, size in observed.outputs.items():
        if size == 0:
            shown = display_path(path)
            out.append(f"output {shown} is empty (0 bytes): check what the task wrote")
    empty = [c.get("call_id") for c in observed.calls if _empty(c)]
    if empty:
        out.append(
            f"{len(empty)} LLM call(s) returned no text ({', '.join(map(str, empty))}): "
            "check max_tokens, stop sequences and the prompt"
        )
    return out


def _empty(call: Mapping[str, Any]) -> bool:
    return is_empty_answer(call)


def _repeated_errors(record: Mapping[str, Any], past: Sequence[Mapping[str, Any]]) -> list[str]:
    out = []
    recent = list(past[:RECENT])
    for error in _strings(record.get("errors_encountered")):
        key = normal_error(error)
        seen = [
            a
            for a in recent
            if any(normal_error(e) == key for e in _strings(a.get("errors_encountered")))
        ]
        if seen:
            traces = ", ".join(str(a.get("execution_trace_id")) for a in seen[:3])
            out.append(
                f"the error {error!r} also occurred in {len(seen)} of its last {len(recent)} "
                f"attempts ({traces}): fix its cause before retrying"
            )
    return out
