"""What lets a session outlive the command that started it: its state file and markers.

A session opened with ``finish=False`` (or by ``belog start``) writes
``session.json`` in its folder: title, blueprint, when it started, where its
package goes. A later command resumes it by ID (`load_state`), writing into
its own shard files as a child process does, and one command finishes it
(`claim_finish`, then ``session_end`` and the package). A session with no
state file — an ordinary session whose process crashed — can be resumed too,
from its ``session_start`` record, as long as it has no ``session_end``.

While a command works in a session it holds an ``active.<pid>`` marker in the
folder; a marker whose process is gone tells the catalog the command crashed.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from ..exceptions import SessionFinishedError, SessionNotFoundError
from .pipeline import format_exception
from .stage import command_line
from .state import emit
from .version import VERSION

__all__ = [
    "FINISHED_FILE",
    "STATE_FILE",
    "active_pids",
    "claim_finish",
    "clear_active",
    "emit_pause",
    "forget_dead",
    "from_environment",
    "is_finished",
    "load_state",
    "mark_active",
    "may_finish",
    "open_session",
    "resume_into",
    "write_state",
]

#: The state of a session that outlives its command.
STATE_FILE = "session.json"
#: Created (exclusively) by the one command that finishes the session.
FINISHED_FILE = "session.finished"
_ACTIVE = "active."


def write_state(directory: Path, state: dict[str, Any]) -> None:
    """Write *state* to the folder's ``session.json`` atomically (``0600``)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = directory / f".{STATE_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        os.write(fd, orjson.dumps(state, default=str))
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(directory / STATE_FILE)


def _tail_has_end(path: Path) -> bool:
    """Whether the last whole line of *path* is a ``session_end`` record."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            tail = fh.read()
    except OSError:
        return False
    for line in reversed(tail.splitlines()):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            return False
        return isinstance(record, dict) and record.get("kind") == "session_end"
    return False


def is_finished(directory: Path) -> bool:
    """Whether the session in *directory* has ended (finished, or an ordinary session ended)."""
    if (directory / FINISHED_FILE).exists():
        return True
    if (directory / STATE_FILE).exists():
        return False
    return _tail_has_end(directory / "processing.jsonl")


def _first_record(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as fh:
            line = fh.readline()
        record = orjson.loads(line)
    except (OSError, orjson.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def load_state(session_id: str, log_dir: Path) -> dict[str, Any]:
    """The state of the open session *session_id* under *log_dir*, to resume it.

    Raises:
        SessionNotFoundError: no session has that ID.
        SessionFinishedError: the session has ended.
    """
    if not session_id or "/" in session_id or session_id in (".", ".."):
        msg = f"resume must be a session ID, got {session_id!r}"
        raise ValueError(msg)
    directory = log_dir / "sessions" / session_id
    if not directory.is_dir():
        raise SessionNotFoundError(session_id, log_dir / "sessions")
    if is_finished(directory):
        raise SessionFinishedError(session_id, directory)
    try:
        state = orjson.loads((directory / STATE_FILE).read_bytes())
    except FileNotFoundError:
        start = _first_record(directory / "processing.jsonl") or {}
        if start.get("kind") != "session_start":
            start = {}
        ts = start.get("timestamp")
        state = {
            "session_id": session_id,
            "title": start.get("title"),
            "execution_context": start.get("execution_context"),
            "blueprint_id": start.get("blueprint_id"),
            "blueprint_version": start.get("blueprint_version"),
            "pid": start.get("pid"),
            "start_timestamp": ts,
            "started_at": _epoch(ts),
        }
    except (OSError, orjson.JSONDecodeError) as exc:
        msg = f"session {session_id!r} cannot be resumed: its {STATE_FILE} is unreadable ({exc})"
        raise SessionNotFoundError(session_id, directory, msg) from exc
    if not isinstance(state, dict):
        msg = f"session {session_id!r} cannot be resumed: its {STATE_FILE} is not an object"
        raise SessionNotFoundError(session_id, directory, msg)
    state["directory"] = directory
    return state


def _epoch(timestamp: Any) -> float | None:
    from datetime import datetime

    if not isinstance(timestamp, str):
        return None
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def claim_finish(session_id: str, directory: Path) -> None:
    """Make this command the one that finishes the session.

    Raises:
        SessionFinishedError: another command finished it already.
    """
    try:
        fd = os.open(directory / FINISHED_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError as exc:
        raise SessionFinishedError(session_id, directory) from exc
    except FileNotFoundError:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(directory / FINISHED_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        os.write(fd, orjson.dumps({"pid": os.getpid(), "host": platform.node(), "at": time.time()}))
    finally:
        os.close(fd)


def mark_active(directory: Path) -> Path | None:
    """Say that this process works in the session (``active.<pid>``); None if it cannot."""
    marker = directory / f"{_ACTIVE}{os.getpid()}"
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_WRONLY, 0o600))
    except OSError:
        return None
    return marker


def clear_active(marker: Path | None) -> None:
    """Remove this process's ``active.<pid>`` marker."""
    if marker is not None:
        try:
            marker.unlink(missing_ok=True)
        except OSError:
            pass


