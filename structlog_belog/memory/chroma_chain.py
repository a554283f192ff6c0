"""Each task's attempts as a chain of numbered rows on a ChromaDB server, read by ID only.

`ChromaServerStore.get_past_attempts` must not search: on ``chroma run``
every read that is not by ID (a ``where``, ``count()``, ``get(limit=)``)
costs time in proportion to the collection's size, whatever it matches
(19-33 ms for a task's ``where`` at 100k rows), while a ``get`` of a few
dozen IDs costs about 3 ms at any size. So each task's attempts are also
kept as a chain of rows in a collection of their own (``NAME_attempts``)
whose IDs a reader can compute:

- ``<key>:<n>`` for n = 1, 2, 3... is the task's n-th row, *key* a hash of
  the task name (`task_key`: any name is safe, whatever its characters). A
  row holds one to `ROW_RECORDS` records of that task (JSON, a metadata
  value), the greatest timestamp among them (``last``) and the greatest
  timestamp of every row below it (``before``).
- ``<key>:head`` is a hint: a row number that exists. It is moved
  forward every `STRIDE` rows or so, by upsert, so it may lag behind the
  last row, and even go backwards when two writers upsert it at once;
  readers never trust it further than that.

**Claiming a row.** A writer finds the task's last row n (the hint, then
the rows after it), then ``add`` s row n + 1 — the server ignores an ``add``
of an ID it already holds, so of two writers claiming one row, the first
wins (checked on chromadb 1.5.9's ``chroma run``) — and reads it back by ID:
if the row's ``claim`` token is not its own, another writer won, and it
looks for the chain's end again (the rows from the lost one on: claiming
just the next row could lose again and again behind a chain growing
faster) and claims after it. A writer gives up after `MAX_LOST_ROUNDS`
rounds in a row won by others, or at its deadline (`add` sets one). A row
is only ever added by a writer that read the row below it, so the chain has
no gaps and ``before`` is exact: the row below's ``before`` and ``last``
together. A batch claims one row per task
per request (its records by time, `ROW_RECORDS` at a time): two rows of one
task in one request could win the second after losing the first, and the
second's ``before`` would then miss the winner's records.

**Reading.** The hint h (one ``get`` by ID), then rows h - limit - 1 to
h + `STRIDE` + `AHEAD` (a second ``get``), more rows forward while the
last one asked for exists, and backward while the rows read might not yet
hold the *limit* newest: fewer than *limit* records, or the *limit*-th
newest not newer than the lowest row's ``before``. Records are kept once
by ``execution_trace_id`` — a crash between a row and the main collection's
row leaves a record in two rows after ``reindex`` — and ordered as the
SQLite store orders them (by timestamp text, then ID).

Records appended out of time order (a catch-up ``reindex`` of old records)
make readers of that task read further back, one request per doubling of
the rows read.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from .chroma_rows import _spread, record_id

__all__ = [
    "AHEAD",
    "MAX_LOST_ROUNDS",
    "ROW_RECORDS",
    "STRIDE",
    "append_attempts",
    "newest_attempts",
    "task_key",
]

#: Rows between moves of a task's head hint (the reader's window reaches this far past it).
STRIDE = 8
#: Rows read past the head hint plus `STRIDE`, for writers the hint has not caught up with.
AHEAD = 4
#: Most records in one row (a batch of one task's records fills rows of this many).
ROW_RECORDS = 16
#: Rounds in a row in which other writers may win every row a writer claims before it gives up.
MAX_LOST_ROUNDS = 32
# Rows below the newest *limit* read in the first request, for records not in time order.
_MARGIN = 2


def task_key(task_name: str) -> str:
    """The task's key in its rows' IDs: a hash of its name (any characters are safe)."""
    digest = hashlib.blake2b(task_name.encode("utf-8", "surrogatepass"), digest_size=12)
    return digest.hexdigest()


def _row(key: str, n: int) -> str:
    return f"{key}:{n}"


def _head(key: str) -> str:
    return f"{key}:head"


def _rank(record: Mapping[str, Any]) -> tuple[str, str]:
    # As `chroma_rows._order`: by timestamp text, equal times by ID.
    return (str(record.get("timestamp") or ""), record_id(record))


def _get(collection: Any, ids: Sequence[str], *, rows: bool = True) -> dict[str, dict[str, Any]]:
    """The rows among *ids* the server holds, by ID (their metadata, or {} with *rows* False)."""
    if not ids:
        return {}
    found = collection.get(ids=list(ids), include=["metadatas"] if rows else [])
    metas = found.get("metadatas") or [None] * len(found["ids"])
    return {key: dict(meta or {}) for key, meta in zip(found["ids"], metas, strict=True)}


def _heads(collection: Any, keys: Iterable[str]) -> dict[str, int]:
    """Each task's head hint (0 when it has none): one request."""
    found = _get(collection, [_head(key) for key in keys])
    heads = {}
    for row_id, meta in found.items():
        value = meta.get("head")
        if isinstance(value, int) and value > 0:
            heads[row_id.rsplit(":", 1)[0]] = value
    return heads


