"""SessionRouter: rendered lines to per-session JSONL files, never raising.

One writer per (session, stream) and process. In ``durability="record"`` mode
every record is one ``os.write`` of a whole line to an ``O_APPEND`` descriptor,
so a killed process loses no record whose log call returned and leaves no torn
line. In ``"buffered"`` mode lines collect in memory and a background thread
writes them, so a slow or blocked disk never holds the application up; past a
memory cap records are dropped and counted.
"""

from __future__ import annotations

import atexit
import errno
import os
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Final

__all__ = ["STREAMS", "SessionRouter", "before_exit_flush", "make_dirs"]

#: The per-session streams and their file stems.
STREAMS: Final = ("processing", "prompts", "belog")

_FILE_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
_WARN_INTERVAL_S: Final = 10.0

# Every live router, so a fork can reset them all and exit can flush them all.
_ROUTERS: weakref.WeakSet[SessionRouter] = weakref.WeakSet()
# The process that registered the multiprocessing exit flush (see _register_exit_flush).
_mp_finalizer_pid = 0
# Called at exit between the routers' last flush and their close (see before_exit_flush).
_BEFORE_EXIT: list[Callable[[], None]] = []


def make_dirs(path: Path, mode: int = 0o700) -> None:
    """Create *path* and missing parents with *mode* at creation (not chmod-ed after).

    Existing folders are left as they are: they belong to whoever made them.
    """
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            # mkdir applies the umask; a umask can only remove bits, so 0700 stays
            # 0700 or less, never more.
            os.mkdir(d, mode)
        except FileExistsError:
            pass


class _Drops:
    """Counts of records this process could not write, by session (``None`` = global).

    ``reported`` is how much of each count a ``drops`` record already carries
    (see `SessionRouter.take_unreported`).
    """

    __slots__ = ("by_session", "last_warning", "reported", "total")

    def __init__(self) -> None:
        self.total = 0
        self.by_session: dict[str | None, int] = {}
        self.reported: dict[str | None, int] = {}
        self.last_warning = -_WARN_INTERVAL_S


