"""The BELog store: an index of every BELog record, for the execution loop's questions.

The JSONL files under ``log_dir`` are the truth; the store is a disposable
index over them that answers "what was I doing last", "what happened the last
times I ran this task", "which blueprint version is current" and "what
resembles this" without scanning every log. `SQLiteStore` is the default
backend (one file in ``log_dir``, WAL, safe for several processes writing at
once); `structlog_belog._chroma.ChromaStore` is the optional ChromaDB backend
behind the same interface.
"""

from __future__ import annotations

import abc
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson

from .exceptions import StoreError

__all__ = [
    "DEFAULT_FILENAME",
    "SCHEMA_VERSION",
    "BELogStore",
    "SQLiteStore",
    "default_log_dir",
    "open_store",
    "read_belog_files",
    "version_key",
]

#: Name of the default SQLite index inside ``log_dir``.
DEFAULT_FILENAME = "belog_index.sqlite3"

_T = TypeVar("_T")
_WORD = re.compile(r"\w+", re.UNICODE)
_VERSION_PART = re.compile(r"\d+|\D+")
_BELOG_FILE = re.compile(r"^belog(?:\.\d+)?\.jsonl(?:\.zst)?$")


def version_key(version: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key that orders versions as people read them: ``v1.10`` > ``v1.9`` > ``v1.2``.

    Runs of digits compare as numbers, everything else as case-folded text;
    a version that extends another (``1.2.1`` vs ``1.2``) is the later one.
    """
    return tuple(
        (1, int(part), "") if part.isdigit() else (0, 0, part.casefold())
        for part in _VERSION_PART.findall(version)
    )


def latest_version(versions: Iterable[str | None]) -> str | None:
    """The greatest of *versions* by `version_key`, or None when there is none."""
    present = [v for v in versions if v]
    return max(present, key=version_key) if present else None


def default_log_dir() -> Path:
    """The configured ``log_dir``, else ``$BELOG_DIR``, else ``./logs``."""
    from ._config import get_config

    config = get_config()
    if config is not None:
        return Path(config.log_dir)
    return Path(os.environ.get("BELOG_DIR") or "logs")


def read_belog_files(*dirs: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield every BELog record found in the JSONL files under *dirs*.

    Reads ``belog.jsonl`` and its per-process shards ``belog.<pid>.jsonl``,
    plain or zstd-compressed (``belog.jsonl.zst`` inside packages), anywhere
    under each folder, and the ``belog`` records of the global files
    (``<app_name>.jsonl``, records written outside any session) directly in
    it. Lines that are not whole BELog records (a torn last line, another
    record kind, the short reference lines in ``processing.jsonl``) are
    skipped: the files are the truth, but only whole records count.
    """
    for root in dirs:
        base = Path(root)
        if base.is_file():
            yield from _records_in(base, global_file=not _BELOG_FILE.match(base.name))
            continue
        for path in sorted(base.rglob("belog*.jsonl*")):
            if _BELOG_FILE.match(path.name):
                yield from _records_in(path, global_file=False)
        for path in sorted(base.glob("*.jsonl")):
            if not _BELOG_FILE.match(path.name):
                yield from _records_in(path, global_file=True)


def _records_in(path: Path, *, global_file: bool) -> Iterator[dict[str, Any]]:
    for line in _read_lines(path):
        if global_file and b'"belog"' not in line:
            continue  # most of a global file is other records: skip them unparsed
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if (
            isinstance(record, dict)
            and record.get("kind", None if global_file else "belog") == "belog"
            and "ref" not in record
            and isinstance(record.get("execution_trace_id"), str)
            and isinstance(record.get("task_name"), str)
        ):
            yield record


def _read_lines(path: Path) -> Iterator[bytes]:
    if path.suffix == ".zst":
        import zstandard

        with path.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as reader:
            buffered = _BufferedLines(reader)
            yield from buffered
        return
    with path.open("rb") as fh:
        yield from fh


class _BufferedLines:
    """Split a binary stream into lines (zstd readers have no ``readline``)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        rest = b""
        while chunk := self._stream.read(1 << 20):
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            yield from lines
        if rest:
            yield rest


def _check_record(record: Mapping[str, Any]) -> None:
    for key in ("execution_trace_id", "task_name"):
        if not isinstance(record.get(key), str) or not record[key]:
            msg = f"a BELog record needs a non-empty string {key!r}, got {record.get(key)!r}"
            raise ValueError(msg)


def search_text(record: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """The four texts ``similar`` ranks on: task, context, errors, suggestions."""

    def joined(value: Any) -> str:
        if isinstance(value, list | tuple):
            return "\n".join(str(v) for v in value)
        return "" if value is None else str(value)

    return (
        str(record.get("task_name") or ""),
        " ".join(
            joined(record.get(k))
            for k in ("execution_context", "expected_outcome")
            if record.get(k)
        ),
        joined(record.get("errors_encountered")),
        joined(record.get("improvement_suggestions")),
    )


class BELogStore(abc.ABC):
    """What every BELog store answers; `open_store` returns one.

    All reads return BELog records as plain dicts, newest first unless noted.
    """

    #: Where the store lives (file path or ``chroma:PATH``), for messages.
    location: str

    @abc.abstractmethod
    def add(self, record: Mapping[str, Any]) -> None:
        """Index one BELog record (a record already indexed is left as it is).

        Raises:
            ValueError: *record* has no ``execution_trace_id`` or ``task_name``.
            StoreError: the store cannot be written.
        """

    @abc.abstractmethod
    def add_many(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Index many records in one transaction; return how many were new."""

    @abc.abstractmethod
    def last_execution(self, blueprint_id: str | None = None) -> dict[str, Any] | None:
        """The most recent BELog record, of *blueprint_id* when given, or None."""

    @abc.abstractmethod
    def get_past_attempts(self, task_name: str, limit: int = 10) -> list[dict[str, Any]]:
        """The *limit* most recent attempts of *task_name*, newest first."""

    @abc.abstractmethod
    def get_latest_blueprint_version(self, blueprint_id: str) -> str | None:
        """The greatest version of *blueprint_id* seen, by `version_key` order, or None."""

    @abc.abstractmethod
    def get_blueprint_records(self, blueprint_id: str) -> list[dict[str, Any]]:
        """Every record of *blueprint_id*, oldest first (what a revision reads)."""

    @abc.abstractmethod
    def similar(self, text: str, k: int = 5) -> list[dict[str, Any]]:
        """The *k* records whose task, context, errors and suggestions best match *text*."""

    @abc.abstractmethod
    def count(self) -> int:
        """How many records the store holds."""

    @abc.abstractmethod
    def clear(self) -> None:
        """Remove every record (the JSONL files are untouched)."""

    def reindex(self, *dirs: str | os.PathLike[str]) -> int:
        """Rebuild the index from the BELog JSONL files under *dirs*; return the record count.

        *dirs* defaults to the configured ``log_dir``. Records already in the
        store but in no file are dropped: the files are the truth.
        """
        sources = dirs or (default_log_dir(),)
        return self._replace_all(read_belog_files(*sources))

    def _replace_all(self, records: Iterable[Mapping[str, Any]]) -> int:
        self.clear()
        return self.add_many(records)

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing
        """Release the store's connections (it reopens on next use)."""

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"


# --- SQLite -----------------------------------------------------------------

#: Schema migrations, applied in order; ``PRAGMA user_version`` counts those applied.
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


# --- opening ----------------------------------------------------------------


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
        from ._chroma import ChromaStore

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
