"""Exceptions raised by structlog-belog's public API."""

from __future__ import annotations

__all__ = ["BelogError", "StoreError"]


class BelogError(Exception):
    """Base class of structlog-belog's own errors."""


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