def active_pids(directory: Path) -> list[int]:
    """The pids with an ``active.<pid>`` marker in the folder."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(
        int(name[len(_ACTIVE) :])
        for name in names
        if name.startswith(_ACTIVE) and name[len(_ACTIVE) :].isdigit()
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def forget_dead(directory: Path) -> None:
    """Remove the markers of this host's processes that are gone (a crashed command)."""
    for pid in active_pids(directory):
        if pid != os.getpid() and not _alive(pid):
            clear_active(directory / f"{_ACTIVE}{pid}")


# --- what a Run calls -------------------------------------------------------------------

_LOGGER = "structlog_belog.session"


def open_session(run: Any) -> None:
    """Write the state file of a new session that outlives its command (``finish=False``)."""
    try:
        write_state(
            run.directory,
            {
                "session_id": run.id,
                "title": run.title,
                "execution_context": run.execution_context,
                "blueprint_id": run.blueprint_id,
                "blueprint_version": run.blueprint_version,
                "package_dir": None if run.package_dir is None else str(run.package_dir),
                "compress": run.compress,
                "pid": run.pid,
                "host": platform.node(),
                "started_at": run.started_at,
                "command": command_line(),
            },
        )
    except OSError:
        pass  # resumable from its session_start record still
    run._active = mark_active(run.directory)


def _exists(path: Path) -> bool:
    """Whether *path* exists; False when it cannot be looked at (a session never raises)."""
    try:
        return path.exists()
    except OSError:
        return False


def may_finish(run: Any) -> bool:
    """Claim the end of a session of several commands; False if another command ended it."""
    if not (run.resumed or _exists(run.directory / STATE_FILE)):
        return True  # an ordinary session: it ends with its block, as always
    try:
        claim_finish(run.id, run.directory)
    except SessionFinishedError:
        try:
            sys.stderr.write(
                f"structlog-belog: session {run.id} was finished by another command; "
                "this command's part is recorded as a pause\n"
            )
        except Exception:  # noqa: BLE001, S110 - stderr itself may be gone
            pass
        return False
    except OSError:
        return True
    return True


def emit_pause(run: Any, exc: BaseException | None, router: Any) -> None:
    """Write ``session_pause``: this command's part of a session that goes on."""
    emit(
        "session_pause",
        level="info" if exc is None else "error",
        logger=_LOGGER,
        kind="session_pause",
        title=run.title,
        success=exc is None,
        duration_s=round(time.perf_counter() - run._t0, 6),
        error=None if exc is None else {"type": type(exc).__qualname__, "message": str(exc)},
        exception=None if exc is None else format_exception(exc),
        records_dropped=0 if router is None else router.take_unreported(run.id),
        pid=os.getpid(),
        command=command_line(),
    )


def from_environment() -> str | None:
    """The session ``belog start`` exported (``BELOG_SESSION_ID``), when this command resumes it.

    Not inside another session (that makes a child session), and not in a
    child process started with `session_env()` (``BELOG_SESSION_PID`` set:
    it joins the running session as before).
    """
    from . import context as _context

    if _context.current_session() is not None or os.environ.get("BELOG_SESSION_PID"):
        return None
    return os.environ.get("BELOG_SESSION_ID") or None


def resume_into(run: Any, session_id: str, log_dir: Path) -> None:
    """Make *run* continue the open session *session_id* in this command.

    Raises:
        SessionNotFoundError, SessionFinishedError: see `load_state`.
    """
    state = load_state(session_id, log_dir)
    run.id = session_id
    run.resumed = True
    run.directory = state["directory"]
    run.title = state.get("title") or run.title
    for key in ("execution_context", "blueprint_id", "blueprint_version"):
        if getattr(run, key) is None and isinstance(state.get(key), str):
            setattr(run, key, state[key])
    if run.package_dir is None and state.get("package_dir"):
        run.package_dir = Path(state["package_dir"])
    if run.compress is None and isinstance(state.get("compress"), bool):
        run.compress = state["compress"]
    # This command writes its own shard files, as a child process does.
    owner = state.get("pid")
    run.pid = owner if isinstance(owner, int) else 0
    started = state.get("started_at")
    run.started_at = started if isinstance(started, int | float) else time.time()
    run._t0 = time.perf_counter()
    forget_dead(run.directory)
    run._active = mark_active(run.directory)
    run._enter_context()
    emit(
        "session_resume",
        logger=_LOGGER,
        kind="session_resume",
        title=run.title,
        host=platform.node(),
        python=platform.python_version(),
        belog_version=VERSION,
        pid=os.getpid(),
        argv=sys.argv,
        command=command_line(),
    )
