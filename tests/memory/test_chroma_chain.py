"""Each task's chain of attempt rows on a real ChromaDB server (`chroma run` on 127.0.0.1)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from structlog_belog.memory.chroma_chain import (
    AHEAD,
    MAX_LOST_ROUNDS,
    ROW_RECORDS,
    STRIDE,
    _head,
    _records,
    _row,
    append_attempts,
    task_key,
)
from structlog_belog.memory.chroma_rows import _spread, record_id
from structlog_belog.memory.chroma_server import ChromaServerStore
from structlog_belog.memory.sqlite import SQLiteStore
from tests.chroma_server import ChromaServer, running_server
from tests.memory.test_chroma_server import fields, record


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """One real Chroma server for the module's tests (each test gets its own collection)."""
    yield from running_server(tmp_path_factory.mktemp("chroma") / "data")


@pytest.fixture
def url(server: ChromaServer) -> str:
    """The server's URL with a collection of this test's own."""
    return f"{server.url}?collection=c{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(url: str) -> Iterator[ChromaServerStore]:
    """A server store on a fresh collection."""
    found = ChromaServerStore(url, timeout=30)
    yield found
    found.close()


def chain(store: ChromaServerStore, task: str) -> list[list[str]]:
    """The trace IDs each row of *task*'s chain holds, row 1 first, up to the first missing row."""
    store.check()
    key = task_key(task)
    ids = [_row(key, n) for n in range(1, 2001)]
    found = store._attempts.get(ids=ids, include=["metadatas"])
    rows = dict(zip(found["ids"], found["metadatas"], strict=True))
    held = []
    for row_id in ids:
        if row_id not in rows:
            break
        held.append([record_id(r) for r in _records(rows[row_id])])
    assert len(held) == len(rows), "the chain has a gap"
    return held


def set_head(store: ChromaServerStore, task: str, n: int) -> None:
    """Move *task*'s head hint to *n* (as a slow writer's late upsert would)."""
    store.check()
    head = _head(task_key(task))
    store._attempts.upsert(ids=[head], embeddings=[_spread(head)], metadatas=[{"head": n}])


def assert_same_attempts(local: SQLiteStore, remote: ChromaServerStore, task: str) -> None:
    """*remote* answers `get_past_attempts` as *local* does, for several limits."""
    for limit in (1, 3, 10, 25, 1000):
        assert fields(local.get_past_attempts(task, limit)) == fields(
            remote.get_past_attempts(task, limit)
        ), limit


def attempts(task: str, count: int, first: int) -> list[dict[str, Any]]:
    """*count* records of *task* at random times in the last day, trace IDs from *first*."""
    rng = random.Random(first)  # noqa: S311 - seeded test data, nothing cryptographic
    return [record(task, timedelta(seconds=rng.randrange(86_400)), first + i) for i in range(count)]


class TestTaskKey:
    """`task_key`: the task's part of its rows' IDs."""

    @given(st.text())
    def test_stable_and_safe(self, task: str) -> None:
        """Any name (lone surrogates too) has one key of 24 hex digits, the same every time."""
        key = task_key(task)
        assert key == task_key(task)
        assert 24 == len(key)
        assert set(key) <= set("0123456789abcdef")

    def test_names_differ(self) -> None:
        """Ten thousand task names get ten thousand keys."""
        assert 10_000 == len({task_key(f"Task {n:05d}") for n in range(10_000)})


