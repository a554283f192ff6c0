"""`open_store`: the BELog store a location names (SQLite file or ChromaDB)."""

from __future__ import annotations

import os
from pathlib import Path

from .sqlite import SQLiteStore
from .store import DEFAULT_FILENAME, BELogStore, default_log_dir

__all__ = ["open_store"]


def open_store(
    location: str | os.PathLike[str] | None = None,
    *,
    reindex_from: str | os.PathLike[str] | None = None,
) -> BELogStore:
    """Open the BELog store.

    Args:
        location: ``None`` for the SQLite file ``belog_index.sqlite3`` in the
            configured ``log_dir``; a path for another SQLite file; or
            ``"chroma:PATH"`` for the ChromaDB backend persisted in folder
            PATH (needs the ``chroma`` extra).
        reindex_from: A log folder to rebuild the index from before returning
            it — use it to recover a corrupted or stale index.

    Raises:
        StoreError: the store exists but cannot be read (for example a
            corrupted file); the message says how to rebuild it.
        ModuleNotFoundError: ``chroma:`` was asked for and chromadb is missing.
    """
    store: BELogStore
    if isinstance(location, str) and location.startswith("chroma:"):
        from .chroma import ChromaStore

        path = location.removeprefix("chroma:")
        if not path:
            msg = f"location must be 'chroma:PATH' with a folder PATH, got {location!r}"
            raise ValueError(msg)
        store = ChromaStore(path)
    else:
        path_ = Path(location) if location is not None else default_log_dir() / DEFAULT_FILENAME
        if path_.is_dir():
            msg = f"location must be a SQLite file or 'chroma:PATH', got the folder {str(path_)!r}"
            raise ValueError(msg)
        sqlite_store = SQLiteStore(path_)
        if reindex_from is None:
            sqlite_store.check()
        store = sqlite_store
    if reindex_from is not None:
        store.reindex(reindex_from)
    return store
