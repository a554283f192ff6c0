"""Tests for the file-change watcher behind a BELog record's ``files_changed``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from structlog_belog.memory import watch

BACKENDS = ["scan", *(["inotify"] if sys.platform == "linux" else [])]


def write(path: Path, text: str = "x") -> None:
    """Create *path* (and its folders) holding *text*."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend this platform has."""
    return str(request.param)


class TestFileWatcher:
    """FileWatcher: created, modified and deleted files between begin and end."""

    def test_created_modified_deleted(
        self, tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Every kind of change under the root is reported, relative to the cwd."""
        monkeypatch.chdir(tmp_path)
        write(tmp_path / "keep.txt")
        write(tmp_path / "edit.txt", "old")
        write(tmp_path / "gone.txt")
        w = watch.FileWatcher([tmp_path], backend=backend)
        assert backend == w.backend
        token = w.begin()
        write(tmp_path / "new" / "deep" / "made.json", "{}")
        (tmp_path / "edit.txt").write_text("new, longer")
        (tmp_path / "gone.txt").unlink()
        assert ["edit.txt", "gone.txt", "new/deep/made.json"] == w.end(token)
        w.close()

    def test_nothing_changed(self, tmp_path: Path, backend: str) -> None:
        """A task that writes nothing has no changed file."""
        write(tmp_path / "a.txt")
        w = watch.FileWatcher([tmp_path], backend=backend)
        assert [] == w.end(w.begin())

    def test_changes_before_begin_do_not_count(self, tmp_path: Path, backend: str) -> None:
        """Only what changed after begin() belongs to the task."""
        w = watch.FileWatcher([tmp_path], backend=backend)
        write(tmp_path / "before.txt")
        token = w.begin()
        write(tmp_path / "during.txt")
        assert [str(tmp_path / "during.txt")] == w.end(token)

    def test_overlapping_tokens(self, tmp_path: Path, backend: str) -> None:
        """Two open measurements each see what changed in their own window."""
        w = watch.FileWatcher([tmp_path], backend=backend)
        outer = w.begin()
        write(tmp_path / "one.txt")
        inner = w.begin()
        write(tmp_path / "two.txt")
        assert [str(tmp_path / "two.txt")] == w.end(inner)
        assert [str(tmp_path / n) for n in ("one.txt", "two.txt")] == w.end(outer)
        assert [] == w.end(outer)  # a token ends once

    def test_skipped_folders_and_excludes(self, tmp_path: Path, backend: str) -> None:
        """Caches, VCS folders and the excluded (log) folder never show up."""
        (tmp_path / "logs").mkdir()
        (tmp_path / "__pycache__").mkdir()
        w = watch.FileWatcher([tmp_path], exclude=[tmp_path / "logs"], backend=backend)
        token = w.begin()
        write(tmp_path / "logs" / "sessions" / "x.jsonl")
        write(tmp_path / "__pycache__" / "m.cpython-311.pyc")
        write(tmp_path / ".git" / "index")
        write(tmp_path / "m.pyc")
        write(tmp_path / "real.txt")
        assert [str(tmp_path / "real.txt")] == w.end(token)

    @pytest.mark.skipif(shutil.which("git") is None, reason="needs the git program")
    def test_git_ignored_paths_are_skipped(self, tmp_path: Path, backend: str) -> None:
        """In a git working tree, what git ignores is not a changed file."""
        subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
        (tmp_path / ".gitignore").write_text("build/\n*.tmp\n")
        (tmp_path / "build").mkdir()
        write(tmp_path / "scratch.tmp")
        w = watch.FileWatcher([tmp_path], backend=backend)
        token = w.begin()
        write(tmp_path / "build" / "out.o")
        write(tmp_path / "scratch.tmp", "changed")
        write(tmp_path / "src.py")
        assert [str(tmp_path / "src.py")] == w.end(token)

    def test_too_large_a_root_is_not_watched(
        self, tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Past the caps the watcher is off, says why, and reports nothing."""
        monkeypatch.setattr(watch, "MAX_DIRS", 3)
        monkeypatch.setattr(watch, "MAX_SCAN_FILES", 3)
        for i in range(6):
            write(tmp_path / f"d{i}" / "f.txt")
        w = watch.FileWatcher([tmp_path], backend=backend)
        assert "off" == w.backend
        assert w.disabled is not None
        assert str(tmp_path) in w.disabled
        token = w.begin()
        write(tmp_path / "new.txt")
        assert [] == w.end(token)

    def test_bad_backend(self) -> None:
        """An unknown backend is a ValueError naming the argument."""
        with pytest.raises(ValueError, match="backend must be"):
            watch.FileWatcher(backend="fsevents")


@pytest.mark.skipif(sys.platform != "linux", reason="inotify is Linux-only")
class TestInotify:
    """The inotify backend's own cases."""

    def test_folder_made_then_filled_quickly(self, tmp_path: Path) -> None:
        """Files written into a new folder before its watch exists still count."""
        w = watch.FileWatcher([tmp_path], backend="inotify")
        token = w.begin()
        folder = tmp_path / "burst"
        folder.mkdir()
        for i in range(50):
            (folder / f"{i}.txt").write_text("x")
        assert 50 == len(w.end(token))

    def test_fork_child_gets_its_own_watcher(self, tmp_path: Path) -> None:
        """A forked child does not read (and steal) the parent's events."""
        parent = watch.shared_watcher([tmp_path], [])
        token = parent.begin()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            child = watch.shared_watcher([tmp_path], [])
            os._exit(0 if child is not parent and child.backend == "inotify" else 1)
        _, status = os.waitpid(pid, 0)
        write(tmp_path / "after_fork.txt")
        assert 0 == os.waitstatus_to_exitcode(status)
        assert [str(tmp_path / "after_fork.txt")] == parent.end(token)
        watch.reset_watcher()


class TestDisplayPath:
    """display_path: relative under the working directory, absolute elsewhere."""

    def test_relative_and_absolute(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Paths under the cwd are shown relative to it."""
        monkeypatch.chdir(tmp_path)
        assert os.path.join("a", "b.txt") == watch.display_path(tmp_path / "a" / "b.txt")
        assert "/elsewhere/x" == watch.display_path("/elsewhere/x")


class TestBounds:
    """The caps and failures of the set-up: off, with a reason, never raising."""

    def test_entries_cap(
        self, tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """More entries than MAX_ENTRIES: not watched."""
        monkeypatch.setattr(watch, "MAX_ENTRIES", 5)
        for i in range(10):
            write(tmp_path / f"f{i}.txt")
        w = watch.FileWatcher([tmp_path], backend=backend)
        assert "off" == w.backend
        assert w.disabled is not None

    def test_without_git_the_ignores_are_unknown(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A .git folder but no git program: the ignore list is empty, nothing fails."""
        (tmp_path / ".git").mkdir()
        monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
        assert set() == watch._git_ignored(tmp_path)

    @pytest.mark.skipif(sys.platform != "linux", reason="inotify is Linux-only")
    def test_no_inotify_library(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """When libc cannot be loaded the inotify backend is off and says why."""
        import ctypes.util

        monkeypatch.setattr(ctypes.util, "find_library", lambda _: "libmissing.so.0")
        w = watch.FileWatcher([tmp_path], backend="inotify")
        assert "off" == w.backend
        assert (w.disabled or "").startswith("inotify unavailable")

    def test_repr_and_reset(self, tmp_path: Path) -> None:
        """repr names backend and roots; reset_watcher forgets the shared one."""
        shared = watch.shared_watcher([tmp_path], [])
        assert shared is watch.shared_watcher([tmp_path], [])
        assert str(tmp_path) in repr(shared)
        watch.reset_watcher()
        assert shared is not watch.shared_watcher([tmp_path], [])
        watch.reset_watcher()


@pytest.mark.skipif(sys.platform != "linux", reason="inotify is Linux-only")
class TestInotifyEvents:
    """Kernel events the watcher must survive: a removed folder, an overflow."""

    def test_removed_folder(self, tmp_path: Path) -> None:
        """Files of a folder removed during the task are changed; its watch is dropped."""
        write(tmp_path / "sub" / "a.txt")
        w = watch.FileWatcher([tmp_path], backend="inotify")
        watched = len(w._wds)
        token = w.begin()
        shutil.rmtree(tmp_path / "sub")
        assert [str(tmp_path / "sub" / "a.txt")] == w.end(token)
        assert watched - 1 == len(w._wds)

    def test_queue_overflow_is_counted(self, tmp_path: Path) -> None:
        """An IN_Q_OVERFLOW event is counted, not mistaken for a file."""
        w = watch.FileWatcher([tmp_path], backend="inotify")
        w._parse(watch._EVENT.pack(-1, watch._IN_Q_OVERFLOW, 0, 0))
        assert 1 == w.overflows
        assert [] == w._events

    def test_held_events_are_capped(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Past MAX_EVENTS changed paths, further ones are counted as overflow."""
        monkeypatch.setattr(watch, "MAX_EVENTS", 3)
        w = watch.FileWatcher([tmp_path], backend="inotify")
        token = w.begin()
        for i in range(6):
            (tmp_path / f"{i}.txt").write_text("x")
        assert 3 == len(w.end(token))
        assert w.overflows >= 1

    def test_new_tree_past_the_cap(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A new folder tree bigger than the watches left: what was seen counts, then overflow."""
        w = watch.FileWatcher([tmp_path], backend="inotify")
        monkeypatch.setattr(watch, "MAX_DIRS", len(w._wds) + 1)
        token = w.begin()
        (tmp_path / "x" / "y" / "z").mkdir(parents=True)
        (tmp_path / "x" / "y" / "z" / "f.txt").write_text("1")
        w.end(token)
        assert w.overflows >= 1


@pytest.mark.skipif(sys.platform != "linux", reason="inotify is Linux-only")
class TestWindows:
    """A file changed before and again inside a task belongs to the task."""

    def test_same_file_across_begin(self, tmp_path: Path) -> None:
        """The second write of a file is the task's, even right after the first."""
        w = watch.FileWatcher([tmp_path], backend="inotify")
        outer = w.begin()
        (tmp_path / "a.txt").write_text("1")
        inner = w.begin()
        (tmp_path / "a.txt").write_text("2")
        assert [str(tmp_path / "a.txt")] == w.end(inner)
        assert [str(tmp_path / "a.txt")] == w.end(outer)

    def test_changes_between_tasks(self, tmp_path: Path) -> None:
        """Writes between two tasks (nothing open) are dropped cleanly."""
        w = watch.FileWatcher([tmp_path], backend="inotify")
        first = w.begin()
        (tmp_path / "c.txt").write_text("1")
        assert [str(tmp_path / "c.txt")] == w.end(first)
        (tmp_path / "a.txt").write_text("1")
        (tmp_path / "a.txt").write_text("2")
        token = w.begin()
        (tmp_path / "b.txt").write_text("1")
        assert [str(tmp_path / "b.txt")] == w.end(token)
