"""Tests for `belog last|attempts|revise|reindex`."""

from __future__ import annotations

import argparse
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import structlog_belog as belog
from structlog_belog.cli import memory as _cli_memory
from structlog_belog.core.config import Config
from structlog_belog.memory import task as _belog
from structlog_belog.memory.store import DEFAULT_FILENAME, read_belog_files
from structlog_belog.memory.stores import open_store
from tests.chroma_server import ChromaServer, free_port, running_server


def run_cli(*argv: str) -> int:
    """Parse *argv* like `belog` does (a global --log-dir, then the command) and run it."""
    parser = argparse.ArgumentParser(prog="belog")
    parser.add_argument("--log-dir", type=Path, default=Path("logs"))
    sub = parser.add_subparsers(dest="command", required=True)
    _cli_memory.add_commands(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture
def logs(belog_config: Config) -> Path:
    """A log folder with three attempts of 'Parse' (the last failed) in two sessions."""
    for n in range(2):
        with belog.session(f"run{n}", blueprint_id="bp_9", blueprint_version=f"v1.{9 + n}"):
            with belog.task("Parse") as t:
                t.suggest("validate the input first")
            if n == 1:
                with pytest.raises(KeyError), belog.task("Parse"):
                    raise KeyError("id")
    return belog_config.log_dir


class TestLast:
    """`belog last`."""

    def test_text(self, logs: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Prints the reflection on the latest task."""
        assert 0 == run_cli("--log-dir", str(logs), "last")

        out = capsys.readouterr().out
        assert out.startswith("Task 'Parse': 2 of the last 3 attempts succeeded.")
        assert "- KeyError: 'id'" in out

    def test_json_and_blueprint_filter(
        self, logs: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--json prints the record; --blueprint filters; an unknown one exits 1."""
        assert 0 == run_cli("last", "--log-dir", str(logs), "--json", "--blueprint", "bp_9")
        assert "v1.10" == json.loads(capsys.readouterr().out)["blueprint_version"]

        assert 1 == run_cli("last", "--log-dir", str(logs), "--blueprint", "bp_none")
        assert "no BELog record of blueprint 'bp_none'" in capsys.readouterr().err


class TestAttempts:
    """`belog attempts TASK`."""

    def test_table(self, logs: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """One line per attempt, newest first, with outcome."""
        assert 0 == run_cli("--log-dir", str(logs), "attempts", "Parse")

        lines = capsys.readouterr().out.splitlines()
        assert 4 == len(lines)
        assert ["no", "yes", "yes"] == [line.split()[2] for line in lines[1:]]

    def test_json_limit_and_unknown(self, logs: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--limit and --json work; an unknown task exits 1."""
        assert 0 == run_cli("--log-dir", str(logs), "attempts", "Parse", "--limit", "2", "--json")
        assert [False, True] == [r["success"] for r in json.loads(capsys.readouterr().out)]

        assert 1 == run_cli("--log-dir", str(logs), "attempts", "Nope")


class TestRevise:
    """`belog revise BLUEPRINT`."""

    def test_markdown_and_file(self, logs: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Prints the proposal and writes it to LOG_DIR/revisions."""
        assert 0 == run_cli("--log-dir", str(logs), "revise", "bp_9")

        captured = capsys.readouterr()
        assert captured.out.startswith("# Blueprint Revision Proposal: bp_9 v1.10")
        assert "validate the input first" in captured.out
        assert 2 == len(list((logs / "revisions").iterdir()))

    def test_json_no_write(self, logs: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--json --no-write prints to_dict() and writes nothing; unknown blueprints exit 1."""
        assert 0 == run_cli("--log-dir", str(logs), "revise", "bp_9", "--json", "--no-write")

        assert "bp_9" == json.loads(capsys.readouterr().out)["blueprint_id"]
        assert not (logs / "revisions").exists()
        assert 1 == run_cli("--log-dir", str(logs), "revise", "bp_none", "--no-write")


class TestReindex:
    """`belog reindex`."""

    def test_recovers_a_corrupted_index(
        self, logs: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A corrupted index makes the read commands fail clearly; reindex rebuilds it."""
        _belog.close_store()  # the writer is gone (its WAL checkpointed) when the disk fails
        (logs / DEFAULT_FILENAME).write_bytes(b"\0garbage" * 512)

        assert 2 == run_cli("--log-dir", str(logs), "last")
        assert "belog reindex" in capsys.readouterr().err

        assert 0 == run_cli("--log-dir", str(logs), "reindex")
        assert "indexed 3 BELog records" in capsys.readouterr().out
        assert 3 == open_store(logs / DEFAULT_FILENAME).count()

    def test_other_sources_and_chroma(
        self, logs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """reindex reads the folders given into the store given (here ChromaDB)."""
        location = f"chroma:{tmp_path / 'chroma'}"

        assert 0 == run_cli("reindex", str(logs / "sessions"), "--store", location)

        assert 3 == open_store(location).count()
        assert location in capsys.readouterr().out

    def test_reindex_from_packages(
        self, logs: Path, belog_config: Config, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The packages' belog.jsonl.zst are enough to rebuild the index."""
        packaged = sorted(belog_config.package_dir.glob("*/logs/belog.jsonl*"))
        assert 2 == len(packaged)

        assert 0 == run_cli("--log-dir", str(logs), "reindex", str(belog_config.package_dir))

        assert "indexed 3 BELog records" in capsys.readouterr().out


class TestIndexDiscovery:
    """The read commands find or build the index."""

    def test_missing_index_is_built_from_the_logs(
        self, logs: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A deleted index is rebuilt from the JSONL on first use."""
        _belog.close_store()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{logs / DEFAULT_FILENAME}{suffix}").unlink(missing_ok=True)

        assert 0 == run_cli("--log-dir", str(logs), "attempts", "Parse", "--json")
        assert 3 == len(json.loads(capsys.readouterr().out))

    def test_missing_log_folder(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A log folder that does not exist is reported, not created."""
        assert 2 == run_cli("--log-dir", str(tmp_path / "nope"), "last")

        assert "no log folder" in capsys.readouterr().err
        assert not (tmp_path / "nope").exists()


class TestEntryPoint:
    """The commands through the real `belog` entry point, in a subprocess."""

    def test_belog_commands(self, logs: Path, python: str, subprocess_env: dict[str, str]) -> None:
        """`belog attempts`, `revise`, `reindex` and `last` run from the command line."""

        def belog_cli(*argv: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [python, "-m", "structlog_belog.cli", "--log-dir", str(logs), *argv],
                env=subprocess_env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )

        attempts = belog_cli("attempts", "Parse", "--json")
        assert (0, 3) == (attempts.returncode, len(json.loads(attempts.stdout)))
        revise = belog_cli("revise", "bp_9", "--no-write")
        assert 0 == revise.returncode
        assert "## Suggestions repeated across runs" in revise.stdout
        reindex = belog_cli("reindex")
        assert (0, True) == (reindex.returncode, "indexed 3 BELog records" in reindex.stdout)
        last = belog_cli("last", "--blueprint", "bp_none")
        assert (1, True) == (last.returncode, "no BELog record" in last.stderr)


@pytest.fixture(scope="module")
def chroma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """One real Chroma server for the module (each test uses its own collection)."""
    yield from running_server(tmp_path_factory.mktemp("chroma") / "data")


def other_worker(logs: Path, trace_id: str) -> dict[str, Any]:
    """Another worker's attempt of 'Parse': a copy of one here, newest of all, its own ID."""
    record = dict(next(iter(read_belog_files(logs))))
    record.update(execution_trace_id=trace_id, timestamp="2999-01-01T00:00:00.000000Z")
    return record


class TestConfiguredStore:
    """Without --store, the read commands and `reindex` use ``$BELOG_STORE``, as sessions do."""

    def test_sqlite_file(
        self,
        logs: Path,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """A store file named by BELOG_STORE answers; --store still overrides it."""
        other = open_store(tmp_path / "other.sqlite3")
        other.add(other_worker(logs, "belog_elsewhere"))
        other.close()
        monkeypatch.setenv("BELOG_STORE", str(tmp_path / "other.sqlite3"))

        assert 0 == run_cli("--log-dir", str(logs), "attempts", "Parse", "--json")
        assert ["belog_elsewhere"] == [
            r["execution_trace_id"] for r in json.loads(capsys.readouterr().out)
        ]
        assert 0 == run_cli("last", "--log-dir", str(logs), "--json")
        assert "belog_elsewhere" == json.loads(capsys.readouterr().out)["execution_trace_id"]
        here = str(logs / DEFAULT_FILENAME)
        assert 0 == run_cli("--log-dir", str(logs), "attempts", "Parse", "--json", "--store", here)
        assert 3 == len(json.loads(capsys.readouterr().out))

    def test_bad_location(
        self, logs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A BELOG_STORE no store serves is a clear error naming it, not a traceback."""
        monkeypatch.setenv("BELOG_STORE", "ftp://memory.example")

        assert 2 == run_cli("--log-dir", str(logs), "attempts", "Parse")
        assert 2 == run_cli("--log-dir", str(logs), "reindex")

        err = capsys.readouterr().err
        assert 2 == err.count("BELOG_STORE: location must be")

    def test_server_with_the_local_index(
        self,
        logs: Path,
        chroma: ChromaServer,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """A server in BELOG_STORE is read with the log folder's index; `reindex` fills both."""
        url = f"{chroma.url}?collection=c{uuid.uuid4().hex[:12]}"
        server = open_store(url)
        server.add(other_worker(logs, "belog_elsewhere"))
        monkeypatch.setenv("BELOG_STORE", url)

        assert 0 == run_cli("--log-dir", str(logs), "attempts", "Parse", "--json")
        found = [r["execution_trace_id"] for r in json.loads(capsys.readouterr().out)]
        assert (4, "belog_elsewhere") == (len(found), found[0])
        assert 0 == run_cli("last", "--log-dir", str(logs), "--json")
        assert "belog_elsewhere" == json.loads(capsys.readouterr().out)["execution_trace_id"]

        assert 0 == run_cli("--log-dir", str(logs), "reindex")
        out = capsys.readouterr().out
        assert "indexed 3 BELog records" in out
        assert "added 3 BELog records" in out
        assert 4 == server.count()

    def test_server_down(
        self, logs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """With the server in BELOG_STORE down, the log folder's index answers alone."""
        monkeypatch.setenv("BELOG_STORE", f"http://127.0.0.1:{free_port()}")

        assert 0 == run_cli("--log-dir", str(logs), "attempts", "Parse", "--json")
        assert 3 == len(json.loads(capsys.readouterr().out))
