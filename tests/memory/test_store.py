"""Tests for the BELog store: one suite for SQLite and ChromaDB, then SQLite specifics."""

from __future__ import annotations

import itertools
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from structlog_belog.exceptions import StoreError
from structlog_belog.memory.sqlite import _MIGRATIONS, SCHEMA_VERSION, SQLiteStore
from structlog_belog.memory.store import (
    DEFAULT_FILENAME,
    BELogStore,
    read_belog_files,
    version_key,
)
from structlog_belog.memory.stores import open_store


def record(task: str, second: int, **fields: Any) -> dict[str, Any]:
    """A BELog record of *task* logged at 00:00:<second> on 2025-01-18."""
    base: dict[str, Any] = {
        "timestamp": f"2025-01-18T17:30:{second:02d}.000000Z",
        "blueprint_id": "bp_003",
        "blueprint_version": "v1.2",
        "execution_context": "Generate supertasks from Naval content",
        "task_name": task,
        "expected_outcome": "valid supertask JSON",
        "execution_time": 1.0,
        "files_changed": [],
        "dependencies_affected": [],
        "pipeline_connections": [],
        "errors_encountered": [],
        "success": True,
        "efficiency_score": 100.0,
        "potential_breakage_risk": {"level": "none", "reasons": []},
        "cross_check_required": [],
        "execution_trace_id": f"belog_20250118T1730{second:02d}Z_{task[:3]}{second:09x}",
        "previous_attempts": [],
        "improvement_suggestions": [],
        "session_id": "sess_a",
    }
    base.update(fields)
    return base


def write_jsonl(path: Path, records: list[dict[str, Any]], *, kind: bool = True) -> None:
    """Write *records* as the record path would (kind belog, one per line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        for r in records:
            fh.write(orjson.dumps({"kind": "belog", "event": "belog", **r} if kind else r) + b"\n")


@pytest.fixture(params=["sqlite", "chroma"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BELogStore]:
    """Each backend, in a fresh folder."""
    if request.param == "sqlite":
        opened = open_store(tmp_path / DEFAULT_FILENAME)
    else:
        opened = open_store(f"chroma:{tmp_path / 'chroma'}")
    yield opened
    opened.close()


class TestBELogStore:
    """The behaviour every backend shares (parametrized: SQLite and ChromaDB)."""

    def test_past_attempts_newest_first_and_limited(self, store: BELogStore) -> None:
        """get_past_attempts returns one task's records, newest first, at most `limit`."""
        store.add_many([record("parse", s) for s in (3, 1, 2, 5, 4)] + [record("other", 9)])

        found = store.get_past_attempts("parse", limit=3)

        assert [5, 4, 3] == [int(r["timestamp"][17:19]) for r in found]
        assert {"parse"} == {r["task_name"] for r in found}

    def test_record_round_trip(self, store: BELogStore) -> None:
        """A stored record comes back equal to what was added."""
        original = record("parse", 1, errors_encountered=["ValueError: bad"], success=False)
        store.add(original)

        assert [original] == store.get_past_attempts("parse")

    def test_duplicate_trace_id_is_kept_once(self, store: BELogStore) -> None:
        """Adding the same record twice indexes it once."""
        store.add(record("parse", 1))

        assert 0 == store.add_many([record("parse", 1)])
        assert 1 == store.count()

    def test_unknown_task_has_no_attempts(self, store: BELogStore) -> None:
        """A task never run has no past attempts."""
        store.add(record("parse", 1))

        assert [] == store.get_past_attempts("never")

    def test_last_execution(self, store: BELogStore) -> None:
        """last_execution is the newest record, overall or of one blueprint."""
        store.add_many(
            [
                record("a", 1, blueprint_id="bp_1"),
                record("b", 3, blueprint_id="bp_2"),
                record("c", 2, blueprint_id="bp_1"),
            ]
        )

        assert "b" == store.last_execution()["task_name"]  # type: ignore[index]
        assert "c" == store.last_execution("bp_1")["task_name"]  # type: ignore[index]
        assert store.last_execution("bp_none") is None

    def test_empty_store_has_no_last_execution(self, store: BELogStore) -> None:
        """An empty store answers None, not an error."""
        assert store.last_execution() is None

    def test_latest_version_orders_numerically(self, store: BELogStore) -> None:
        """v1.10 is later than v1.9 whatever the insertion order."""
        for second, version in enumerate(["v1.10", "v1.9", "v1.2", "v1.9.1"]):
            store.add(record("t", second, blueprint_version=version))

        assert "v1.10" == store.get_latest_blueprint_version("bp_003")
        assert store.get_latest_blueprint_version("bp_none") is None

    def test_blueprint_records_oldest_first(self, store: BELogStore) -> None:
        """get_blueprint_records returns one blueprint's records in time order."""
        store.add_many([record("t", 3), record("t", 1), record("u", 2, blueprint_id="x")])

        assert [1, 3] == [int(r["timestamp"][17:19]) for r in store.get_blueprint_records("bp_003")]

    def test_similar_ranks_shared_words_first(self, store: BELogStore) -> None:
        """similar puts the record sharing the query's words first."""
        store.add_many(
            [
                record("Write report", 1, execution_context="render markdown summary"),
                record("Parse input", 2, errors_encountered=["JSONDecodeError: invalid json"]),
                record("Upload package", 3, improvement_suggestions=["retry the upload"]),
            ]
        )

        found = store.similar("invalid json while parsing input", k=2)

        assert "Parse input" == found[0]["task_name"]
        assert 2 >= len(found)
        assert [] == store.similar("", k=3)

    def test_add_rejects_record_without_trace_id(self, store: BELogStore) -> None:
        """A record without execution_trace_id is refused, naming the field."""
        bad = record("t", 1)
        del bad["execution_trace_id"]

        with pytest.raises(ValueError, match="execution_trace_id"):
            store.add(bad)

    def test_reindex_rebuilds_from_jsonl(self, store: BELogStore, tmp_path: Path) -> None:
        """reindex replaces the index with the records of the JSONL files and shards."""
        logs = tmp_path / "logs"
        write_jsonl(logs / "sessions" / "s1" / "belog.jsonl", [record("a", 1), record("a", 2)])
        write_jsonl(logs / "sessions" / "s1" / "belog.4242.jsonl", [record("a", 3)])
        store.add(record("stale", 9))

        count = store.reindex(logs)

        assert 3 == count
        assert 3 == store.count()
        assert [] == store.get_past_attempts("stale")

    def test_clear(self, store: BELogStore) -> None:
        """clear empties the store."""
        store.add(record("a", 1))
        store.clear()

        assert 0 == store.count()


