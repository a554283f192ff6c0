"""Tests for opening files without following links or blocking on special files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from structlog_belog.core.safe_io import (
    UnsafeFileError,
    open_file_beneath,
    open_regular,
    replace_file,
)


class TestOpenRegular:
    """`open_regular` opens regular files only, never through a link."""

    def test_regular_file(self, tmp_path: Path) -> None:
        """A regular file opens."""
        path = tmp_path / "f"
        path.write_bytes(b"data")
        fd = open_regular(path)
        try:
            assert b"data" == os.read(fd, 10)
        finally:
            os.close(fd)

    def test_link_refused(self, tmp_path: Path) -> None:
        """A link is refused, naming the link, not its target's content."""
        (tmp_path / "target").write_bytes(b"secret")
        (tmp_path / "link").symlink_to(tmp_path / "target")
        with pytest.raises(UnsafeFileError, match="symbolic link") as info:
            open_regular(tmp_path / "link")
        assert "secret" not in str(info.value)
        assert tmp_path / "link" == info.value.path

    def test_fifo_refused_without_blocking(self, tmp_path: Path) -> None:
        """A FIFO nobody writes is refused at once, for reading and for writing."""
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        with pytest.raises(UnsafeFileError, match="FIFO"):
            open_regular(fifo)
        with pytest.raises(UnsafeFileError, match="FIFO"):
            open_regular(fifo, os.O_WRONLY | os.O_APPEND)

    def test_device_refused(self) -> None:
        """/dev/null is a device, not a regular file."""
        with pytest.raises(UnsafeFileError, match="device"):
            open_regular("/dev/null")


class TestOpenFileBeneath:
    """`open_file_beneath` follows no link below its root."""

    def test_creates_folders_0700(self, tmp_path: Path) -> None:
        """Missing folders are made 0700; the file opens for appending."""
        fd = open_file_beneath(
            tmp_path,
            tmp_path / "a" / "b" / "f.jsonl",
            os.O_WRONLY | os.O_CREAT | os.O_APPEND,
            create_dirs=True,
        )
        os.close(fd)
        assert 0o700 == (tmp_path / "a" / "b").stat().st_mode & 0o777
        assert 0o600 == (tmp_path / "a" / "b" / "f.jsonl").stat().st_mode & 0o777

    def test_linked_folder_refused(self, tmp_path: Path) -> None:
        """A folder on the way that is a link is refused; nothing created through it."""
        outside = tmp_path / "outside"
        outside.mkdir()
        root = tmp_path / "root"
        root.mkdir()
        (root / "a").symlink_to(outside)
        with pytest.raises(UnsafeFileError):
            open_file_beneath(root, "a/f", os.O_WRONLY | os.O_CREAT, create_dirs=True)
        assert [] == list(outside.iterdir())

    def test_outside_path_refused(self, tmp_path: Path) -> None:
        """A path with ``..`` is not beneath the root."""
        with pytest.raises(UnsafeFileError, match="not inside"):
            open_file_beneath(tmp_path, "a/../../etc/passwd")


class TestReplaceFile:
    """`replace_file` writes a new file and never writes through a link."""

    def test_writes_atomically_0600(self, tmp_path: Path) -> None:
        """The file holds the data, mode 0600; no temporary file is left."""
        path = tmp_path / "r.json"
        path.write_bytes(b"old")
        replace_file(path, b"new")
        assert b"new" == path.read_bytes()
        assert 0o600 == path.stat().st_mode & 0o777
        assert ["r.json"] == [p.name for p in tmp_path.iterdir()]

    def test_link_refused(self, tmp_path: Path) -> None:
        """A link at the name is refused and its target untouched."""
        target = tmp_path / "victim"
        target.write_bytes(b"untouched")
        (tmp_path / "r.json").symlink_to(target)
        with pytest.raises(UnsafeFileError):
            replace_file(tmp_path / "r.json", b"x")
        assert b"untouched" == target.read_bytes()


class TestRefusals:
    """The other refusals: a file on the way, the root itself, missing folders."""

    def test_file_on_the_way(self, tmp_path: Path) -> None:
        """A file where a folder should be is refused, not followed."""
        (tmp_path / "a").write_bytes(b"")
        with pytest.raises(UnsafeFileError, match="not a folder"):
            open_file_beneath(tmp_path, "a/f")

    def test_root_itself(self, tmp_path: Path) -> None:
        """The root is no file."""
        with pytest.raises(UnsafeFileError, match="folder itself"):
            open_file_beneath(tmp_path, tmp_path)

    def test_missing_folder_not_created(self, tmp_path: Path) -> None:
        """Without create_dirs a missing folder is FileNotFoundError."""
        with pytest.raises(FileNotFoundError):
            open_file_beneath(tmp_path, "missing/f")

    def test_replace_beneath_root(self, tmp_path: Path) -> None:
        """With a root, missing folders are made 0700 and the file written."""
        replace_file(tmp_path / "r" / "f.json", b"{}", root=tmp_path)
        assert b"{}" == (tmp_path / "r" / "f.json").read_bytes()
        assert 0o700 == (tmp_path / "r").stat().st_mode & 0o777

    def test_replace_fifo_refused(self, tmp_path: Path) -> None:
        """A FIFO at the name is refused, not replaced."""
        os.mkfifo(tmp_path / "f")
        with pytest.raises(UnsafeFileError, match="FIFO"):
            replace_file(tmp_path / "f", b"x")
