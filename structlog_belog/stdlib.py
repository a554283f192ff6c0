"""Bridges to the standard `logging` module.

`SessionHandler` turns a `logging.LogRecord` into the same event dict a
structlog logger makes, in the caller's thread, and sends it down the record
path; `configure()` installs one on the root logger. `JsonFormatter` is a
python-json-logger formatter that adds the session fields, for applications
that keep their own handlers.
"""

from __future__ import annotations

import logging
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _PJLJsonFormatter

from .core.handler import SessionHandler
from .core.pipeline import format_timestamp
from .processors import add_session

__all__ = ["JsonFormatter", "SessionHandler"]


class JsonFormatter(_PJLJsonFormatter):
    """python-json-logger's `JsonFormatter` that adds the session fields.

    For applications that keep their own handlers: every formatted record gets
    ``session_id`` (and ``stage``/``task`` and bound fields when set) from the
    current context, and a UTC ISO 8601 ``timestamp``.
    """

    def add_fields(
        self,
        log_data: dict[str, Any],
        record: logging.LogRecord,
        message_dict: dict[str, Any],
    ) -> None:
        """Add python-json-logger's fields, then the session's."""
        super().add_fields(log_data, record, message_dict)
        log_data.setdefault("timestamp", format_timestamp(record.created))
        add_session(None, "", log_data)
