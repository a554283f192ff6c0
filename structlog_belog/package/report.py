"""SessionReport: everything the package says about a run, from one streaming pass.

`package.scan.scan_session` reads a session folder once. Each stream's process shards are
merged by timestamp (k-way), every record is parsed once, handed to an optional
sink (the package writer) and folded into a `ReportBuilder`, which keeps only
counters and bounded lists, so memory stays flat however large the session.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat
from operator import methodcaller
from pathlib import Path
from typing import Any, Final

from ..audit.stats import CallStats, Issue, issue, short_text
from ..core.state import redact_name
from .commands import CommandLog
from .reader import Raw

__all__ = ["METADATA_VERSION", "ReportBuilder", "SessionReport", "Sink"]

#: Version of the ``metadata.json`` layout (``metadata.schema.json``).
METADATA_VERSION: Final = "1.0"

_ERROR_LEVELS: Final = frozenset(("error", "critical"))
_LIFECYCLE: Final = frozenset(
    (
        "session_start",
        "session_end",
        "stage_start",
        "stage_end",
        "input",
        "output",
        "content",
        "metric",
        "drops",
        "session_resume",
        "session_pause",
        "store_pending",
    )
)
_MAX_GROUPS: Final = 200  # distinct error groups kept; the rest are counted as "other"
_MAX_LIST: Final = 1000  # inputs, outputs, contents, BELog rows kept for the summary
_MAX_EXAMPLES: Final = 20
_BURST_COUNT: Final = 5  # error records ...
_BURST_WINDOW_S: Final = 10.0  # ... within this many seconds make a burst
_SESSION_KEYS: Final = frozenset(
    (
        "title",
        "execution_context",
        "blueprint_id",
        "blueprint_version",
        "parent_session_id",
        "host",
        "python",
        "belog_version",
        "pid",
        "timestamp",
    )
)
_RECORD_KEYS: Final = frozenset(
    (
        "level",
        "logger",
        "event",
        "session_id",
        "kind",
        "stage",
        "task",
        "trace_id",
        "span_id",
        "attributed",
    )
)

#: Receives ``(stream, pieces, count)``: *count* whole lines, in merged time order,
#: as byte buffers to write one after the other.
Sink = Callable[[str, Raw, int], None]


def _discard(_: str, __: Raw, ___: int) -> None:
    return None


@dataclass(slots=True)
class _Stage:
    name: str
    parent: str | None
    start: str | None
    end: str | None = None
    duration_s: float | None = None
    success: bool | None = None
    pid: Any = None
    command: str | None = None


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
    summary (whose template receives ``report`` and ``metadata``).
    """

    session_id: str
    title: str
    ended: bool
    success: bool
    start_time: str | None
    end_time: str | None
    duration_seconds: float | None
    exception: str | None
    session: dict[str, Any]
    fields: dict[str, Any]
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
    issues: list[Issue]
    prompts_behind: dict[str, dict[str, Any]] = field(repr=False)
    #: One row per command that worked in the session (`package.commands`).
    commands: list[dict[str, Any]] = field(default_factory=list)

    def to_metadata(self) -> dict[str, Any]:
        """The ``metadata.json`` document (DESIGN §4; ``schemas/metadata.schema.json``)."""
        s = self.session
        ai = dict(self.ai_usage)
        models = ai["by_model"]
        ai["model"] = max(models, key=lambda m: models[m]["calls"]) if models else None
        return {
            "metadata_version": METADATA_VERSION,
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
                "commands": self.commands,
            },
            "content": {
                "input_files": self.inputs,
                "output_files": [o["path"] for o in self.outputs],
                "copied": self.contents,
                "schema_version": self.fields.get("schema_version"),
            },
            "ai_usage": ai,
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


_timestamp_of = methodcaller("get", "timestamp", "")


_SECONDS: dict[str, float] = {}  # "YYYY-mm-ddTHH:MM:SS" -> epoch, for the burst detector


def _epoch(ts: Any) -> float | None:
    """Epoch seconds of an ISO 8601 timestamp, or None."""
    if not isinstance(ts, str):
        return None
    try:
        return datetime.fromisoformat(ts).timestamp()
    except ValueError:
        return None


