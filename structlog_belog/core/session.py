"""Sessions: one pipeline run, its stages, inputs, outputs and metrics."""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from contextvars import Token
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Final, cast

from . import context as _context
from . import hooks as _hooks
from . import resume as _resume
from . import tracing as _tracing
from .drops import report_drops
from .pipeline import format_exception
from .producing import Producing
from .render import as_written
from .router import before_exit_flush
from .session_id import new_session_id
from .stage import Stage, command_line
from .state import emit, ensure_pipeline, redact_name
from .version import VERSION

if TYPE_CHECKING:
    from .settings import Config

__all__ = ["Run", "Stage", "finish_session", "new_session_id", "session"]

_HASH_LIMIT: Final = 256 * 1024 * 1024  # hash inputs/outputs up to this size
_LOGGER: Final = "structlog_belog.session"
#: The key of the session itself among a context's keys (see `Run._context_keys`).
_SESSION_KEY: Final = ("session",)
_SESSION_KEYS: Final = (_SESSION_KEY,)


def _file_facts(path: Path) -> dict[str, Any]:
    """Size and SHA-256 of a regular file, for the audit trail; {} otherwise."""
    try:
        st = path.stat()
        if not path.is_file():
            return {}
        facts: dict[str, Any] = {"size": st.st_size}
        if st.st_size <= _HASH_LIMIT:
            h = hashlib.sha256()
            with path.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            facts["sha256"] = h.hexdigest()
    except OSError:
        return {}
    return facts


def _check_path(value: Any, arg: str) -> Path:
    if not isinstance(value, str | os.PathLike) or not os.fspath(value):
        msg = f"{arg} must be a non-empty path (str or os.PathLike), got {value!r}"
        raise TypeError(msg)
    return Path(value)


def _check_name(value: Any, arg: str) -> str:
    if not isinstance(value, str) or not value.strip():
        msg = f"{arg} must be a non-empty string, got {value!r}"
        raise ValueError(msg)
    return value


