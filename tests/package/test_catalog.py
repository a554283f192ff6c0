"""Session states read from damaged, foreign and half-written session folders."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pytest

from structlog_belog.exceptions import SessionNotFoundError
from structlog_belog.package import catalog as _catalog
from tests.session_files import call, end, rec, session_dir, start, write


class TestSessionInfo:
    def test_damaged_first_line_means_no_start(self, tmp_path: Path) -> None:
        """A first line that is not JSON, or not a session_start, gives no title or pid."""
        d = session_dir(tmp_path)
        write(d / "processing.jsonl", [b"{not json\n", end(3)])
        e = session_dir(tmp_path, "sess_b")
        write(e / "processing.jsonl", [rec(0, "hello"), end(3, success=False)])
        f = session_dir(tmp_path, "sess_c")
        write(f / "processing.jsonl", [b"[1, 2]\n"])
        infos = [_catalog.session_info(x) for x in (d, e, f)]
        assert [(None, None, "ok"), (None, None, "failed"), (None, None, "running")] == [
            (i.title, i.pid, i.status) for i in infos
        ]

    def test_tail_skips_lookalikes_and_broken_lines(self, tmp_path: Path) -> None:
        """A damaged line or a message merely mentioning session_end is not the end."""
        d = session_dir(tmp_path)
        write(d / "processing.jsonl", [
            start(0, pid=os.getpid(), host=platform.node()),
            end(5),
            b'{"event": "session_end", "kind": "session_end", broken\n',
            rec(6, "we log \"session_end\" too"),
        ])  # fmt: skip
        info = _catalog.session_info(d)
        assert ("ok", 5) == (info.status, info.duration_seconds)

    def test_running_while_its_process_lives(self, tmp_path: Path) -> None:
        """No session_end, our pid on our host: running; a dead pid: crashed."""
        d = session_dir(tmp_path)
        write(d / "processing.jsonl", [start(0, pid=os.getpid(), host=platform.node())])
        e = session_dir(tmp_path, "sess_dead")
        write(e / "processing.jsonl", [start(0, pid=2**22 + 12345, host=platform.node())])
        assert ["running", "crashed"] == [_catalog.session_info(x).status for x in (d, e)]

    def test_other_host_falls_back_to_file_age(self, tmp_path: Path) -> None:
        """A session from another host is running only while its files are fresh."""
        d = session_dir(tmp_path)
        write(d / "processing.jsonl", [start(0, pid=1, host="elsewhere")])
        assert "running" == _catalog.session_info(d).status
        assert "crashed" == _catalog.session_info(d, idle_seconds=-1).status

    def test_tokens_skip_damaged_call_lines(self, tmp_path: Path) -> None:
        """Calls are counted by line; tokens only from lines with a usable usage."""
        d = session_dir(tmp_path)
        write(d / "processing.jsonl", [start(0), end(1)])
        write(d / "prompts.jsonl", [
            call(0.5, "c1"),
            b"{broken\n",
            b"[]\n",
            call(0.6, "c2", usage={"total_tokens": "many"}),
            call(0.7, "c3"),
        ])  # fmt: skip
        info = _catalog.session_info(d)
        assert (5, 60) == (info.calls, info.tokens)

    def test_unreadable_files_are_skipped(self, tmp_path: Path) -> None:
        """A shard that cannot be opened (here: a folder by that name) counts as empty."""
        d = session_dir(tmp_path)
        write(d / "processing.jsonl", [start(0), end(1)])
        (d / "prompts.jsonl").mkdir()
        (d / "processing.77.jsonl").mkdir()
        info = _catalog.session_info(d)
        assert (2, 0, 0, "ok") == (info.records, info.calls, info.tokens, info.status)


class TestPidAlive:
    def test_states(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Our own pid lives; a pid we may not signal still exists; a missing one does not."""
        assert True is _catalog.pid_alive(os.getpid())

        def refuse(_: int, __: int) -> None:
            raise PermissionError

        monkeypatch.setattr(_catalog.os, "kill", refuse)
        assert True is _catalog.pid_alive(1)

        def missing(_: int, __: int) -> None:
            raise ProcessLookupError

        monkeypatch.setattr(_catalog.os, "kill", missing)
        assert False is _catalog.pid_alive(1)


class TestFind:
    def test_last_in_an_empty_folder(self, tmp_path: Path) -> None:
        """'last' with no sessions raises SessionNotFoundError naming the sessions folder."""
        with pytest.raises(SessionNotFoundError) as info:
            _catalog.find("last", tmp_path)
        assert (tmp_path / "sessions", "last") == (info.value.path, info.value.session_id)

    def test_relative_folder_name(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A bare folder name resolves only to a session folder, not to any folder."""
        other = tmp_path / "other" / "sessions"
        (session_dir(tmp_path / "other", "sess_elsewhere") / "processing.jsonl").write_text("")
        monkeypatch.chdir(other)
        assert Path("sess_elsewhere") == _catalog.find("sess_elsewhere", tmp_path / "logs")
        (other / "somewhere").mkdir()
        with pytest.raises(SessionNotFoundError):
            _catalog.find("somewhere", tmp_path / "logs")

    @pytest.mark.parametrize("reference", ["/", "/etc", "..", "../..", "../../etc"])
    def test_outside_refused(self, reference: str, tmp_path: Path) -> None:
        """A path outside the log folder that is no session folder is refused."""
        with pytest.raises(SessionNotFoundError, match="not a session folder"):
            _catalog.find(reference, tmp_path / "logs")

    def test_unknown(self, tmp_path: Path) -> None:
        """A reference matching nothing raises SessionNotFoundError."""
        session_dir(tmp_path, "sess_x")
        with pytest.raises(SessionNotFoundError):
            _catalog.find("sess_y", tmp_path)