class TestReadBelogFiles:
    """read_belog_files finds whole BELog records in plain and compressed files."""

    def test_skips_torn_lines_and_other_kinds(self, tmp_path: Path) -> None:
        """A torn last line and non-belog records are skipped."""
        path = tmp_path / "belog.jsonl"
        write_jsonl(path, [record("a", 1)])
        with path.open("ab") as fh:
            fh.write(orjson.dumps({"kind": "llm_call", "event": "x"}) + b"\n")
            fh.write(b'{"kind": "belog", "task_na')

        assert ["a"] == [r["task_name"] for r in read_belog_files(tmp_path)]

    def test_reads_zstd_packages(self, tmp_path: Path) -> None:
        """belog.jsonl.zst inside a package is read too."""
        raw = b"".join(orjson.dumps(record("z", s)) + b"\n" for s in range(3))
        target = tmp_path / "pkg" / "logs" / "belog.jsonl.zst"
        target.parent.mkdir(parents=True)
        target.write_bytes(zstandard.ZstdCompressor().compress(raw))

        assert 3 == len(list(read_belog_files(tmp_path)))

    def test_ignores_session_files_of_other_streams(self, tmp_path: Path) -> None:
        """processing.jsonl and prompts.jsonl inside a session are not read."""
        write_jsonl(tmp_path / "sessions" / "s1" / "processing.jsonl", [record("a", 1)])
        write_jsonl(tmp_path / "sessions" / "s1" / "prompts.jsonl", [record("a", 2)])

        assert [] == list(read_belog_files(tmp_path))

    def test_reads_belog_records_of_global_files(self, tmp_path: Path) -> None:
        """Records written outside any session (the global file) are read; others skipped."""
        app = tmp_path / "app.jsonl"
        write_jsonl(app, [record("global", 1)])
        with app.open("ab") as fh:
            fh.write(orjson.dumps({"event": "hello", "task_name": "x"}) + b"\n")
            reference = {"kind": "belog", "ref": "belog", **record("ref", 2)}
            fh.write(orjson.dumps(reference) + b"\n")

        assert ["global"] == [r["task_name"] for r in read_belog_files(tmp_path)]
        assert ["global"] == [r["task_name"] for r in read_belog_files(app)]


