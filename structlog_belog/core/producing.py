"""`Producing`: the block of a run whose LLM calls produce one output, exactly.

``with run.producing(path):`` puts a `Producing` in the context (an immutable
field of `core.context.Context`, like the stage and the task), so asyncio
tasks started inside inherit it and `propagate`/`ThreadPoolExecutor` carry it
into threads. The session notes each finished call in the context it was made
in: a call made inside the block goes to the block's list, not to the
context's calls pending for an inferred `add_output`. When the block ends
without an exception its ``output`` record is written with those calls and
``"link": "explicit"``; a block that raised produced nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import Token
from pathlib import Path
from types import TracebackType
from typing import Any

from . import context as _context

__all__ = ["Producing"]

#: Writes an output record: (path, call IDs, how they were linked).
WriteOutput = Callable[[Path, list[str], str], None]


class Producing:
    """The calls made inside this block produce `path`; made by ``Run.producing``.

    Use as ``with`` or ``async with``; entering returns the block itself, whose
    `call_ids` lists the calls linked so far.
    """

    __slots__ = ("_lock", "_open", "_session", "_token", "_write", "call_ids", "path")

    def __init__(self, session: Any, path: Path, write: WriteOutput) -> None:
        self._session = session
        self.path = path
        self._write = write
        #: The IDs of the calls made inside the block, in the order they finished.
        self.call_ids: list[str] = []
        self._lock = threading.Lock()
        self._open = False
        self._token: Token[_context.Context] | None = None

    def __repr__(self) -> str:
        return f"<Producing {str(self.path)!r}: {len(self.call_ids)} call(s)>"

    def add(self, call_id: str) -> bool:
        """Link *call_id* to the output; False once the block has ended (a late stream)."""
        with self._lock:
            if not self._open:
                return False
            self.call_ids.append(call_id)
            return True

    def __enter__(self) -> Producing:
        self._open = True
        self._token = _context.push(session=self._session, producing=self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _context.reset(self._token)
            self._token = None
        with self._lock:
            self._open = False
            call_ids = list(self.call_ids)
        if exc is None:
            self._write(self.path, call_ids, "explicit")

    async def __aenter__(self) -> Producing:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
