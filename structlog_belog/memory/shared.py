"""The store sessions write to when ``BELOG_STORE`` names a shared server.

`SharedStore` keeps the local SQLite index of ``log_dir`` and a
`ChromaServerStore` side by side:

- a record is indexed locally first (fast, always there), then sent to the
  server; a send that fails — server down, slow, refusing — never raises:
  the record stays in the session's ``belog.jsonl`` (the truth), a
  ``store_pending`` record in the session says so, it is counted, and the
  session's folder gets a ``store_pending`` marker;
- questions go to the server (every worker's history) and are merged with
  the local index (this worker's records the server may not have yet); when
  the server does not answer, the local index answers alone;
- `catch_up` sends the records of every marked session and removes the
  markers: the next session that opens the store does it in the background,
  ``belog reindex --store URL`` does it for the whole log folder. Nothing is
  doubled: the server keeps one record per ID.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..core.state import emit
from ..exceptions import StoreError
from .chroma_server import ChromaServerStore
from .store import BELogStore, latest_version, read_belog_files

__all__ = ["PENDING_MARKER", "SharedStore", "catch_up", "open_shared", "pending_sessions"]

#: File in a session folder whose records the shared server may lack.
PENDING_MARKER = "store_pending"
_GLOBAL = "-"


def _order(record: Mapping[str, Any]) -> tuple[str, str]:
    return (str(record.get("timestamp") or ""), str(record.get("execution_trace_id")))


def _merged(
    first: Iterable[dict[str, Any]], second: Iterable[dict[str, Any]], limit: int
) -> list[dict[str, Any]]:
    """Newest first, one per trace ID, at most *limit*."""
    by_id: dict[Any, dict[str, Any]] = {}
    for record in (*first, *second):
        by_id.setdefault(record.get("execution_trace_id"), record)
    return sorted(by_id.values(), key=_order, reverse=True)[: max(0, limit)]


def pending_sessions(log_dir: Path) -> list[Path]:
    """Session folders (and the log folder itself, for records outside sessions) marked pending."""
    found = sorted((log_dir / "sessions").glob(f"*/{PENDING_MARKER}"))
    if (log_dir / PENDING_MARKER).exists():
        found.append(log_dir / PENDING_MARKER)
    return [marker.parent for marker in found]


def catch_up(remote: BELogStore, log_dir: Path) -> int:
    """Send the records of every session marked pending under *log_dir*; return how many were new.

    A marker is removed before its records are sent and put back if sending
    fails, so a record that fails meanwhile in another process is never
    forgotten.

    Raises:
        StoreError: the server failed (the markers stay).
    """
    added = 0
    for folder in pending_sessions(log_dir):
        marker = folder / PENDING_MARKER
        marker.unlink(missing_ok=True)
        try:
            if folder == log_dir:
                added += remote.add_many(
                    r for r in read_belog_files(log_dir) if r.get("session_id") is None
                )
            else:
                added += remote.add_many(read_belog_files(folder))
        except BaseException:
            _mark(marker)
            raise
    return added


def open_shared(location: str) -> BELogStore:
    """The store sessions write to for ``configure(store=location)`` / ``BELOG_STORE``.

    A server URL gives a `SharedStore` (the local index of ``log_dir`` beside
    the server); any other location is opened as it is.
    """
    from ..core.state import ensure_pipeline
    from .store import DEFAULT_FILENAME
    from .stores import location_scheme, open_store

    if location_scheme(location) not in ("http", "https"):
        return open_store(location)
    log_dir = ensure_pipeline().config.log_dir
    local = open_store(log_dir / DEFAULT_FILENAME)
    remote = open_store(location)
    assert isinstance(remote, ChromaServerStore)  # noqa: S101 - http(s) opens one
    return SharedStore(local, remote, log_dir)


def _mark(marker: Path) -> None:
    try:
        marker.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(marker, os.O_CREAT | os.O_WRONLY, 0o600))
    except OSError:
        pass  # the records are still in the JSONL; `belog reindex --store` finds them


class SharedStore(BELogStore):
    """The local index and a shared ChromaDB server, as one store (see the module docstring).

    Args:
        local: The local index (the SQLite store of ``log_dir``).
        remote: The shared server.
        log_dir: Where the sessions' folders are, for the pending markers.
    """

    def __init__(self, local: BELogStore, remote: ChromaServerStore, log_dir: Path) -> None:
        self.local = local
        self.remote = remote
        self.log_dir = Path(log_dir)
        self.location = remote.location
        #: Records that could not be sent to the server in this process.
        self.pending = 0
        self._lock = threading.Lock()
        self._caught_up_pid = 0
        #: The background catch-up of this process, once started.
        self.catch_up_thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"SharedStore({self.remote.location!r}, local={self.local.location!r})"

    def start_catch_up(self) -> threading.Thread | None:
        """Once per process, send the pending sessions' records in a background thread."""
        with self._lock:
            if self._caught_up_pid == os.getpid() or not pending_sessions(self.log_dir):
                return None
            self._caught_up_pid = os.getpid()

        def run() -> None:
            try:
                catch_up(self.remote, self.log_dir)
            except Exception:  # noqa: BLE001, S110 - retried by the next session or reindex
                pass

        thread = threading.Thread(target=run, name="belog-store-catch-up", daemon=True)
        self.catch_up_thread = thread
        thread.start()
        return thread

    # writes -------------------------------------------------------------------------

    def add(self, record: Mapping[str, Any]) -> None:
        """Index locally (errors propagate), then send to the server (failures are kept)."""
        self.local.add(record)
        self.start_catch_up()
        try:
            self.remote.add(record)
        except StoreError as exc:
            self._keep(record, exc)

    def _keep(self, record: Mapping[str, Any], exc: StoreError) -> None:
        with self._lock:
            self.pending += 1
        sid = record.get("session_id")
        if isinstance(sid, str) and sid:
            _mark(self.log_dir / "sessions" / sid / PENDING_MARKER)
        else:
            _mark(self.log_dir / PENDING_MARKER)
        try:
            emit(
                "belog_store_pending",
                level="warning",
                logger="structlog_belog.store",
                kind="store_pending",
                store=self.remote.location,
                execution_trace_id=record.get("execution_trace_id"),
                reason=str(exc),
            )
        except Exception:  # noqa: BLE001, S110 - the record path never raises; belt and braces
            pass

    def add_many(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Index *records* locally and on the server; return how many were new locally."""
        kept = list(records)
        added = self.local.add_many(kept)
        self.remote.add_many(kept)
        return added

    def clear(self) -> None:
        """Clear the local index only: a shared server is not one worker's to empty."""
        self.local.clear()

    def reindex(self, *dirs: str | os.PathLike[str]) -> int:
        """Rebuild the local index, and add to the server what it lacks; return the record count."""
        count = self.local.reindex(*dirs)
        self.remote.reindex(*(dirs or (self.log_dir,)))
        for folder in pending_sessions(self.log_dir):
            (folder / PENDING_MARKER).unlink(missing_ok=True)
        return count

    # reads --------------------------------------------------------------------------

    def _ask(self, name: str, *args: Any) -> Any:
        try:
            return getattr(self.remote, name)(*args)
        except StoreError:
            return None

    def get_past_attempts(self, task_name: str, limit: int = 10) -> list[dict[str, Any]]:
        """The server's attempts merged with the local ones, newest first."""
        local = self.local.get_past_attempts(task_name, limit)
        remote = self._ask("get_past_attempts", task_name, limit) or []
        return _merged(remote, local, limit)

    def last_execution(self, blueprint_id: str | None = None) -> dict[str, Any] | None:
        """The newest record on the server or in the local index."""
        found = [
            r
            for r in (
                self._ask("last_execution", blueprint_id),
                self.local.last_execution(blueprint_id),
            )
            if r is not None
        ]
        merged = _merged(found, (), 1)
        return merged[0] if merged else None

    def get_latest_blueprint_version(self, blueprint_id: str) -> str | None:
        """The greatest version known to the server or the local index."""
        return latest_version(
            (
                self._ask("get_latest_blueprint_version", blueprint_id),
                self.local.get_latest_blueprint_version(blueprint_id),
            )
        )

    def get_blueprint_records(self, blueprint_id: str) -> list[dict[str, Any]]:
        """Every record of *blueprint_id* on the server or locally, oldest first."""
        remote = self._ask("get_blueprint_records", blueprint_id) or []
        local = self.local.get_blueprint_records(blueprint_id)
        return _merged(remote, local, len(remote) + len(local))[::-1]

    def similar(self, text: str, k: int = 5) -> list[dict[str, Any]]:
        """The server's nearest records; the local index's when the server does not answer."""
        found = self._ask("similar", text, k)
        return self.local.similar(text, k) if found is None else list(found)

    def count(self) -> int:
        """How many records the server holds (the local index's count when it is down)."""
        found = self._ask("count")
        return self.local.count() if found is None else int(found)

    def close(self) -> None:
        """Close both stores."""
        self.local.close()
        self.remote.close()
