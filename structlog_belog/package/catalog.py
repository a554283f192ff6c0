"""The sessions in a log folder: finding them and telling their state quickly.

`belog sessions` and `belog recover` need each session's status without
reading whole sessions: the first line (``session_start``), the tail of the
session's own file (``session_end``), line counts and the LLM calls' usage.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from ..core import resume as _resume
from ..exceptions import SessionNotFoundError
from .packager import packaged_at
from .reader import iter_lines, open_read, session_files

__all__ = ["SessionInfo", "find", "list_sessions", "session_info"]

_TAIL_BYTES: Final = 256 * 1024
_COUNT_CHUNK: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What `belog sessions` shows about one session folder."""

    id: str
    directory: Path
    title: str | None
    status: str  # "ok", "failed", "running", "crashed" or "open" (between commands)
    start_time: str | None
    end_time: str | None
    duration_seconds: float | None
    records: int
    calls: int
    tokens: int
    pid: int | None
    host: str | None
    package: Path | None

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (paths as strings)."""
        return {
            "session_id": self.id,
            "directory": str(self.directory),
            "title": self.title,
            "status": self.status,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "duration_seconds": self.duration_seconds,
            "records": self.records,
            "calls": self.calls,
            "tokens": self.tokens,
            "pid": self.pid,
            "host": self.host,
            "package": None if self.package is None else str(self.package),
        }


def _first_record(path: Path) -> dict[str, Any] | None:
    try:
        with open_read(path) as fh:
            line = fh.readline(_TAIL_BYTES)
        rec = orjson.loads(line)
    except (OSError, orjson.JSONDecodeError):
        return None
    return rec if isinstance(rec, dict) else None


def _last_end(path: Path) -> dict[str, Any] | None:
    """The ``session_end`` record near the end of *path*, if there is one."""
    try:
        with open_read(path) as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - _TAIL_BYTES))
            tail = fh.read()
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        if b'"session_end"' not in line:
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(rec, dict) and rec.get("kind") == "session_end":
            return rec
    return None


def _count_lines(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        try:
            with open_read(path) as fh:
                while block := fh.read(_COUNT_CHUNK):
                    total += block.count(b"\n")
        except OSError:
            continue
    return total


def _tokens(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        try:
            for line in iter_lines(path):  # bounded: a runaway line ends the count
                try:
                    usage = orjson.loads(line).get("usage")
                except (orjson.JSONDecodeError, AttributeError):
                    continue
                tokens = usage.get("total_tokens") if isinstance(usage, dict) else None
                if type(tokens) is int and 0 <= tokens < 1 << 53:
                    total += tokens
        except OSError:
            continue
    return total


def _seconds(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1e12:
        return float(value)
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def pid_alive(pid: int) -> bool:
    """Whether a process *pid* exists on this host."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def _last_write(directory: Path) -> float:
    latest = 0.0
    with os.scandir(directory) as entries:
        for entry in entries:
            try:
                latest = max(latest, entry.stat(follow_symlinks=False).st_mtime)
            except OSError:
                continue
    return latest


def session_info(directory: Path, *, idle_seconds: float = 300.0) -> SessionInfo:
    """The state of the session in *directory*, read without scanning it whole.

    A session with no ``session_end`` is ``running`` while its process lives
    (same host, ``pid`` known) — or, when that cannot be checked, while a file
    of it changed in the last *idle_seconds* — and ``crashed`` otherwise.
    """
    files = session_files(directory, "processing")
    own = directory / "processing.jsonl"
    start = _first_record(own) if own.exists() else None
    if start is not None and start.get("kind") != "session_start":
        start = None
    start = start or {}
    end = _last_end(own) if own.exists() else None
    pid = start.get("pid")
    # A forged or damaged record may hold anything: only a plausible pid is one.
    pid = pid if type(pid) is int and 0 < pid < 1 << 31 else None
    host = start.get("host") if isinstance(start.get("host"), str) else None
    if end is not None:
        status = "ok" if end.get("success") is True else "failed"
    elif (directory / _resume.STATE_FILE).exists():
        status = _open_status(directory)
    elif pid is not None and host in (None, platform.node()):
        status = "running" if pid_alive(pid) else "crashed"
    else:
        idle = time.time() - _last_write(directory)
        status = "running" if idle < idle_seconds else "crashed"
    duration = end.get("duration_s") if end else None
    prompts = session_files(directory, "prompts")
    return SessionInfo(
        id=directory.name,
        directory=directory,
        title=start.get("title") if isinstance(start.get("title"), str) else None,
        status=status,
        start_time=_text(start.get("timestamp")),
        end_time=_text(end.get("timestamp")) if end else None,
        duration_seconds=_seconds(duration),
        records=_count_lines(files),
        calls=_count_lines(prompts),
        tokens=_tokens(prompts),
        pid=pid,
        host=host,
        package=packaged_at(directory),
    )


