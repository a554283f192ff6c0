"""`SessionHandler`: the standard `logging` module's way onto the record path.

It turns a `logging.LogRecord` into the same event dict a structlog logger
makes, in the caller's thread, and sends it down the record path;
`configure()` installs one on the root logger. Public as
`structlog_belog.stdlib.SessionHandler`.
"""

from __future__ import annotations

import logging
from itertools import islice
from typing import Any, Final

from pythonjsonlogger.core import RESERVED_ATTRS

from .pipeline import format_exception, normalize_level
from .state import STATE, ensure_pipeline

__all__ = ["SessionHandler", "record_to_event_dict"]

# python-json-logger's list of LogRecord attributes, plus the two it leaves to
# Python >= 3.12 and the message cache; everything else on a record is `extra=`.
# An `extra=` named like a field the record path owns would replace the message
# (`event`) or be overwritten anyway (`timestamp`, `level`): those are skipped.
_RESERVED: Final = frozenset(
    (*RESERVED_ATTRS, "taskName", "message", "asctime", "event", "timestamp", "level")
)
# LogRecord.__init__ sets the standard attributes first, in a fixed order, and
# makeRecord adds `extra=` keys after them: skipping that many keys finds the
# extras without testing every attribute of every record.
_N_STANDARD: Final = len(logging.LogRecord("n", logging.INFO, "p", 1, "m", None, None).__dict__)
_LEVEL_OF: Final = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}


def record_to_event_dict(record: logging.LogRecord) -> dict[str, Any]:
    """The event dict for a stdlib *record*: message with args applied, extras."""
    try:
        message = record.getMessage()
    except Exception as exc:  # noqa: BLE001 - a bad format or __str__ is the caller's; keep the record
        message = _unformattable(record, exc)
    ed: dict[str, Any] = {"logger": record.name, "event": message}
    d = record.__dict__
    if len(d) > _N_STANDARD:
        # A record whose first attribute is not `name` was built unusually (a
        # custom factory setting attributes first): look at every attribute.
        items = islice(d.items(), _N_STANDARD, None) if next(iter(d)) == "name" else d.items()
        for key, value in items:
            if key not in _RESERVED and key[0] != "_":
                ed[key] = value  # noqa: PERF403 - filtering loop, no new dict
    if record.exc_info:
        formatted = format_exception(record.exc_info)
        if formatted is not None:
            ed["exception"] = formatted
    elif record.exc_text:
        ed["exception"] = record.exc_text
    if record.stack_info:
        ed["stack"] = record.stack_info
    return ed


def _safe_repr(obj: object) -> str:
    try:
        return repr(obj)
    except Exception:  # noqa: BLE001 - even repr may raise
        if isinstance(obj, tuple):
            return f"({', '.join(map(_safe_repr, obj))}{',' if len(obj) == 1 else ''})"
        return f"<unrepresentable {type(obj).__name__}>"


def _unformattable(record: logging.LogRecord, exc: Exception) -> str:
    """The message of a record whose ``msg % args`` raised: both, and why."""
    return (
        f"{_safe_repr(record.msg)} % {_safe_repr(record.args)} "
        f"(could not format: {type(exc).__qualname__})"
    )


class SessionHandler(logging.Handler):
    """A `logging.Handler` that writes records to the session's JSONL files.

    Usable from `logging.config.dictConfig`
    (``{"class": "structlog_belog.stdlib.SessionHandler"}``); it uses the
    pipeline set up by `configure()` (configuring with defaults if needed).

    Args:
        level: The handler's level, as for any `logging.Handler`.
        managed: Set by `configure()` on the handler it installs, so a later
            `configure()` replaces it instead of adding a second one.
    """

    def __init__(self, level: int | str = logging.NOTSET, *, managed: bool = False) -> None:
        super().__init__(level)
        self.managed = managed

    def handle(self, record: logging.LogRecord) -> bool:
        """Filter and emit *record* without the handler lock.

        The router is thread-safe and writes each record with one system
        call, so the per-handler lock `logging.Handler.handle` takes would
        only serialise threads for nothing.
        """
        if self.filters and not self.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        """Convert *record* to an event dict and send it down the record path."""
        try:
            (STATE.pipeline or ensure_pipeline()).process(
                record_to_event_dict(record),
                _LEVEL_OF.get(record.levelno) or normalize_level(record.levelname),
                record.created,
            )
        except Exception:  # noqa: BLE001 - logging's own error path, never raising
            self.handleError(record)
