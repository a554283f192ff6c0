"""The package's files: each written new (never through a link), compressed, hashed.

`StreamWriter` compresses one log stream with zstd while hashing what it
writes; `write_file`, `write_page` and `write_sums` write the other members
and ``SHA256SUMS`` in `sha256sum -c` format.
"""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
from pathlib import Path
from typing import IO, Any, Final, cast

import zstandard

__all__ = [
    "HASH_CHUNK",
    "REPORT_PAGE",
    "HashingFile",
    "StreamWriter",
    "open_new",
    "sha256_file",
    "write_file",
    "write_page",
    "write_sums",
]

#: The run report page's name in ``logs/``.
REPORT_PAGE: Final = "execution_report.html"

HASH_CHUNK: Final = 1024 * 1024
#: Direct writes: bytes copied to the aligned buffer at a time, and their alignment.
_DIRECT_CHUNK: Final = 1024 * 1024
_DIRECT_ALIGN: Final = 4096
_ZSTD_JOB_SIZE: Final = 1024 * 1024
_ZSTD_ONE_WORKER_JOB_SIZE: Final = 4 * 1024 * 1024
_ONE_WORKER_UP_TO: Final = 6


def open_new(path: Path) -> IO[bytes]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    return os.fdopen(fd, "wb")


class HashingFile:
    """A write-only file that hashes what goes through it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh = open_new(path)
        self.sha = hashlib.sha256()

    def write(self, data: bytes | memoryview) -> int:
        self.sha.update(data)
        return self.fh.write(data)

    def flush(self) -> None:
        self.fh.flush()

    def close(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()


def zstd_params(level: int) -> Any:
    """Multithreaded zstd: compression runs on worker threads, in fixed-size jobs.

    Up to level `_ONE_WORKER_UP_TO` one worker keeps up with the pass (it
    compresses several times faster than records are parsed), and more would
    only take CPU time from the thread that parses; its 4 MiB jobs cost the
    calling thread half as much as 1 MiB ones (fewer hand-overs). Slower
    levels get one worker per CPU with 1 MiB jobs. Either way the job size is
    fixed (zstd's default grows with the level's window, 8 MiB and more per
    worker), so the input zstd buffers is small and constant and peak memory
    does not depend on the size of the session.
    """
    if level <= _ONE_WORKER_UP_TO:
        threads, job_size = 1, _ZSTD_ONE_WORKER_JOB_SIZE
    else:
        threads, job_size = -1, _ZSTD_JOB_SIZE
    return zstandard.ZstdCompressionParameters.from_level(level, threads=threads, job_size=job_size)


class StreamWriter:
    """One package member: plain JSONL or a zstd stream of it."""

    def __init__(self, path: Path, level: int | None) -> None:
        self.file = HashingFile(path)
        self.lines = 0
        self._zw: Any = None
        if level is not None:
            cctx = zstandard.ZstdCompressor(compression_params=zstd_params(level))
            self._zw = cctx.stream_writer(cast("IO[bytes]", self.file), closefd=False)
        self._write = self.file.write if self._zw is None else self._zw.write

    def write(self, data: bytes | memoryview) -> None:
        self._write(data)

    def close(self) -> str:
        """Finish the member (end the zstd frame, sync) and return its SHA-256."""
        if self._zw is not None:
            self._zw.flush(zstandard.FLUSH_FRAME)
            self._zw.close()
        self.file.close()
        return self.file.sha.hexdigest()

    def abort(self) -> None:
        """Close without finishing, after a failure (the folder is removed anyway)."""
        self.file.fh.close()


def sha256_file(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(HASH_CHUNK):
            sha.update(block)
    return sha.hexdigest()


def sums_line(digest: str, name: str) -> str:
    # GNU sha256sum's escaping for names with a backslash or a newline.
    if "\\" in name or "\n" in name or "\r" in name:
        escaped = name.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return f"\\{digest}  {escaped}\n"
    return f"{digest}  {name}\n"


def write_sums(root: Path, known: dict[str, str]) -> None:
    """Write ``logs/SHA256SUMS`` for every regular file in the package."""
    logs = root / "logs"
    digests = dict(known)
    for dirpath, _, filenames in os.walk(root):
        for filename in filenames:
            path = Path(dirpath, filename)
            rel = os.path.relpath(path, logs)
            if rel in digests or rel == "SHA256SUMS" or path.is_symlink():
                continue
            digests[rel] = sha256_file(path)
    text = "".join(sums_line(d, name) for name, d in sorted(digests.items()))
    with open_new(logs / "SHA256SUMS") as fh:
        fh.write(text.encode("utf-8", "surrogateescape"))


def write_file(path: Path, data: bytes) -> str:
    with open_new(path) as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return hashlib.sha256(data).hexdigest()


def _write_direct(path: Path, pieces: tuple[bytes, ...]) -> bool:
    """Write a new file past the page cache (``O_DIRECT``), synced; False where refused.

    The page is some megabytes written once and synced, not read back by this
    process: copying it into the page cache first is CPU time spent for
    nothing (taking fresh cache pages cost about 6 ms a megabyte on the
    project's virtual machine; 15 MB written directly, about 1 ms).
    Where the file system or the platform refuses direct I/O (no
    ``O_DIRECT``, ``EINVAL``), the caller writes through the cache instead;
    nothing is left behind.
    """
    direct = getattr(os, "O_DIRECT", 0)
    if not direct:  # pragma: no cover - Linux has it
        return False
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW | direct
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        return False
    # Direct I/O reads from aligned memory, in whole blocks: a page-aligned
    # buffer, refilled; the last block is padded, then the file cut to size.
    buffer = mmap.mmap(-1, _DIRECT_CHUNK)
    view = memoryview(buffer)
    done = False
    try:
        fill = size = 0
        for piece in pieces:
            data = memoryview(piece)
            size += len(data)
            while data:
                take = min(len(data), _DIRECT_CHUNK - fill)
                view[fill : fill + take] = data[:take]
                fill += take
                data = data[take:]
                if fill == _DIRECT_CHUNK:
                    _write_block(fd, view)
                    fill = 0
        if fill:
            padded = -(-fill // _DIRECT_ALIGN) * _DIRECT_ALIGN
            view[fill:padded] = bytes(padded - fill)
            _write_block(fd, view[:padded])
        os.ftruncate(fd, size)
        os.fsync(fd)
        done = True
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
    finally:
        # The buffer is not closed here: an error's traceback may still hold a
        # view of it (closing would raise); it is unmapped with its last view.
        os.close(fd)
        if not done:
            path.unlink(missing_ok=True)
    return done


def _write_block(fd: int, block: memoryview) -> None:
    written = os.write(fd, block)
    if written != len(block):  # a short direct write would leave the next one unaligned
        raise OSError(errno.EINVAL, f"direct write of {len(block)} bytes wrote {written}")


def write_page(path: Path, pieces: tuple[bytes, ...]) -> dict[str, Any]:
    """Write the report page from its pieces; its ``package.report`` entry of metadata.json.

    Past the page cache where the file system allows it (see `_write_direct`).
    """
    from .report_page import PAGE_DATA_VERSION

    sha = hashlib.sha256()
    for piece in pieces:
        sha.update(piece)
    if not _write_direct(path, pieces):
        with open_new(path) as fh:
            for piece in pieces:
                fh.write(piece)
            fh.flush()
            os.fsync(fh.fileno())
    return {
        "path": f"logs/{REPORT_PAGE}",
        "sha256": sha.hexdigest(),
        "bytes": sum(map(len, pieces)),
        "data_version": PAGE_DATA_VERSION,
    }
