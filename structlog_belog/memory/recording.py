"""The store side of BELog tasks: where records are indexed and history is read.

A task reads its past attempts from, and indexes its record into, the store
in ``log_dir`` (or the one it was given); this module resolves and caches
that store per process, writes a record through the record path and then
into the index, and counts — never raises — the failures of the memory side.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..core.render import as_written
from . import measure as _measure

if TYPE_CHECKING:
    from .store import BELogStore

__all__ = ["close_store", "failure_counts", "get_latest_blueprint_version"]

#: The ``logger`` of BELog records.
LOGGER = "structlog_belog.belog"

_FAILURES = {"index": 0, "history": 0, "scorer": 0, "files": 0, "record": 0}
_WARNED: set[str] = set()
_FAILURE_LOCK = threading.Lock()


def _count_failure(kind: str, exc: BaseException) -> None:
    """Count a failure of the memory side; say so once per kind on stderr, never raise."""
    with _FAILURE_LOCK:
        _FAILURES[kind] += 1
        first = kind not in _WARNED
        _WARNED.add(kind)
    if first:
        try:
            sys.stderr.write(
                f"structlog-belog: BELog {kind} failed ({type(exc).__name__}: {exc}); "
                "the JSONL log is unaffected, further failures are only counted\n"
            )
        except Exception:  # noqa: BLE001, S110 - stderr itself may be gone
            pass


def failure_counts() -> dict[str, int]:
    """How often indexing, reading history, scoring or file measuring failed in this process."""
    with _FAILURE_LOCK:
        return dict(_FAILURES)


# --- the store side ------------------------------------------------------------------

_DEFAULT_STORE: tuple[tuple[int, str], BELogStore] | None = None
_STORE_LOCK = threading.Lock()


def _resolve_store(store: BELogStore | str | os.PathLike[str] | None) -> BELogStore:
    from .shared import open_shared
    from .store import DEFAULT_FILENAME, BELogStore
    from .stores import open_store

    if isinstance(store, BELogStore):
        return store
    global _DEFAULT_STORE  # noqa: PLW0603 - one cached store per process and location
    shared = False
    if store is None:
        from ..core.config import ensure_pipeline

        # Configure first if needed, so the index sits next to the log it indexes.
        config = ensure_pipeline().config
        location = str(config.log_dir / DEFAULT_FILENAME)
        if config.store is not None:
            location, shared = config.store, True
    else:
        location = os.fspath(store)
    key = (os.getpid(), location)
    with _STORE_LOCK:
        if _DEFAULT_STORE is not None and _DEFAULT_STORE[0] == key:
            return _DEFAULT_STORE[1]
        if _DEFAULT_STORE is not None and _DEFAULT_STORE[0][0] == key[0]:
            _DEFAULT_STORE[1].close()
        opened = open_shared(location) if shared else open_store(location)
        _DEFAULT_STORE = (key, opened)
        return opened


def close_store() -> None:
    """Close the store tasks index into (it reopens on the next task)."""
    global _DEFAULT_STORE  # noqa: PLW0603
    with _STORE_LOCK:
        if _DEFAULT_STORE is not None:
            _DEFAULT_STORE[1].close()
        _DEFAULT_STORE = None


def _past_attempts(
    name: str, limit: int, store: BELogStore | str | os.PathLike[str] | None
) -> list[Mapping[str, Any]]:
    if limit == 0:
        return []
    try:
        return list(_resolve_store(store).get_past_attempts(name, limit))
    except Exception as exc:  # noqa: BLE001 - the store is an index: never fail the task
        _count_failure("history", exc)
        return []


def get_latest_blueprint_version(
    blueprint_id: str, store: BELogStore | str | os.PathLike[str] | None = None
) -> str | None:
    """The latest version of *blueprint_id* in the BELog records (step 1 of the loop).

    Versions compare as people read them (``v1.10`` > ``v1.9``); None when the
    blueprint has no record.

    Args:
        blueprint_id: The blueprint.
        store: A `BELogStore` or an `open_store` location (default: the store
            in ``log_dir``).

    Raises:
        ValueError: *blueprint_id* is empty.
        StoreError: the store cannot be read.
    """
    if not isinstance(blueprint_id, str) or not blueprint_id.strip():
        msg = f"blueprint_id must be a non-empty string, got {blueprint_id!r}"
        raise ValueError(msg)
    return _resolve_store(store).get_latest_blueprint_version(blueprint_id)


def _latest_known(blueprint_id: str) -> str | None:
    """`get_latest_blueprint_version` for a starting session: a failure is counted, not raised."""
    try:
        return get_latest_blueprint_version(blueprint_id)
    except Exception as exc:  # noqa: BLE001 - a session never fails because of its index
        _count_failure("history", exc)
        return None


def _connections(
    store: BELogStore | str | os.PathLike[str] | None, blueprint_id: str | None
) -> Any:
    try:
        return _measure.connection_index(_resolve_store(store), blueprint_id)
    except Exception as exc:  # noqa: BLE001 - the store is an index: never fail the task
        _count_failure("history", exc)
        return None


def _write(
    record: dict[str, Any], store: BELogStore | str | os.PathLike[str] | None, at: float
) -> None:
    """Write *record* through the record path (the truth), then index it.

    The indexed copy goes through the same processors as the written line
    (secret redaction, truncation), so the index never holds what the log
    file does not.
    """
    from ..core.config import ensure_pipeline
    from ..core.state import emit

    level = "info" if record["success"] else "warning"
    # Written at the record's own time, so the line and the index agree on it.
    emit("belog", level=level, logger=LOGGER, kind="belog", at=at, **record)
    try:
        indexed = dict(record)
        for processor in ensure_pipeline().processors:
            indexed = processor(None, level, indexed)
        opened = _resolve_store(store)
        # As written: a name from an undecodable file name (a lone surrogate)
        # is indexed as the line holds it, not refused by SQLite.
        opened.add(as_written(indexed))
        _measure.remember(opened, indexed)
    except Exception as exc:  # noqa: BLE001 - the JSONL is the truth; count and go on
        _count_failure("index", exc)