class TestVersionKey:
    """version_key orders versions as people read them."""

    def test_examples(self) -> None:
        """Numbers compare as numbers, longer versions after their prefix."""
        versions = ["v1.10", "v1.2", "v1.9", "v2", "v1.9.1", "v1.0"]

        assert ["v1.0", "v1.2", "v1.9", "v1.9.1", "v1.10", "v2"] == sorted(
            versions, key=version_key
        )

    @given(
        st.lists(st.integers(0, 10_000), min_size=1, max_size=4),
        st.lists(st.integers(0, 10_000), min_size=1, max_size=4),
    )
    def test_matches_integer_tuples(self, a: list[int], b: list[int]) -> None:
        """Dotted numeric versions order like their integer tuples."""
        va, vb = "v" + ".".join(map(str, a)), "v" + ".".join(map(str, b))

        assert (tuple(a) < tuple(b)) == (version_key(va) < version_key(vb))


class TestSQLiteStore:
    """What only the SQLite backend promises."""

    def test_wal_schema_and_indexes(self, tmp_path: Path) -> None:
        """The file is in WAL mode, at the current schema, with the lookup indexes."""
        store = open_store(tmp_path / "index.sqlite3")
        store.add(record("a", 1))
        conn = sqlite3.connect(tmp_path / "index.sqlite3")

        assert "wal" == conn.execute("PRAGMA journal_mode").fetchone()[0]
        assert SCHEMA_VERSION == conn.execute("PRAGMA user_version").fetchone()[0]
        names = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"belog_task_time", "belog_blueprint_time", "belog_time"} <= names
        conn.close()

    def test_file_is_private(self, tmp_path: Path) -> None:
        """The index file is created 0600: it holds what the logs hold."""
        open_store(tmp_path / "index.sqlite3")

        assert 0o600 == (tmp_path / "index.sqlite3").stat().st_mode & 0o777

    def test_migrates_from_version_1(self, tmp_path: Path) -> None:
        """A version-1 file gains the full-text index, backfilled from its records."""
        path = tmp_path / "old.sqlite3"
        conn = sqlite3.connect(path)
        for statement in _MIGRATIONS[0]:
            conn.execute(statement)
        old = record("Parse input", 1, errors_encountered=["invalid json"])
        conn.execute(
            "INSERT INTO belog (trace_id, task_name, timestamp, record) VALUES (?, ?, ?, ?)",
            (old["execution_trace_id"], old["task_name"], old["timestamp"], orjson.dumps(old)),
        )
        conn.execute("PRAGMA user_version = 1")
        conn.commit()
        conn.close()

        store = SQLiteStore(path)

        assert SCHEMA_VERSION == store.schema_version()
        assert [old] == store.similar("json")

    def test_newer_schema_is_refused(self, tmp_path: Path) -> None:
        """A file written by a newer version is refused with a clear error."""
        path = tmp_path / "new.sqlite3"
        conn = sqlite3.connect(path)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        conn.close()

        with pytest.raises(StoreError, match="newer than this structlog-belog"):
            open_store(path)

    def test_corrupted_file_error_and_reindex_recovery(self, tmp_path: Path) -> None:
        """A corrupted index gives a clear error; reindex rebuilds it from the JSONL."""
        logs = tmp_path / "logs"
        write_jsonl(logs / "sessions" / "s1" / "belog.jsonl", [record("a", 1), record("a", 2)])
        path = logs / DEFAULT_FILENAME
        path.write_bytes(b"this is not a database" * 100)

        with pytest.raises(StoreError, match="belog reindex") as info:
            open_store(path)
        assert str(path) == info.value.location

        recovered = open_store(path, reindex_from=logs)

        assert 2 == recovered.count()
        assert 2 == open_store(path).count()

    def test_folder_location_is_refused(self, tmp_path: Path) -> None:
        """open_store names the argument when given a folder."""
        with pytest.raises(ValueError, match="location must be a SQLite file"):
            open_store(tmp_path)

    def test_four_processes_lose_nothing(
        self, tmp_path: Path, subprocess_env: dict[str, str]
    ) -> None:
        """Four processes adding records at once to one file lose none of them."""
        path = tmp_path / "index.sqlite3"
        script = (
            "import sys\n"
            "from structlog_belog.memory.sqlite import SQLiteStore\n"
            "store = SQLiteStore(sys.argv[1])\n"
            "for i in range(200):\n"
            "    store.add({'execution_trace_id': f'{sys.argv[2]}-{i}', 'task_name': 't',"
            " 'timestamp': f'2025-01-01T00:00:{i % 60:02d}.000000Z', 'success': True})\n"
        )
        env = subprocess_env
        procs = [
            subprocess.Popen([sys.executable, "-c", script, str(path), f"p{n}"], env=env)
            for n in range(4)
        ]

        assert [0, 0, 0, 0] == [p.wait(timeout=120) for p in procs]
        assert 800 == SQLiteStore(path).count()

    def test_forked_child_reopens(self, tmp_path: Path) -> None:
        """A forked child does not reuse its parent's connection."""
        store = SQLiteStore(tmp_path / "index.sqlite3")
        store.add(record("a", 1))
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                store.add(record("a", 2))
                os._exit(0)
            except BaseException:
                os._exit(1)
        _, status = os.waitpid(pid, 0)

        assert 0 == os.waitstatus_to_exitcode(status)
        assert 2 == store.count()


