"""The package's members as files: the report page's direct write and its fallbacks."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from structlog_belog.package import members as _members
from structlog_belog.package.members import write_page

#: Sizes around the direct write's block (4 KiB) and buffer (1 MiB) edges.
SIZES = (
    [0],
    [1],
    [4095],
    [4096, 0],
    [4097],
    [1 << 20],
    [(1 << 20) - 1, 2],
    [(1 << 20) + 1, 3, 5000],
    [3 << 20, 100, 7],
)


def _pieces(sizes: list[int]) -> tuple[bytes, ...]:
    return tuple(bytes((n + i) % 251 for i in range(size)) for n, size in enumerate(sizes))


def _sha256sum(path: Path) -> str:
    if shutil.which("sha256sum") is None:  # pragma: no cover - coreutils is everywhere
        pytest.skip("needs the sha256sum program (coreutils)")
    out = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True)
    return out.stdout.split()[0]


class TestWritePage:
    @pytest.mark.parametrize("sizes", SIZES, ids=lambda s: "+".join(map(str, s)))
    def test_bytes_mode_and_digest(self, tmp_path: Path, sizes: list[int]) -> None:
        """The file holds the pieces exactly, mode 0600, and its entry has sha256sum's digest."""
        pieces = _pieces(sizes)
        path = tmp_path / "page.html"
        entry = write_page(path, pieces)
        assert b"".join(pieces) == path.read_bytes()
        assert 0o600 == stat.S_IMODE(path.stat().st_mode)
        assert (_sha256sum(path), sum(sizes)) == (entry["sha256"], entry["bytes"])

    def test_never_through_a_planted_link(self, tmp_path: Path) -> None:
        """A link at the page's path is not followed: the write fails, its target is kept."""
        target = tmp_path / "target"
        target.write_bytes(b"keep")
        (tmp_path / "page.html").symlink_to(target)
        with pytest.raises(FileExistsError):
            write_page(tmp_path / "page.html", (b"x" * 5000,))
        assert b"keep" == target.read_bytes()

    def test_where_direct_io_is_refused_at_open(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A file system that refuses O_DIRECT (EINVAL at open) gets the page through its cache."""
        real_open = os.open
        refused = []

        def no_direct(path: Any, flags: int, *args: Any) -> int:
            if flags & os.O_DIRECT:
                refused.append(path)
                raise OSError(errno.EINVAL, "Invalid argument")
            return real_open(path, flags, *args)

        monkeypatch.setattr(_members.os, "open", no_direct)
        pieces = _pieces([(1 << 20) + 17, 9])
        path = tmp_path / "page.html"
        entry = write_page(path, pieces)
        assert [path] == refused
        assert b"".join(pieces) == path.read_bytes()
        assert (_sha256sum(path), 0o600) == (entry["sha256"], stat.S_IMODE(path.stat().st_mode))

    def test_where_a_direct_write_is_refused(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """EINVAL from a direct write (the device wants more alignment): written again, whole."""
        real_write = os.write
        seen = []

        def refusing(fd: int, data: Any) -> int:
            if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
                seen.append(len(data))
                if len(seen) == 2:  # the second block: the first is already on disk
                    raise OSError(errno.EINVAL, "Invalid argument")
            return real_write(fd, data)

        monkeypatch.setattr(_members.os, "write", refusing)
        pieces = _pieces([3 << 20])
        path = tmp_path / "page.html"
        write_page(path, pieces)
        assert [1 << 20, 1 << 20] == seen
        assert b"".join(pieces) == path.read_bytes()

    def test_other_errors_propagate_and_leave_nothing(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A full disk is an error, not a reason to try again: no file is left behind."""

        def full(fd: int, data: Any) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(_members.os, "write", full)
        with pytest.raises(OSError, match="No space left"):
            write_page(tmp_path / "page.html", _pieces([10_000]))
        assert [] == list(tmp_path.iterdir())
