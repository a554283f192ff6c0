"""A stage of a run: ``with run.stage(name):``."""

from __future__ import annotations

import os
import shlex
import sys
import time
from contextvars import Token
from types import TracebackType
from typing import Any, Final

from . import context as _context
from . import tracing as _tracing
from .state import emit, redact_name

__all__ = ["Stage", "command_line"]

_LOGGER: Final = "structlog_belog.session"


def command_line() -> str:
    """This process's command line, for the records that say which command did what."""
    return shlex.join(sys.argv) if sys.argv and sys.argv != [""] else f"pid {os.getpid()}"


class Stage:
    """One stage of a run; made by `Run.stage`."""

    __slots__ = ("_span", "_t0", "_token", "name", "parent", "run")

    def __init__(self, run: Any, name: str) -> None:
        self.run = run
        self.name = name
        self.parent: str | None = None
        self._token: Token[_context.Context] | None = None
        self._span: _tracing.SpanHandle | None = None
        self._t0 = 0.0

    def __repr__(self) -> str:
        return f"<Stage {self.name!r} of {self.run.id!r}>"

    def __enter__(self) -> Stage:
        self.name = redact_name(self.name)
        self.parent = _context.current().stage
        self._token = _context.push(session=self.run, stage=self.name)
        self._span = _tracing.start_stage(self)
        self._t0 = time.perf_counter()
        emit(
            "stage_start",
            logger=_LOGGER,
            kind="stage_start",
            parent_stage=self.parent,
            pid=os.getpid(),
            command=command_line(),
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        emit(
            "stage_end",
            level="info" if exc is None else "error",
            logger=_LOGGER,
            kind="stage_end",
            parent_stage=self.parent,
            duration_s=round(time.perf_counter() - self._t0, 6),
            success=exc is None,
            error=None if exc is None else {"type": type(exc).__qualname__, "message": str(exc)},
        )
        _tracing.end(self._span, exc)
        self._span = None
        if self._token is not None:
            _context.reset(self._token)
            self._token = None

    async def __aenter__(self) -> Stage:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