class Run:
    """One pipeline run: what ``with belog.session(...) as run`` gives you.

    Use it as a context manager (``with`` or ``async with``); on exit — also
    when the block raised — it writes ``session_end``, syncs its files and, if
    ``package=True``, builds the run's package (see `package_path`).
    """

    def __init__(
        self,
        title: str,
        *,
        execution_context: str | None = None,
        blueprint_id: str | None = None,
        blueprint_version: str | None = None,
        package_dir: str | os.PathLike[str] | None = None,
        compress: bool | None = None,
        package: bool = True,
        fields: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        resume: str | None = None,
        finish: bool | None = None,
    ) -> None:
        self.title = _check_name(title, "title")
        if resume is not None and (not isinstance(resume, str) or not resume):
            msg = f"resume must be a session ID (a non-empty string) or None, got {resume!r}"
            raise TypeError(msg)
        if finish is not None and not isinstance(finish, bool):
            msg = f"finish must be True, False or None, got {finish!r}"
            raise TypeError(msg)
        for arg, value in (
            ("execution_context", execution_context),
            ("blueprint_id", blueprint_id),
            ("blueprint_version", blueprint_version),
        ):
            if value is not None and not isinstance(value, str):
                msg = f"{arg} must be a string or None, got {value!r}"
                raise TypeError(msg)
        self.execution_context = execution_context
        self.blueprint_id = blueprint_id
        self.blueprint_version = blueprint_version
        self.package_dir = None if package_dir is None else _check_path(package_dir, "package_dir")
        self.compress = compress
        self.package = bool(package)
        self.fields: Mapping[str, Any] = MappingProxyType(dict(fields or {}))
        self.id = session_id or new_session_id()
        self.parent_id: str | None = None
        self.pid = os.getpid()
        self.directory: Path | None = None
        self.package_path: Path | None = None
        self.success: bool | None = None
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self._t0 = 0.0
        self._token: Token[_context.Context] | None = None
        self._lock = threading.Lock()
        self._pending_calls: dict[Any, list[str]] = {}
        self._last_call: dict[Any, Mapping[str, Any]] = {}
        self._config: Config | None = None
        self._span: _tracing.SpanHandle | None = None
        #: W3C ``traceparent`` of the session's span, in a child process that joined it.
        self._traceparent: str | None = None
        self._resume = resume
        #: Whether leaving the block ends the session (None: yes unless it was resumed).
        self._finish = finish
        #: This command continues a session another command started.
        self.resumed = False
        self._active: Path | None = None
        self._fail = False

    @classmethod
    def joined(cls, session_id: str, environ: Mapping[str, str], config: Config) -> Run:
        """The session a child process joins through `session_env()` (not entered)."""
        run = cls(environ.get("BELOG_SESSION_TITLE") or session_id, session_id=session_id)
        run.pid = int(environ.get("BELOG_SESSION_PID") or 0)
        run.directory = config.log_dir / "sessions" / session_id
        run._config = config
        run._traceparent = environ.get("BELOG_TRACEPARENT")
        return run

    def __repr__(self) -> str:
        return f"<Run {self.id!r} title={self.title!r} success={self.success!r}>"

    # -- lifecycle -----------------------------------------------------------

    def __enter__(self) -> Run:
        self._start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._end(exc)

    async def __aenter__(self) -> Run:
        self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        import asyncio

        self._close(exc)
        if self.package and self._finishing():
            # Packaging compresses and hashes files: keep it off the event loop.
            await asyncio.to_thread(self._finalize)

    def _start(self) -> None:
        if self.started_at is not None:
            msg = f"session {self.id!r} was already entered; make a new session() per run"
            raise RuntimeError(msg)
        from .router import make_dirs

        config = self._config = ensure_pipeline().config
        # The title names the package folder and fills its metadata and summary.
        self.title = redact_name(self.title)
        # In a child process that joined a session, that session is the parent.
        parent = _context.current_session() or _context.REGISTRY.joined
        resume = self._resume or _resume.from_environment()
        if resume is not None:
            _resume.resume_into(self, resume, config.log_dir)
            return
        self.parent_id = None if parent is None else parent.id
        self.directory = config.log_dir / "sessions" / self.id
        try:
            make_dirs(self.directory)
        except OSError:
            # Logging never raises into the application: the router retries
            # the folder on every write and counts the records it drops.
            pass
        self.started_at = time.time()
        version: dict[str, Any] = {}
        if self.blueprint_id is not None and self.blueprint_version is None:
            self.blueprint_version = _hooks.latest_version(self.blueprint_id)
            if self.blueprint_version is not None:
                version["blueprint_version_source"] = "latest_known"
        if self._finish is False:
            _resume.open_session(self)
        self._t0 = time.perf_counter()
        self._enter_context()
        emit(
            "session_start",
            logger=_LOGGER,
            kind="session_start",
            title=self.title,
            execution_context=self.execution_context,
            blueprint_id=self.blueprint_id,
            blueprint_version=self.blueprint_version,
            **version,
            parent_session_id=self.parent_id,
            host=platform.node(),
            python=platform.python_version(),
            belog_version=VERSION,
            pid=self.pid,
            argv=sys.argv,
            command=command_line(),
            **self._start_fields(),
        )

    def _start_fields(self) -> dict[str, Any]:
        fields = dict(self.fields)
        if self._finish is False:
            fields.setdefault("resumable", True)
        return fields

    def _enter_context(self) -> None:
        self._token = _context.push(session=self, stage=None, task=None)
        _context.REGISTRY.add(self)
        self._span = _tracing.start_session(self)

    def finish(self) -> None:
        """End this session: at the end of the block when inside it, else now.

        A session left open (``finish=False``, or resumed from another
        command) ends only when told: this writes ``session_end``, covering
        every command since it started, and builds its one package.

        Raises:
            SessionFinishedError: another command finished it already.
        """
        if self.started_at is not None and self.ended_at is None:
            self._finish = True
            return
        again = Run(self.title, resume=self.id, finish=True, package=self.package)
        again.package_dir, again.compress = self.package_dir, self.compress
        with again:
            pass
        self.package_path, self.success = again.package_path, again.success

    def _end(self, exc: BaseException | None) -> None:
        self._close(exc)
        if self.package and self._finishing():
            self._finalize()

    def _finishing(self) -> bool:
        """Whether leaving the block ends the session (not a pause of a resumable one)."""
        return self._finish is True or (self._finish is None and not self.resumed)

    def _close(self, exc: BaseException | None) -> None:
        """Write ``session_end``, restore the context and sync the files."""
        if self.ended_at is not None:
            return
        self.ended_at = time.time()
        if exc is None and self._fail:
            exc = RuntimeError("finished as failed")
        self.success = exc is None
        router = ensure_pipeline().router
        if router is not None:
            # Buffered mode: make room first, so a full buffer (a slow sink)
            # cannot drop session_end itself, and its drop count is final.
            router.flush()
        # Written in this run's context even when closed from elsewhere (a
        # signal handler, an exit hook), so it always reaches the run's file.
        end_token = _context.push(session=self, stage=None, task=None)
        if not self._finishing() or not _resume.may_finish(self):
            _resume.emit_pause(self, exc, router)
        else:
            self._emit_end(exc, router)
        _tracing.end(self._span, exc)
        self._span = None
        _context.reset(end_token)
        _resume.clear_active(self._active)
        _context.REGISTRY.remove(self)
        if self._token is not None:
            try:
                _context.reset(self._token)
            except ValueError:
                # Exited in another context than it was entered in (e.g. a
                # signal handler finalizing it): nothing of ours to restore.
                pass
            self._token = None
        if router is not None:
            router.sync_session(self.id)

    def _emit_end(self, exc: BaseException | None, router: Any) -> None:
        if self.resumed or self._finish is not None:
            # A session of several commands: it lasted from its start to now, and
            # its end goes to the session's own file, where the catalog looks.
            duration = time.time() - (self.started_at or time.time())
            self.pid = os.getpid()
        else:
            duration = time.perf_counter() - self._t0
        emit(
            "session_end",
            level="info" if exc is None else "error",
            logger=_LOGGER,
            kind="session_end",
            title=self.title,
            success=self.success,
            duration_s=round(duration, 6),
            error=None if exc is None else {"type": type(exc).__qualname__, "message": str(exc)},
            exception=None if exc is None else format_exception(exc),
            records_dropped=0 if router is None else router.dropped(self.id),
        )

    def _finalize(self) -> None:
        try:
            self.package_path = _hooks.finalize_run(self)
        except Exception as exc:  # noqa: BLE001 - logs stay; the package can be rebuilt
            sys.stderr.write(
                f"structlog-belog: could not package session {self.id}: {exc!r}; "
                f"its logs are intact, run `belog package {self.id}` to retry\n"
            )

    # -- structure -----------------------------------------------------------

    def stage(self, name: str) -> Stage:
        """A context manager (sync or async) for one stage of the run.

        Records ``stage_start`` and ``stage_end`` (with duration and success);
        records logged inside carry ``stage``. Stages nest.
        """
        return Stage(self, _check_name(name, "name"))

    def task(self, name: str, **fields: Any) -> Any:
        """A BELog task bound to this run (see `structlog_belog.task`)."""
        return _hooks.make_task(name, _run=self, **fields)

    # -- what the run used and made -----------------------------------------

    def add_input(self, path: str | os.PathLike[str]) -> None:
        """Record *path* as an input of the run (size and SHA-256 when a file)."""
        p = _check_path(path, "path")
        emit("input", logger=_LOGGER, kind="input", path=str(p), **_file_facts(p))

    def add_output(
        self,
        path: str | os.PathLike[str],
        produced_by: str | Iterable[str] | None = None,
    ) -> list[str]:
        """Record *path* as an output, linked to the LLM calls that produced it.

        The output record says how: ``"link": "explicit"`` with *produced_by*,
        ``"inferred"`` without. For links that cannot be wrong, wrap the work
        in `producing` instead.

        Args:
            path: The output file.
            produced_by: A call ID or IDs. Default: the calls made in the same
                context (task, else stage, else session) since that context's
                previous `add_output`, outside any `producing` block.

        Returns:
            The call IDs the output was linked to.

        Raises:
            TypeError: If *path* is not a path, or *produced_by* not call IDs.
        """
        p = _check_path(path, "path")
        if produced_by is None:
            key = self._context_keys()[0]
            with self._lock:
                call_ids = self._pending_calls.pop(key, [])
            link = "inferred"
        elif isinstance(produced_by, str):
            call_ids, link = [produced_by], "explicit"
        else:
            call_ids, link = list(produced_by), "explicit"
            if not all(isinstance(c, str) for c in call_ids):
                msg = (
                    f"produced_by must be a call ID or an iterable of call IDs, got {produced_by!r}"
                )
                raise TypeError(msg)
        self._write_output(p, call_ids, link)
        return call_ids

    def producing(self, path: str | os.PathLike[str]) -> Producing:
        """A block whose LLM calls, and only those, produce the output *path*.

        ``with run.producing(path):`` (or ``async with``) links exactly the calls
        made inside it — in its asyncio tasks, and in threads started with
        `propagate`/`ThreadPoolExecutor` — to *path*, with ``"link":
        "explicit"``, when the block ends without an exception. Those calls are
        never linked again by an inferred `add_output`.

        Raises:
            TypeError: If *path* is not a string or path.
        """
        return Producing(self, _check_path(path, "path"), self._write_output)

    def _write_output(self, path: Path, call_ids: list[str], link: str) -> None:
        emit(
            "output",
            logger=_LOGGER,
            kind="output",
            path=str(path),
            call_ids=call_ids,
            link=link,
            **_file_facts(path),
        )

    def add_content(self, path: str | os.PathLike[str], as_name: str | None = None) -> None:
        """Copy *path* (file or folder) into the run's package as *as_name*.

        Raises:
            FileNotFoundError: if *path* does not exist.
            ValueError: if *as_name* is not a plain relative name.
        """
        p = _check_path(path, "path")
        if not p.exists():
            msg = f"path must exist to be added as content, got {str(p)!r}"
            raise FileNotFoundError(msg)
        name = p.name if as_name is None else as_name
        if (
            not isinstance(name, str)
            or not name
            or name in {".", ".."}
            or "/" in name
            or "\\" in name
            or "\0" in name
        ):
            msg = f"as_name must be a single path component, got {as_name!r}"
            raise ValueError(msg)
        emit("content", logger=_LOGGER, kind="content", path=str(p.absolute()), as_name=name)

    def set_metric(self, name: str, value: float | int | str | bool | None) -> None:
        """Record a quality metric of the run (``quality_metrics`` in metadata)."""
        _check_name(name, "name")
        if not isinstance(value, int | float | str | bool) and value is not None:
            msg = f"value must be a number, string, bool or None, got {value!r}"
            raise TypeError(msg)
        emit("metric", logger=_LOGGER, kind="metric", name=name, value=value)

    # -- LLM call correlation -----------------------------------------------

    def _context_keys(self) -> tuple[Any, ...]:
        """Keys of the current context, innermost first: task, stage, session."""
        ctx = _context.current()
        if ctx.task is None and ctx.stage is None:
            return _SESSION_KEYS
        keys: list[Any] = []
        if ctx.task is not None:
            keys.append(("task", id(ctx.task)))
        if ctx.stage is not None:
            keys.append(("stage", ctx.stage))
        keys.append(_SESSION_KEY)
        return tuple(keys)

    def note_call(self, record: Mapping[str, Any]) -> None:
        """Called by the audit after each LLM call made in this run (in the call's context)."""
        call_id = record.get("call_id")
        keys = self._context_keys()
        pending = self._pending_calls
        block = _context.current().producing
        # A call of an open producing block is linked by it, not by inference.
        linked = block is not None and isinstance(call_id, str) and block.add(call_id)
        with self._lock:
            for key in keys:
                if isinstance(call_id, str) and not linked:
                    calls = pending.get(key)
                    if calls is None:
                        pending[key] = [call_id]
                    else:
                        calls.append(call_id)
                self._last_call[key] = record

    def last_call(self) -> Mapping[str, Any] | None:
        """The most recent LLM call record of the current context, or None.

        A new plain dict each time, as the record was written (see `last_call`).
        """
        with self._lock:
            for key in self._context_keys():
                record = self._last_call.get(key)
                if record is not None:
                    return as_written(record)
        return None


