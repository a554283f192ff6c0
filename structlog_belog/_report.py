"""SessionReport: everything the package says about a run, from one streaming pass.

`scan_session` reads a session folder once. Each stream's process shards are
merged by timestamp (k-way), every record is parsed once, handed to an optional
sink (the package writer) and folded into a `ReportBuilder`, which keeps only
counters and bounded lists, so memory stays flat however large the session.
"""

from __future__ import annotations

import heapq
import math
import os
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, Final

import orjson

from ._reader import MAX_LINE_BYTES, session_files

__all__ = ["ReportBuilder", "SessionReport", "Sink", "scan_session"]

METADATA_SCHEMA_VERSION: Final = "1.0"

_ERROR_LEVELS: Final = frozenset(("error", "critical"))
_LIFECYCLE: Final = frozenset(
    ("session_start", "session_end", "stage_start", "stage_end", "input", "output", "content", "metric")
)
_MAX_GROUPS: Final = 200  # distinct error groups kept; the rest are counted as "other"
_MAX_LIST: Final = 1000  # inputs, outputs, contents, BELog rows kept for the summary
_MAX_EXAMPLES: Final = 20  # call IDs listed per issue
_SLOW_FACTOR: Final = 3.0
_BURST_COUNT: Final = 5  # error records ...
_BURST_WINDOW_S: Final = 10.0  # ... within this many seconds make a burst
_FLUSH_LINES: Final = 4096
_SESSION_START_KEYS: Final = frozenset(
    (
        "timestamp", "level", "logger", "event", "session_id", "kind", "stage", "task", "pid",
        "title", "execution_context", "blueprint_id", "blueprint_version", "parent_session_id",
        "host", "python", "belog_version", "trace_id", "span_id", "attributed",
    )
)  # fmt: skip

#: Writes one stream's lines (each ending in a newline) in order.
Sink = Callable[[str, list[bytes]], None]


@dataclass(slots=True)
class _Stage:
    name: str
    parent: str | None
    start: str | None
    end: str | None = None
    duration_s: float | None = None
    success: bool | None = None
    error: str | None = None


@dataclass(slots=True)
class _ErrorGroup:
    logger: str
    event: str
    count: int
    first_seen: str | None
    stage: str | None
    exception: str | None


@dataclass(slots=True)
class _Burst:
    start: str
    end: str
    count: int


@dataclass(frozen=True, slots=True)
class SessionReport:
    """What one session did, as the finalizer saw it in its logs.

    Rendered twice: as ``metadata.json`` (`to_metadata`) and as the execution
    summary (the template receives ``report`` and ``metadata``).
    """

    session_id: str
    title: str
    ended: bool
    success: bool
    start_time: str | None
    end_time: str | None
    duration_seconds: float | None
    session: dict[str, Any]
    stages: list[dict[str, Any]]
    inputs: list[str]
    outputs: list[dict[str, Any]]
    contents: list[dict[str, Any]]
    metrics: dict[str, Any]
    ai_usage: dict[str, Any]
    errors: list[dict[str, Any]]
    belog_tasks: list[dict[str, Any]]
    belog_summary: dict[str, int]
    records: dict[str, Any]
    issues: list[dict[str, Any]]
    exception: str | None
    prompts_behind: dict[str, dict[str, Any]] = field(repr=False)

    def to_metadata(self) -> dict[str, Any]:
        """The ``metadata.json`` document (DESIGN §4, schema ``metadata.schema.json``)."""
        s = self.session
        models = self.ai_usage["by_model"]
        return {
            "metadata_version": METADATA_SCHEMA_VERSION,
            "session_id": self.session_id,
            "title": self.title,
            "execution_context": s.get("execution_context"),
            "blueprint_id": s.get("blueprint_id"),
            "blueprint_version": s.get("blueprint_version"),
            "parent_session_id": s.get("parent_session_id"),
            "execution": {
                "start_time": self.start_time,
                "end_time": self.end_time,
                "duration_seconds": self.duration_seconds,
                "stages_executed": [st["name"] for st in self.stages],
                "stages": self.stages,
                "success": self.success,
                "ended": self.ended,
                "exception": self.exception,
            },
            "content": {
                "input_files": self.inputs,
                "output_files": [o["path"] for o in self.outputs],
                "copied": self.contents,
                "schema_version": s.get("schema_version"),
            },
            "ai_usage": {
                "total_api_calls": self.ai_usage["total_api_calls"],
                "total_tokens": self.ai_usage["total_tokens"],
                "input_tokens": self.ai_usage["input_tokens"],
                "output_tokens": self.ai_usage["output_tokens"],
                "cached_tokens": self.ai_usage["cached_tokens"],
                "reasoning_tokens": self.ai_usage["reasoning_tokens"],
                "model": max(models, key=lambda m: models[m]["calls"]) if models else None,
                "success_rate": self.ai_usage["success_rate"],
                "failed_calls": self.ai_usage["failed_calls"],
                "retries": self.ai_usage["retries"],
                "cost_usd": self.ai_usage["cost_usd"],
                "by_model": models,
            },
            "quality_metrics": self.metrics,
            "outputs": self.outputs,
            "issues_detected": self.issues,
            "records": self.records,
            "belog_tasks": self.belog_summary,
            "belog": {
                "version": s.get("belog_version"),
                "host": s.get("host"),
                "python": s.get("python"),
                "pid": s.get("pid"),
            },
        }


