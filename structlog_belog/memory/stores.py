"""`open_store`: the BELog store a location names (SQLite file, ChromaDB folder or server)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .sqlite import SQLiteStore
from .store import DEFAULT_FILENAME, BELogStore, default_log_dir

__all__ = ["location_scheme", "open_store"]

# "scheme:" at the start of a location; a Windows drive letter ("C:\\...") is one letter.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


def location_scheme(location: str | os.PathLike[str] | None) -> str | None:
    """The URL-like scheme a store location starts with (``chroma``, ``http``...), or None.

    Only a ``str`` can carry a scheme: an ``os.PathLike`` is always a file path.
    """
    if not isinstance(location, str):
        return None
    found = _SCHEME.match(location)
    return found.group(1).lower() if found else None


def open_store(
    location: str | os.PathLike[str] | None = None,
    *,
    reindex_from: str | os.PathLike[str] | None = None,
    embedding_function: Any = None,
) -> BELogStore:
    """Open the BELog store.

    Args:
        location: ``None`` for the SQLite file ``belog_index.sqlite3`` in the
            configured ``log_dir``; a path for another SQLite file; or
            ``"chroma:PATH"`` for the ChromaDB backend persisted in folder
            PATH (needs the ``chroma`` extra); or ``"http://HOST:PORT"`` /
            ``"https://HOST:PORT"`` (optionally ``?collection=NAME``) for a
            ChromaDB server shared by many workers (`ChromaServerStore`).
            Any other ``scheme:`` is an error, never a file named after it.
        reindex_from: A log folder to rebuild the index from before returning
            it — use it to recover a corrupted or stale index. On a server,
            the records it lacks are added; other workers' records stay.
        embedding_function: For the ChromaDB backends: any ChromaDB embedding
            function for `similar` (default: an offline feature-hashing one).

    Raises:
        StoreError: the store exists but cannot be read (for example a
            corrupted file); the message says how to rebuild it.
        ModuleNotFoundError: ``chroma:`` or a server was asked for and
            chromadb is missing.
        ValueError: a location with a scheme no store serves, or a malformed
            server URL; *location* is quoted.
    """
    store: BELogStore
    scheme = location_scheme(location)
    if scheme == "chroma":
        from .chroma import ChromaStore

        path = str(location).removeprefix("chroma:")
        if not path:
            msg = f"location must be 'chroma:PATH' with a folder PATH, got {location!r}"
            raise ValueError(msg)
        store = ChromaStore(path, embedding_function=embedding_function)
    elif scheme in ("http", "https"):
        from .chroma_server import ChromaServerStore

        store = ChromaServerStore(str(location), embedding_function=embedding_function)
    elif scheme is not None:
        msg = (
            f"location must be a SQLite file path, 'chroma:PATH' or 'http(s)://HOST:PORT'; "
            f"{scheme!r} is not a scheme a BELog store serves, got {location!r} (pass a "
            "pathlib.Path for a file whose name holds a colon)"
        )
        raise ValueError(msg)
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
