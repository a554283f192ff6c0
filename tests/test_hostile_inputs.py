"""In-process checks of the hardening's refusal paths (the reliability cases run them whole)."""

from __future__ import annotations

import argparse
import os
import sqlite3
from pathlib import Path

import pytest

from structlog_belog.cli import app as cli
from structlog_belog.cli import argtypes
from structlog_belog.exceptions import DecompressionLimitError, StoreError, UnsafeFileError
from structlog_belog.memory.sqlite import SQLiteStore
from structlog_belog.memory.store import read_belog_files
from structlog_belog.package import catalog as _catalog
from structlog_belog.package.reader import iter_lines, read_document, read_package


class TestReader:
    """Readers refuse links and special files and bound what they load."""

    def test_document_too_large(self, tmp_path: Path) -> None:
        """A document past the limit is refused whole."""
        (tmp_path / "m").write_bytes(b"x" * 11)
        with pytest.raises(DecompressionLimitError):
            read_document(tmp_path / "m", limit=10)

    def test_linked_metadata_refused(self, tmp_path: Path) -> None:
        """A package whose metadata links outside is refused, naming the link."""
        (tmp_path / "outside.json").write_text('{"secret": 1}')
        (tmp_path / "pkg" / "logs").mkdir(parents=True)
        (tmp_path / "pkg" / "logs" / "metadata.json").symlink_to(tmp_path / "outside.json")
        with pytest.raises(UnsafeFileError) as info:
            read_package(tmp_path / "pkg")
        assert "secret" not in str(info.value)

    def test_fifo_lines_refused(self, tmp_path: Path) -> None:
        """iter_lines on a FIFO is refused at once."""
        os.mkfifo(tmp_path / "f.jsonl")
        with pytest.raises(UnsafeFileError):
            list(iter_lines(tmp_path / "f.jsonl"))


class TestCatalog:
    """Session references must be session folders."""

    def test_linked_session_folder_refused(self, tmp_path: Path) -> None:
        """A link posing as a session folder is no session."""
        (tmp_path / "logs" / "sessions").mkdir(parents=True)
        (tmp_path / "logs" / "sessions" / "sess_x").symlink_to(tmp_path)
        with pytest.raises(FileNotFoundError):
            _catalog.find(str(tmp_path / "logs" / "sessions" / "sess_x"), tmp_path / "logs")

    def test_session_folder_of_this_log_dir(self, tmp_path: Path) -> None:
        """A path to one of the log folder's sessions is taken."""
        d = tmp_path / "logs" / "sessions" / "sess_y"
        d.mkdir(parents=True)
        assert d == _catalog.find(str(d), tmp_path / "logs")


class TestStore:
    """The store refuses planted names and skips what it cannot read."""

    def test_planted_wal_link_refused(self, tmp_path: Path) -> None:
        """A link at the WAL's name is refused before SQLite opens anything."""
        (tmp_path / "i.sqlite3-wal").symlink_to(tmp_path / "elsewhere")
        with pytest.raises(StoreError, match="refused"):
            SQLiteStore(tmp_path / "i.sqlite3").last_execution()
        assert not (tmp_path / "elsewhere").exists()

    def test_bad_rows_skipped(self, tmp_path: Path) -> None:
        """Rows that are not JSON objects are left out of answers."""
        store = SQLiteStore(tmp_path / "i.sqlite3")
        assert store.last_execution() is None
        store.close()
        conn = sqlite3.connect(tmp_path / "i.sqlite3")
        cols = [r[1] for r in conn.execute("pragma table_info(belog)")]
        for raw in ("{broken", "[1]"):
            values: dict[str, object] = dict.fromkeys(cols, "x")
            values.update(record=raw, task_name="t", timestamp="2026", trace_id=raw)
            values.pop("id", None)
            conn.execute(
                f"insert into belog ({', '.join(values)}) values ({', '.join('?' * len(values))})",  # noqa: S608 - names from the schema
                list(values.values()),
            )
        conn.commit()
        conn.close()
        assert [] == SQLiteStore(tmp_path / "i.sqlite3").get_past_attempts("t")

    def test_unreadable_file_skipped(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A FIFO among the BELog files is named on stderr and skipped."""
        os.mkfifo(tmp_path / "belog.jsonl")
        assert [] == list(read_belog_files(tmp_path))
        assert "skipped" in capsys.readouterr().err


class TestCli:
    """Argument checks and the quiet closed pipe."""

    @pytest.mark.parametrize("text", ["nan", "-1", "inf", "x"])
    def test_seconds_refused(self, text: str) -> None:
        """Not a number of seconds: argparse's error."""
        with pytest.raises(argparse.ArgumentTypeError):
            argtypes.seconds(text)

    def test_closed_pipe_quiet(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """BrokenPipeError from a command ends with 141 and nothing on stderr."""

        def broken(_: argparse.Namespace) -> int:
            raise BrokenPipeError

        parser = cli.build_parser()
        for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
            action.choices["sessions"].set_defaults(func=broken)  # type: ignore[index]
        monkeypatch.setattr(cli, "build_parser", lambda: parser)
        assert 141 == cli.main(["--log-dir", str(tmp_path), "sessions"])
        assert "" == capsys.readouterr().err

    def test_unexpected_error_one_line(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Any other exception: one line on stderr, exit 1."""

        def boom(_: argparse.Namespace) -> int:
            raise KeyError("a\nb")

        parser = cli.build_parser()
        for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
            action.choices["sessions"].set_defaults(func=boom)  # type: ignore[index]
        monkeypatch.setattr(cli, "build_parser", lambda: parser)
        assert 1 == cli.main(["--log-dir", str(tmp_path), "sessions"])
        err = capsys.readouterr().err
        assert 1 == len(err.strip().splitlines())
        assert "KeyError" in err
