"""Open files without following planted links or blocking on special files.

Every file belog writes (log files, session files, shards, markers, revision
files, the store) and every file it reads back (session files, package
members, metadata, summaries, checksums) goes through these helpers:

- no symbolic link is followed below the folder the caller trusts (*root*:
  the configured log folder, a package folder): each folder on the way is
  opened with ``O_NOFOLLOW | O_DIRECTORY`` relative to the previous one, and
  the file itself with ``O_NOFOLLOW``;
- nothing but a regular file is read or written: a FIFO, a device
  (``/dev/zero``), a socket or a folder is refused after ``fstat``, and opening
  never blocks (``O_NONBLOCK``), so a FIFO nobody writes cannot hang a reader;
- files are created ``0600`` and folders ``0700`` at creation.

A refusal is an `UnsafeFileError` (an `OSError`) whose message names the
path and why, never the content of what the link points to.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Final

from ..exceptions import UnsafeFileError

__all__ = [
    "UnsafeFileError",
    "check_regular",
    "open_dir_beneath",
    "open_file_beneath",
    "open_regular",
    "open_regular_file",
    "replace_file",
]

_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY: Final = getattr(os, "O_DIRECTORY", 0)
_NONBLOCK: Final = getattr(os, "O_NONBLOCK", 0)
_DIR_FLAGS: Final = os.O_RDONLY | _DIRECTORY | _NOFOLLOW | os.O_CLOEXEC


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_regular(fd: int, path: Path | str) -> os.stat_result:
    """``fstat`` *fd*; raise `UnsafeFileError` (closing nothing) unless it is a regular file."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        kind = _kind(st.st_mode)
        raise UnsafeFileError(path, f"it is {kind}, not a regular file")
    return st


def _refusal(path: Path | str, exc: OSError) -> OSError:
    """Translate the errors O_NOFOLLOW / O_DIRECTORY / O_NONBLOCK give into a refusal."""
    if exc.errno == errno.ELOOP:
        return UnsafeFileError(path, "it is a symbolic link", errno.ELOOP)
    if exc.errno == errno.ENOTDIR:
        return UnsafeFileError(
            path, "a part of it is not a folder (a link or a file)", errno.ENOTDIR
        )
    if exc.errno == errno.ENXIO:
        return UnsafeFileError(path, "it is a FIFO or a device, not a regular file", errno.ENXIO)
    return exc


def open_regular(path: Path | str, flags: int = os.O_RDONLY, mode: int = 0o600) -> int:
    """Open *path* without following a link at its last part; only a regular file.

    Raises:
        UnsafeFileError: *path* is a symbolic link or not a regular file.
        OSError: The file cannot be opened.
    """
    try:
        fd = os.open(path, flags | _NOFOLLOW | _NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        raise _refusal(path, exc) from None
    try:
        check_regular(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular_file(path: Path | str) -> BinaryIO:
    """`open_regular` for reading, as a binary file object."""
    return os.fdopen(open_regular(path), "rb")


def _parts(root: Path, path: Path) -> list[str]:
    """The parts of *path* below *root*; *path* may be relative to *root*."""
    rel = path if not path.is_absolute() else path.relative_to(root)
    parts = [p for p in rel.parts if p not in ("", ".")]
    if any(p == ".." for p in parts) or rel.is_absolute():
        msg = f"{str(path)!r} is not inside {str(root)!r}"
        raise UnsafeFileError(path, msg)
    return parts


def _open_dirs(root: Path, parts: list[str], create: bool) -> int:
    """A descriptor of the folder *root*/*parts*, each part opened without following links."""
    fd = os.open(root, os.O_RDONLY | _DIRECTORY | os.O_CLOEXEC)
    try:
        for i, part in enumerate(parts):
            where = root.joinpath(*parts[: i + 1])
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, 0o700, dir_fd=fd)
                except FileExistsError:
                    pass
                try:
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    raise _refusal(where, exc) from None
            except OSError as exc:
                raise _refusal(where, exc) from None
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_dir_beneath(root: Path | str, path: Path | str, *, create: bool = False) -> int:
    """A descriptor of folder *path* below *root*, no link followed below *root*.

    *root* itself is the caller's choice (a configured folder) and may be a link.
    With *create*, missing folders are made ``0700``.

    Raises:
        UnsafeFileError: A part of *path* below *root* is a link or not a folder,
            or *path* is not inside *root*.
    """
    root = Path(root)
    return _open_dirs(root, _parts(root, Path(path)), create)


def open_file_beneath(
    root: Path | str,
    path: Path | str,
    flags: int = os.O_RDONLY,
    mode: int = 0o600,
    *,
    create_dirs: bool = False,
) -> int:
    """Open the regular file *path* below *root* following no link below *root*.

    *path* is absolute (inside *root*) or relative to it. With *create_dirs*,
    missing folders on the way are made ``0700``. Opening never blocks.

    Raises:
        UnsafeFileError: A part of *path* is a link, a folder on the way is not
            a folder, or the file is not a regular file (FIFO, device, socket).
        FileNotFoundError: The file (or a folder on the way) does not exist
            and was not to be created.
    """
    root = Path(root)
    parts = _parts(root, Path(path))
    if not parts:
        raise UnsafeFileError(path, "it is the folder itself, not a file")
    dfd = _open_dirs(root, parts[:-1], create_dirs)
    full = root.joinpath(*parts)
    try:
        try:
            fd = os.open(parts[-1], flags | _NOFOLLOW | _NONBLOCK | os.O_CLOEXEC, mode, dir_fd=dfd)
        except OSError as exc:
            raise _refusal(full, exc) from None
    finally:
        os.close(dfd)
    try:
        check_regular(fd, full)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def _dir_fd(folder: Path, root: Path | None) -> Iterator[int]:
    if root is None:
        fd = os.open(folder, os.O_RDONLY | _DIRECTORY | os.O_CLOEXEC)
    else:
        fd = open_dir_beneath(root, folder, create=True)
    try:
        yield fd
    finally:
        os.close(fd)


def replace_file(path: Path | str, data: bytes, *, root: Path | str | None = None) -> None:
    """Write *data* to *path* as a whole new ``0600`` file, atomically.

    The data goes to a new temporary file (``O_EXCL | O_NOFOLLOW``) in the same
    folder, which is then renamed over *path*: nothing is ever written through
    a link planted at *path*, and readers see the old file or the new one.
    With *root*, the folders from *root* down to *path*'s are opened without
    following links (and made ``0700`` when missing).

    Raises:
        UnsafeFileError: *path* exists and is not a regular file (a link, a FIFO...),
            or a folder below *root* on the way is a link.
    """
    path = Path(path)
    with _dir_fd(path.parent, None if root is None else Path(root)) as dfd:
        try:
            st = os.stat(path.name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISREG(st.st_mode):
                raise UnsafeFileError(path, f"it is {_kind(st.st_mode)}, not a regular file")
        tmp = f".{path.name}.{secrets.token_hex(6)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o600, dir_fd=dfd)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path.name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except OSError:
                pass
            raise
