"""The BELog store on a real ChromaDB server (`chroma run` on 127.0.0.1), shared by workers."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from structlog_belog import open_store
from structlog_belog.exceptions import StoreError
from structlog_belog.memory.chroma_rows import record_id
from structlog_belog.memory.chroma_server import ChromaServerStore, parse_server_url
from structlog_belog.memory.sqlite import SQLiteStore
from structlog_belog.memory.store import BELogStore, read_belog_files
from tests.chroma_server import ChromaServer, free_port, running_server

NOW = datetime.now(UTC)


def stamp(age: timedelta) -> str:
    """An ISO 8601 UTC timestamp *age* before the test run started."""
    return (NOW - age).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record(task: str, age: timedelta, n: int, **fields: Any) -> dict[str, Any]:
    """A whole BELog record of *task*, *age* old, with a unique trace ID."""
    base: dict[str, Any] = {
        "timestamp": stamp(age),
        "blueprint_id": "bp_1",
        "blueprint_version": "v1.0",
        "execution_context": f"context of {task}",
        "task_name": task,
        "expected_outcome": "valid JSON",
        "execution_time": 0.5 + n / 100,
        "files_changed": [],
        "errors_encountered": [],
        "success": True,
        "efficiency_score": 100.0,
        "execution_trace_id": f"belog_20260101T000000Z_{n:012x}",
        "previous_attempts": [],
        "improvement_suggestions": [],
        "session_id": "sess_x",
    }
    base.update(fields)
    return base


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """One real Chroma server for the module's tests (each test gets its own collection)."""
    yield from running_server(tmp_path_factory.mktemp("chroma") / "data")


@pytest.fixture
def url(server: ChromaServer) -> str:
    """The server's URL with a collection of this test's own."""
    return f"{server.url}?collection=t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def remote(url: str) -> Iterator[BELogStore]:
    """`open_store` on the server, in a fresh collection."""
    store = open_store(url)
    assert isinstance(store, ChromaServerStore)
    yield store
    store.close()


def mixed_records() -> list[dict[str, Any]]:
    """Records over a year: several tasks, blueprints, versions that sort as numbers."""
    found = []
    n = 0
    for task, ages in {
        "parse": [timedelta(minutes=m) for m in (1, 5, 30, 90)]
        + [timedelta(days=d) for d in (2, 40, 400)],
        "generate": [timedelta(hours=h) for h in (3, 30, 300, 3000)],
        "rare": [timedelta(days=500)],
    }.items():
        for age in ages:
            n += 1
            found.append(
                record(
                    task,
                    age,
                    n,
                    blueprint_id=f"bp_{n % 3}",
                    blueprint_version=("v1.9", "v1.10", "v1.2")[n % 3],
                    success=n % 4 != 0,
                    errors_encountered=[] if n % 4 else [f"ValueError: bad {task}"],
                )
            )
    return found


class TestParseServerUrl:
    """parse_server_url accepts what the store serves and names the culprit otherwise."""

    def test_host_port_and_options(self) -> None:
        """Host, port, TLS and the collection come out of the URL."""
        assert ("db.local", 9000, True, {"collection": "abc"}) == parse_server_url(
            "https://db.local:9000?collection=abc"
        )

    def test_default_ports(self) -> None:
        """http defaults to Chroma's 8000, https to 443."""
        assert 8000 == parse_server_url("http://h")[1]
        assert 443 == parse_server_url("https://h")[1]

    @pytest.mark.parametrize(
        "bad",
        [
            "http://",
            "ftp://h:1",
            "http://h:1/some/path",
            "http://user:pw@h:1",
            "http://h:1?colour=red",
            "http://h:1?collection=x",
            "http://h:99999",
        ],
    )
    def test_rejects(self, bad: str) -> None:
        """Anything else is a ValueError quoting the location."""
        with pytest.raises(ValueError, match="location"):
            parse_server_url(bad)


