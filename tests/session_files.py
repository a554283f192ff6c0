"""Session folders written by hand, in the documented JSONL format, for finalizer tests."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

SID = "sess_2025-01-18_17-30-00_abcdef01"


def ts(seconds: float) -> str:
    """A record timestamp *seconds* after 2025-01-18T17:30:00Z."""
    minutes, sec = divmod(seconds, 60)
    return f"2025-01-18T17:{30 + int(minutes):02d}:{sec:09.6f}Z"


def rec(
    t: float, event: str, *, level: str = "info", logger: str = "app", **fields: Any
) -> dict[str, Any]:
    """One record at *t* seconds."""
    return {"timestamp": ts(t), "level": level, "logger": logger, "event": event,
            "session_id": SID, **fields}  # fmt: skip


def start(t: float = 0.0, **fields: Any) -> dict[str, Any]:
    """A ``session_start`` record."""
    base = {"title": "Naval supertask", "execution_context": "Generate supertasks",
            "blueprint_id": "bp_003", "blueprint_version": "v1.2", "parent_session_id": None,
            "host": "testhost", "python": "3.11.7", "belog_version": "0.1.0"}  # fmt: skip
    return rec(t, "session_start", logger="structlog_belog.session", kind="session_start",
               **{**base, **fields})  # fmt: skip


def end(
    t: float, *, success: bool = True, dropped: int = 0, exception: str | None = None
) -> dict[str, Any]:
    """A ``session_end`` record."""
    return rec(t, "session_end", logger="structlog_belog.session", kind="session_end",
               level="info" if success else "error", success=success, duration_s=t,
               exception=exception, records_dropped=dropped)  # fmt: skip


def stage(t: float, name: str, kind: str, **fields: Any) -> dict[str, Any]:
    """A ``stage_start``/``stage_end`` record."""
    extra = {"parent_stage": None, **fields}
    if kind == "stage_end":
        extra = {"duration_s": 1.0, "success": True, "error": None, **extra}
    return rec(t, kind, logger="structlog_belog.session", kind=kind, stage=name, **extra)


def call(t: float, call_id: str, **fields: Any) -> dict[str, Any]:
    """A full ``llm_call`` record."""
    body = {
        "kind": "llm_call", "call_id": call_id, "api": "chat.completions", "model": "gpt-4",
        "request": {"model": "gpt-4",
                    "messages": [{"role": "user", "content": f"prompt {call_id}"}]},
        "response": {"id": f"r-{call_id}", "output_text": "{}", "finish_reason": "stop",
                     "tool_calls": None},
        "usage": {"input_tokens": 10, "output_tokens": 20, "total_tokens": 30,
                  "cached_tokens": 0, "reasoning_tokens": 0},
        "latency_ms": 100.0, "stream": False, "status": "ok", "error": None,
        "attempts": [{"attempt": 1, "status_code": 200, "duration_ms": 99.0}],
        "cost_usd": 0.001,
    }  # fmt: skip
    return rec(t, "llm_call", logger="structlog_belog.audit", **{**body, **fields})


def belog_record(t: float, task: str, *, success: bool = True, **fields: Any) -> dict[str, Any]:
    """A BELog record."""
    body = {
        "kind": "belog", "blueprint_id": "bp_003", "blueprint_version": "v1.2",
        "execution_context": "Generate supertasks", "task_name": task,
        "expected_outcome": "valid JSON", "execution_time": 0.5, "files_changed": [],
        "dependencies_affected": [], "pipeline_connections": [], "errors_encountered": [],
        "success": success, "efficiency_score": 100.0 if success else 0.0,
        "potential_breakage_risk": {"level": "none", "reasons": []}, "cross_check_required": [],
        "execution_trace_id": f"belog_{task}", "previous_attempts": [],
        "improvement_suggestions": ["Cache the template"],
    }  # fmt: skip
    return rec(t, "belog", logger="structlog_belog", **{**body, **fields})


def write(path: Path, records: Iterable[dict[str, Any] | bytes]) -> Path:
    """Write *records* (dicts, or raw bytes lines for damage) as JSONL to *path*."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as fh:
        for r in records:
            fh.write(r if isinstance(r, bytes) else orjson.dumps(r) + b"\n")
    return path


def session_dir(log_dir: Path, sid: str = SID) -> Path:
    """``log_dir/sessions/<sid>`` (created)."""
    d = log_dir / "sessions" / sid
    d.mkdir(parents=True, exist_ok=True)
    return d


def full_session(log_dir: Path) -> Path:
    """A finished session: two stages, errors, a shard, calls, outputs, metrics, BELog."""
    d = session_dir(log_dir)
    write(d / "processing.jsonl", [
        start(0),
        stage(1, "preprocessing", "stage_start"),
        rec(1.1, "parsed content.md", stage="preprocessing"),
        rec(1.2, "input", logger="structlog_belog.session", kind="input", path="raw/content.md",
            stage="preprocessing"),
        stage(2, "preprocessing", "stage_end"),
        stage(3, "generation", "stage_start"),
        rec(4, "llm_call", logger="structlog_belog.audit", kind="llm_call", call_id="c1",
            stage="generation", ref="prompts"),
        rec(4.5, "parse failed", level="error", logger="gen", stage="generation",
            exception="Traceback (most recent call last):\nValueError: bad json"),
        rec(4.6, "parse failed", level="error", logger="gen", stage="generation"),
        rec(5, "output", logger="structlog_belog.session", kind="output",
            path="out/beginner.json", call_ids=["c1", "c2"], stage="generation"),
        stage(6, "generation", "stage_end", success=False, error="ValueError"),
        rec(6.5, "metric", logger="structlog_belog.session", kind="metric",
            name="schema_compliance", value=0.5),
        end(7),
    ])  # fmt: skip
    write(d / "processing.4242.jsonl", [
        rec(3.5, "worker started", logger="worker", pid=4242, stage="generation"),
        rec(5.5, "worker warning", level="warning", logger="worker", pid=4242,
            stage="generation"),
    ])  # fmt: skip
    write(d / "prompts.jsonl", [call(4, "c1", stage="generation")])
    write(d / "prompts.4242.jsonl", [call(4.2, "c2", model="gpt-4o-mini", stage="generation")])
    write(d / "belog.jsonl", [belog_record(5.8, "Generate beginner")])
    return d