class SessionRouter:
    """Write rendered JSONL lines to the right file; count what cannot be written.

    Args:
        log_dir: The root log folder (``logs/``).
        app_name: Stem of the global file for records outside any session.
        durability: ``"record"`` (one write per record) or ``"buffered"``.
        max_open: Most descriptors kept open at once (least recently used closed).
        buffer_bytes: In buffered mode, the most bytes held in memory before
            records are dropped (and counted).
        flush_interval: In buffered mode, seconds between background flushes.
    """

    def __init__(
        self,
        log_dir: Path,
        app_name: str,
        *,
        durability: str = "record",
        max_open: int = 128,
        buffer_bytes: int = 64 * 1024 * 1024,
        flush_interval: float = 0.2,
    ) -> None:
        if durability not in ("record", "buffered"):
            msg = f"durability must be 'record' or 'buffered', got {durability!r}"
            raise ValueError(msg)
        if max_open < 2:
            msg = f"max_open must be at least 2, got {max_open!r}"
            raise ValueError(msg)
        self.log_dir = log_dir
        self.sessions_dir = log_dir / "sessions"
        self.global_path = log_dir / f"{app_name}.jsonl"
        self.buffered = durability == "buffered"
        self.max_open = max_open
        self.buffer_bytes = buffer_bytes
        self.flush_interval = flush_interval

        self._init_process_state()
        _ROUTERS.add(self)

    def _init_process_state(self) -> None:
        self.pid = os.getpid()
        # Counts are per process: a forked child starts from zero, so what the
        # parent dropped is reported once, by the parent.
        self.drops = _Drops()
        # Re-entrant: a signal handler that logs, or a warning written to a
        # stderr the app routes into logging, can write while this thread
        # already holds the lock; a plain Lock deadlocks the app there.
        self._lock = threading.RLock()
        # Serialises flushes so two batches for one file can never swap order.
        self._flush_lock = threading.Lock()
        # Open descriptors by (session_id, stream, shard), least recently used first.
        self._fds: OrderedDict[tuple[str | None, str, bool], int] = OrderedDict()
        self._pending: dict[tuple[str | None, str, bool], bytearray] = {}
        self._pending_size = 0
        self._wake = threading.Event()
        self._flusher: threading.Thread | None = None
        self._closed = False

    # -- paths ---------------------------------------------------------------

    def path_for(self, session_id: str | None, stream: str, shard: bool) -> Path:
        """The file a line of *stream* for *session_id* goes to from this process."""
        if session_id is None:
            return self.global_path
        suffix = f".{self.pid}" if shard else ""
        return self.sessions_dir / session_id / f"{stream}{suffix}.jsonl"

    # -- writing -------------------------------------------------------------

    def write(self, session_id: str | None, stream: str, shard: bool, line: bytes) -> None:
        """Append *line* (one whole JSON line) to the file for *session_id*/*stream*.

        Never raises: a failure drops the record, counts it and warns (rate-limited).
        """
        key = (session_id, stream, shard)
        if self.buffered:
            self._buffer(key, line)
            return
        lock = self._lock
        lock.acquire()
        try:
            fd = self._fds.get(key)
            if fd is None:
                fd = self._open(key)
            n = os.write(fd, line)
            if n != len(line):
                _write_rest(fd, line, n, session_id is not None)
        except Exception as exc:  # noqa: BLE001 - the log call must never raise
            failure = self._reopen_and_write(key, line) if _is_ebadf(exc) else exc
            if failure is not None:
                self._forget(key)
                self._drop(session_id, failure, 1)
        finally:
            lock.release()

    def _reopen_and_write(
        self, key: tuple[str | None, str, bool], data: bytes
    ) -> BaseException | None:
        """After EBADF, reopen the file and write *data* once more; only once.

        EBADF means our cached descriptor was closed behind our back (by code
        that closes descriptors it does not own). It is forgotten without a
        close: its number may already belong to a file someone else opened.
        Returns None when the retry wrote, else what made it fail.
        """
        try:
            with self._lock:  # re-entrant: write() calls this holding it
                self._fds.pop(key, None)
                fd = self._open(key)
            n = os.write(fd, data)
            if n != len(data):
                _write_rest(fd, data, n, key[0] is not None)
        except Exception as exc:  # noqa: BLE001 - counted by the caller
            return exc
        return None

    def _open(self, key: tuple[str | None, str, bool]) -> int:
        """Open (creating 0600, folders 0700) and cache a descriptor. Lock held."""
        if self.pid != os.getpid():  # pragma: no cover - the at-fork hook resets first
            self._reset_after_fork()
        path = self.path_for(*key)
        try:
            fd = os.open(path, _FILE_FLAGS, 0o600)
        except FileNotFoundError:
            make_dirs(path.parent)
            fd = os.open(path, _FILE_FLAGS, 0o600)
        fds = self._fds
        fds[key] = fd
        while len(fds) > self.max_open:
            _, old = fds.popitem(last=False)
            _close(old)
        return fd

    def _forget(self, key: tuple[str | None, str, bool]) -> None:
        fd = self._fds.pop(key, None)
        if fd is not None:
            _close(fd)

    def _drop(self, session_id: str | None, exc: BaseException, count: int) -> None:
        drops = self.drops
        if not drops.total:
            # The first drop in this process: make sure the exit hooks run even
            # in a multiprocessing child, so its drops reach the session.
            _register_exit_flush()
        drops.total += count
        drops.by_session[session_id] = drops.by_session.get(session_id, 0) + count
        now = time.monotonic()
        if now - drops.last_warning >= _WARN_INTERVAL_S:
            drops.last_warning = now
            try:
                sys.stderr.write(
                    f"structlog-belog: could not write a log record ({exc!r}); "
                    f"{drops.total} record(s) dropped so far in this process. "
                    "Logging resumes when the fault clears.\n"
                )
            except Exception:  # noqa: BLE001, S110 - stderr itself may be gone
                pass

    def dropped(self, session_id: str | None) -> int:
        """Records dropped so far for *session_id* in this process."""
        return self.drops.by_session.get(session_id, 0)

    def take_unreported(self, session_id: str | None) -> int:
        """Records dropped for *session_id* not yet reported; from now on counted as reported.

        A process that writes to a session it does not own reports its drops in
        a ``drops`` record (its owner reports in ``session_end``); this keeps a
        second report from counting them twice.
        """
        with self._lock:
            drops = self.drops
            total = drops.by_session.get(session_id, 0)
            unreported = total - drops.reported.get(session_id, 0)
            drops.reported[session_id] = total
            return unreported

    # -- buffered mode -------------------------------------------------------

    def _buffer(self, key: tuple[str | None, str, bool], line: bytes) -> None:
        with self._lock:
            if self._pending_size + len(line) > self.buffer_bytes:
                self._drop(key[0], MemoryError("log buffer full; sink is not keeping up"), 1)
                return
            buf = self._pending.get(key)
            if buf is None:
                buf = self._pending[key] = bytearray()
            buf += line
            self._pending_size += len(line)
            if self._flusher is None:
                self._start_flusher()
        if self._pending_size > 1024 * 1024:
            self._wake.set()

    def _start_flusher(self) -> None:
        flusher = threading.Thread(
            target=self._flush_loop, name="structlog-belog-flusher", daemon=True
        )
        self._flusher = flusher
        flusher.start()
        _register_exit_flush()

    def _flush_loop(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Write out everything buffered (buffered mode); no-op in record mode."""
        if not self._pending:
            return
        with self._flush_lock:
            with self._lock:
                pending = self._pending
                self._pending = {}
                self._pending_size = 0
            for key, data in pending.items():
                try:
                    with self._lock:
                        fd = self._fds.get(key)
                        if fd is None:
                            fd = self._open(key)
                    n = os.write(fd, data)
                    if n != len(data):
                        _write_rest(fd, bytes(data), n, key[0] is not None)

                except OSError as exc:
                    failure = self._reopen_and_write(key, bytes(data)) if _is_ebadf(exc) else exc
                    if failure is not None:
                        with self._lock:
                            self._forget(key)
                        self._drop(key[0], failure, data.count(b"\n"))

    # -- lifecycle -----------------------------------------------------------

    def sync_session(self, session_id: str, *, close: bool = True) -> None:
        """Flush and ``fsync`` a session's files from this process; close them."""
        self.flush()
        # _flush_lock: flush() returns at once when the flusher thread has taken
        # the batch and is still writing it; wait for it rather than close under it.
        with self._flush_lock, self._lock:
            for key in [k for k in self._fds if k[0] == session_id]:
                try:
                    os.fsync(self._fds[key])
                except OSError:
                    pass
                if close:
                    self._forget(key)

    def close(self) -> None:
        """Flush, fsync and close every descriptor. The router can still reopen."""
        self.flush()
        with self._flush_lock, self._lock:  # see sync_session
            for fd in self._fds.values():
                try:
                    os.fsync(fd)
                except OSError:
                    pass
                _close(fd)
            self._fds.clear()

    def shutdown(self) -> None:
        """Close for good: stop the flusher thread after a last flush."""
        self._closed = True
        self._wake.set()
        self.close()

    def _reset_after_fork(self) -> None:
        # Descriptors were inherited: close our copies (the parent keeps its own)
        # so this process opens its own shard files, never sharing a file offset.
        for fd in self._fds.values():
            _close(fd)
        self._init_process_state()


def _write_rest(fd: int, data: bytes, n: int, private: bool) -> None:
    """Finish a short write rather than leave a torn line.

    A write that stops short and then fails (a size limit or a full disk hit
    mid-line) would leave part of a line behind, and the next record glued to
    it. In a file only this process writes (*private*: a session's file or
    shard; the global file is shared), cut the part back off, so the file
    keeps whole lines only and the dropped count stays exact.
    """
    view = memoryview(data)
    try:
        while n < len(data):
            n += _write_some(fd, view[n:])
    except OSError:
        if private:
            try:
                os.ftruncate(fd, os.fstat(fd).st_size - n)
            except OSError:
                pass
        raise


def _is_ebadf(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.EBADF


def _write_some(fd: int, view: memoryview) -> int:
    written = os.write(fd, view)
    if written == 0:  # pragma: no cover - regular files never return 0
        raise OSError(errno.EIO, "write returned 0 bytes")
    return written


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _after_fork_in_child() -> None:
    for router in list(_ROUTERS):
        router._reset_after_fork()


def before_exit_flush(hook: Callable[[], None]) -> None:
    """Run *hook* at exit after the routers' last flush, before they close.

    Records a hook writes still reach disk, in buffered mode too. A hook that
    raises is skipped: exiting goes on.
    """
    _BEFORE_EXIT.append(hook)


def _register_exit_flush() -> None:
    """Make a multiprocessing child run `_flush_all_at_exit` too.

    It ends with ``os._exit``, skipping atexit, and clears the exit finalizers
    it inherited when it starts: register one in this process, once.
    """
    global _mp_finalizer_pid  # noqa: PLW0603 - once per process
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None and _mp_finalizer_pid != os.getpid():
        _mp_finalizer_pid = os.getpid()
        mp_util.Finalize(None, _flush_all_at_exit, exitpriority=-100)


def _flush_all_at_exit() -> None:
    routers = list(_ROUTERS)
    for router in routers:
        router.flush()
    for hook in _BEFORE_EXIT:
        try:
            hook()
        except Exception:  # noqa: BLE001, S110 - exiting: do what can be done
            pass
    for router in routers:
        router.close()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_flush_all_at_exit)