class TestChromaStore:
    """What only the ChromaDB backend promises."""

    def test_missing_chromadb_says_how_to_install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without chromadb, open_store('chroma:...') names the extra to install."""
        monkeypatch.setitem(sys.modules, "chromadb", None)

        with pytest.raises(ModuleNotFoundError, match=r"structlog-belog\[chroma\]") as info:
            open_store("chroma:/nonexistent")
        assert "chromadb" == info.value.name

    def test_empty_path_is_refused(self) -> None:
        """'chroma:' needs a folder."""
        with pytest.raises(ValueError, match="chroma:PATH"):
            open_store("chroma:")

    def test_reopened_in_another_process(
        self, tmp_path: Path, subprocess_env: dict[str, str]
    ) -> None:
        """A persisted collection answers filters and similarity in a new process, offline."""
        location = f"chroma:{tmp_path / 'chroma'}"
        with open_store(location) as store:
            store.add_many(
                [record("Parse input", 1, errors_encountered=["invalid json"]), record("b", 2)]
            )
        script = (
            "import sys\n"
            "from structlog_belog import open_store\n"
            "store = open_store(sys.argv[1])\n"
            "print(store.count(), store.similar('json', k=1)[0]['task_name'],"
            " len(store.get_past_attempts('b')))\n"
        )
        env = {**subprocess_env, "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path / "home")}

        out = subprocess.run(
            [sys.executable, "-c", script, location],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout

        assert "2 Parse input 1" == out.strip()
        assert not (tmp_path / "home" / ".cache" / "chroma").exists()


class TestHashedVector:
    """The offline embedding: deterministic, unit length, words decide the direction."""

    @given(st.text(max_size=200))
    def test_unit_length_and_deterministic(self, text: str) -> None:
        """Every text embeds to the same unit vector twice."""
        from structlog_belog.memory.chroma import hashed_vector

        vector = hashed_vector(text)

        assert vector == hashed_vector(text)
        assert 1.0 == pytest.approx(sum(x * x for x in vector))

    def test_shared_words_are_closer(self) -> None:
        """Texts sharing words have a higher cosine than texts sharing none."""
        from structlog_belog.memory.chroma import hashed_vector

        def cos(a: str, b: str) -> float:
            return sum(x * y for x, y in zip(hashed_vector(a), hashed_vector(b), strict=True))

        assert cos("invalid json input", "json input error") > cos("invalid json", "upload file")


class TestSQLiteSimilar:
    """How the SQLite `similar` keeps large indexes fast without losing the point."""

    def test_common_words_do_not_drown_rare_ones(self, tmp_path: Path) -> None:
        """A word in every record is ignored; the rare word decides."""
        store = SQLiteStore(tmp_path / "index.sqlite3")
        store.add_many([record(f"t{i}", i, execution_context="common pipeline") for i in range(9)])
        store.add(record("quota", 30, errors_encountered=["quota exceeded"]))

        assert "quota" == store.similar("common pipeline quota", k=1)[0]["task_name"]

    def test_window_ranks_the_newest_matches(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When only common words match, the newest records in the window are ranked."""
        import structlog_belog.memory.sqlite as store_module

        monkeypatch.setattr(store_module, "SIMILAR_WINDOW", 3)
        store = SQLiteStore(tmp_path / "index.sqlite3")
        store.add_many([record(f"t{i:02d}", i, execution_context="common") for i in range(12)])

        found = {r["task_name"] for r in store.similar("common", k=12)}

        assert {"t09", "t10", "t11"} == found


