"""Exceptions raised by structlog-belog's public API."""

from __future__ import annotations

import errno
from pathlib import Path

__all__ = [
    "BelogError",
    "CallNotFoundError",
    "CorruptDataError",
    "DecompressionLimitError",
    "PackageError",
    "SessionFinishedError",
    "SessionNotFoundError",
    "StoreError",
    "UnsafeFileError",
]


class BelogError(Exception):
    """Base class of structlog-belog's own errors."""


class PackageError(BelogError, OSError):
    """A package could not be built or read; *path* names the culprit."""

    def __init__(self, message: str, path: Path | str | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else Path(path)


class SessionNotFoundError(PackageError, FileNotFoundError):
    """No session folder matches *session_id* under the log folder."""

    def __init__(
        self, session_id: str, path: Path | str | None = None, reason: str | None = None
    ) -> None:
        where = "" if path is None else f" in {str(path)!r}"
        super().__init__(reason or f"no session {session_id!r}{where}", path)
        self.session_id = session_id


class SessionFinishedError(BelogError, RuntimeError):
    """The session *session_id* has ended: it cannot be resumed or finished again.

    Attributes:
        session_id: The session that was asked for.
        path: Its folder.
    """

    def __init__(self, session_id: str, path: Path | str | None = None) -> None:
        super().__init__(
            f"session {session_id!r} has ended; start a new session instead of resuming it"
        )
        self.session_id = session_id
        self.path = None if path is None else Path(path)


class CorruptDataError(PackageError):
    """A log file or package member is damaged: bad zstd data, a truncated frame."""


class DecompressionLimitError(CorruptDataError):
    """Decompressing *path* would exceed *limit* bytes (a zstd bomb or a runaway line)."""

    def __init__(self, message: str, path: Path | str | None, limit: int) -> None:
        super().__init__(message, path)
        self.limit = limit


class StoreError(BelogError, OSError):
    """The BELog store cannot be read or written (for example a corrupted index file).

    The store is only an index over the JSONL logs: rebuild it with
    ``belog reindex`` or ``open_store(..., reindex_from=LOG_DIR)``.

    Attributes:
        location: The store that failed (file path or ``chroma:PATH``).
    """

    def __init__(self, location: str, message: str) -> None:
        super().__init__(message)
        self.location = location

    def __str__(self) -> str:
        return str(self.args[0])


class CallNotFoundError(BelogError, LookupError):
    """No LLM call of a session matches *call_id*, or a prefix matches several.

    Attributes:
        call_id: The ID (or prefix) that was asked for.
    """

    def __init__(self, message: str, call_id: str) -> None:
        super().__init__(message)
        self.call_id = call_id


class UnsafeFileError(BelogError, OSError):
    """A file was refused: a symbolic link, or not a regular file.

    Attributes:
        path: The path that was refused (the link itself, never its target).
    """

    def __init__(self, path: Path | str, reason: str, err: int = errno.EINVAL) -> None:
        text = f"{str(path)!r}: refused, {reason}"
        super().__init__(err, text)
        self.path = Path(path)

    def __str__(self) -> str:
        return str(self.strerror)