class TestChain:
    """A task's chain answers as SQLite does, whatever order and hint it is written with."""

    def test_rows_in_order_without_gaps(self, store: ChromaServerStore, tmp_path: Path) -> None:
        """One by one and in a batch: each record in one row, rows of at most ROW_RECORDS."""
        records = attempts("parse", 3 * ROW_RECORDS + 5, 0)
        for rec in records[:7]:
            store.add(rec)
        store.add_many(records[7:])
        local = SQLiteStore(tmp_path / "index.sqlite3")
        local.add_many(records)

        held = chain(store, "parse")
        assert sorted(record_id(r) for r in records) == sorted(i for row in held for i in row)
        assert [1] * 7 == [len(row) for row in held[:7]]
        assert all(len(row) <= ROW_RECORDS for row in held)
        assert_same_attempts(local, store, "parse")

    def test_out_of_time_order(self, store: ChromaServerStore, tmp_path: Path) -> None:
        """Old records appended after new ones (a catch-up reindex) are ranked by their time."""
        records = attempts("parse", 60, 0)
        records.sort(key=lambda r: r["timestamp"], reverse=True)
        for n in range(0, 60, 3):
            store.add_many(records[n : n + 3])
        local = SQLiteStore(tmp_path / "index.sqlite3")
        local.add_many(records)

        assert 60 == sum(len(row) for row in chain(store, "parse"))
        assert_same_attempts(local, store, "parse")

    @pytest.mark.parametrize("hint", [0, 1, 2, 7, 400])
    def test_lagging_head_hint(self, hint: int, store: ChromaServerStore, tmp_path: Path) -> None:
        """A head hint far behind the chain's end (or past it) changes no answer, nor the chain."""
        records = attempts("parse", 3 * (STRIDE + AHEAD) + 4, 0)
        for rec in records[:30]:
            store.add(rec)
        set_head(store, "parse", hint)
        local = SQLiteStore(tmp_path / "index.sqlite3")
        local.add_many(records[:30])

        assert_same_attempts(local, store, "parse")
        # Writers find the end of the chain too: the next rows follow on, no gap, no overwrite.
        for rec in records[30:]:
            store.add(rec)
        local.add_many(records[30:])
        held = chain(store, "parse")
        assert len(records) == len(held)
        assert_same_attempts(local, store, "parse")

    def test_record_in_two_rows_answered_once(
        self, store: ChromaServerStore, tmp_path: Path
    ) -> None:
        """A record whose main row was lost (a crash), added again: in two rows, answered once."""
        records = attempts("parse", 12, 0)
        store.add_many(records)
        store._records.delete(ids=[record_id(r) for r in records[:5]])
        assert 5 == store.add_many(records)
        local = SQLiteStore(tmp_path / "index.sqlite3")
        local.add_many(records)

        assert 17 == sum(len(row) for row in chain(store, "parse"))
        assert_same_attempts(local, store, "parse")

    def test_damaged_rows_are_skipped(self, store: ChromaServerStore) -> None:
        """Rows whose records are not JSON, or not a list of records, answer nothing, never fail."""
        store.check()
        key = task_key("parse")
        ids = [_row(key, 1), _row(key, 2), _row(key, 3)]
        store._attempts.add(
            ids=ids,
            embeddings=[_spread(i) for i in ids],
            metadatas=[{"records": "{not json"}, {"records": 7}, {"records": '{"a": 1}'}],
        )
        one = attempts("parse", 1, 0)
        store.add(one[0])

        assert [record_id(one[0])] == [record_id(r) for r in store.get_past_attempts("parse")]
        assert 4 == len(chain(store, "parse"))

    def test_nothing_to_append(self, store: ChromaServerStore) -> None:
        """Appending no records sends nothing and leaves the chains empty."""
        store.check()
        append_attempts(store._attempts, [])
        assert 0 == store._attempts.count()


SAME_TASK = """
import json, sys
from structlog_belog.memory.chroma_server import ChromaServerStore

url, path, mode = sys.argv[1], sys.argv[2], sys.argv[3]
records = json.loads(open(path).read())
store = ChromaServerStore(url, timeout=60, batch_size=3)
if mode == "one":
    for rec in records:
        store.add(rec)
else:
    store.add_many(records)
print(store.failures)
"""


class TestSameTaskAtOnce:
    """Several processes adding attempts of one task at once: each is answered exactly once."""

    def test_every_attempt_once(
        self, url: str, tmp_path: Path, subprocess_env: dict[str, str]
    ) -> None:
        """6 processes (one by one and in batches of 3) x 25 attempts of one task, at once."""
        batches = [attempts("contended", 25, 1000 * n) for n in range(6)]
        procs = []
        for n, batch in enumerate(batches):
            path = tmp_path / f"w{n}.json"
            path.write_text(json.dumps(batch))
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", SAME_TASK, url, str(path), ("one", "many")[n % 2]],
                    env=subprocess_env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            assert (0, "0") == (proc.returncode, out.strip()), err
        written = [rec for batch in batches for rec in batch]
        local = SQLiteStore(tmp_path / "index.sqlite3")
        local.add_many(written)
        store = ChromaServerStore(url, timeout=30)

        held = chain(store, "contended")
        assert sorted(record_id(r) for r in written) == sorted(i for row in held for i in row)
        assert sorted(record_id(r) for r in written) == sorted(
            record_id(r) for r in store.get_past_attempts("contended", 1000)
        )
        assert_same_attempts(local, store, "contended")


class Rival:
    """The chains' collection with another writer that claims every row just before this one."""

    def __init__(self, collection: Any) -> None:
        self.collection = collection

    def add(self, ids: list[str], embeddings: Any, metadatas: list[dict[str, Any]]) -> None:
        """Add the rival's rows under the same IDs first, then this writer's (which lose)."""
        rival = [{**meta, "claim": "rival"} for meta in metadatas]
        self.collection.add(ids=ids, embeddings=embeddings, metadatas=rival)
        self.collection.add(ids=ids, embeddings=embeddings, metadatas=metadatas)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.collection, name)


class TestGivingUp:
    """Claiming rows is bounded: a task is never held by a server that is slow or contended."""

    def test_past_deadline(self, store: ChromaServerStore) -> None:
        """With its deadline passed, no row is claimed and TimeoutError says so."""
        store.check()
        with pytest.raises(TimeoutError, match="deadline"):
            append_attempts(store._attempts, attempts("parse", 1, 0), deadline=time.monotonic() - 1)
        assert [] == chain(store, "parse")

    def test_always_outrun(self, store: ChromaServerStore) -> None:
        """A writer losing every claim stops after MAX_LOST_ROUNDS; the chain has no gap."""
        store.check()
        with pytest.raises(TimeoutError, match="rounds in a row"):
            append_attempts(Rival(store._attempts), attempts("parse", 1, 0))
        assert MAX_LOST_ROUNDS == len(chain(store, "parse"))