def _num(value: Any) -> float:
    return value if type(value) in (int, float) else 0  # type: ignore[no-any-return]


def _epoch(ts: Any) -> float | None:
    if not isinstance(ts, str):
        return None
    try:
        return datetime.fromisoformat(ts).timestamp()
    except ValueError:
        return None


def _text(value: Any, limit: int = 300) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        if isinstance(value, list):
            parts = [p.get("text", "") if isinstance(p, dict) else str(p) for p in value]
            value = " ".join(str(p) for p in parts)
        else:
            value = str(value)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _last_prompt(request: Any) -> str:
    """The last user message (or input) of a request, shortened."""
    if not isinstance(request, dict):
        return ""
    messages = request.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return _text(message.get("content"))
        return _text(messages[-1].get("content")) if messages and isinstance(messages[-1], dict) else ""
    return _text(request.get("input"))


class ReportBuilder:
    """Folds records into counters and bounded lists; `build` makes the report."""

    def __init__(self, session_id: str, title: str | None = None) -> None:
        self.session_id = session_id
        self.title = title
        self.level_stage: dict[tuple[Any, Any], int] = {}
        self.first_ts: str | None = None
        self.last_ts: str | None = None
        self.start: dict[str, Any] | None = None
        self.end: dict[str, Any] | None = None
        self.stages: list[_Stage] = []
        self.open_stages: dict[str, _Stage] = {}
        self.inputs: dict[str, None] = {}
        self.outputs: dict[str, list[str]] = {}
        self.contents: list[dict[str, Any]] = []
        self.metrics: dict[str, Any] = {}
        self.error_groups: dict[tuple[str, str], _ErrorGroup] = {}
        self.other_errors = 0
        self.recent_errors: deque[float] = deque(maxlen=_BURST_COUNT)
        self.bursts: list[_Burst] = []
        self.in_burst = False
        self.corrupt: list[tuple[str, int]] = []
        self.corrupt_count = 0
        # LLM calls
        self.calls = 0
        self.failed_calls = 0
        self.by_model: dict[str, dict[str, Any]] = {}
        self.tokens = {"input": 0, "output": 0, "total": 0, "cached": 0, "reasoning": 0}
        self.cost = 0.0
        self.retries = 0
        self.rate_limited: list[str] = []
        self.rate_limited_count = 0
        self.truncated: list[str] = []
        self.truncated_count = 0
        self.empty: list[str] = []
        self.empty_count = 0
        self.latencies = array("d")
        self.slowest: list[tuple[float, str]] = []  # min-heap of the slowest calls
        self.error_types: dict[str, int] = {}
        self.call_outputs: dict[str, list[str]] = {}
        self.prompts_behind: dict[str, dict[str, Any]] = {}
        # BELog
        self.belog_rows: list[dict[str, Any]] = []
        self.belog_counts = {"total": 0, "succeeded": 0, "failed": 0}

    # -- processing.jsonl ------------------------------------------------------

    def corrupt_line(self, source: str, number: int) -> None:
        """Count one unparseable line (file name and line number)."""
        self.corrupt_count += 1
        if len(self.corrupt) < _MAX_EXAMPLES:
            self.corrupt.append((source, number))

    def special(self, kind: str, rec: dict[str, Any]) -> None:
        """Fold one lifecycle record (session/stage start and end, input, output, ...)."""
        if kind == "stage_start":
            name = str(rec.get("stage"))
            st = _Stage(name, rec.get("parent_stage"), rec.get("timestamp"))
            self.stages.append(st)
            self.open_stages[name] = st
        elif kind == "stage_end":
            name = str(rec.get("stage"))
            st_or_none = self.open_stages.pop(name, None)
            if st_or_none is None:
                st_or_none = _Stage(name, rec.get("parent_stage"), None)
                self.stages.append(st_or_none)
            st_or_none.end = rec.get("timestamp")
            st_or_none.duration_s = rec.get("duration_s")
            st_or_none.success = bool(rec.get("success", True))
            st_or_none.error = rec.get("error")
        elif kind == "output":
            path = str(rec.get("path"))
            ids = self.outputs.get(path)
            if ids is None:
                if len(self.outputs) >= _MAX_LIST:
                    return
                ids = self.outputs[path] = []
            for cid in rec.get("call_ids") or ():
                cid = str(cid)
                if cid not in ids:
                    ids.append(cid)
                    self.call_outputs.setdefault(cid, []).append(path)
        elif kind == "input":
            if len(self.inputs) < _MAX_LIST:
                self.inputs[str(rec.get("path"))] = None
        elif kind == "content":
            if len(self.contents) < _MAX_LIST:
                self.contents.append({"path": rec.get("path"), "as_name": rec.get("as_name")})
        elif kind == "metric":
            self.metrics[str(rec.get("name"))] = rec.get("value")
        elif kind == "session_start":
            if self.start is None:
                self.start = {k: v for k, v in rec.items() if k != "kind"}
        elif kind == "session_end":
            self.end = rec

    def error(self, rec: dict[str, Any], ts: str) -> None:
        """Fold one error-level record into its group and the burst detector."""
        logger = str(rec.get("logger"))
        event = _text(rec.get("event"), 200)
        key = (logger, event)
        group = self.error_groups.get(key)
        if group is not None:
            group.count += 1
        elif len(self.error_groups) < _MAX_GROUPS:
            exc = rec.get("exception")
            last_line = exc.strip().rsplit("\n", 1)[-1] if isinstance(exc, str) else None
            self.error_groups[key] = _ErrorGroup(logger, event, 1, ts, rec.get("stage"), last_line)
        else:
            self.other_errors += 1
        t = _epoch(ts)
        if t is None:
            return
        recent = self.recent_errors
        recent.append(t)
        if len(recent) == _BURST_COUNT and t - recent[0] <= _BURST_WINDOW_S:
            if self.in_burst:
                self.bursts[-1].end = ts
                self.bursts[-1].count += 1
            elif len(self.bursts) < _MAX_EXAMPLES:
                self.bursts.append(_Burst(ts, ts, _BURST_COUNT))
                self.in_burst = True
        else:
            self.in_burst = False

    # -- prompts.jsonl ---------------------------------------------------------

    def call(self, rec: dict[str, Any]) -> None:
        """Fold one full ``llm_call`` record."""
        self.calls += 1
        call_id = str(rec.get("call_id"))
        model = str(rec.get("model") or (rec.get("request") or {}).get("model") or "unknown")
        m = self.by_model.get(model)
        if m is None:
            m = self.by_model[model] = {
                "calls": 0, "failed_calls": 0, "input_tokens": 0, "output_tokens": 0,
                "total_tokens": 0, "cost_usd": 0.0, "latency_ms_total": 0.0,
            }  # fmt: skip
        m["calls"] += 1
        usage = rec.get("usage")
        if isinstance(usage, dict):
            inp, out = _num(usage.get("input_tokens")), _num(usage.get("output_tokens"))
            total = _num(usage.get("total_tokens")) or inp + out
            self.tokens["input"] += inp
            self.tokens["output"] += out
            self.tokens["total"] += total
            self.tokens["cached"] += _num(usage.get("cached_tokens"))
            self.tokens["reasoning"] += _num(usage.get("reasoning_tokens"))
            m["input_tokens"] += inp
            m["output_tokens"] += out
            m["total_tokens"] += total
        cost = _num(rec.get("cost_usd"))
        self.cost += cost
        m["cost_usd"] += cost
        latency = rec.get("latency_ms")
        if type(latency) in (int, float):
            m["latency_ms_total"] += latency
            self.latencies.append(latency)
            entry = (float(latency), call_id)
            if len(self.slowest) < _MAX_EXAMPLES:
                heapq.heappush(self.slowest, entry)
            elif entry > self.slowest[0]:
                heapq.heapreplace(self.slowest, entry)
        status = rec.get("status")
        error = rec.get("error")
        if status == "error":
            self.failed_calls += 1
            m["failed_calls"] += 1
            etype = str(error.get("type")) if isinstance(error, dict) else "error"
            self.error_types[etype] = self.error_types.get(etype, 0) + 1
        attempts = rec.get("attempts")
        statuses: list[Any] = []
        if isinstance(attempts, list):
            self.retries += max(0, len(attempts) - 1)
            statuses = [a.get("status") for a in attempts if isinstance(a, dict)]
        if isinstance(error, dict):
            statuses.append(error.get("status_code"))
        if 429 in statuses:
            self.rate_limited_count += 1
            if len(self.rate_limited) < _MAX_EXAMPLES:
                self.rate_limited.append(call_id)
        response = rec.get("response")
        response = response if isinstance(response, dict) else {}
        if response.get("finish_reason") == "length" or status == "incomplete":
            self.truncated_count += 1
            if len(self.truncated) < _MAX_EXAMPLES:
                self.truncated.append(call_id)
        elif status == "ok" and rec.get("api") != "embeddings":
            text = response.get("output_text", response.get("text", response.get("content")))
            if not text and not response.get("tool_calls"):
                self.empty_count += 1
                if len(self.empty) < _MAX_EXAMPLES:
                    self.empty.append(call_id)
        if call_id in self.call_outputs:
            self.prompts_behind[call_id] = {
                "model": model,
                "status": status,
                "stage": rec.get("stage"),
                "task": rec.get("task"),
                "prompt": _last_prompt(rec.get("request")),
            }

    # -- belog.jsonl -----------------------------------------------------------

    def belog(self, rec: dict[str, Any]) -> None:
        """Fold one BELog record."""
        counts = self.belog_counts
        counts["total"] += 1
        ok = rec.get("success") is True
        counts["succeeded" if ok else "failed"] += 1
        if len(self.belog_rows) < _MAX_LIST:
            errors = rec.get("errors_encountered")
            suggestions = rec.get("improvement_suggestions")
            self.belog_rows.append(
                {
                    "task_name": rec.get("task_name"),
                    "success": ok,
                    "execution_time": rec.get("execution_time"),
                    "efficiency_score": rec.get("efficiency_score"),
                    "errors": len(errors) if isinstance(errors, list) else 0,
                    "suggestions": [_text(s, 200) for s in suggestions[:3]]
                    if isinstance(suggestions, list)
                    else [],
                    "execution_trace_id": rec.get("execution_trace_id"),
                }
            )

    # -- result ----------------------------------------------------------------

    def build(self, output_sizes: dict[str, int] | None = None) -> SessionReport:
        """The report, with issues detected. *output_sizes* maps output paths to file sizes."""
        start = self.start or {}
        end = self.end
        ended = end is not None
        exception = end.get("exception") if end else None
        success = bool(end.get("success", exception is None)) if end else False
        start_time = start.get("timestamp") or self.first_ts
        end_time = (end.get("timestamp") if end else None) or self.last_ts
        duration = end.get("duration_s") if end else None
        if duration is None:
            t0, t1 = _epoch(start_time), _epoch(end_time)
            duration = None if t0 is None or t1 is None else round(t1 - t0, 6)
        by_level: dict[str, int] = {}
        by_stage: dict[str, dict[str, int]] = {}
        total = 0
        for (level, stage), n in self.level_stage.items():
            total += n
            by_level[str(level)] = by_level.get(str(level), 0) + n
            if stage is not None:
                per = by_stage.setdefault(str(stage), {"records": 0, "errors": 0, "warnings": 0})
                per["records"] += n
                if level in _ERROR_LEVELS:
                    per["errors"] += n
                elif level == "warning":
                    per["warnings"] += n
        dropped = _num(end.get("records_dropped")) if end else 0
        stages = []
        for st in self.stages:
            counts = by_stage.get(st.name, {"records": 0, "errors": 0, "warnings": 0})
            stages.append(
                {
                    "name": st.name,
                    "parent": st.parent,
                    "start_time": st.start,
                    "end_time": st.end,
                    "duration_seconds": st.duration_s,
                    "success": st.success,
                    **counts,
                }
            )
        calls = self.calls
        by_model = {}
        for name, m in sorted(self.by_model.items()):
            m = dict(m)
            latency_total = m.pop("latency_ms_total")
            m["cost_usd"] = round(m["cost_usd"], 6)
            m["mean_latency_ms"] = round(latency_total / m["calls"], 3) if m["calls"] else None
            by_model[name] = m
        ai_usage = {
            "total_api_calls": calls,
            "failed_calls": self.failed_calls,
            "success_rate": round((calls - self.failed_calls) / calls, 4) if calls else None,
            "total_tokens": self.tokens["total"],
            "input_tokens": self.tokens["input"],
            "output_tokens": self.tokens["output"],
            "cached_tokens": self.tokens["cached"],
            "reasoning_tokens": self.tokens["reasoning"],
            "cost_usd": round(self.cost, 6),
            "retries": self.retries,
            "error_types": dict(sorted(self.error_types.items())),
            "by_model": by_model,
        }
        errors = sorted(
            (
                {
                    "logger": g.logger,
                    "event": g.event,
                    "count": g.count,
                    "first_seen": g.first_seen,
                    "stage": g.stage,
                    "exception": g.exception,
                }
                for g in self.error_groups.values()
            ),
            key=lambda e: (-e["count"], e["first_seen"] or ""),
        )
        records = {
            "total": total,
            "by_level": dict(sorted(by_level.items())),
            "dropped": dropped,
            "corrupt_lines": self.corrupt_count,
        }
        outputs = [{"path": p, "call_ids": ids} for p, ids in self.outputs.items()]
        title = self.title or start.get("title") or self.session_id
        report = SessionReport(
            session_id=self.session_id,
            title=str(title),
            ended=ended,
            success=success,
            start_time=start_time,
            end_time=end_time,
            duration_seconds=duration,
            session={k: v for k, v in start.items() if k in _SESSION_START_KEYS}
            | {"fields": {k: v for k, v in start.items() if k not in _SESSION_START_KEYS}},
            stages=stages,
            inputs=list(self.inputs),
            outputs=outputs,
            contents=self.contents,
            metrics=self.metrics,
            ai_usage=ai_usage,
            errors=errors,
            belog_tasks=self.belog_rows,
            belog_summary=dict(self.belog_counts),
            records=records,
            issues=self._issues(ended, exception, dropped, output_sizes or {}),
            exception=exception,
            prompts_behind=self.prompts_behind,
        )
        report.session["schema_version"] = start.get("schema_version")
        return report

    def _issues(
        self, ended: bool, exception: Any, dropped: float, output_sizes: dict[str, int]
    ) -> list[dict[str, Any]]:
        issues: list[dict[str, Any]] = []

        def add(kind: str, severity: str, message: str, count: int, examples: list[str]) -> None:
            issues.append(
                {
                    "kind": kind,
                    "severity": severity,
                    "message": message,
                    "count": count,
                    "examples": examples[:_MAX_EXAMPLES],
                }
            )

        if not ended:
            add("not_ended", "error", "The run did not end: no session_end record "
                "(the process crashed or was killed).", 1, [])  # fmt: skip
        elif exception:
            last = str(exception).strip().rsplit("\n", 1)[-1]
            add("exception", "error", f"The run ended with an exception: {last}", 1, [])
        for b in self.bursts:
            add("error_burst", "warning", f"{b.count} error records between {b.start} and "
                f"{b.end} (≥{_BURST_COUNT} within {_BURST_WINDOW_S:g}s)", b.count, [])  # fmt: skip
        if self.failed_calls:
            kinds = ", ".join(f"{k} ×{n}" for k, n in sorted(self.error_types.items()))
            add("llm_errors", "error", f"{self.failed_calls} LLM call(s) failed ({kinds})",
                self.failed_calls, [])  # fmt: skip
        if self.rate_limited_count:
            add("rate_limited", "warning", f"{self.rate_limited_count} LLM call(s) hit a rate "
                "limit (HTTP 429)", self.rate_limited_count, self.rate_limited)  # fmt: skip
        if self.retries:
            add("retries", "info", f"{self.retries} HTTP retr{'y' if self.retries == 1 else 'ies'}"
                " across LLM calls", self.retries, [])  # fmt: skip
        if self.truncated_count:
            add("truncated_generation", "warning", f"{self.truncated_count} generation(s) "
                "stopped at the token limit (finish_reason 'length')", self.truncated_count,
                self.truncated)  # fmt: skip
        if self.empty_count:
            add("empty_output", "warning", f"{self.empty_count} LLM call(s) returned no text",
                self.empty_count, self.empty)  # fmt: skip
        empty_files = [p for p, size in output_sizes.items() if size == 0]
        if empty_files:
            add("empty_output_file", "warning", f"{len(empty_files)} output file(s) are empty",
                len(empty_files), empty_files)  # fmt: skip
        if len(self.latencies) >= 3:
            median = _median(self.latencies)
            limit = _SLOW_FACTOR * median
            slow = sum(1 for x in self.latencies if x > limit)
            if slow and median > 0:
                examples = [cid for lat, cid in sorted(self.slowest, reverse=True) if lat > limit]
                add("slow_calls", "warning", f"{slow} LLM call(s) slower than "
                    f"{_SLOW_FACTOR:g}× the session's median ({median:.0f} ms)", slow,
                    examples)  # fmt: skip
        if dropped:
            add("dropped_records", "error", f"{int(dropped)} log record(s) could not be "
                "written and are missing", int(dropped), [])  # fmt: skip
        if self.corrupt_count:
            where = [f"{name}:{n}" for name, n in self.corrupt]
            add("corrupt_lines", "warning", f"{self.corrupt_count} unreadable line(s) in the "
                "session's files were left out of the package", self.corrupt_count,
                where)  # fmt: skip
        return issues