def _records(meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    raw = meta.get("records")
    if not isinstance(raw, str):
        return []
    try:
        found = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return []
    return [rec for rec in found if isinstance(rec, dict)] if isinstance(found, list) else []


def newest_attempts(collection: Any, task_name: str, limit: int) -> list[dict[str, Any]]:
    """The *limit* newest records in *task_name*'s chain, newest first (by ID reads only)."""
    key = task_key(task_name)
    head = _heads(collection, [key]).get(key, 0)
    low, high = max(1, head - limit - _MARGIN + 1), head + STRIDE + AHEAD
    rows = _get(collection, [_row(key, n) for n in range(low, high + 1)])
    while _row(key, high) in rows:  # the hint lags: read on until the chain ends
        low_next, high = high + 1, high + STRIDE + AHEAD
        rows.update(_get(collection, [_row(key, n) for n in range(low_next, high + 1)]))
    found: dict[str, dict[str, Any]] = {}
    step = limit + _MARGIN
    while True:
        for meta in rows.values():
            for rec in _records(meta):
                found.setdefault(record_id(rec), rec)
        ranked = sorted(found.values(), key=_rank, reverse=True)
        if low <= 1:
            break
        below = rows.get(_row(key, low))
        # Every record below row *low* is at most `before` old; a missing row
        # *low* (a hint past the chain's end) bounds nothing.
        if (
            below is not None
            and len(ranked) >= limit
            and _rank(ranked[limit - 1])[0] > str(below.get("before", ""))
        ):
            break
        low, high = max(1, low - step), low - 1
        step *= 2
        rows = _get(collection, [_row(key, n) for n in range(low, high + 1)])
    return ranked[:limit]


def _tops(collection: Any, heads: Mapping[str, int]) -> dict[str, tuple[int, dict[str, Any]]]:
    """Each task's last row: its number and metadata ((0, {}) for an empty chain)."""
    tops: dict[str, tuple[int, dict[str, Any]]] = {}
    starts = {key: max(1, head) for key, head in heads.items()}
    seen: dict[str, int] = {}  # the last row of a window read whole
    span = STRIDE + AHEAD
    while starts:
        ids = [_row(key, n) for key, start in starts.items() for n in range(start, start + span)]
        # A single task's window comes with its rows; many tasks' windows as IDs,
        # then only their last rows (a batch would fetch thousands of records).
        few = len(ids) <= 4 * span
        found = _get(collection, ids, rows=few)
        ahead: dict[str, int] = {}
        for key, start in starts.items():
            held = [n for n in range(start, start + span) if _row(key, n) in found]
            if held and held[-1] == start + span - 1:
                ahead[key] = start + span
                seen[key] = held[-1]
            elif held or key in seen:
                tops[key] = (held[-1] if held else seen[key], {})
            elif start > 1:  # a hint past the end (never written so): scan from row 1
                ahead[key] = 1
            else:
                tops[key] = (0, {})
        if few:
            for key, (n, _) in list(tops.items()):
                if n and not tops[key][1]:
                    tops[key] = (n, found.get(_row(key, n), {}))
        starts = ahead
    missing = [_row(key, n) for key, (n, meta) in tops.items() if n and not meta]
    if missing:
        metas = _get(collection, missing)
        for key, (n, meta) in list(tops.items()):
            if n and not meta:
                tops[key] = (n, metas.get(_row(key, n), {}))
    return tops


def append_attempts(
    collection: Any, records: Iterable[Mapping[str, Any]], *, deadline: float | None = None
) -> None:
    """Add *records* to their tasks' chains, one row per task per request until all are in.

    Args:
        collection: The chains' collection (``NAME_attempts``).
        records: BELog records, of any tasks.
        deadline: A `time.monotonic` time after which no further claim is
            tried (None: no limit but the requests' own timeouts).

    Raises:
        TimeoutError: *deadline* passed, or other writers won every row this
            one claimed, `MAX_LOST_ROUNDS` times in a row.
        RuntimeError: a claimed row could not be read back (the server lost it).
    """
    chunks: dict[str, list[list[Mapping[str, Any]]]] = {}
    by_task: dict[str, list[Mapping[str, Any]]] = {}
    for rec in records:
        by_task.setdefault(task_key(str(rec["task_name"])), []).append(rec)
    for key, recs in by_task.items():
        recs.sort(key=_rank)
        chunks[key] = [recs[i : i + ROW_RECORDS] for i in range(0, len(recs), ROW_RECORDS)]
    if not chunks:
        return
    heads = _heads(collection, chunks)
    tops = _tops(collection, {key: heads.get(key, 0) for key in chunks})
    moved: dict[str, int] = {}
    lost = 0
    while chunks:
        if deadline is not None and time.monotonic() > deadline:
            msg = f"gave up claiming rows for {len(chunks)} task(s): past the deadline"
            raise TimeoutError(msg)
        if lost >= MAX_LOST_ROUNDS:
            msg = f"other writers won every row claimed, {lost} rounds in a row"
            raise TimeoutError(msg)
        lost += 1
        ids, metas, claims = [], [], {}
        for key, pending in chunks.items():
            n, below = tops[key]
            token = uuid.uuid4().hex
            claims[key] = token
            ids.append(_row(key, n + 1))
            metas.append(_row_metadata(pending[0], below, token))
        collection.add(ids=ids, embeddings=[_spread(i) for i in ids], metadatas=metas)
        got = _get(collection, ids)
        behind: dict[str, int] = {}
        for key, row_id in zip(list(chunks), ids, strict=True):
            held = got.get(row_id)
            if held is None:
                msg = f"row {row_id!r} was added but cannot be read back"
                raise RuntimeError(msg)
            n = tops[key][0] + 1
            tops[key] = (n, held)
            if held.get("claim") != claims[key]:
                # Lost to another writer, which may have added more rows
                # since: claiming the row after the lost one could lose again
                # and again, one row behind a chain that grows faster.
                behind[key] = n
                continue
            chunks[key].pop(0)
            lost = 0
            if not chunks[key]:
                del chunks[key]
            # Every STRIDE rows; at once when the hint is past the chain's end
            # (row n would not have been free had the hint's row existed).
            if not 0 <= n - heads.get(key, 0) < STRIDE:
                moved[key] = n
        if behind:
            tops.update(_tops(collection, behind))
    if moved:
        ids = [_head(key) for key in moved]
        collection.upsert(
            ids=ids,
            embeddings=[_spread(i) for i in ids],
            metadatas=[{"head": n} for n in moved.values()],
        )


def _row_metadata(
    records: Sequence[Mapping[str, Any]], below: Mapping[str, Any], token: str
) -> dict[str, Any]:
    """A row's metadata: its records, their newest time, and the newest time below it."""
    before = max(str(below.get("before", "")), str(below.get("last", "")))
    return {
        "claim": token,
        "last": max(_rank(rec)[0] for rec in records),
        "before": before,
        "records": orjson.dumps(
            list(records), option=orjson.OPT_NON_STR_KEYS, default=str
        ).decode(),
    }