class TestOpenStore:
    """open_store serves files, chroma:PATH and http(s) servers, and nothing else."""

    @pytest.mark.parametrize(
        "location", ["ftp://host:21", "s3://bucket/index", "redis://127.0.0.1:6379", "HTTPX://h:1"]
    )
    def test_other_schemes_are_errors(
        self, location: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A scheme no store serves is a ValueError quoting it; no file or folder appears."""
        monkeypatch.chdir(tmp_path)

        with pytest.raises(ValueError, match="not a scheme a BELog store serves") as info:
            open_store(location)
        assert repr(location) in str(info.value)
        assert [] == list(tmp_path.iterdir())

    def test_http_makes_no_file(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """open_store('http://HOST:PORT') opens a server store, never ./http:/HOST:PORT."""
        monkeypatch.chdir(tmp_path)

        store = open_store(f"http://127.0.0.1:{free_port()}")

        assert isinstance(store, ChromaServerStore)
        assert [] == list(tmp_path.iterdir())

    def test_malformed_server_url(self) -> None:
        """A server URL with a path is a ValueError naming the location."""
        with pytest.raises(ValueError, match="location"):
            open_store("http://127.0.0.1:8000/api/v2")

    def test_path_object_with_colon_is_a_file(self, tmp_path: Path) -> None:
        """A pathlib.Path is always a file, even with a colon in its name."""
        store = open_store(tmp_path / "a:b.sqlite3")

        assert isinstance(store, SQLiteStore)


class TestChromaServerStore:
    """The server store answers as the SQLite store does."""

    def test_queries_agree_with_sqlite(self, remote: BELogStore, tmp_path: Path) -> None:
        """Every question gets the answer the SQLite store gives for the same records."""
        records = mixed_records()
        local = SQLiteStore(tmp_path / "index.sqlite3")
        assert len(records) == local.add_many(records)
        assert len(records) == remote.add_many(records)

        assert_agree(local, remote, records)

    def test_add_is_idempotent(self, remote: BELogStore) -> None:
        """The same record added twice, one by one or in a batch, is kept once."""
        one = record("parse", timedelta(seconds=1), 1)
        remote.add(one)
        remote.add(one)

        assert 0 == remote.add_many([one, one])
        assert 1 == remote.count()
        assert [one] == remote.get_past_attempts("parse")

    def test_similar_finds_the_matching_record(self, remote: BELogStore) -> None:
        """`similar` ranks the record sharing the query's rare words first (offline embedding)."""
        records = mixed_records()
        records.append(
            record("translate", timedelta(days=1), 99, execution_context="zanzibar quokka")
        )
        remote.add_many(records)

        found = remote.similar("quokka zanzibar", k=3)

        assert "translate" == found[0]["task_name"]
        assert 3 == len(found)

    def test_empty_store(self, remote: BELogStore) -> None:
        """A new collection answers 'nothing' to every question."""
        assert (None, [], None, [], 0) == (
            remote.last_execution(),
            remote.get_past_attempts("x"),
            remote.get_latest_blueprint_version("bp"),
            remote.similar("anything"),
            remote.count(),
        )

    def test_clear(self, remote: BELogStore) -> None:
        """clear() empties the collection, which takes records again afterwards."""
        remote.add_many(mixed_records())
        remote.clear()

        assert (0, None) == (remote.count(), remote.get_latest_blueprint_version("bp_1"))
        assert [] == remote.get_past_attempts("parse")  # the task chains are emptied too
        remote.add(record("parse", timedelta(0), 1))
        assert 1 == remote.count()
        assert 1 == len(remote.get_past_attempts("parse"))

    def test_chain_heals_on_reindex(self, url: str, tmp_path: Path) -> None:
        """A record in its task's chain, not in the main collection (a crash between), is added."""
        store = ChromaServerStore(url)
        first = record("parse", timedelta(seconds=1), 1)
        store.add(first)
        store._records.delete(ids=[record_id(first)])
        write_belog(tmp_path / "logs" / "sessions" / "s1" / "belog.jsonl", [first])

        assert 1 == store.reindex(tmp_path / "logs")
        found = (store.get_past_attempts("parse"), store.last_execution())
        assert ([record_id(first)], record_id(first)) == (
            [record_id(r) for r in found[0]],
            found[1] and record_id(found[1]),
        )
        assert 1 == store.count()

    def test_reindex_adds_without_dropping(self, remote: BELogStore, tmp_path: Path) -> None:
        """reindex adds what the files hold and the server lacks; other workers' records stay."""
        other = record("other worker", timedelta(seconds=2), 500)
        remote.add(other)
        records = mixed_records()
        write_belog(tmp_path / "logs" / "sessions" / "s1" / "belog.jsonl", records[:5])
        remote.add_many(records[:2])

        assert 3 == remote.reindex(tmp_path / "logs")
        assert 0 == remote.reindex(tmp_path / "logs")
        assert 6 == remote.count()
        assert [other] == remote.get_past_attempts("other worker")

    def test_repr_names_the_url(self, url: str) -> None:
        """The store's repr shows where it lives."""
        assert url in repr(ChromaServerStore(url))


class TestServerDown:
    """A server that is down or goes away costs a bounded wait and a StoreError, never a hang."""

    def test_nothing_listening(self) -> None:
        """No server: StoreError naming the URL; then the circuit answers at once."""
        store = ChromaServerStore(f"http://127.0.0.1:{free_port()}", timeout=0.5)

        with pytest.raises(StoreError) as info:
            store.count()
        assert store.location == info.value.location
        with pytest.raises(StoreError, match="unavailable"):
            store.get_past_attempts("x")
        assert 1 == store.failures

    def test_silent_server_times_out(self) -> None:
        """A server that accepts and never answers fails after the timeout, not forever."""
        import socket

        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(8)
            port = listener.getsockname()[1]
            store = ChromaServerStore(f"http://127.0.0.1:{port}", timeout=0.3)
            with pytest.raises(StoreError, match="Timeout"):
                store.add(record("parse", timedelta(0), 1))

    def test_server_stalling_after_the_heartbeat(self) -> None:
        """A server that answers the heartbeat and then stalls fails the call; it does not wait."""
        import http.server
        import threading

        release = threading.Event()

        class Stalling(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.endswith("/heartbeat"):
                    body = b'{"nanosecond heartbeat": 1}'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:  # who the caller is, the tenant, ...: never answered while the test runs
                    release.wait(60)

            do_POST = do_GET  # noqa: N815 - http.server's name

            def log_message(self, *_: object) -> None:
                pass

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            store = ChromaServerStore(f"http://127.0.0.1:{httpd.server_address[1]}", timeout=0.3)
            with pytest.raises(StoreError, match="did not answer"):
                store.count()
            # The call came back while the server still held the request.
            assert not release.is_set()
        finally:
            release.set()
            httpd.shutdown()
            httpd.server_close()

    def test_recovers_after_restart(self, tmp_path: Path) -> None:
        """Killed and restarted on the same port, the server is used again after the cool-down."""
        server = ChromaServer(tmp_path / "data")
        server.start()
        try:
            store = ChromaServerStore(server.url, timeout=1.0)
            store.add(record("parse", timedelta(0), 1))
            server.kill()
            with pytest.raises(StoreError):
                store.add(record("parse", timedelta(0), 2))
            server.start()
            store.close()  # reset the circuit instead of waiting for the cool-down

            store.add(record("parse", timedelta(0), 2))
            assert 2 == store.count()
        finally:
            server.stop()


def write_belog(path: Path, records: list[dict[str, Any]]) -> None:
    """Write *records* as a session's belog.jsonl."""
    import orjson

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as fh:
        for r in records:
            fh.write(orjson.dumps({"kind": "belog", "event": "belog", **r}) + b"\n")


#: The BELog template's fields: what a task indexes (the JSONL line adds its envelope).
BELOG_FIELDS = (
    "timestamp", "blueprint_id", "blueprint_version", "execution_context", "task_name",
    "expected_outcome", "execution_time", "files_changed", "dependencies_affected",
    "pipeline_connections", "errors_encountered", "success", "efficiency_score",
    "potential_breakage_risk", "cross_check_required", "execution_trace_id",
    "previous_attempts", "improvement_suggestions", "session_id",
)  # fmt: skip


def fields(found: Any) -> Any:
    """*found* (a record, a list of records or None) cut to the BELog template's fields."""
    if found is None:
        return None
    if isinstance(found, list):
        return [fields(r) for r in found]
    return {k: found.get(k) for k in BELOG_FIELDS}


def assert_agree(local: BELogStore, remote: BELogStore, records: list[dict[str, Any]]) -> None:
    """Every query of *remote* answers what *local* answers, for the names in *records*.

    Records are compared on the BELog template's fields: a task indexes the
    record, a rebuild from the JSONL the line around it.
    """
    tasks = [*sorted({r["task_name"] for r in records}), "never run"]
    blueprints = [*sorted({str(r.get("blueprint_id")) for r in records}), "bp_unknown"]
    assert local.count() == remote.count()
    for task in tasks:
        for limit in (1, 3, 10, 1000):
            assert fields(local.get_past_attempts(task, limit)) == fields(
                remote.get_past_attempts(task, limit)
            ), (task, limit)
    assert fields(local.last_execution()) == fields(remote.last_execution())
    for blueprint in blueprints:
        assert fields(local.last_execution(blueprint)) == fields(remote.last_execution(blueprint))
        assert local.get_latest_blueprint_version(blueprint) == (
            remote.get_latest_blueprint_version(blueprint)
        )
        assert fields(local.get_blueprint_records(blueprint)) == fields(
            remote.get_blueprint_records(blueprint)
        )


# --- many workers, one server ------------------------------------------------------------

WORKER = """
import os, sys, time
import structlog_belog as belog

n, tasks, delay = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
belog.configure(console=False, handle_signals=False)
with belog.session("worker", blueprint_id="bp_fleet", blueprint_version=f"v1.{n}",
                   package=False) as run:
    for i in range(tasks):
        with run.task(f"task {i % 7}", expected_outcome="ok") as task:
            time.sleep(delay)
print(belog.failures() if hasattr(belog, "failures") else "")
"""


def start_workers(
    tmp_path: Path, env: dict[str, str], url: str, count: int, tasks: int, delay: float
) -> list[tuple[Path, subprocess.Popen[str]]]:
    """Start *count* worker processes, each with its own log folder, all on *url*."""
    started = []
    for n in range(count):
        logs = tmp_path / f"worker{n}" / "logs"
        worker_env = {
            **env,
            "BELOG_DIR": str(logs),
            "BELOG_PACKAGE_DIR": str(tmp_path / f"worker{n}" / "packages"),
            "BELOG_STORE": url,
        }
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(n), str(tasks), str(delay)],
            env=worker_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append((logs, proc))
    return started


def wait_all(started: list[tuple[Path, subprocess.Popen[str]]]) -> list[Path]:
    """Wait for every worker; each must exit 0. Return their log folders."""
    for _, proc in started:
        _, err = proc.communicate(timeout=600)
        assert 0 == proc.returncode, err
    return [logs for logs, _ in started]


class TestFleet:
    """Many worker processes share one server's memory."""

    def test_eight_workers_agree_with_sqlite(
        self, url: str, tmp_path: Path, subprocess_env: dict[str, str]
    ) -> None:
        """8 processes x 50 tasks at once: the server holds each record once, answers as SQLite."""
        logs = wait_all(start_workers(tmp_path, subprocess_env, url, 8, 50, 0.0))
        written = list(read_belog_files(*logs))
        local = SQLiteStore(tmp_path / "all.sqlite3")
        local.add_many(written)
        remote = open_store(url)
        remote.reindex(*logs)  # a task whose add timed out under load is caught up here

        assert 400 == len(written) == local.count() == remote.count()
        assert_agree(local, remote, written)
        # scoring saw the other workers' attempts: some record lists an attempt from another run
        sessions = {r["execution_trace_id"]: r["session_id"] for r in written}
        assert any(
            sessions.get(past) not in (None, r["session_id"])
            for r in written
            for past in r["previous_attempts"]
        )

    def test_server_killed_mid_run(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """Killed and restarted under 8 workers: all end; reindexed, each record is there once."""
        server = ChromaServer(tmp_path / "data")
        server.start()
        try:
            url = f"{server.url}?collection=fleet"
            started = start_workers(tmp_path, subprocess_env, url, 8, 50, 0.02)
            probe = ChromaServerStore(url, timeout=5)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and probe.count() < 60:
                time.sleep(0.05)
            server.kill()
            time.sleep(1.0)
            server.start()
            logs = wait_all(started)
            written = list(read_belog_files(*logs))
            remote = open_store(url)
            remote.reindex(*logs)
            ids = [record_id(r) for r in remote._matching(None)]  # type: ignore[attr-defined]

            assert 400 == len(written)
            assert sorted(record_id(r) for r in written) == sorted(ids)
            assert 400 == remote.count()
        finally:
            server.stop()
