"""How a BELog record is laid out as rows on a ChromaDB server (`ChromaServerStore`).

- One Chroma record per BELog record in the main collection (``NAME``), its
  ID the record's ``execution_trace_id``: adding a record twice (a retry, a
  reindex, two workers catching up at once) never doubles it. It holds the
  embedding `similar` searches.
- The record itself (JSON) is a metadata value (``record``) beside what the
  questions filter and sort on (task, blueprint, session, success, the
  timestamp, also as integer microseconds), never a Chroma *document*: the
  server puts every document in a trigram full-text index that no question
  here uses, and that made every add about twice as slow. So a read is one
  request that brings back the records it needs.
- The record again in its task's chain of rows (``NAME_attempts``, told in
  `chroma_chain`), whose IDs a reader computes from the task name: on
  ``chroma run`` a ``where`` costs time in proportion to the collection it
  searches, whatever it matches (21.7 ms at 60k rows, 5.6 ms at 4k, same
  server, same load), a ``get`` by a few dozen IDs about 3 ms at any size,
  so `get_past_attempts` reads by ID only. The chain row is written before
  the main row: a record in the main collection is in its task's chain.
- Blueprint versions in a tiny collection (``NAME_versions``) under a key of
  their own (``version_of``): a ``where`` on a key that the records also
  carry walks every record's entry of the server's shared metadata index.
  Beside them, each writer announces the newest record time it added (for
  all records and per blueprint), the hint `last_execution` starts from.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = ["record_id"]


def _micros(timestamp: Any) -> int:
    """A record's ISO 8601 timestamp as integer microseconds since the epoch (0 if none)."""
    if not isinstance(timestamp, str) or not timestamp:
        return 0
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return 0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _spread(key: str) -> list[float]:
    """A task chain row's embedding: a point on the unit circle from a hash of its ID.

    Never searched, but Chroma wants one; equal vectors for every row made
    the server's HNSW insertions slower (5,000 rows: 4.2 s against 3.0 s).
    """
    turn = int.from_bytes(
        hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little"
    )
    angle = turn / 2**64 * 2 * math.pi
    return [math.cos(angle), math.sin(angle)]


def record_id(record: Mapping[str, Any]) -> str:
    """The record's ID on the server: its ``execution_trace_id``.

    Nothing else: adding a record again (a retry, a reindex, two workers
    catching up at once) finds the same ID whatever else differs, and the
    server keeps one record per ID.
    """
    return str(record["execution_trace_id"])


def _metadata(record: Mapping[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "task_name": record["task_name"],
        "ts": _micros(record.get("timestamp")),
        "timestamp": str(record.get("timestamp") or ""),
    }
    for key in ("blueprint_id", "blueprint_version", "session_id"):
        if isinstance(record.get(key), str):
            meta[key] = record[key]
    if isinstance(record.get("success"), bool):
        meta["success"] = record["success"]
    meta["record"] = orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS, default=str).decode()
    return meta


def _record(meta: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The BELog record a row's metadata holds (None for a row that holds none)."""
    raw = (meta or {}).get("record")
    if not isinstance(raw, str):
        return None
    try:
        found = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return found if isinstance(found, dict) else None


def _order(meta: Mapping[str, Any], key: str) -> tuple[str, str]:
    # As SQLite orders them: by timestamp text; equal times by ID (SQLite: insertion order).
    return (str(meta.get("timestamp", "")), key)
