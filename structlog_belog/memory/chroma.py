"""The ChromaDB backend of the BELog store (optional extra ``chroma``).

Same questions as `SQLiteStore`, answered from an embedded ChromaDB
collection: metadata filters for task and blueprint, and vector similarity for
`similar`. The default embedding function is a feature-hashing bag of words
computed in process — no model download, no network — so the store works
offline and deterministically; pass ``embedding_function=`` for a semantic one.

ChromaDB's embedded client is not meant for several processes writing one
folder at once: use the SQLite store for multi-process runs.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from ..exceptions import StoreError
from .store import BELogStore, latest_version, search_text

__all__ = ["COLLECTION", "ChromaStore", "hashed_vector", "hashing_embedding_function"]

#: Name of the collection holding the BELog records.
COLLECTION = "belog_records"
_WORD = re.compile(r"\w+", re.UNICODE)
_DIMENSIONS = 384


def _import_chromadb() -> Any:
    try:
        import chromadb
    except ModuleNotFoundError as exc:
        if exc.name != "chromadb":
            raise
        msg = "open_store('chroma:PATH') requires chromadb: pip install 'structlog-belog[chroma]'"
        raise ModuleNotFoundError(msg, name="chromadb") from exc
    return chromadb


def hashed_vector(text: str, dimensions: int = _DIMENSIONS) -> list[float]:
    """Embed *text* as a signed feature-hashing bag of words, L2-normalised.

    Two texts sharing words point the same way; the first component is a
    small constant so that an empty text still has a direction.
    """
    vector = [0.0] * dimensions
    vector[0] = 0.1
    for word in _WORD.findall(text.casefold()):
        digest = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        vector[1 + digest % (dimensions - 1)] += 1.0 if digest >> 63 else -1.0
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


_EMBEDDING_CLASS: Any = None


def hashing_embedding_function(dimensions: int = _DIMENSIONS) -> Any:
    """The offline default embedding function (a ChromaDB ``EmbeddingFunction``).

    Built on first use because its base class comes from chromadb, which is
    optional; registered with ChromaDB so a persisted collection reopens with it.
    """
    global _EMBEDDING_CLASS  # noqa: PLW0603 - one class per process, built lazily
    if _EMBEDDING_CLASS is None:
        _import_chromadb()
        import numpy as np
        from chromadb.api.types import EmbeddingFunction
        from chromadb.utils.embedding_functions import (
            register_embedding_function,
        )

        class _Hashing(EmbeddingFunction):  # type: ignore[type-arg]
            def __init__(self, dimensions: int = _DIMENSIONS) -> None:
                self.dimensions = dimensions

            def __call__(self, input: list[str]) -> list[Any]:
                return [np.asarray(hashed_vector(t, self.dimensions), np.float32) for t in input]

            @staticmethod
            def name() -> str:
                return "structlog_belog_hashing"

            def get_config(self) -> dict[str, Any]:
                return {"dimensions": self.dimensions}

            @staticmethod
            def build_from_config(config: dict[str, Any]) -> Any:
                return _Hashing(int(config.get("dimensions", _DIMENSIONS)))

            def default_space(self) -> Any:
                return "cosine"

            def __repr__(self) -> str:
                return f"HashingEmbeddingFunction(dimensions={self.dimensions})"

        _Hashing.__qualname__ = _Hashing.__name__ = "HashingEmbeddingFunction"
        try:
            register_embedding_function(_Hashing)  # type: ignore[no-untyped-call]
        except ValueError:
            pass  # already registered (module reloaded in tests)
        _EMBEDDING_CLASS = _Hashing
    return _EMBEDDING_CLASS(dimensions)


def _metadata(record: Mapping[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "task_name": record["task_name"],
        "timestamp": str(record.get("timestamp") or ""),
        "added_ns": time.time_ns(),
        "record": orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS, default=str).decode(),
    }
    for key in ("blueprint_id", "blueprint_version", "session_id"):
        if isinstance(record.get(key), str):
            meta[key] = record[key]
    if isinstance(record.get("success"), bool):
        meta["success"] = record["success"]
    return meta


def _newest_first(metadatas: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    ordered = sorted(metadatas, key=lambda m: (m["timestamp"], m["added_ns"]), reverse=True)
    return [orjson.loads(m["record"]) for m in ordered]


class ChromaStore(BELogStore):
    """BELog store in an embedded ChromaDB ``PersistentClient`` folder.

    Args:
        path: The folder ChromaDB persists to (created when missing).
        embedding_function: Any ChromaDB embedding function; default
            `hashing_embedding_function()` (offline, no download).

    Raises:
        ModuleNotFoundError: chromadb is not installed.
    """

    def __init__(self, path: str | os.PathLike[str], *, embedding_function: Any = None) -> None:
        chromadb = _import_chromadb()
        from chromadb.config import Settings

        self.path = Path(path)
        self.location = f"chroma:{self.path}"
        self._lock = threading.RLock()
        self._embedding = embedding_function or hashing_embedding_function()
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._client = chromadb.PersistentClient(
                path=str(self.path), settings=Settings(anonymized_telemetry=False)
            )
            self._collection = self._open_collection()
        except Exception as exc:
            msg = f"BELog store {self.location} cannot be opened: {exc}"
            raise StoreError(self.location, msg) from exc

    def _open_collection(self) -> Any:
        return self._client.get_or_create_collection(
            COLLECTION, embedding_function=self._embedding, metadata={"hnsw:space": "cosine"}
        )

    def add(self, record: Mapping[str, Any]) -> None:
        """Index one record (see `BELogStore.add`)."""
        self.add_many((record,))

    def add_many(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Index *records* in batches ChromaDB accepts; return how many were new."""
        from .store import _check_record

        batch: dict[str, Mapping[str, Any]] = {}
        added = 0
        size = max(1, min(1000, int(self._client.get_max_batch_size())))
        for record in records:
            _check_record(record)
            batch.setdefault(record["execution_trace_id"], record)
            if len(batch) >= size:
                added += self._add_batch(batch)
                batch = {}
        if batch:
            added += self._add_batch(batch)
        return added

    def _add_batch(self, batch: Mapping[str, Mapping[str, Any]]) -> int:
        with self._lock:
            known = set(self._collection.get(ids=list(batch), include=[])["ids"])
            new = [(tid, rec) for tid, rec in batch.items() if tid not in known]
            if new:
                self._collection.add(
                    ids=[tid for tid, _ in new],
                    documents=["\n".join(search_text(rec)) for _, rec in new],
                    metadatas=[_metadata(rec) for _, rec in new],
                )
            return len(new)

    def _where(self, where: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
        with self._lock:
            found = self._collection.get(where=where, include=["metadatas"])
        return list(found["metadatas"] or [])

    def last_execution(self, blueprint_id: str | None = None) -> dict[str, Any] | None:
        """The most recent record, of *blueprint_id* when given."""
        where = None if blueprint_id is None else {"blueprint_id": blueprint_id}
        found = _newest_first(self._where(where))
        return found[0] if found else None

    def get_past_attempts(self, task_name: str, limit: int = 10) -> list[dict[str, Any]]:
        """The *limit* most recent attempts of *task_name*, newest first."""
        return _newest_first(self._where({"task_name": task_name}))[: max(0, limit)]

    def get_latest_blueprint_version(self, blueprint_id: str) -> str | None:
        """The greatest version of *blueprint_id* by `version_key`."""
        metas = self._where({"blueprint_id": blueprint_id})
        return latest_version(m.get("blueprint_version") for m in metas)

    def get_blueprint_records(self, blueprint_id: str) -> list[dict[str, Any]]:
        """Every record of *blueprint_id*, oldest first."""
        return _newest_first(self._where({"blueprint_id": blueprint_id}))[::-1]

    def similar(self, text: str, k: int = 5) -> list[dict[str, Any]]:
        """The *k* nearest records to *text* in embedding space, nearest first."""
        with self._lock:
            total = self._collection.count()
            if total == 0 or k <= 0 or not text.strip():
                return []
            found = self._collection.query(
                query_texts=[text], n_results=min(k, total), include=["metadatas"]
            )
        return [orjson.loads(m["record"]) for m in (found["metadatas"] or [[]])[0]]

    def count(self) -> int:
        """How many records the collection holds."""
        with self._lock:
            return int(self._collection.count())

    def clear(self) -> None:
        """Drop and recreate the collection."""
        with self._lock:
            self._client.delete_collection(COLLECTION)
            self._collection = self._open_collection()
