"""Which files a task created, modified or deleted under the watched roots, cheaply.

A task asks the process's `FileWatcher` for a token when it starts (`begin`)
and for the paths that changed since when it ends (`end`). On Linux the
watcher is an inotify instance with one watch per directory of the roots, set
up once per process: a task then costs two non-blocking reads of that
descriptor, whatever the number of files. Elsewhere (or when inotify is not
available) it compares an ``mtime``/size snapshot of the roots taken at both
ends, and only while the roots hold at most `MAX_SCAN_FILES` files.

Both are bounded: roots with more than `MAX_DIRS` directories or
`MAX_ENTRIES` entries are not watched at all (`FileWatcher.disabled` says
why), so pointing a process at a home folder costs one capped walk, not a
walk per task. Folders nobody wants in ``files_changed`` are skipped: version
control and tool caches (`SKIP_NAMES`), the folders given as *exclude* (the
log and package folders), and, in a git working tree, what git ignores.

Changes are seen from every thread and process writing under the roots;
concurrent tasks therefore each see the others' changes (documented in
docs/belog.md).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

__all__ = [
    "MAX_DIRS",
    "MAX_ENTRIES",
    "MAX_SCAN_FILES",
    "SKIP_NAMES",
    "FileWatcher",
    "default_roots",
    "display_path",
    "reset_watcher",
    "shared_watcher",
]

#: Directories at most watched (one inotify watch each).
MAX_DIRS: Final = 5_000
#: Entries (files and folders) at most walked when the watch is set up.
MAX_ENTRIES: Final = 100_000
#: Changed paths at most held for the open tasks; past it they are counted as
#: an overflow (a task writing more files than this lists the first ones).
MAX_EVENTS: Final = 200_000
#: Files at most snapshot per task by the portable fallback.
MAX_SCAN_FILES: Final = 2_000
#: Folder names never watched: version control, virtualenvs and tool caches.
SKIP_NAMES: Final = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        ".tox",
        ".nox",
    }
)
_SKIP_SUFFIXES: Final = (".pyc", ".pyo", ".swp", ".swx", "~")

# inotify(7) constants.
_IN_MODIFY: Final = 0x2
_IN_CLOSE_WRITE: Final = 0x8
_IN_MOVED_FROM: Final = 0x40
_IN_MOVED_TO: Final = 0x80
_IN_CREATE: Final = 0x100
_IN_DELETE: Final = 0x200
_IN_Q_OVERFLOW: Final = 0x4000
_IN_IGNORED: Final = 0x8000
_IN_ONLYDIR: Final = 0x01000000
_IN_DONT_FOLLOW: Final = 0x02000000
_IN_EXCL_UNLINK: Final = 0x04000000
_IN_ISDIR: Final = 0x40000000
_IN_NONBLOCK: Final = os.O_NONBLOCK
_IN_CLOEXEC: Final = 0o2000000
_MASK: Final = (
    _IN_MODIFY
    | _IN_CLOSE_WRITE
    | _IN_MOVED_FROM
    | _IN_MOVED_TO
    | _IN_CREATE
    | _IN_DELETE
    | _IN_ONLYDIR
    | _IN_DONT_FOLLOW
    | _IN_EXCL_UNLINK
)
_EVENT: Final = struct.Struct("iIII")


def display_path(path: str | os.PathLike[str], cwd: str | None = None) -> str:
    """*path* as records show it: relative to the working directory when under it."""
    absolute = os.path.abspath(path)
    base = cwd or os.getcwd()
    if absolute == base or absolute.startswith(base.rstrip(os.sep) + os.sep):
        return os.path.relpath(absolute, base)
    return absolute


def _git_top(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


def _git_ignored(top: Path) -> set[str]:
    """Absolute paths git ignores under *top* (folders collapsed), or {} without git."""
    try:
        out = subprocess.run(
            [
                "git",
                "-C",
                str(top),
                "ls-files",
                "-o",
                "-i",
                "--exclude-standard",
                "--directory",
                "-z",
            ],
            capture_output=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    return {
        os.path.join(top, entry.decode("utf-8", "surrogateescape").rstrip("/"))
        for entry in out.split(b"\0")
        if entry
    }


def default_roots() -> list[Path]:
    """The roots watched when none are configured: the working directory."""
    return [Path.cwd()]


class _Tree:
    """The folders under the roots that are watched, walked once with caps."""

    def __init__(self, roots: Sequence[Path], exclude: Iterable[str]) -> None:
        self.exclude = {os.path.abspath(p) for p in exclude}
        for root in roots:
            top = _git_top(root)
            if top is not None:
                self.exclude |= _git_ignored(top)
        self.entries = 0

    def skipped(self, path: str, name: str, *, is_dir: bool) -> bool:
        if is_dir and name in SKIP_NAMES:
            return True
        if not is_dir and name.endswith(_SKIP_SUFFIXES):
            return True
        return path in self.exclude

    def walk(self, top: str, on_dir: list[str], on_file: list[str] | None) -> bool:
        """Collect the folders (and files) under *top*; False when a cap was hit."""
        stack = [top]
        while stack:
            folder = stack.pop()
            on_dir.append(folder)
            if len(on_dir) > MAX_DIRS:
                return False
            try:
                with os.scandir(folder) as it:
                    for entry in it:
                        self.entries += 1
                        if self.entries > MAX_ENTRIES:
                            return False
                        try:
                            is_dir = entry.is_dir(follow_symlinks=False)
                        except OSError:
                            continue
                        if self.skipped(entry.path, entry.name, is_dir=is_dir):
                            continue
                        if is_dir:
                            stack.append(entry.path)
                        elif on_file is not None:
                            on_file.append(entry.path)
            except OSError:
                continue
        return True


class FileWatcher:
    """The files changed under some roots between `begin` and `end`.

    Args:
        roots: Folders to watch (the working directory by default).
        exclude: Folders never reported (the log and package folders).
        backend: ``"auto"`` (inotify on Linux, else snapshots), ``"inotify"``
            or ``"scan"``.

    Attributes:
        backend: The backend in use, or ``"off"``.
        disabled: Why nothing is watched, or None.
        overflows: How often the kernel's event queue overflowed (the changes
            of the tasks open then may be incomplete).
    """

    def __init__(
        self,
        roots: Sequence[str | os.PathLike[str]] | None = None,
        exclude: Iterable[str | os.PathLike[str]] = (),
        *,
        backend: str = "auto",
    ) -> None:
        if backend not in {"auto", "inotify", "scan"}:
            msg = f"backend must be 'auto', 'inotify' or 'scan', got {backend!r}"
            raise ValueError(msg)
        self.roots = [Path(os.path.abspath(r)) for r in (roots or default_roots())]
        self.cwd = os.getcwd()
        self._tree = _Tree(self.roots, (os.fspath(p) for p in exclude))
        self._lock = threading.Lock()
        self._seq = 0
        self._events: list[str] = []
        self._first = 0  # sequence number of self._events[0]
        self._mark = 0  # sequence number at the latest begin()
        self._open: dict[int, int | dict[str, tuple[int, int]]] = {}
        self._tokens = 0
        self._fd = -1
        self._wds: dict[int, str] = {}
        self.overflows = 0
        self.disabled: str | None = None
        self.backend = "off"
        use_inotify = backend == "inotify" or (backend == "auto" and sys.platform == "linux")
        if use_inotify and self._start_inotify():
            self.backend = "inotify"
        elif backend != "inotify" and self._scan_fits():
            self.backend = "scan"
            self.disabled = None

    def __repr__(self) -> str:
        roots = [str(r) for r in self.roots]
        return f"<FileWatcher {self.backend} roots={roots!r} disabled={self.disabled!r}>"

    # --- set-up ------------------------------------------------------------------

    def _start_inotify(self) -> bool:
        import ctypes  # on first use: a process without BELog tasks never loads it
        import ctypes.util

        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            init, add = libc.inotify_init1, libc.inotify_add_watch
        except (OSError, AttributeError) as exc:
            self.disabled = f"inotify unavailable: {exc}"
            return False
        init.argtypes, init.restype = [ctypes.c_int], ctypes.c_int
        add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        add.restype = ctypes.c_int
        self._add = add
        folders: list[str] = []
        for root in self.roots:
            if not self._tree.walk(str(root), folders, None):
                self.disabled = (
                    f"{root} is too large to watch (more than {MAX_DIRS} folders "
                    f"or {MAX_ENTRIES} entries)"
                )
                return False
        fd = init(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            self.disabled = f"inotify_init1 failed: {os.strerror(ctypes.get_errno())}"
            return False
        self._fd = fd
        for folder in folders:
            if not self._watch(folder):
                self.close()
                self.disabled = f"inotify_add_watch failed: {os.strerror(ctypes.get_errno())}"
                return False
        return True

    def _watch(self, folder: str) -> bool:
        wd = self._add(self._fd, os.fsencode(folder), _MASK)
        if wd < 0:
            return False
        self._wds[wd] = folder
        return True

    def _scan_fits(self) -> bool:
        files: list[str] = []
        for root in self.roots:
            if not self._tree.walk(str(root), [], files) or len(files) > MAX_SCAN_FILES:
                self.disabled = f"{root} holds more than {MAX_SCAN_FILES} files to snapshot"
                return False
        return True

    def close(self) -> None:
        """Stop watching (idempotent)."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
            self._fd = -1
            self._wds.clear()
            self.backend = "off"

    # --- inotify events ----------------------------------------------------------------

    def _drain(self) -> None:
        """Read every pending inotify event into the log (caller holds the lock)."""
        while True:
            try:
                data = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return
            except OSError:
                return
            if not data:
                return
            self._parse(data)

    def _parse(self, data: bytes) -> None:
        offset, size = 0, _EVENT.size
        while offset + size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            raw = data[offset + size : offset + size + length].rstrip(b"\0")
            offset += size + length
            if mask & _IN_Q_OVERFLOW:
                self.overflows += 1
                continue
            folder = self._wds.get(wd)
            if mask & _IN_IGNORED:
                self._wds.pop(wd, None)
                continue
            if folder is None or not raw:
                continue
            name = os.fsdecode(raw)
            path = os.path.join(folder, name)
            is_dir = bool(mask & _IN_ISDIR)
            if self._tree.skipped(path, name, is_dir=is_dir):
                continue
            if is_dir:
                if mask & (_IN_CREATE | _IN_MOVED_TO):
                    self._adopt(path)
                continue
            if self._seq > self._mark and self._events and self._events[-1] == path:
                continue  # create, write, close of one file: one entry per window
            if len(self._events) >= MAX_EVENTS:
                self.overflows += 1
                continue
            self._events.append(path)
            self._seq += 1

    def _adopt(self, folder: str) -> None:
        """Watch a folder created under a root; its files made before the watch count."""
        folders: list[str] = []
        files: list[str] = []
        complete = self._tree.walk(folder, folders, files)
        for sub in folders:
            if len(self._wds) >= MAX_DIRS or not self._watch(sub):
                complete = False
                break
        self._events.extend(files)
        self._seq += len(files)
        if not complete:
            self.overflows += 1

    # --- snapshots (portable fallback) ------------------------------------------------------

    def _snapshot(self) -> dict[str, tuple[int, int]]:
        snap: dict[str, tuple[int, int]] = {}
        files: list[str] = []
        for root in self.roots:
            self._tree.entries = 0
            self._tree.walk(str(root), [], files)
        for path in files[:MAX_SCAN_FILES]:
            try:
                st = os.stat(path, follow_symlinks=False)
            except OSError:
                continue
            snap[path] = (st.st_mtime_ns, st.st_size)
        return snap

    # --- the tasks' side ---------------------------------------------------------------

    def begin(self) -> int:
        """Start measuring; return a token for `end`."""
        with self._lock:
            self._tokens += 1
            token = self._tokens
            if self.backend == "inotify":
                self._drain()
                self._open[token] = self._mark = self._seq
            elif self.backend == "scan":
                self._open[token] = self._snapshot()
            return token

    def end(self, token: int) -> list[str]:
        """The files changed since `begin` returned *token*, as `display_path`s, sorted."""
        with self._lock:
            start = self._open.pop(token, None)
            if start is None:
                return []
            if isinstance(start, dict):
                after = self._snapshot()
                changed = {p for p in start.keys() | after.keys() if start.get(p) != after.get(p)}
            else:
                self._drain()
                changed = set(self._events[start - self._first :])
                self._trim()
        return sorted(display_path(p, self.cwd) for p in changed)

    def _trim(self) -> None:
        starts = [s for s in self._open.values() if isinstance(s, int)]
        keep_from = min(starts, default=self._seq)
        if keep_from > self._first:
            del self._events[: keep_from - self._first]
            self._first = keep_from


