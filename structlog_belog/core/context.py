"""The one context variable: which session, stage and task a record belongs to.

Everything a record needs to know about where it was logged from lives in a
single immutable `Context` held by one `ContextVar`, so reading it costs one
lookup per record however much else the application keeps in context.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Protocol

from .reserved import demote_reserved

__all__ = [
    "EMPTY",
    "REGISTRY",
    "Context",
    "OutputBlock",
    "Registry",
    "SessionLike",
    "TaskObserver",
    "bind",
    "bound",
    "current",
    "current_session",
    "push",
    "reset",
]

_NO_FIELDS: Mapping[str, Any] = MappingProxyType({})


class SessionLike(Protocol):
    """What the context needs of a session (`structlog_belog.Run` is one)."""

    @property
    def id(self) -> str:
        """The session's ID."""

    @property
    def title(self) -> str:
        """The session's title."""

    @property
    def pid(self) -> int:
        """The process that opened the session."""

    def note_call(self, record: Mapping[str, Any]) -> None:
        """Called with every audited LLM call made in the session."""


class TaskObserver(Protocol):
    """What the record path tells an open task about (see `memory.task`)."""

    name: str

    def note_error(self, event_dict: Mapping[str, Any]) -> None:
        """Called with every error-level record logged inside the task."""

    def note_call(self, record: Mapping[str, Any]) -> None:
        """Called with every audited LLM call made inside the task."""

    def note_record(self, event_dict: Mapping[str, Any]) -> None:
        """Called with every record logged inside the task (hosts, services, files named)."""


class OutputBlock(Protocol):
    """An open ``run.producing(path)`` block (`core.producing.Producing`)."""

    def add(self, call_id: str) -> bool:
        """Link a call made inside the block; False once the block has ended."""


@dataclass(frozen=True, slots=True)
class Context:
    """Where a record is logged from: session, stage, task and bound fields.

    Immutable: changing the context means setting a new `Context`, so a value
    read by a thread or task can never change under it.
    """

    session: SessionLike | None = None
    stage: str | None = None
    task: TaskObserver | None = None
    fields: Mapping[str, Any] = field(default_factory=lambda: _NO_FIELDS)
    #: The innermost open ``run.producing`` block: calls made here produce its output.
    producing: OutputBlock | None = field(default=None, compare=False)
    #: The fields this context sets on every record (``session_id``, ``stage``,
    #: ``task``), computed once here rather than per record.
    record_fields: Mapping[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields: dict[str, Any] = {}
        if self.session is not None:
            fields["session_id"] = self.session.id
        if self.stage is not None:
            fields["stage"] = self.stage
        if self.task is not None:
            fields["task"] = self.task.name
        object.__setattr__(self, "record_fields", fields)

    @property
    def session_id(self) -> str | None:
        """The ID of the session, or None outside any session."""
        return None if self.session is None else self.session.id

    def __repr__(self) -> str:
        task = None if self.task is None else self.task.name
        return (
            f"Context(session_id={self.session_id!r}, stage={self.stage!r}, "
            f"task={task!r}, fields={dict(self.fields)!r})"
        )


EMPTY = Context()

# Not named "structlog_...": structlog treats every context variable with that
# prefix as its own, so `clear_contextvars()` would wipe the session and
# `merge_contextvars` would copy the whole Context into records.
_CURRENT: ContextVar[Context] = ContextVar("belog.context", default=EMPTY)

#: Read the current `Context` (bound method: one attribute lookup saved per record).
current = _CURRENT.get


def push(**changes: Any) -> Token[Context]:
    """Set a new context derived from the current one; return the reset token."""
    return _CURRENT.set(replace(_CURRENT.get(), **changes))


def reset(token: Token[Context]) -> None:
    """Restore the context that was current before `push` returned *token*."""
    _CURRENT.reset(token)


def set_context(ctx: Context) -> Token[Context]:
    """Make *ctx* current (used to carry a context into another thread)."""
    return _CURRENT.set(ctx)


def current_session() -> SessionLike | None:
    """Return the session active in this context, or `None` outside any session."""
    return _CURRENT.get().session


def bind(**fields: Any) -> None:
    """Add *fields* to every record logged from the current context on.

    Like `structlog.contextvars.bind_contextvars`: the fields stay bound until
    the surrounding context (session, stage, task, thread or asyncio task) ends.
    Fields only belog sets (``kind``, ``session_id``, ``stage``...) are bound
    as ``app.<name>``.
    """
    ctx = _CURRENT.get()
    fields = demote_reserved({**ctx.fields, **fields})
    _CURRENT.set(replace(ctx, fields=MappingProxyType(fields)))


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Bind *fields* for the duration of a ``with`` block, then restore."""
    ctx = _CURRENT.get()
    fields = demote_reserved({**ctx.fields, **fields})
    token = _CURRENT.set(replace(ctx, fields=MappingProxyType(fields)))
    try:
        yield
    finally:
        _CURRENT.reset(token)


class Registry:
    """The sessions open in this process, for records logged with no session.

    ``sole`` is the one open session when exactly one is open (else None), kept
    up to date on open/close so the record path reads it in O(1). ``joined`` is
    the session a child process joined through `session_env()`.
    """

    __slots__ = ("_open", "joined", "sole")

    def __init__(self) -> None:
        self._open: dict[str, SessionLike] = {}
        self.joined: SessionLike | None = None
        self.sole: SessionLike | None = None

    def add(self, run: SessionLike) -> None:
        """Register *run* as open."""
        self._open[run.id] = run
        self._update()

    def remove(self, run: SessionLike) -> None:
        """Register *run* as closed."""
        self._open.pop(run.id, None)
        self._update()

    def open_sessions(self) -> list[SessionLike]:
        """The sessions open in this process, oldest first."""
        return list(self._open.values())

    def _update(self) -> None:
        self.sole = next(iter(self._open.values())) if len(self._open) == 1 else None


REGISTRY = Registry()
