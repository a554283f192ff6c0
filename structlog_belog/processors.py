"""The processors of the record path, usable in a hand-made structlog chain.

``add_session → SecretRedactor → ValueTruncator → render_jsonl``::

    structlog.configure(processors=[
        structlog_belog.processors.add_session,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog_belog.processors.SecretRedactor(),
        structlog_belog.processors.ValueTruncator(),
        structlog_belog.processors.render_jsonl,
    ], logger_factory=structlog.BytesLoggerFactory())
"""

from __future__ import annotations

from typing import Any

from .core import context as _context
from .core.pipeline import fallback_session
from .core.redact import SecretRedactor
from .core.render import render_jsonl
from .core.truncate import ValueTruncator

__all__ = ["SecretRedactor", "ValueTruncator", "add_session", "render_jsonl"]


def add_session(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Add ``session_id`` (and ``stage``, ``task``, bound fields) from the context.

    One context-variable read, whatever else the context holds. A record with
    no session in a process with exactly one open session is attributed to it
    and marked ``attributed: "sole_session"``.
    """
    ctx = _context.current()
    session = ctx.session
    if session is None:
        session, attributed = fallback_session()
        if attributed:
            event_dict["attributed"] = "sole_session"
    event_dict["session_id"] = None if session is None else session.id
    if ctx.stage is not None:
        event_dict["stage"] = ctx.stage
    if ctx.task is not None:
        event_dict["task"] = ctx.task.name
    for key, value in ctx.fields.items():
        event_dict.setdefault(key, value)
    return event_dict
