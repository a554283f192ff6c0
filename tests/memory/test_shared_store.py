"""Sessions writing their BELog records to a shared ChromaDB server (``BELOG_STORE``)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import structlog_belog as belog
from structlog_belog import open_store
from structlog_belog.core import config as _config
from structlog_belog.memory import recording as _recording
from structlog_belog.memory import task as _task
from structlog_belog.memory.shared import PENDING_MARKER, SharedStore, pending_sessions
from structlog_belog.memory.store import read_belog_files
from tests.chroma_server import ChromaServer, free_port, running_server

ENTRY = "import sys; from structlog_belog.cli import main; sys.exit(main())"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """One real Chroma server for the module (each test uses its own collection)."""
    yield from running_server(tmp_path_factory.mktemp("chroma") / "data")


@pytest.fixture
def url(server: ChromaServer) -> str:
    """The server's URL with a collection of this test's own."""
    return f"{server.url}?collection=s{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def _fresh_store() -> Iterator[None]:
    """Forget the store tasks opened, before and after each test."""
    _task.close_store()
    yield
    _task.close_store()


def configure(tmp_path: Path, store: str) -> _config.Config:
    """configure() into tmp_path with *store* as the BELog store."""
    return belog.configure(
        log_dir=tmp_path / "logs",
        package_dir=tmp_path / "packages",
        console=False,
        handle_signals=False,
        store=store,
    )


def run_tasks(title: str, count: int) -> belog.Run:
    """A session of *count* attempts of one task; every one succeeds."""
    with belog.session(title, blueprint_id="bp_1", blueprint_version="v1") as run:
        for _ in range(count):
            with run.task("parse"):
                pass
    return run


def issues(run: belog.Run) -> dict[str, dict[str, Any]]:
    """The package's issues, by kind."""
    assert run.package_path is not None
    meta = json.loads((run.package_path / "logs" / "metadata.json").read_text())
    return {i["kind"]: i for i in meta["issues_detected"]}


class TestConfigureStore:
    """configure(store=...) and BELOG_STORE are checked where they are given."""

    def test_server_url_kept(self, tmp_path: Path) -> None:
        """A server URL is kept as given."""
        assert "http://127.0.0.1:1" == configure(tmp_path, "http://127.0.0.1:1").store

    def test_environment(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """BELOG_STORE is the default."""
        monkeypatch.setenv("BELOG_STORE", "https://memory.example:8443")

        assert "https://memory.example:8443" == belog.configure(log_dir=tmp_path).store

    @pytest.mark.parametrize("bad", ["http://", "http://h:1/path", "chroma:"])
    def test_bad_location(self, tmp_path: Path, bad: str) -> None:
        """A malformed location is a ValueError naming `store`."""
        with pytest.raises(ValueError, match="store must be"):
            configure(tmp_path, bad)

    def test_bad_type(self, tmp_path: Path) -> None:
        """A store that is not a location is a TypeError naming `store`."""
        with pytest.raises(TypeError, match="store must be"):
            configure(tmp_path, 42)  # type: ignore[arg-type]


class TestServerDown:
    """With the server down, tasks go on; records are kept, counted and caught up later."""

    def test_tasks_succeed_and_records_are_kept(self, tmp_path: Path) -> None:
        """Every task succeeds, is scored from the local index, and is marked pending."""
        configure(tmp_path, f"http://127.0.0.1:{free_port()}")

        run = run_tasks("offline", 3)

        written = list(read_belog_files(tmp_path / "logs"))
        assert [True] * 3 == [r["success"] for r in written]
        assert written[0]["execution_trace_id"] in written[2]["previous_attempts"]
        store = _recording._resolve_store(None)
        assert isinstance(store, SharedStore)
        assert (3, 3) == (store.pending, store.local.count())
        assert [tmp_path / "logs" / "sessions" / run.id] == pending_sessions(tmp_path / "logs")
        pending = issues(run)["store_pending"]
        assert 3 == pending["count"]
        assert "belog reindex --store" in pending["message"]

    def test_next_session_catches_up(self, tmp_path: Path, url: str) -> None:
        """Once the server answers, the next session sends what was pending, once."""
        down = f"http://127.0.0.1:{free_port()}"
        configure(tmp_path, down)
        run_tasks("offline", 3)
        _task.close_store()
        configure(tmp_path, url)

        run_tasks("online", 2)
        store = _recording._resolve_store(None)
        assert isinstance(store, SharedStore)
        assert store.catch_up_thread is not None
        store.catch_up_thread.join(timeout=120)

        remote = open_store(url)
        assert 5 == remote.count()
        assert [] == pending_sessions(tmp_path / "logs")
        assert 5 == len(remote.get_past_attempts("parse", 10))

    def test_reindex_command_catches_up(
        self, tmp_path: Path, url: str, subprocess_env: dict[str, str]
    ) -> None:
        """`belog reindex --store URL` sends every record the server lacks and clears markers."""
        configure(tmp_path, f"http://127.0.0.1:{free_port()}")
        run_tasks("offline", 4)

        for _ in range(2):
            done = subprocess.run(
                [sys.executable, "-c", ENTRY, "reindex", "--log-dir", str(tmp_path / "logs"),
                 "--store", url],
                env=subprocess_env, capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            assert 0 == done.returncode, done.stderr

        assert 4 == open_store(url).count()
        assert [] == pending_sessions(tmp_path / "logs")
        assert not list((tmp_path / "logs").rglob(PENDING_MARKER))


class TestServerUp:
    """With the server up, every worker's history is one."""

    def test_two_workers_see_each_other(self, tmp_path: Path, url: str) -> None:
        """A worker with its own log folder scores against the other's attempts."""
        configure(tmp_path / "a", url)
        first = run_tasks("worker a", 2)
        _task.close_store()
        configure(tmp_path / "b", url)

        run_tasks("worker b", 1)

        (mine,) = list(read_belog_files(tmp_path / "b" / "logs"))
        theirs = {r["execution_trace_id"] for r in read_belog_files(tmp_path / "a" / "logs")}
        assert theirs == set(mine["previous_attempts"])
        assert "store_pending" not in issues(first)
        assert 3 == open_store(url).count()