class ReportBuilder:
    """Folds a session's records into counters and bounded lists; `build` makes the report."""

    def __init__(self, session_id: str, title: str | None = None) -> None:
        self.session_id = session_id
        self.title = title
        self.by_level: Counter[Any] = Counter()
        self.by_stage: Counter[Any] = Counter()
        self.stage_errors: Counter[Any] = Counter()
        self.stage_warnings: Counter[Any] = Counter()
        self.first_ts: str | None = None
        self.last_ts: str | None = None
        self.start: dict[str, Any] | None = None
        self.end: dict[str, Any] | None = None
        self.stages: list[_Stage] = []
        self.open_stages: dict[str, _Stage] = {}
        self.inputs: dict[str, None] = {}
        self.outputs: dict[str, list[str]] = {}
        #: Per output, the calls linked to it by inference (no ``link``: an older record).
        self.inferred: dict[str, set[str]] = {}
        self.call_outputs: dict[str, list[str]] = {}
        self.contents: list[dict[str, Any]] = []
        self.metrics: dict[str, Any] = {}
        self.error_groups: dict[tuple[Any, Any], _ErrorGroup] = {}
        self.other_errors = 0
        self.recent_errors: deque[tuple[float, str]] = deque(maxlen=_BURST_COUNT)
        self.bursts: list[_Burst] = []
        self.in_burst = False
        self.corrupt: list[str] = []
        self.corrupt_count = 0
        self.refused_files: list[Path] = []  # session files that are links, FIFOs...
        self.calls = CallStats(self.call_outputs)
        self.belog_rows: list[dict[str, Any]] = []
        self.belog_counts = {"total": 0, "succeeded": 0, "failed": 0}
        #: Records lost by processes that joined the session, by pid (``drops`` records).
        self.joined_drops: Counter[str] = Counter()
        self.commands = CommandLog()

    def corrupt_line(self, source: str, number: int) -> None:
        """Count one unreadable line of the file *source*."""
        self.corrupt_count += 1
        if len(self.corrupt) < _MAX_EXAMPLES:
            self.corrupt.append(f"{source}:{number}")

    def special(self, kind: str, rec: dict[str, Any]) -> None:
        """Fold one lifecycle record (session and stage start/end, input, output, ...)."""
        if kind == "stage_start":
            st = _Stage(str(rec.get("stage")), rec.get("parent_stage"), rec.get("timestamp"))
            st.pid, st.command = self.commands.stage(rec)
            self.stages.append(st)
            self.open_stages[st.name] = st
        elif kind == "stage_end":
            name = str(rec.get("stage"))
            ended = self.open_stages.pop(name, None)
            if ended is None:
                ended = _Stage(name, rec.get("parent_stage"), None)
                self.stages.append(ended)
            ended.end = rec.get("timestamp")
            ended.duration_s = rec.get("duration_s")
            ended.success = bool(rec.get("success", True))
        elif kind == "output":
            self._output(rec)
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
                self.start = rec
            self.commands.started(rec)
        elif kind == "session_end":
            self.end = rec
            self.commands.left(rec)
        elif kind == "session_resume":
            self.commands.started(rec)
        elif kind == "session_pause":
            self.commands.left(rec)
            self._drops(rec)
        elif kind == "store_pending":
            self.commands.pending(rec)
        elif kind == "drops":
            self._drops(rec)

    def _drops(self, rec: dict[str, Any]) -> None:
        count = rec.get("records_dropped")
        if type(count) is int and count > 0:
            self.joined_drops[str(rec.get("pid"))] += count

    def _output(self, rec: dict[str, Any]) -> None:
        path = str(rec.get("path"))
        ids = self.outputs.get(path)
        if ids is None:
            if len(self.outputs) >= _MAX_LIST:
                return
            ids = self.outputs[path] = []
        call_ids = rec.get("call_ids")
        inferred = rec.get("link", "inferred") != "explicit"
        for cid in call_ids if isinstance(call_ids, list) else ():
            key = str(cid)
            if inferred:
                self.inferred.setdefault(path, set()).add(key)
            if key not in ids:
                ids.append(key)
                self.call_outputs.setdefault(key, []).append(path)
        if inferred:
            self.inferred.setdefault(path, set())

    def error(self, rec: dict[str, Any]) -> None:
        """Fold one error-level record into its group and the burst detector."""
        self.errors([rec])

    def errors(self, recs: list[dict[str, Any]]) -> None:
        """Fold error-level records, in time order, into groups and the burst detector."""
        get = dict.get
        stamps = [t if type(t) is str else "" for t in map(get, recs, repeat("timestamp"))]
        self.stage_errors.update(map(get, recs, repeat("stage")))
        groups = self.error_groups
        keys: list[tuple[Any, Any]] = list(
            zip(map(get, recs, repeat("logger")), map(get, recs, repeat("event")), strict=True)
        )
        for found, rec, ts in zip(keys, recs, stamps, strict=True):
            key = found
            try:
                group = groups.get(key)
            except TypeError:  # an unhashable event: group it by its text
                key = (key[0], short_text(key[1], 200))
                group = groups.get(key)
            if group is not None:
                group.count += 1
            elif len(groups) < _MAX_GROUPS:
                exc = rec.get("exception")
                last_line = exc.strip().rsplit("\n", 1)[-1] if isinstance(exc, str) else None
                groups[key] = _ErrorGroup(
                    str(key[0]), short_text(key[1], 200), 1, ts or None, rec.get("stage"), last_line
                )
            else:
                self.other_errors += 1
        self._bursts(stamps)

    def _bursts(self, stamps: list[str]) -> None:
        """Feed error timestamps to the burst detector (5 errors within 10 seconds)."""
        recent = self.recent_errors
        for ts in stamps:
            # To the second is precise enough for a 10-second window, and cached.
            t = _SECONDS.get(ts[:19])
            if t is None:
                t = _epoch(ts[:19] + "Z" if len(ts) >= 19 else ts)
                if t is None:
                    continue
                if len(_SECONDS) > 4096:
                    _SECONDS.clear()
                _SECONDS[ts[:19]] = t
            recent.append((t, ts))
            if len(recent) == _BURST_COUNT and t - recent[0][0] <= _BURST_WINDOW_S:
                if self.in_burst:
                    self.bursts[-1].end = ts
                    self.bursts[-1].count += 1
                elif len(self.bursts) < _MAX_EXAMPLES:
                    self.bursts.append(_Burst(recent[0][1], ts, _BURST_COUNT))
                    self.in_burst = True
            else:
                self.in_burst = False

    def belog(self, rec: dict[str, Any]) -> None:
        """Fold one BELog record."""
        counts = self.belog_counts
        counts["total"] += 1
        ok = rec.get("success") is True
        counts["succeeded" if ok else "failed"] += 1
        if len(self.belog_rows) >= _MAX_LIST:
            return
        errors = rec.get("errors_encountered")
        suggestions = rec.get("improvement_suggestions")
        self.belog_rows.append(
            {
                "task_name": rec.get("task_name"),
                "success": ok,
                "execution_time": rec.get("execution_time"),
                "efficiency_score": rec.get("efficiency_score"),
                "errors": len(errors) if isinstance(errors, list) else 0,
                "suggestions": [short_text(s, 200) for s in suggestions[:3]]
                if isinstance(suggestions, list)
                else [],
                "execution_trace_id": rec.get("execution_trace_id"),
            }
        )

    # -- result ----------------------------------------------------------------

    def _records(self) -> tuple[dict[str, Any], dict[str, dict[str, int]]]:
        by_level: dict[str, int] = {}
        for level, n in self.by_level.items():
            by_level[str(level)] = by_level.get(str(level), 0) + n
        by_stage = {
            str(stage): {
                "records": n,
                "errors": self.stage_errors[stage],
                "warnings": self.stage_warnings[stage],
            }
            for stage, n in self.by_stage.items()
            if stage is not None
        }
        total = self.by_level.total()
        own = (self.end or {}).get("records_dropped")
        records = {
            "total": total,
            "by_level": dict(sorted(by_level.items())),
            # The session's own process (session_end) and the processes that joined it.
            "dropped": (own if type(own) is int else 0) + self.joined_drops.total(),
            "corrupt_lines": self.corrupt_count,
        }
        return records, by_stage

    def _errors(self) -> list[dict[str, Any]]:
        groups = sorted(self.error_groups.values(), key=lambda g: (-g.count, g.first_seen or ""))
        errors = [
            {
                "logger": g.logger,
                "event": g.event,
                "count": g.count,
                "first_seen": g.first_seen,
                "stage": g.stage,
                "exception": g.exception,
            }
            for g in groups
        ]
        if self.other_errors:
            errors.append(
                {
                    "logger": "(other)",
                    "event": "more distinct errors",
                    "count": self.other_errors,
                    "first_seen": None,
                    "stage": None,
                    "exception": None,
                }
            )
        return errors

    def build(self, output_sizes: dict[str, int] | None = None) -> SessionReport:
        """The report, issues included. *output_sizes* maps output paths to file sizes."""
        start = self.start or {}
        end = self.end
        exception = end.get("exception") if end else None
        success = bool(end.get("success", exception is None)) if end else False
        start_time = start.get("timestamp") or self.first_ts
        end_time = (end.get("timestamp") if end else None) or self.last_ts
        duration = end.get("duration_s") if end else None
        if not isinstance(duration, int | float):
            t0, t1 = _epoch(start_time), _epoch(end_time)
            duration = None if t0 is None or t1 is None else round(t1 - t0, 6)
        records, by_stage = self._records()
        empty = {"records": 0, "errors": 0, "warnings": 0}
        stages = [
            {
                "name": st.name,
                "parent": st.parent,
                "start_time": st.start,
                "end_time": st.end,
                "duration_seconds": st.duration_s,
                "success": st.success,
                "pid": st.pid,
                "command": st.command,
                **by_stage.get(st.name, empty),
            }
            for st in self.stages
        ]
        return SessionReport(
            session_id=self.session_id,
            # Redacted here too: a title given to `package`, or a log written
            # before titles were redacted, never names a folder raw.
            title=redact_name(str(self.title or start.get("title") or self.session_id)),
            ended=end is not None,
            success=success,
            start_time=start_time,
            end_time=end_time,
            duration_seconds=duration,
            exception=exception if isinstance(exception, str) else None,
            session={k: v for k, v in start.items() if k in _SESSION_KEYS},
            fields={k: v for k, v in start.items() if k not in _SESSION_KEYS | _RECORD_KEYS},
            stages=stages,
            inputs=list(self.inputs),
            outputs=[
                {
                    "path": p,
                    "call_ids": ids,
                    "link": "inferred" if p in self.inferred else "explicit",
                }
                for p, ids in self.outputs.items()
            ],
            contents=self.contents,
            metrics=self.metrics,
            ai_usage=self.calls.usage(),
            errors=self._errors(),
            belog_tasks=self.belog_rows,
            belog_summary=dict(self.belog_counts),
            records=records,
            issues=self._issues(records["dropped"], output_sizes or {}),
            prompts_behind=self.calls.prompts,
            commands=self.commands.rows,
        )

    def _issues(self, dropped: int, output_sizes: dict[str, int]) -> list[Issue]:
        found: list[Issue] = []
        end = self.end
        if end is None:
            found.append(
                issue(
                    "not_ended",
                    "error",
                    "The run did not end: no session_end record "
                    "(the process crashed or was killed).",
                    1,
                    [],
                )
            )
        elif isinstance(end.get("exception"), str) and end["exception"].strip():
            last = end["exception"].strip().rsplit("\n", 1)[-1]
            found.append(issue("exception", "error", f"The run raised: {last}", 1, []))
        found.extend(
            issue(
                "error_burst",
                "warning",
                f"{b.count} error records between {b.start} and {b.end}",
                b.count,
                [],
            )
            for b in self.bursts
        )
        found.extend(self.commands.issues(end is not None))
        found.extend(self.calls.issues(outputs_recorded=bool(self.outputs)))
        ambiguous = [p for p, ids in self.inferred.items() if len(ids) > 1]
        if ambiguous:
            found.append(
                issue(
                    "ambiguous_output_link",
                    "warning",
                    f"{len(ambiguous)} output(s) inferred from more than one LLM call: "
                    "link each to its calls exactly with run.producing(path)",
                    len(ambiguous),
                    ambiguous,
                )
            )
        empty_files = sorted(p for p, size in output_sizes.items() if size == 0)
        if empty_files:
            found.append(
                issue(
                    "empty_output_file",
                    "warning",
                    f"{len(empty_files)} output file(s) are empty",
                    len(empty_files),
                    empty_files,
                )
            )
        if dropped:
            where = [
                f"process {pid}: {n}"
                for pid, n in sorted(self.joined_drops.items(), key=lambda item: -item[1])
            ]
            if where:
                where.insert(0, f"the session's process: {dropped - self.joined_drops.total()}")
            found.append(
                issue(
                    "dropped_records",
                    "error",
                    f"{dropped} log record(s) could not be written and are missing",
                    dropped,
                    where,
                )
            )
        if self.corrupt_count:
            found.append(
                issue(
                    "corrupt_lines",
                    "warning",
                    f"{self.corrupt_count} unreadable line(s) in "
                    "the session's files were left out of the package",
                    self.corrupt_count,
                    self.corrupt,
                )
            )
        return found
