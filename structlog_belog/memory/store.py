"""The BELog store's interface: an index of every BELog record, for the execution loop's questions.

The JSONL files under ``log_dir`` are the truth; the store is a disposable
index over them that answers "what was I doing last", "what happened the last
times I ran this task", "which blueprint version is current" and "what
resembles this" without scanning every log. `BELogStore` is the interface;
`memory.sqlite.SQLiteStore` is the default backend (one file in ``log_dir``,
WAL, safe for several processes writing at once) and `memory.chroma.ChromaStore`
the optional ChromaDB one; `memory.stores.open_store` picks one by location.
"""

from __future__ import annotations

import abc
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import orjson

__all__ = [
    "DEFAULT_FILENAME",
    "BELogStore",
    "default_log_dir",
    "latest_version",
    "read_belog_files",
    "search_text",
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
    from ..core.config import get_config

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
