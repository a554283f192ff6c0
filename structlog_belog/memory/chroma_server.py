"""The BELog store on a ChromaDB server, shared by many workers (optional extra ``chroma``).

``open_store("http://HOST:PORT")`` (or ``https://``) returns a `ChromaServerStore`:
the same questions as `SQLiteStore`, answered by a ChromaDB server through
chromadb's ``HttpClient``, so that every worker of a fleet reads and writes
one execution memory.

How the records are laid out, and why, is told in `chroma_rows`: one row per
record in the main collection (its ID the ``execution_trace_id``, the record
itself a metadata value), again in its task's chain of rows (`chroma_chain`,
read by ID only: `get_past_attempts` is two ``get`` s by ID), and the
blueprint versions and newest-time hints in a tiny third one. Every question
is one to three requests; none but `similar` is an embedding search.

What a question costs is measured in docs/performance.md ("BELog store on a
ChromaDB server"): on ``chroma run`` every read that is not by ID pays a
cost that grows with the collection's size, whatever it matches.

A server that is down or slow must not hold up a task: every request has a
short timeout, and after a failure the store's circuit opens — calls fail at
once with `StoreError` for a cool-down that doubles up to a minute — before one
call probes the server again.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

from ..exceptions import StoreError
from .chroma import _import_chromadb, hashing_embedding_function
from .chroma_chain import append_attempts, newest_attempts, task_key
from .chroma_rows import _metadata, _micros, _order, _record, record_id
from .store import BELogStore, _check_record, latest_version, search_text

__all__ = [
    "ATTEMPTS",
    "DEFAULT_TIMEOUT",
    "RECORDS",
    "VERSIONS",
    "ChromaServerStore",
    "parse_server_url",
    "task_key",
]

#: Collection of the BELog records on the server.
RECORDS = "belog_records"
#: Collection of the (blueprint, version) pairs seen.
VERSIONS = "belog_versions"
#: Collection of each task's chain of attempt rows (see `chroma_chain`).
ATTEMPTS = "belog_attempts"
#: Seconds a request may take before the server counts as down.
DEFAULT_TIMEOUT = 2.0

# Windows looked at, most recent first, before the whole history (microseconds).
_MINUTE = 60_000_000
_WINDOWS = (_MINUTE, 60 * _MINUTE, 24 * 60 * _MINUTE, 30 * 24 * 60 * _MINUTE)
# ID prefix of the "newest time" hints kept beside the versions.
_HEAD = "\x1ehead"
_MAX_COOLDOWN = 60.0
# Request timeouts after which `add` (a task waiting) tries no further claim of a chain row.
_ADD_BUDGET = 4
# Chroma's collection names (3-512 characters); ours leave room for the "_attempts" suffix.
_NAME = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9._-]{1,58})[a-zA-Z0-9]")


def parse_server_url(url: str) -> tuple[str, int, bool, dict[str, str]]:
    """Split ``http(s)://HOST[:PORT][?collection=NAME]`` into host, port, TLS and options.

    Raises:
        ValueError: not an ``http``/``https`` URL with a host, a path other
            than ``/``, or an unknown option.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        msg = f"location must be 'http://HOST:PORT' or 'https://HOST:PORT', got {url!r}"
        raise ValueError(msg)
    if parts.path not in ("", "/") or parts.fragment or parts.username or parts.password:
        msg = (
            f"location must be 'http(s)://HOST:PORT[?collection=NAME]' with no path or "
            f"credentials (pass headers= for authentication), got {url!r}"
        )
        raise ValueError(msg)
    options = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(options) - {"collection", "tenant", "database"})
    if unknown:
        msg = f"location {url!r} has unknown options {unknown}; known: collection, tenant, database"
        raise ValueError(msg)
    name = options.get("collection")
    if name is not None and not _NAME.fullmatch(name):
        msg = (
            f"location {url!r}: collection must be 3-60 characters of [a-zA-Z0-9._-], "
            f"starting and ending with a letter or digit, got {name!r}"
        )
        raise ValueError(msg)
    try:
        port = parts.port
    except ValueError as exc:
        msg = f"location {url!r} has an invalid port"
        raise ValueError(msg) from exc
    tls = parts.scheme == "https"
    return parts.hostname, port or (443 if tls else 8000), tls, options


