"""The fields only belog itself may set on a record.

A record's ``kind`` decides which file it goes to and what the finalizer makes
of it (a ``content`` record's ``path`` is copied into the package, an
``llm_call`` record's ``usage`` and ``cost_usd`` are added up, a ``metric``
becomes a quality metric); ``ref``, ``session_id``, ``stage``, ``task``,
``pid`` and ``attributed`` say where it belongs. Applications routinely log
``**payload`` from a request, so a log call's arguments — structlog keyword
arguments, stdlib ``extra=``, fields bound with `bind`/`bound` or structlog's
contextvars — must not be able to set them: such a field is kept, as data,
under ``app.<name>`` (``app.app.<name>`` if that is taken too), and the record
stays an ordinary one. Only the library's own code (the session lifecycle, the
LLM audit, BELog tasks) makes special records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["PREFIX", "RESERVED", "demote_reserved", "demoted_key"]

#: Fields a log call's arguments cannot set.
RESERVED: Final = frozenset(("kind", "ref", "session_id", "stage", "task", "pid", "attributed"))
#: Where such a field's value is kept instead.
PREFIX: Final = "app."


def demoted_key(key: str, taken: Mapping[str, Any]) -> str:
    """The name a reserved *key* is kept under, not clashing with *taken*."""
    new = PREFIX + key
    while new in taken:
        new = PREFIX + new
    return new


def demote_reserved(fields: dict[str, Any]) -> dict[str, Any]:
    """Move the reserved keys of *fields* (in place) under ``app.<name>``; return *fields*."""
    for key in RESERVED.intersection(fields):
        value = fields.pop(key)
        fields[demoted_key(key, fields)] = value
    return fields
