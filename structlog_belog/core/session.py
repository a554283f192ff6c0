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
from . import tracing as _tracing
from .pipeline import format_exception
from .render import as_written
from .router import before_exit_flush
from .session_id import new_session_id
from .state import STATE, emit, ensure_pipeline
from .version import VERSION

if TYPE_CHECKING:
    from .settings import Config

__all__ = ["Run", "Stage", "new_session_id", "session"]

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
    ) -> None:
        self.title = _check_name(title, "title")
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
        if self.package:
            # Packaging compresses and hashes files: keep it off the event loop.
            await asyncio.to_thread(self._finalize)

    def _start(self) -> None:
        if self.started_at is not None:
            msg = f"session {self.id!r} was already entered; make a new session() per run"
            raise RuntimeError(msg)
        from .router import make_dirs

        config = self._config = ensure_pipeline().config
        # In a child process that joined a session, that session is the parent.
        parent = _context.current_session() or _context.REGISTRY.joined
        self.parent_id = None if parent is None else parent.id
        self.directory = config.log_dir / "sessions" / self.id
        try:
            make_dirs(self.directory)
        except OSError:
            # Logging never raises into the application: the router retries
            # the folder on every write and counts the records it drops.
            pass
        self.started_at = time.time()
        self._t0 = time.perf_counter()
        self._token = _context.push(session=self, stage=None, task=None)
        _context.REGISTRY.add(self)
        self._span = _tracing.start_session(self)
        version_source = None
        if self.blueprint_id is not None and self.blueprint_version is None:
            self.blueprint_version = _hooks.latest_version(self.blueprint_id)
            version_source = None if self.blueprint_version is None else "latest_known"
        emit(
            "session_start",
            logger=_LOGGER,
            kind="session_start",
            title=self.title,
            execution_context=self.execution_context,
            blueprint_id=self.blueprint_id,
            blueprint_version=self.blueprint_version,
            **({} if version_source is None else {"blueprint_version_source": version_source}),
            parent_session_id=self.parent_id,
            host=platform.node(),
            python=platform.python_version(),
            belog_version=VERSION,
            pid=self.pid,
            argv=sys.argv,
            **self.fields,
        )

    def _end(self, exc: BaseException | None) -> None:
        self._close(exc)
        if self.package:
            self._finalize()

    def _close(self, exc: BaseException | None) -> None:
        """Write ``session_end``, restore the context and sync the files."""
        if self.ended_at is not None:
            return
        self.ended_at = time.time()
        self.success = exc is None
        router = ensure_pipeline().router
        if router is not None:
            # Buffered mode: make room first, so a full buffer (a slow sink)
            # cannot drop session_end itself, and its drop count is final.
            router.flush()
        # Written in this run's context even when closed from elsewhere (a
        # signal handler, an exit hook), so it always reaches the run's file.
        end_token = _context.push(session=self, stage=None, task=None)
        emit(
            "session_end",
            level="info" if exc is None else "error",
            logger=_LOGGER,
            kind="session_end",
            title=self.title,
            success=self.success,
            duration_s=round(time.perf_counter() - self._t0, 6),
            error=None if exc is None else {"type": type(exc).__qualname__, "message": str(exc)},
            exception=None if exc is None else format_exception(exc),
            records_dropped=0 if router is None else router.dropped(self.id),
        )
        _tracing.end(self._span, exc)
        self._span = None
        _context.reset(end_token)
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

        Args:
            path: The output file.
            produced_by: A call ID or IDs. Default: the calls made in the same
                context (task, else stage, else session) since that context's
                previous `add_output`.

        Returns:
            The call IDs the output was linked to.
        """
        p = _check_path(path, "path")
        if produced_by is None:
            key = self._context_keys()[0]
            with self._lock:
                call_ids = self._pending_calls.pop(key, [])
        elif isinstance(produced_by, str):
            call_ids = [produced_by]
        else:
            call_ids = list(produced_by)
            if not all(isinstance(c, str) for c in call_ids):
                msg = (
                    f"produced_by must be a call ID or an iterable of call IDs, got {produced_by!r}"
                )
                raise TypeError(msg)
        emit(
            "output",
            logger=_LOGGER,
            kind="output",
            path=str(p),
            call_ids=call_ids,
            **_file_facts(p),
        )
        return call_ids

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
        """Called by the audit after each LLM call made in this run."""
        call_id = record.get("call_id")
        keys = self._context_keys()
        pending = self._pending_calls
        with self._lock:
            for key in keys:
                if isinstance(call_id, str):
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


def _reset_locks_after_fork() -> None:
    # Another thread may have held a run's lock when the process forked; the
    # child has only the forking thread, so that lock would never be released.
    runs = _context.REGISTRY.open_sessions()
    if _context.REGISTRY.joined is not None:
        runs.append(_context.REGISTRY.joined)
    for run in runs:
        cast("Run", run)._lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_locks_after_fork)


def _report_drops() -> None:
    """At exit, tell each session this process joined how many of its records were lost.

    A session's own process reports its drops in ``session_end``. A process
    that joined it — forked while it was open, or started with `session_env()`
    — writes no ``session_end``, so it writes a ``drops`` record into its own
    shard instead; the finalizer adds them up. Only what was not reported yet
    is written, so running twice (atexit and a multiprocessing finalizer)
    counts nothing twice.
    """
    pipeline = STATE.pipeline
    router = None if pipeline is None else pipeline.router
    if router is None or not router.drops.total:
        return
    me = os.getpid()
    runs = {run.id: run for run in _context.REGISTRY.open_sessions()}
    joined = _context.REGISTRY.joined
    if joined is not None:
        runs.setdefault(joined.id, joined)
    for run in runs.values():
        if run.pid == me:
            continue
        count = router.take_unreported(run.id)
        if count <= 0:
            continue
        token = _context.push(session=run, stage=None, task=None)
        emit(
            "records_dropped",
            level="warning",
            logger=_LOGGER,
            kind="drops",
            records_dropped=count,
        )
        _context.reset(token)


before_exit_flush(_report_drops)


class Stage:
    """One stage of a run; made by `Run.stage`."""

    __slots__ = ("_span", "_t0", "_token", "name", "parent", "run")

    def __init__(self, run: Run, name: str) -> None:
        self.run = run
        self.name = name
        self.parent: str | None = None
        self._token: Token[_context.Context] | None = None
        self._span: _tracing.SpanHandle | None = None
        self._t0 = 0.0

    def __repr__(self) -> str:
        return f"<Stage {self.name!r} of {self.run.id!r}>"

    def __enter__(self) -> Stage:
        self.parent = _context.current().stage
        self._token = _context.push(session=self.run, stage=self.name)
        self._span = _tracing.start_stage(self)
        self._t0 = time.perf_counter()
        emit(
            "stage_start",
            logger=_LOGGER,
            kind="stage_start",
            parent_stage=self.parent,
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        emit(
            "stage_end",
            level="info" if exc is None else "error",
            logger=_LOGGER,
            kind="stage_end",
            parent_stage=self.parent,
            duration_s=round(time.perf_counter() - self._t0, 6),
            success=exc is None,
            error=None if exc is None else {"type": type(exc).__qualname__, "message": str(exc)},
        )
        _tracing.end(self._span, exc)
        self._span = None
        if self._token is not None:
            _context.reset(self._token)
            self._token = None

    async def __aenter__(self) -> Stage:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def session(
    title: str,
    *,
    execution_context: str | None = None,
    blueprint_id: str | None = None,
    blueprint_version: str | None = None,
    package_dir: str | os.PathLike[str] | None = None,
    compress: bool | None = None,
    package: bool = True,
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
        **fields: Added to ``session_start`` and the package metadata.

    Raises:
        ValueError, TypeError: for a bad argument, naming it.
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
    )
