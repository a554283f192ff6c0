"""`SQLiteStore`: the default BELog store, one SQLite file in ``log_dir``.

WAL mode, safe for several processes writing at once; a full-text index over
each record's text answers `similar` without any embedding model.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson

from ..exceptions import StoreError
from .store import _WORD, BELogStore, _check_record, latest_version, search_text

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

_T = TypeVar("_T")


_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the records and the lookups the loop needs.
    (
        """CREATE TABLE belog (
            id INTEGER PRIMARY KEY,
            trace_id TEXT NOT NULL UNIQUE,
            task_name TEXT NOT NULL,
            blueprint_id TEXT,
            blueprint_version TEXT,
            session_id TEXT,
            timestamp TEXT NOT NULL,
            success INTEGER,
            execution_time REAL,
            record BLOB NOT NULL
        )""",
        "CREATE INDEX belog_task_time ON belog (task_name, timestamp DESC, id DESC)",
        "CREATE INDEX belog_blueprint_time ON belog (blueprint_id, timestamp, id)",
        "CREATE INDEX belog_time ON belog (timestamp DESC, id DESC)",
        # Versions seen per blueprint: the latest is picked from a handful of rows.
        """CREATE TABLE belog_versions (
            blueprint_id TEXT NOT NULL,
            blueprint_version TEXT NOT NULL,
            PRIMARY KEY (blueprint_id, blueprint_version)
        ) WITHOUT ROWID""",
    ),
    # 2: full-text search for `similar`, backfilled from the records. Contentless:
    # the texts live in `belog.record`; the index keeps only what ranking needs.
    (
        """CREATE VIRTUAL TABLE belog_fts USING fts5(
            task_name, context, errors, suggestions, content = '', tokenize = 'unicode61'
        )""",
        # Per-term document counts, to drop words too common to tell records apart.
        "CREATE VIRTUAL TABLE belog_vocab USING fts5vocab(belog_fts, 'row')",
        "__backfill_fts__",
    ),
)

#: `SQLiteStore.similar` ranks at most about this many matching records (the newest).
SIMILAR_WINDOW = 20_000

#: The schema version this code writes.
SCHEMA_VERSION = len(_MIGRATIONS)

_CORRUPT_HINTS = ("not a database", "malformed", "corrupt", "disk image")


class SQLiteStore(BELogStore):
    """The default store: one SQLite file, safe for several processes at once.

    WAL journal, a busy timeout, and writes in ``BEGIN IMMEDIATE``
    transactions let several processes (and threads) index records at the
    same time without losing any. The connection is opened on first use and
    reopened in a forked child.

    Args:
        path: The database file; created with its folder when missing.
        timeout: Seconds a writer waits for another writer's lock.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self._timeout = timeout
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0

    # connection ---------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        self._conn = None  # a connection inherited through fork must not be used
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():
            # 0600 before SQLite opens it: the index holds what the logs hold.
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        conn = sqlite3.connect(
            self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            self._retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
            conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _retry_locked(self, fn: Callable[[], _T]) -> _T:
        # Switching to WAL takes an exclusive lock that the busy handler does not
        # always wait for; retry for as long as the busy timeout would have.
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            msg = (
                f"BELog store {self.location} has schema version {version}, newer than "
                f"this structlog-belog understands ({SCHEMA_VERSION}); upgrade structlog-belog"
            )
            raise StoreError(self.location, msg)
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while this one waited for the lock.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[number]:
                    if statement == "__backfill_fts__":
                        self._backfill_fts(conn)
                    else:
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _backfill_fts(conn: sqlite3.Connection) -> None:
        rows = conn.execute("SELECT id, record FROM belog").fetchall()
        conn.executemany(
            "INSERT INTO belog_fts (rowid, task_name, context, errors, suggestions)"
            " VALUES (?, ?, ?, ?, ?)",
            ((row_id, *search_text(orjson.loads(raw))) for row_id, raw in rows),
        )

    def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        with self._lock:
            try:
                return fn(self._connection())
            except sqlite3.DatabaseError as exc:
                raise self._error(exc) from exc

    def _error(self, exc: sqlite3.DatabaseError) -> StoreError:
        text = str(exc)
        if any(hint in text for hint in _CORRUPT_HINTS):
            msg = (
                f"BELog store {self.location} is unreadable ({text}); it is only an index: "
                "rebuild it from the JSONL logs with `belog reindex` or "
                "`open_store(..., reindex_from=LOG_DIR)`"
            )
        else:
            msg = f"BELog store {self.location} failed: {text}"
        return StoreError(self.location, msg)

    def check(self) -> None:
        """Open the file and read its schema, raising `StoreError` if it is unusable."""
        self._run(lambda conn: conn.execute("SELECT count(*) FROM sqlite_master").fetchone())

    def close(self) -> None:
        """Close this process's connection (the next call reopens it)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    # writes -------------------------------------------------------------

    def add(self, record: Mapping[str, Any]) -> None:
        """Index one record (see `BELogStore.add`)."""
        _check_record(record)
        self.add_many((record,))

    def add_many(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Index *records* in one ``BEGIN IMMEDIATE`` transaction; return how many were new."""
        return self._write(records, replace=False)

    def _replace_all(self, records: Iterable[Mapping[str, Any]]) -> int:
        # One transaction: readers in other processes never see an empty index.
        return self._write(records, replace=True)

    def _write(self, records: Iterable[Mapping[str, Any]], *, replace: bool) -> int:
        def write(conn: sqlite3.Connection) -> int:
            added = 0
            self._retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"))
            try:
                if replace:
                    conn.execute("DELETE FROM belog")
                    conn.execute("DELETE FROM belog_versions")
                    conn.execute("INSERT INTO belog_fts (belog_fts) VALUES ('delete-all')")
                for record in records:
                    added += self._insert(conn, record)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return added

        return self._run(write)

    @staticmethod
    def _insert(conn: sqlite3.Connection, record: Mapping[str, Any]) -> int:
        _check_record(record)
        success = record.get("success")
        elapsed = record.get("execution_time")
        cursor = conn.execute(
            "INSERT OR IGNORE INTO belog (trace_id, task_name, blueprint_id, blueprint_version,"
            " session_id, timestamp, success, execution_time, record)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record["execution_trace_id"],
                record["task_name"],
                record.get("blueprint_id"),
                record.get("blueprint_version"),
                record.get("session_id"),
                str(record.get("timestamp") or ""),
                None if success is None else int(bool(success)),
                float(elapsed) if isinstance(elapsed, int | float) else None,
                orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS, default=str),
            ),
        )
        if cursor.rowcount != 1:
            return 0
        if record.get("blueprint_id") is not None and record.get("blueprint_version") is not None:
            conn.execute(
                "INSERT OR IGNORE INTO belog_versions VALUES (?, ?)",
                (str(record["blueprint_id"]), str(record["blueprint_version"])),
            )
        conn.execute(
            "INSERT INTO belog_fts (rowid, task_name, context, errors, suggestions)"
            " VALUES (?, ?, ?, ?, ?)",
            (cursor.lastrowid, *search_text(record)),
        )
        return 1

    def clear(self) -> None:
        """Remove every record from the index."""
        self._write((), replace=True)

    def reindex(self, *dirs: str | os.PathLike[str]) -> int:
        """Rebuild the index from the JSONL files under *dirs* (default: ``log_dir``).

        Also recovers a corrupted file: it is deleted and rebuilt, since it
        holds nothing the JSONL files do not.
        """
        try:
            self.check()
        except StoreError:
            self.close()
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        return super().reindex(*dirs)

    # reads --------------------------------------------------------------

    def _records(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        rows = self._run(lambda conn: conn.execute(sql, params).fetchall())
        return [orjson.loads(raw) for (raw,) in rows]

    def last_execution(self, blueprint_id: str | None = None) -> dict[str, Any] | None:
        """The most recent record, of *blueprint_id* when given."""
        if blueprint_id is None:
            found = self._records(
                "SELECT record FROM belog ORDER BY timestamp DESC, id DESC LIMIT 1", ()
            )
        else:
            found = self._records(
                "SELECT record FROM belog WHERE blueprint_id = ?"
                " ORDER BY timestamp DESC, id DESC LIMIT 1",
                (blueprint_id,),
            )
        return found[0] if found else None

    def get_past_attempts(self, task_name: str, limit: int = 10) -> list[dict[str, Any]]:
        """The *limit* most recent attempts of *task_name*, newest first."""
        return self._records(
            "SELECT record FROM belog WHERE task_name = ? ORDER BY timestamp DESC, id DESC LIMIT ?",
            (task_name, int(limit)),
        )

    def get_latest_blueprint_version(self, blueprint_id: str) -> str | None:
        """The greatest version of *blueprint_id* by `version_key` (``v1.10`` > ``v1.9``)."""
        rows = self._run(
            lambda conn: conn.execute(
                "SELECT blueprint_version FROM belog_versions WHERE blueprint_id = ?",
                (blueprint_id,),
            ).fetchall()
        )
        return latest_version(v for (v,) in rows)

    def get_blueprint_records(self, blueprint_id: str) -> list[dict[str, Any]]:
        """Every record of *blueprint_id*, oldest first."""
        return self._records(
            "SELECT record FROM belog WHERE blueprint_id = ? ORDER BY timestamp, id",
            (blueprint_id,),
        )

    def similar(self, text: str, k: int = 5) -> list[dict[str, Any]]:
        """The *k* best FTS5 (bm25) matches of *text*'s words, best first.

        Words found in more than half the records are left out (they tell
        nothing apart, and ranking every record is what makes a search slow);
        when the remaining words still match more than `SIMILAR_WINDOW`
        records, the most recent ones that many are ranked.
        """
        words = list(dict.fromkeys(w.casefold() for w in _WORD.findall(text)))
        if not words or k <= 0:
            return []

        def search(conn: sqlite3.Connection) -> list[Any]:
            top = conn.execute("SELECT max(id) FROM belog").fetchone()[0] or 0
            marks = ",".join("?" * len(words))
            counts = dict(
                conn.execute(
                    f"SELECT term, doc FROM belog_vocab WHERE term IN ({marks})",  # noqa: S608 - placeholders only
                    words,
                ).fetchall()
            )
            if not counts:
                return []
            rare = {w: n for w, n in counts.items() if n <= top / 2} or counts
            matches = sum(rare.values())
            floor = 0
            if matches > SIMILAR_WINDOW:
                floor = top - int(top * SIMILAR_WINDOW / matches)
            query = " OR ".join('"{}"'.format(w.replace('"', "")) for w in rare)
            return conn.execute(
                "SELECT b.record FROM ("
                "  SELECT rowid, rank FROM belog_fts WHERE belog_fts MATCH ? AND rowid > ?"
                "  ORDER BY rank LIMIT ?"
                ") AS hit JOIN belog AS b ON b.id = hit.rowid ORDER BY hit.rank",
                (query, floor, int(k)),
            ).fetchall()

        return [orjson.loads(raw) for (raw,) in self._run(search)]

    def count(self) -> int:
        """How many records the index holds."""
        return int(self._run(lambda conn: conn.execute("SELECT count(*) FROM belog").fetchone()[0]))

    def schema_version(self) -> int:
        """The ``PRAGMA user_version`` of the file (see `SCHEMA_VERSION`)."""
        return int(self._run(lambda conn: conn.execute("PRAGMA user_version").fetchone()[0]))