def _open_status(directory: Path) -> str:
    """A session several commands share, not finished: ``running`` while a command of it
    runs, ``crashed`` when one died inside it, else ``open`` (waiting for the next)."""
    pids = _resume.active_pids(directory)
    if any(pid_alive(pid) for pid in pids):
        return "running"
    return "crashed" if pids else "open"


def session_dirs(log_dir: Path) -> list[Path]:
    """Session folders under ``log_dir/sessions``, oldest first (IDs sort by time)."""
    root = log_dir / "sessions"
    if not root.is_dir():
        return []
    with os.scandir(root) as entries:
        dirs = [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)]
    return sorted(dirs, key=lambda p: p.name)


def _is_session_dir(path: Path, log_dir: Path) -> bool:
    """Whether *path* is a real session folder (not a link, not outside a ``sessions`` folder)."""
    try:
        if path.is_symlink() or not path.is_dir():
            return False
        real = path.resolve()
        if real.parent == (log_dir / "sessions").resolve():
            return True
        own = real / "processing.jsonl"
        return real.parent.name == "sessions" and own.is_file() and not own.is_symlink()
    except OSError:
        return False


def list_sessions(
    log_dir: Path,
    *,
    idle_seconds: float = 300.0,
    on_error: Callable[[Path, OSError], None] | None = None,
) -> list[SessionInfo]:
    """`SessionInfo` for every session under *log_dir*, oldest first.

    A session folder that cannot be read is left out (and handed to
    *on_error*, if given): one bad session never hides the others.
    """
    infos = []
    for d in session_dirs(log_dir):
        try:
            infos.append(session_info(d, idle_seconds=idle_seconds))
        except OSError as exc:
            if on_error is not None:
                on_error(d, exc)
    return infos


def find(reference: str, log_dir: Path) -> Path:
    """The folder a user means by *reference*: a path, an ID, an ID prefix or ``last``.

    A path is taken only when it is a session folder: directly inside
    ``log_dir/sessions``, or inside another log folder's ``sessions`` folder
    and holding a session's own file. ``/etc``, ``/`` or ``../..`` are not.

    Raises:
        SessionNotFoundError: Nothing (or more than one session) matches, or the
            path given is not a session folder.
    """
    path = Path(reference)
    if os.sep in reference or reference in (".", "..") or path.is_absolute():
        if _is_session_dir(path, log_dir):
            return path
        msg = (
            f"{reference!r} is not a session folder (one inside "
            f"{str(log_dir / 'sessions')!r}, holding processing.jsonl)"
        )
        raise SessionNotFoundError(reference, log_dir / "sessions", msg)
    dirs = session_dirs(log_dir)
    if reference in ("last", "latest", "-"):
        if dirs:
            return dirs[-1]
        raise SessionNotFoundError(reference, log_dir / "sessions")
    exact = [d for d in dirs if d.name == reference]
    if exact:
        return exact[0]
    matches = [d for d in dirs if d.name.startswith(reference)]
    if len(matches) == 1:
        return matches[0]
    if not matches and _is_session_dir(path, log_dir):  # another log folder's session
        return path
    if len(matches) > 1:
        msg = f"{len(matches)} sessions start with {reference!r}; give more of the ID"
        raise SessionNotFoundError(reference, log_dir / "sessions", msg)
    raise SessionNotFoundError(reference, log_dir / "sessions")
