"""The sessions in a log folder: finding them and telling their state quickly.

`belog sessions` and `belog recover` need each session's status without
reading whole sessions: the first line (``session_start``), the tail of the
session's own file (``session_end``), line counts and the LLM calls' usage.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from ..exceptions import SessionNotFoundError
from .packager import packaged_at
from .reader import session_files

__all__ = ["SessionInfo", "find", "list_sessions", "session_info"]

_TAIL_BYTES: Final = 256 * 1024
_COUNT_CHUNK: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What `belog sessions` shows about one session folder."""

    id: str
    directory: Path
    title: str | None
    status: str  # "ok", "failed", "running" or "crashed"
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
        with open(path, "rb") as fh:
            line = fh.readline(_TAIL_BYTES)
        rec = orjson.loads(line)
    except (OSError, orjson.JSONDecodeError):
        return None
    return rec if isinstance(rec, dict) else None


def _last_end(path: Path) -> dict[str, Any] | None:
    """The ``session_end`` record near the end of *path*, if there is one."""
    try:
        with open(path, "rb") as fh:
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
            with open(path, "rb") as fh:
                while block := fh.read(_COUNT_CHUNK):
                    total += block.count(b"\n")
        except OSError:
            continue
    return total


def _tokens(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed below, loop reads lines
        except OSError:
            continue
        with fh:
            for line in fh:
                try:
                    usage = orjson.loads(line).get("usage")
                except (orjson.JSONDecodeError, AttributeError):
                    continue
                if isinstance(usage, dict) and isinstance(usage.get("total_tokens"), int):
                    total += usage["total_tokens"]
    return total


def pid_alive(pid: int) -> bool:
    """Whether a process *pid* exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
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
    pid = pid if isinstance(pid, int) else None
    host = start.get("host") if isinstance(start.get("host"), str) else None
    if end is not None:
        status = "ok" if end.get("success") else "failed"
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
        start_time=start.get("timestamp"),
        end_time=end.get("timestamp") if end else None,
        duration_seconds=duration if isinstance(duration, int | float) else None,
        records=_count_lines(files),
        calls=_count_lines(prompts),
        tokens=_tokens(prompts),
        pid=pid,
        host=host,
        package=packaged_at(directory),
    )


def session_dirs(log_dir: Path) -> list[Path]:
    """Session folders under ``log_dir/sessions``, oldest first (IDs sort by time)."""
    root = log_dir / "sessions"
    if not root.is_dir():
        return []
    with os.scandir(root) as entries:
        dirs = [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)]
    return sorted(dirs, key=lambda p: p.name)


def list_sessions(log_dir: Path, *, idle_seconds: float = 300.0) -> list[SessionInfo]:
    """`SessionInfo` for every session under *log_dir*, oldest first."""
    return [session_info(d, idle_seconds=idle_seconds) for d in session_dirs(log_dir)]


def find(reference: str, log_dir: Path) -> Path:
    """The folder a user means by *reference*: a path, an ID, an ID prefix or ``last``.

    Raises:
        SessionNotFoundError: Nothing (or more than one session) matches.
    """
    path = Path(reference)
    if path.is_dir() and (os.sep in reference or path.parent != Path()):
        return path
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
    if path.is_dir():
        return path
    if len(matches) > 1:
        msg = f"{len(matches)} sessions start with {reference!r}; give more of the ID"
        raise SessionNotFoundError(reference, log_dir / "sessions", msg)
    raise SessionNotFoundError(reference, log_dir / "sessions")