def _close_session(client: Any) -> None:
    """Close a chromadb client's HTTP connections (chromadb's client never does)."""
    session = getattr(getattr(client, "_server", None), "_session", None)
    try:
        if session is not None:
            session.close()
    except Exception:  # noqa: BLE001, S110 - closing is best effort
        pass


class ChromaServerStore(BELogStore):
    """BELog store on a ChromaDB server (``chroma run``), through chromadb's ``HttpClient``.

    Args:
        url: ``http://HOST:PORT`` or ``https://HOST:PORT``, optionally with
            ``?collection=NAME`` (default ``belog_records``), ``tenant=`` and
            ``database=``.
        embedding_function: Any ChromaDB embedding function for `similar`;
            default `hashing_embedding_function()` (offline, no download).
            Every worker of one collection must use the same one.
        timeout: Seconds one request may take (connect and read).
        headers: Extra HTTP headers (for example an authentication token).
        batch_size: Records per add request in `add_many` (keep each request
            well within *timeout*).

    Raises:
        ValueError: *url* is not a server URL this store serves.
        ModuleNotFoundError: chromadb is not installed.

    The connection is made on first use, so opening never waits on the server.
    """

    def __init__(
        self,
        url: str,
        *,
        embedding_function: Any = None,
        timeout: float = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        batch_size: int = 100,
    ) -> None:
        host, port, tls, options = parse_server_url(url)
        if not (isinstance(timeout, int | float) and timeout > 0):
            msg = f"timeout must be a positive number of seconds, got {timeout!r}"
            raise ValueError(msg)
        if not (isinstance(batch_size, int) and batch_size > 0):
            msg = f"batch_size must be a positive int, got {batch_size!r}"
            raise ValueError(msg)
        _import_chromadb()
        self.url = url
        self._batch_size = batch_size
        self.location = url
        self._host, self._port, self._tls = host, port, tls
        self._collection_name = options.get("collection") or RECORDS
        self._tenant = options.get("tenant") or None
        self._database = options.get("database") or None
        self._timeout = float(timeout)
        self._headers = dict(headers or {})
        self._embedding = embedding_function or hashing_embedding_function()
        self._lock = threading.RLock()
        self._client: Any = None
        self._records: Any = None
        self._versions: Any = None
        self._attempts: Any = None
        self._open_until = 0.0
        self._cooldown = 0.0
        # Versions this store already sent: upserted once per process, not per record.
        self._versions_sent: set[str] = set()
        # The newest time this store announced per head (see `last_execution`).
        self._heads_sent: dict[str, int] = {}
        #: Requests that failed (the server was down, slow or refused them).
        self.failures = 0

    # connection and circuit ---------------------------------------------------------

    def _connect(self) -> None:
        import chromadb
        import httpx
        from chromadb.config import Settings

        base = f"{'https' if self._tls else 'http'}://{self._host}:{self._port}"
        # chromadb's client waits forever; probe with a bounded request first.
        httpx.get(f"{base}/api/v2/heartbeat", timeout=self._timeout).raise_for_status()
        kwargs: dict[str, Any] = {}
        if self._tenant:
            kwargs["tenant"] = self._tenant
        if self._database:
            kwargs["database"] = self._database
        client = self._bounded(
            lambda: chromadb.HttpClient(
                host=self._host,
                port=self._port,
                ssl=self._tls,
                headers=self._headers or None,
                settings=Settings(anonymized_telemetry=False),
                **kwargs,
            )
        )
        session = getattr(getattr(client, "_server", None), "_session", None)
        if isinstance(session, httpx.Client):
            session.timeout = httpx.Timeout(self._timeout)
        self._records = client.get_or_create_collection(
            self._collection_name,
            embedding_function=self._embedding,
            metadata={"hnsw:space": "cosine"},
        )
        self._versions = client.get_or_create_collection(
            f"{self._collection_name}_versions", embedding_function=None
        )
        self._attempts = client.get_or_create_collection(
            f"{self._collection_name}_attempts", embedding_function=None
        )
        self._client = client
        # A new connection may be to a server that lost them.
        self._versions_sent.clear()
        self._heads_sent.clear()

    def _bounded(self, make: Any) -> Any:
        """``make()`` in a helper thread, given up after two request timeouts.

        chromadb's ``HttpClient`` asks the server who the caller is and whether
        the tenant and database exist while it is built, before any timeout
        can be set on its connection (it has none): a server that answered the
        heartbeat and then stalled would hold the task forever. The helper is
        left to finish on its own (it closes what it built, unused).
        """
        done = threading.Event()
        abandoned = threading.Event()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["value"] = make()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                box["error"] = exc
            done.set()
            if abandoned.is_set() and "value" in box:
                _close_session(box["value"])

        threading.Thread(target=run, name="belog-store-connect", daemon=True).start()
        if not done.wait(2 * self._timeout):
            abandoned.set()
            msg = f"the server did not answer within {2 * self._timeout:g}s"
            raise TimeoutError(msg)
        if "error" in box:
            raise box["error"]
        return box["value"]

    def _call(self, what: str, fn: Any) -> Any:
        """Run *fn* against the server, through the circuit breaker."""
        with self._lock:
            now = time.monotonic()
            if now < self._open_until:
                msg = (
                    f"BELog store {self.location} is unavailable (a request failed "
                    f"{self._cooldown:.0f}s ago; retrying after the cool-down)"
                )
                raise StoreError(self.location, msg)
            try:
                if self._client is None:
                    self._connect()
                result = fn()
            except Exception as exc:
                self.failures += 1
                self._drop_client()
                self._cooldown = min(_MAX_COOLDOWN, max(1.0, self._cooldown * 2))
                self._open_until = time.monotonic() + self._cooldown
                msg = f"BELog store {self.location} failed to {what}: {type(exc).__name__}: {exc}"
                raise StoreError(self.location, msg) from exc
            self._cooldown = 0.0
            return result

    def _drop_client(self) -> None:
        """Forget the client, closing its HTTP connections (chromadb's client never does)."""
        client, self._client = self._client, None
        self._records = self._versions = self._attempts = None
        _close_session(client)

    def __del__(self) -> None:
        try:
            self._drop_client()
        except Exception:  # noqa: BLE001, S110 - at interpreter exit anything may be gone
            pass

    def check(self) -> None:
        """Reach the server now, raising `StoreError` if it does not answer."""
        self._call("connect", lambda: self._client.heartbeat())  # noqa: PLW0108 - _client is set by _call

    def close(self) -> None:
        """Drop the connection (the next call reconnects) and reset the circuit."""
        with self._lock:
            self._drop_client()
            self._open_until = self._cooldown = 0.0

    # writes -------------------------------------------------------------------------

    def add(self, record: Mapping[str, Any]) -> None:
        """Index one record (see `BELogStore.add`); a record already there is left as it is.

        About seven requests: whether the server holds it, the newest-time
        hints, its task chain's last row (two reads), the row claimed and read
        back (again if another worker won it), then the main row; every eighth
        row of a task also moves its head hint. No row is claimed after four
        request timeouts.
        """
        _check_record(record)
        self._add_batch({record_id(record): record}, budget=_ADD_BUDGET * self._timeout)

    def add_many(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Index *records* in batches; return how many were new to the server."""
        batch: dict[str, Mapping[str, Any]] = {}
        added = 0
        for record in records:
            _check_record(record)
            batch.setdefault(record_id(record), record)
            if len(batch) >= self._batch_size:
                added += self._add_batch(batch)
                batch = {}
        if batch:
            added += self._add_batch(batch)
        return added

    def _add_batch(
        self, batch: Mapping[str, Mapping[str, Any]], *, budget: float | None = None
    ) -> int:
        """Send what of *batch* the server lacks; claims stop *budget* seconds after the start."""
        start = time.monotonic()

        def send() -> int:
            # Only what the server lacks: a record already there is not put in
            # its task's chain again.
            known = set(self._records.get(ids=list(batch), include=[])["ids"])
            new = [(key, rec) for key, rec in batch.items() if key not in known]
            if not new:
                return 0
            texts = ["\n".join(search_text(rec)) for _, rec in new]
            # Versions go first: a record is never visible before its blueprint version.
            versions = {
                key: rec
                for _, rec in new
                if isinstance(rec.get("blueprint_id"), str)
                and isinstance(rec.get("blueprint_version"), str)
                and (key := f"{rec['blueprint_id']}\x1f{rec['blueprint_version']}")
                not in self._versions_sent
            }
            ids = list(versions)
            metas: list[dict[str, Any]] = [
                {"version_of": r["blueprint_id"], "blueprint_version": r["blueprint_version"]}
                for r in versions.values()
            ]
            heads = self._heads([rec for _, rec in new])
            ids += list(heads)
            metas += [{"head": 1, "ts": ts} for ts in heads.values()]
            if ids:
                self._versions.upsert(ids=ids, embeddings=[[1.0]] * len(ids), metadatas=metas)
                self._versions_sent.update(versions)
                self._heads_sent.update(heads)
            # The task chains first: a record in the main collection is in its
            # task's chain too (add_many skips what the main one holds).
            append_attempts(
                self._attempts,
                [rec for _, rec in new],
                deadline=None if budget is None else start + budget,
            )
            # A record another worker added meanwhile has the same ID: the server
            # keeps one.
            self._records.add(
                ids=[key for key, _ in new],
                embeddings=list(self._embedding(texts)),
                metadatas=[_metadata(rec) for _, rec in new],
            )
            return len(new)

        return int(self._call("add records", send))

    def _heads(self, records: list[Mapping[str, Any]]) -> dict[str, int]:
        """The newest time per head (all records, each blueprint) that moved forward."""
        newest: dict[str, int] = {}
        for rec in records:
            ts = _micros(rec.get("timestamp"))
            keys = [_HEAD]
            if isinstance(rec.get("blueprint_id"), str):
                keys.append(f"{_HEAD}\x1f{rec['blueprint_id']}")
            for key in keys:
                if ts > newest.get(key, -1):
                    newest[key] = ts
        return {k: ts for k, ts in newest.items() if ts > self._heads_sent.get(k, -1)}

    def _head(self, blueprint_id: str | None) -> int | None:
        """The newest time some writer announced for *blueprint_id* (or all), a hint."""
        key = _HEAD if blueprint_id is None else f"{_HEAD}\x1f{blueprint_id}"

        def fetch() -> int | None:
            found = self._versions.get(ids=[key], include=["metadatas"])
            metas = found["metadatas"] or []
            return int(metas[0]["ts"]) if metas and "ts" in metas[0] else None

        found: int | None = self._call("read records", fetch)
        return found

    def clear(self) -> None:
        """Remove every record of this store's collections from the server."""

        def drop() -> None:
            names = [self._collection_name, f"{self._collection_name}_versions"]
            names.append(f"{self._collection_name}_attempts")
            for name in names:
                try:
                    self._client.delete_collection(name)
                except Exception:  # noqa: BLE001, S110 - already gone
                    pass
            self._drop_client()  # recreated on the next call
            self._versions_sent.clear()
            self._heads_sent.clear()

        self._call("clear", drop)

    def reindex(self, *dirs: Any) -> int:
        """Add the records of the BELog JSONL files under *dirs* that the server lacks.

        Unlike a local index, a shared store is not rebuilt: other workers'
        records stay. Records already on the server are not doubled. Returns
        how many records were added.
        """
        from .store import default_log_dir, read_belog_files

        sources = dirs or (default_log_dir(),)
        return self.add_many(read_belog_files(*sources))

    # reads --------------------------------------------------------------------------

    def _matching(self, where: Mapping[str, Any] | None) -> list[dict[str, Any]]:
        """The records matching *where*, oldest first (as SQLite orders them): one request."""

        def fetch() -> list[dict[str, Any]]:
            found = self._records.get(where=where, include=["metadatas"])
            rows = sorted(
                (_order(meta, key), meta)
                for key, meta in zip(found["ids"], found["metadatas"] or [], strict=False)
                if meta
            )
            return [rec for _, meta in rows if (rec := _record(meta)) is not None]

        return list(self._call("read records", fetch))

    def _newest(
        self, where: Mapping[str, Any] | None, limit: int, windows: tuple[int, ...]
    ) -> list[dict[str, Any]]:
        """The *limit* newest records matching *where*, newest first.

        The records matching *where* in the most recent window are read
        first, widening to the whole history only when the window holds fewer
        than *limit*.
        """
        if limit <= 0:
            return []
        now = time.time_ns() // 1000
        found: list[dict[str, Any]] = []
        for window in (*windows, None):
            if window is None:
                scoped = where
            else:
                recent = {"ts": {"$gte": now - window}}
                scoped = recent if where is None else {"$and": [dict(where), recent]}
            found = self._matching(scoped)
            if len(found) >= limit:
                break
        return found[::-1][:limit]

    def last_execution(self, blueprint_id: str | None = None) -> dict[str, Any] | None:
        """The most recent record, of *blueprint_id* when given."""
        where = None if blueprint_id is None else {"blueprint_id": blueprint_id}
        # Writers announce the newest time they added (a hint, racy but never
        # newer than a record): the records at or after it are few, and hold
        # the newest. Without a hint, or when they are not visible yet, the
        # time windows decide.
        hint = self._head(blueprint_id)
        if hint is not None:
            recent = {"ts": {"$gte": hint}}
            found = self._matching(recent if where is None else {"$and": [dict(where), recent]})
            if found:
                return found[-1]
        found = self._newest(where, 1, _WINDOWS)
        return found[0] if found else None

    def get_past_attempts(self, task_name: str, limit: int = 10) -> list[dict[str, Any]]:
        """The *limit* most recent attempts of *task_name*, newest first."""
        # Reads by ID only (the head hint, then a window of the task's chain):
        # a `where` costs the server time in proportion to the collection it
        # searches, whatever it matches; a `get` of a few dozen IDs does not.
        if limit <= 0:
            return []
        return list(
            self._call(
                "read records", lambda: newest_attempts(self._attempts, task_name, int(limit))
            )
        )

    def get_latest_blueprint_version(self, blueprint_id: str) -> str | None:
        """The greatest version of *blueprint_id* by `version_key` (``v1.10`` > ``v1.9``)."""

        def fetch() -> list[Any]:
            found = self._versions.get(where={"version_of": blueprint_id}, include=["metadatas"])
            return [m.get("blueprint_version") for m in found["metadatas"] or []]

        return latest_version(self._call("read versions", fetch))

    def get_blueprint_records(self, blueprint_id: str) -> list[dict[str, Any]]:
        """Every record of *blueprint_id*, oldest first."""
        return self._matching({"blueprint_id": blueprint_id})

    def similar(self, text: str, k: int = 5) -> list[dict[str, Any]]:
        """The *k* nearest records to *text* in embedding space, nearest first."""
        if k <= 0 or not text.strip():
            return []
        vector = next(iter(self._embedding([text])))

        def search() -> list[dict[str, Any]]:
            # One request: the server returns fewer than n_results when it holds fewer.
            found = self._records.query(
                query_embeddings=[vector], n_results=int(k), include=["metadatas"]
            )
            metas = (found["metadatas"] or [[]])[0]
            return [rec for meta in metas if (rec := _record(meta)) is not None]

        return list(self._call("search records", search))

    def count(self) -> int:
        """How many records the server's collection holds."""
        return int(self._call("count records", lambda: self._records.count()))  # noqa: PLW0108