def _median(values: array[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


# -- the pass ----------------------------------------------------------------


def _records(path: Path, builder: ReportBuilder) -> Iterator[tuple[str, bytes, dict[str, Any]]]:
    """(timestamp, line with newline, record) for each good line of one session file."""
    loads = orjson.loads
    name = path.name
    with open(path, "rb") as fh:
        readline = fh.readline
        number = 0
        while line := readline(MAX_LINE_BYTES):
            number += 1
            if line[-1:] != b"\n":
                if len(line) >= MAX_LINE_BYTES:
                    _skip_rest_of_line(fh)
                    builder.corrupt_line(name, number)
                    continue
                line += b"\n"
            try:
                rec = loads(line)
            except orjson.JSONDecodeError:
                if line.strip():
                    builder.corrupt_line(name, number)
                continue
            if type(rec) is not dict:
                builder.corrupt_line(name, number)
                continue
            ts = rec.get("timestamp")
            yield (ts if type(ts) is str else "", line, rec)


def _skip_rest_of_line(fh: Any) -> None:
    while chunk := fh.readline(MAX_LINE_BYTES):
        if chunk[-1:] == b"\n":
            return


def _merged(files: list[Path], builder: ReportBuilder) -> Iterator[tuple[str, bytes, dict[str, Any]]]:
    if len(files) == 1:
        return _records(files[0], builder)
    return heapq.merge(*(_records(f, builder) for f in files), key=itemgetter(0))


def scan_session(
    directory: Path,
    session_id: str | None = None,
    *,
    title: str | None = None,
    sink: Sink | None = None,
    progress: Callable[[int], None] | None = None,
    output_sizes: Callable[[dict[str, list[str]]], dict[str, int]] | None = None,
) -> SessionReport:
    """Read a session folder once and return its report.

    Args:
        directory: ``logs/sessions/<id>``.
        session_id: Defaults to the folder name.
        title: Overrides the title recorded in ``session_start``.
        sink: Called as ``sink(stream, lines)`` with batches of lines in merged
            time order, stream by stream (``processing``, ``prompts``, ``belog``);
            llm_call lines carry the ``outputs`` they produced.
        progress: Called with the number of lines read so far, now and then.
        output_sizes: Given the outputs (path → call IDs), returns the sizes of
            the output files that exist, for empty-output detection.
    """
    builder = ReportBuilder(session_id or directory.name, title)
    done = 0

    def flush(stream: str, batch: list[bytes]) -> None:
        nonlocal done
        done += len(batch)
        if sink is not None:
            sink(stream, batch)
        if progress is not None:
            progress(done)

    # processing: the hot loop, kept flat on purpose.
    counts = builder.level_stage
    special = builder.special
    error = builder.error
    batch: list[bytes] = []
    append = batch.append
    first_ts: str | None = None
    last_ts = ""
    for ts, line, rec in _merged(session_files(directory, "processing"), builder):
        append(line)
        if first_ts is None:
            first_ts = ts
        if ts > last_ts:
            last_ts = ts
        level = rec.get("level")
        key = (level, rec.get("stage"))
        counts[key] = counts.get(key, 0) + 1
        kind = rec.get("kind")
        if kind is not None and kind in _LIFECYCLE:
            special(kind, rec)
        if level in _ERROR_LEVELS:
            error(rec, ts)
        if len(batch) >= _FLUSH_LINES:
            flush("processing", batch)
            batch = []
            append = batch.append
    flush("processing", batch)
    builder.first_ts = first_ts or None
    builder.last_ts = last_ts or None

    dumps = orjson.dumps
    batch = []
    call_outputs = builder.call_outputs
    for _, line, rec in _merged(session_files(directory, "prompts"), builder):
        builder.call(rec)
        rec["outputs"] = call_outputs.get(str(rec.get("call_id")), [])
        batch.append(dumps(rec, option=orjson.OPT_APPEND_NEWLINE))
        if len(batch) >= _FLUSH_LINES:
            flush("prompts", batch)
            batch = []
    flush("prompts", batch)

    batch = []
    for _, line, rec in _merged(session_files(directory, "belog"), builder):
        builder.belog(rec)
        batch.append(line)
        if len(batch) >= _FLUSH_LINES:
            flush("belog", batch)
            batch = []
    flush("belog", batch)

    sizes = output_sizes(builder.outputs) if output_sizes is not None else {}
    return builder.build(sizes)


def output_file_sizes(outputs: dict[str, list[str]]) -> dict[str, int]:
    """Sizes of the output files that exist now (relative paths from the working folder)."""
    sizes = {}
    for path in outputs:
        try:
            st = os.stat(path)
        except OSError:
            continue
        if not os.path.isdir(path):
            sizes[path] = st.st_size
    return sizes


def isfinite(value: Any) -> bool:
    """True for an int or a finite float (metric values that JSON can carry)."""
    return type(value) is int or (type(value) is float and math.isfinite(value))