def finish_session(session_id: str, *, failed: bool = False) -> Run:
    """End the open session *session_id* from this process (``belog finish``) and package it.

    Raises:
        SessionNotFoundError: no session has that ID.
        SessionFinishedError: it has ended already.
    """
    run = Run(session_id, resume=session_id, finish=True)
    with run:
        if failed:
            run._fail = True
    return run


def _reset_locks_after_fork() -> None:
    # Another thread may have held a run's lock when the process forked; the
    # child has only the forking thread, so that lock would never be released.
    runs = _context.REGISTRY.open_sessions()
    if _context.REGISTRY.joined is not None:
        runs.append(_context.REGISTRY.joined)
    for run in runs:
        cast("Run", run)._lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_locks_after_fork)


before_exit_flush(report_drops)


def session(
    title: str,
    *,
    execution_context: str | None = None,
    blueprint_id: str | None = None,
    blueprint_version: str | None = None,
    package_dir: str | os.PathLike[str] | None = None,
    compress: bool | None = None,
    package: bool = True,
    resume: str | None = None,
    finish: bool | None = None,
    **fields: Any,
) -> Run:
    """A context manager (``with`` or ``async with``) around one pipeline run.

    Entering it generates the session ID, makes the session current for every
    record of this context (threads via `propagate`, child processes via
    `session_env`), and writes ``session_start``. Exiting — also on an
    exception — writes ``session_end`` and builds the run's package.
    A session entered inside another becomes its child (``parent_session_id``).

    Args:
        title: What the run is; also names its package folder.
        execution_context: Free text: what the run is for (BELog field).
        blueprint_id: The blueprint the run executes (BELog field).
        blueprint_version: Its version (BELog field). Default, when
            *blueprint_id* is given: the latest version of it in the BELog
            store (`get_latest_blueprint_version`), recorded in
            ``session_start`` with ``blueprint_version_source: "latest_known"``.
        package_dir: Where the package goes (default: the configured one).
        compress: zstd-compress the packaged logs (default: configured).
        package: Build a package when the run ends.
        resume: The ID of an open session to continue in this command (default:
            ``$BELOG_SESSION_ID``, as ``belog start`` exports it, outside any
            session). Its stages and tasks join the session as if it were one
            run; records go to this process's own shard files.
        finish: Whether leaving the block ends the session. Default: yes for a
            new session, no for a resumed one. ``finish=False`` on a new session
            leaves it open for later commands; `Run.finish`, ``finish=True``
            or ``belog finish ID`` ends it, with one package covering them all.
        **fields: Added to ``session_start`` and the package metadata.

    Raises:
        ValueError, TypeError: for a bad argument, naming it.
        SessionNotFoundError: (on entering) *resume* names no session.
        SessionFinishedError: (on entering) *resume* names a session that ended.
    """
    return Run(
        title,
        execution_context=execution_context,
        blueprint_id=blueprint_id,
        blueprint_version=blueprint_version,
        package_dir=package_dir,
        compress=compress,
        package=package,
        fields=fields,
        resume=resume,
        finish=finish,
    )