_WATCHER: FileWatcher | None = None
_WATCHER_KEY: tuple[object, ...] | None = None
_WATCHER_LOCK = threading.Lock()


def shared_watcher(
    roots: Sequence[str | os.PathLike[str]] | None, exclude: Sequence[str | os.PathLike[str]]
) -> FileWatcher:
    """The process's watcher for *roots* and *exclude* (made on first use, then reused)."""
    global _WATCHER, _WATCHER_KEY  # noqa: PLW0603 - one watcher per process
    resolved = tuple(os.path.abspath(r) for r in (roots or default_roots()))
    key = (os.getpid(), resolved, tuple(os.path.abspath(p) for p in exclude))
    with _WATCHER_LOCK:
        if _WATCHER is not None and key == _WATCHER_KEY:
            return _WATCHER
        if _WATCHER is not None:
            _WATCHER.close()
        _WATCHER = FileWatcher(resolved, exclude)
        _WATCHER_KEY = key
        return _WATCHER


def reset_watcher() -> None:
    """Forget (and close) the process's watcher; the next task makes a new one."""
    global _WATCHER, _WATCHER_KEY
    with _WATCHER_LOCK:
        if _WATCHER is not None and _WATCHER_KEY is not None and _WATCHER_KEY[0] == os.getpid():
            _WATCHER.close()
        _WATCHER, _WATCHER_KEY = None, None


def _after_fork() -> None:
    # The parent's descriptor is shared: reading it here would steal its events.
    global _WATCHER, _WATCHER_KEY, _WATCHER_LOCK  # noqa: PLW0603
    _WATCHER_LOCK = threading.Lock()
    if _WATCHER is not None and _WATCHER._fd >= 0:
        try:
            os.close(_WATCHER._fd)
        except OSError:
            pass
    _WATCHER, _WATCHER_KEY = None, None


os.register_at_fork(after_in_child=_after_fork)