class TestStoreEdges:
    """Paths off the main road: defaults, locks, atomicity, odd inputs."""

    def test_default_location_without_configure(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without configure(), the store lives in $BELOG_DIR."""
        monkeypatch.setenv("BELOG_DIR", str(tmp_path / "envlogs"))

        store = open_store()

        assert f"SQLiteStore({str(tmp_path / 'envlogs' / DEFAULT_FILENAME)!r})" == repr(store)

    def test_locked_beyond_timeout_is_a_store_error(self, tmp_path: Path) -> None:
        """A writer that cannot get the lock within its timeout gets a StoreError."""
        path = tmp_path / "index.sqlite3"
        SQLiteStore(path).add(record("a", 1))
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StoreError, match="locked"):
                SQLiteStore(path, timeout=0.2).add(record("a", 2))
        finally:
            holder.execute("ROLLBACK")
            holder.close()

    def test_add_many_is_atomic(self, tmp_path: Path) -> None:
        """A bad record in a batch leaves the store as it was."""
        store = SQLiteStore(tmp_path / "index.sqlite3")

        with pytest.raises(ValueError, match="task_name"):
            store.add_many([record("a", 1), {"execution_trace_id": "x", "task_name": ""}])
        assert 0 == store.count()

    def test_similar_with_unknown_words(self, tmp_path: Path) -> None:
        """Words no record contains find nothing."""
        store = SQLiteStore(tmp_path / "index.sqlite3")
        store.add(record("a", 1))

        assert [] == store.similar("zyxwvut")

    def test_zst_without_final_newline(self, tmp_path: Path) -> None:
        """The last line of a compressed file is read even without a newline."""
        raw = orjson.dumps(record("z", 1)) + b"\n" + orjson.dumps(record("z", 2))
        (tmp_path / "belog.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
        (tmp_path / "sub").mkdir()
        write_jsonl(tmp_path / "sub" / "belog_old.jsonl", [record("ignored", 3)])

        assert ["z", "z"] == [r["task_name"] for r in read_belog_files(tmp_path)]


class TestChromaEdges:
    """ChromaDB backend details."""

    def test_unusable_folder_is_a_store_error(self, tmp_path: Path) -> None:
        """A file where the folder should be gives a StoreError naming the location."""
        (tmp_path / "file").write_text("x")

        with pytest.raises(StoreError, match="cannot be opened") as info:
            open_store(f"chroma:{tmp_path / 'file'}")
        assert f"chroma:{tmp_path / 'file'}" == info.value.location

    def test_batches_and_sparse_records(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Records are added in ChromaDB-sized batches; missing optional fields are fine."""
        store = open_store(f"chroma:{tmp_path / 'c'}")
        monkeypatch.setattr(store._client, "get_max_batch_size", lambda: 2)  # type: ignore[attr-defined]
        sparse = [
            {"execution_trace_id": f"s{i}", "task_name": "t", "timestamp": str(i)} for i in range(5)
        ]

        assert 5 == store.add_many(sparse)
        assert ["s4", "s3"] == [r["execution_trace_id"] for r in store.get_past_attempts("t", 2)]

    def test_embedding_function_describes_itself(self) -> None:
        """The embedding function names its space and dimensions."""
        from structlog_belog.memory.chroma import hashing_embedding_function

        ef = hashing_embedding_function(16)

        assert ("cosine", "HashingEmbeddingFunction(dimensions=16)") == (
            ef.default_space(),
            repr(ef),
        )
        assert 16 == len(ef(["hello world"])[0])


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


_UNIQUE = itertools.count()


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SQLiteStore]:
    """One SQLite store for every example of a property test."""
    store = SQLiteStore(tmp_path_factory.mktemp("roundtrip") / "index.sqlite3")
    yield store
    store.close()


class TestRoundTrip:
    """Whatever a record holds comes back unchanged."""

    @given(
        st.dictionaries(st.text(min_size=1, max_size=12), _JSON, max_size=6),
        st.text(min_size=1),
    )
    def test_add_then_read(
        self, shared_store: SQLiteStore, extra: dict[str, Any], task: str
    ) -> None:
        """add → get_past_attempts returns an equal record."""
        unique = next(_UNIQUE)
        original = {
            **extra,
            **record("x", 1),
            "task_name": f"{task}-{unique}",
            "execution_trace_id": str(unique),
        }

        shared_store.add(original)

        assert [original] == shared_store.get_past_attempts(original["task_name"])
