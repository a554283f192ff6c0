"""`configure()`: one line that wires structlog and stdlib logging to the router."""

from __future__ import annotations

import logging
import os
import re
import sys
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import structlog

from . import context as _context
from . import hooks
from .pipeline import Pipeline, Processor
from .redact import SecretRedactor
from .router import SessionRouter, make_dirs
from .settings import Config
from .state import STATE, ensure_pipeline, get_config, set_default_configure
from .truncate import ValueTruncator

__all__ = ["Config", "configure", "ensure_pipeline", "get_config", "reset"]

_LEVEL_NAMES: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_DURABILITIES: Final = ("record", "buffered")
_APP_NAME_RE: Final = re.compile(r"[^A-Za-z0-9._-]+")


_STATE = STATE


#: The wrapper class of every structlog logger while configured. structlog bakes
#: the level into the class of a logger cached on first use, so `configure()`
#: swaps this one class's level methods in place (`_set_level`): loggers cached
#: under an earlier level follow a new one, at no cost per call.
_BelogBoundLogger: type[Any] = type(
    "_BelogBoundLogger",
    (structlog.make_filtering_bound_logger(logging.NOTSET),),
    {"__module__": __name__},
)


def _set_level(level_no: int) -> None:
    """Give `_BelogBoundLogger` the methods structlog's filtering logger has at *level_no*."""
    source = structlog.make_filtering_bound_logger(level_no)
    for name, value in vars(source).items():
        if not name.startswith("__"):
            setattr(_BelogBoundLogger, name, value)


def _default_app_name() -> str:
    stem = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else ""
    # "-" is a script read from stdin (``python -``): no name to take.
    name = _APP_NAME_RE.sub("_", stem).strip("._-")
    return name if name and name not in {"-c", "__main__", "pytest"} else "app"


def _resolve_dir(value: str | os.PathLike[str] | None, env: str, default: str, arg: str) -> Path:
    if value is None:
        if os.environ.get(env):
            # Name the variable the bad value came from, not the argument.
            value, arg = os.environ[env], f"{arg} (from ${env})"
        else:
            value = default
    if not isinstance(value, str | os.PathLike):
        msg = f"{arg} must be a path (str or os.PathLike), got {value!r}"
        raise TypeError(msg)
    path = Path(value).expanduser().absolute()
    try:
        is_file = path.exists() and not path.is_dir()
    except OSError:
        # Cannot be looked at (a parent not searchable): logging degrades and
        # counts, as for the other disk faults, instead of failing the app.
        is_file = False
    if is_file:
        msg = f"{arg} must be a directory, got {str(path)!r} (a file)"
        raise NotADirectoryError(msg)
    return path


def _resolve_level(level: str | int | None) -> str:
    arg = "level"
    if level is None:
        if os.environ.get("BELOG_LEVEL"):
            level, arg = os.environ["BELOG_LEVEL"], "level (from $BELOG_LEVEL)"
        else:
            level = "INFO"
    if isinstance(level, int) and not isinstance(level, bool):
        name = logging.getLevelName(level)
        if name in _LEVEL_NAMES:
            return str(name)
    elif isinstance(level, str) and level.upper() in (*_LEVEL_NAMES, "WARN"):
        return "WARNING" if level.upper() == "WARN" else level.upper()
    msg = f"{arg} must be one of {', '.join(_LEVEL_NAMES)} (or its number), got {level!r}"
    raise ValueError(msg)


def _resolve_watch(
    value: bool | str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None,
) -> tuple[Path, ...] | None:
    arg = "watch"
    if value is None and os.environ.get("BELOG_WATCH"):
        env = os.environ["BELOG_WATCH"]
        arg = "watch (from $BELOG_WATCH)"
        off = env.strip().lower() in {"0", "off", "false", "no"}
        value = False if off else env.split(os.pathsep)
    if value is None or value is True:
        return None
    if value is False:
        return ()
    items = [value] if isinstance(value, str | os.PathLike) else value
    if not isinstance(items, Sequence) or not all(isinstance(v, str | os.PathLike) for v in items):
        msg = f"{arg} must be a bool, a folder or a list of folders, got {value!r}"
        raise TypeError(msg)
    return tuple(Path(v).expanduser().absolute() for v in items if os.fspath(v))


def configure(
    log_dir: str | os.PathLike[str] | None = None,
    level: str | int | None = None,
    *,
    console: bool | None = None,
    redact: bool = True,
    capture_stdlib: bool = True,
    app_name: str | None = None,
    durability: str = "record",
    package_dir: str | os.PathLike[str] | None = None,
    compress: bool = True,
    prices: Mapping[str, Any] | None = None,
    summary_template: str | os.PathLike[str] | None = None,
    handle_signals: bool = True,
    instrument_openai: bool | None = None,
    store: str | os.PathLike[str] | None = None,
    watch: bool | str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
) -> Config:
    """Set up structlog-belog; safe to call again (it reconfigures).

    Configures structlog so its loggers write straight to the session router,
    and installs one `SessionHandler` on the stdlib root logger so records of
    ``logging.getLogger(...)`` loggers — the application's and its libraries' —
    take the same path. The application's own handlers are never removed.

    The stdlib's levels, and the application's own handlers:

    - The handler has *level*. So that library records of that level reach
      it, the root logger's level is lowered to *level* when it is higher
      (never raised; a root at ``NOTSET`` already passes everything).
    - The application's handlers see no more than before: each handler that
      has no level of its own and inherited the root's (``basicConfig()``'s
      stream handler, say) is given the root's previous level, so it keeps
      printing what it printed. A handler added later with no level sees
      whatever the root passes: give it a level.
    - ``logging.basicConfig()`` called after ``configure()`` works as if it
      had been called before (by itself it would do nothing, the root having
      a handler), ``force=True`` included: belog's handler stays.
    - `reset()` undoes all of it, except where the application changed a
      level since.

    Args:
        log_dir: Root folder of the logs. Default: ``$BELOG_DIR`` or ``logs``.
        level: Lowest level written. Default: ``$BELOG_LEVEL`` or ``INFO``.
        console: Also print records to stderr with structlog's console
            renderer. ``None``: when stderr is a terminal.
        redact: Scrub secrets from every record (`SecretRedactor`).
        capture_stdlib: Install the `SessionHandler` on the root logger.
        app_name: Stem of the global file ``<log_dir>/<app_name>.jsonl``.
            Default: the main script's name, else ``app``.
        durability: ``"record"`` (each record one write; nothing lost on a
            crash) or ``"buffered"`` (background writes, for throughput).
        package_dir: Where run packages go. Default: ``$BELOG_PACKAGE_DIR`` or
            ``packages``.
        compress: zstd-compress the logs in packages.
        prices: Model prices overriding the built-in table (see the audit docs).
        summary_template: A Jinja2 template replacing the packaged
            ``execution_summary.md`` template.
        handle_signals: Finalize open sessions on SIGTERM when the application
            has not installed its own handler.
        instrument_openai: Audit every OpenAI call of the process, as
            ``instrument_openai()`` does. Default: ``$BELOG_INSTRUMENT_OPENAI``
            (``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off``),
            else off. Turned off again by a later `configure()` without it,
            and by `reset()` — unless the application instrumented the
            process itself.
        store: Where every session indexes its BELog records and reads past
            attempts from: ``"http(s)://HOST:PORT"`` for a ChromaDB server
            shared by many workers (the records stay in each session's
            ``belog.jsonl`` too), ``"chroma:PATH"`` or a SQLite file. Default:
            ``$BELOG_STORE``, else the SQLite index in ``log_dir``.
        watch: Folders whose created, modified and deleted files each BELog
            task records in ``files_changed``. ``None``/``True``: the working
            directory (default; ``$BELOG_WATCH`` overrides: ``0`` for none, or
            folders separated by ``os.pathsep``); ``False``: none. Bounded:
            see docs/belog.md.

    Returns:
        The active `Config`.

    Raises:
        ValueError, TypeError, NotADirectoryError: for a bad argument, naming it.
    """
    if durability not in _DURABILITIES:
        msg = f"durability must be 'record' or 'buffered', got {durability!r}"
        raise ValueError(msg)
    if app_name is not None and (
        not isinstance(app_name, str) or not app_name or _APP_NAME_RE.search(app_name)
    ):
        msg = (
            f"app_name must be a non-empty name of letters, digits, '.', '_', '-', got {app_name!r}"
        )
        raise ValueError(msg)
    if prices is not None and not isinstance(prices, Mapping):
        msg = f"prices must be a mapping of model name to prices, got {prices!r}"
        raise TypeError(msg)
    instrument = _resolve_instrument(instrument_openai)
    template: Path | None = None
    if summary_template is not None:
        template = Path(summary_template)
        if not template.is_file():
            msg = f"summary_template must be an existing file, got {str(template)!r}"
            raise FileNotFoundError(msg)
    config = Config(
        log_dir=_resolve_dir(log_dir, "BELOG_DIR", "logs", "log_dir"),
        level=_resolve_level(level),
        console=sys.stderr.isatty() if console is None else bool(console),
        redact=bool(redact),
        capture_stdlib=bool(capture_stdlib),
        app_name=app_name or _default_app_name(),
        durability=durability,
        package_dir=_resolve_dir(package_dir, "BELOG_PACKAGE_DIR", "packages", "package_dir"),
        compress=bool(compress),
        prices=prices,
        summary_template=template,
        handle_signals=bool(handle_signals),
        instrument_openai=instrument,
        store=_resolve_store(store),
        watch=_resolve_watch(watch),
    )
    hooks.configure_openai(instrument)
    with _STATE.lock:
        _install(config)
    return config


_TRUE: Final = frozenset(("1", "true", "yes", "on"))
_FALSE: Final = frozenset(("", "0", "false", "no", "off"))


def _resolve_instrument(value: Any) -> bool:
    """`configure()`'s *instrument_openai*, else ``$BELOG_INSTRUMENT_OPENAI``, else False."""
    if value is None:
        given = os.environ.get("BELOG_INSTRUMENT_OPENAI", "")
        word = given.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        msg = (
            "instrument_openai (from $BELOG_INSTRUMENT_OPENAI) must be 1, true, yes, on, "
            f"0, false, no or off, got {given!r}"
        )
        raise ValueError(msg)
    if not isinstance(value, bool):
        msg = f"instrument_openai must be a bool, got {value!r}"
        raise TypeError(msg)
    return value


def _resolve_store(store: str | os.PathLike[str] | None) -> str | None:
    """Check a store location once, here (the memory layer opens it on first use)."""
    if store is None:
        store = os.environ.get("BELOG_STORE") or None
        if store is None:
            return None
    if not isinstance(store, str | os.PathLike) or not os.fspath(store):
        msg = f"store must be a store location (str or os.PathLike), got {store!r}"
        raise TypeError(msg)
    location = os.fspath(store)
    if not isinstance(store, str):
        return str(location)
    scheme, _, rest = location.partition(":")
    if scheme in ("http", "https"):
        parts = urllib.parse.urlsplit(location)
        if not parts.hostname or parts.path not in ("", "/"):
            msg = f"store must be 'http(s)://HOST:PORT[?collection=NAME]', got {location!r}"
            raise ValueError(msg)
    elif scheme == "chroma" and not rest:
        msg = f"store must be 'chroma:PATH' with a folder PATH, got {location!r}"
        raise ValueError(msg)
    return location


def _build_pipeline(config: Config, router: SessionRouter | None) -> Pipeline:
    processors: list[Processor] = []
    if config.redact:
        processors.append(SecretRedactor())
    console = _console_writer() if config.console else None
    return Pipeline(config, router, tuple(processors), console, truncator=ValueTruncator())


#: Fields the console leaves out (they stay in the files): OpenTelemetry IDs
#: would add 50 characters of hex to every line while tracing is on.
_NOT_ON_CONSOLE: Final = frozenset(("trace_id", "span_id"))


def _console_writer() -> Any:
    renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())

    def write(event_dict: dict[str, Any]) -> None:
        shown = {k: v for k, v in event_dict.items() if k not in _NOT_ON_CONSOLE}
        sys.stderr.write(renderer(None, event_dict["level"], shown) + "\n")

    return write


def _install(config: Config) -> None:
    from .handler import SessionHandler

    try:
        make_dirs(config.log_dir)
    except OSError:
        # A read-only or forbidden log folder must not stop the application:
        # the router retries on every write and counts what it drops.
        pass
    old = _STATE.pipeline
    router = SessionRouter(config.log_dir, config.app_name, durability=config.durability)
    pipeline = _build_pipeline(config, router)
    if old is not None:
        pipeline.captures = old.captures
        if old.router is not None:
            old.router.shutdown()
    _STATE.pipeline = pipeline
    _CHAIN[:] = [pipeline.__call__]
    _STATE.config = config
    _set_level(config.level_no)
    _STATE.owns_structlog = True
    structlog.configure(
        processors=_CHAIN,
        wrapper_class=_BelogBoundLogger,
        logger_factory=_SinkLoggerFactory(),
        context_class=dict,
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    if _STATE.handler is not None:
        root.removeHandler(_STATE.handler)
        _STATE.handler = None
    for h in [h for h in root.handlers if isinstance(h, SessionHandler) and h.managed]:
        root.removeHandler(h)
    # An app that put its own SessionHandler on the root (dictConfig) already
    # has one: a second would write every stdlib record twice.
    own = any(isinstance(h, SessionHandler) for h in root.handlers)
    if config.capture_stdlib and not own:
        handler = SessionHandler(level=config.level_no, managed=True)
        root.addHandler(handler)
        _STATE.handler = handler
        _lower_root_level(root, config.level_no)
        if logging.basicConfig is not _basic_config:
            _STATE.basic_config = logging.basicConfig
            logging.basicConfig = _basic_config
    else:
        _restore_levels(root)
        _restore_basic_config()
    _join_from_environment(config)
    if config.handle_signals:
        from .signals import install_signal_handlers

        install_signal_handlers()


def _lower_root_level(root: logging.Logger, level_no: int) -> None:
    """Let records of *level_no* reach the root, without changing what the app's handlers print.

    A stdlib record below its logger's effective level is dropped before any
    handler sees it, and the root's level is the effective level of every
    logger that sets none: to capture the libraries' INFO records the root
    must let them through. That would also send them to the application's own
    handlers that have no level (``logging.basicConfig()``'s stream handler,
    say), which until now printed WARNING and up only. So each such handler
    that inherited the root's level is given that level: it prints what it
    printed before. `reset()` (or a `configure()` that no longer installs the
    handler) undoes both, unless the application changed them since.
    A root level of NOTSET already lets everything through and is left alone.
    """
    old = root.level
    if old == logging.NOTSET or old <= level_no:
        return
    from .handler import SessionHandler

    loggers = [root] + [
        lg
        for lg in list(root.manager.loggerDict.values())
        if isinstance(lg, logging.Logger) and lg.handlers and _inherits_root_level(lg)
    ]
    for lg in loggers:
        for h in lg.handlers:
            if h.level == logging.NOTSET and not isinstance(h, SessionHandler):
                h.setLevel(old)
                _STATE.pinned.append((h, old))
    if _STATE.root_level is None:
        _STATE.root_level = old
    root.setLevel(level_no)
    _STATE.root_level_set = level_no


def _inherits_root_level(logger: logging.Logger) -> bool:
    """Whether no logger between *logger* and the root (itself included) sets a level."""
    node: logging.Logger | None = logger
    while node is not None and node.parent is not None:
        if node.level != logging.NOTSET:
            return False
        node = node.parent
    return True


def _restore_levels(root: logging.Logger) -> None:
    """Undo `_lower_root_level`, except where the application has changed a level since."""
    for h, level in _STATE.pinned:
        if h.level == level:
            h.setLevel(logging.NOTSET)
    _STATE.pinned = []
    if _STATE.root_level is not None and root.level == _STATE.root_level_set:
        root.setLevel(_STATE.root_level)
    _STATE.root_level = _STATE.root_level_set = None


def _basic_config(**kwargs: Any) -> None:
    """`logging.basicConfig` while belog's handler is installed: as if called before `configure()`.

    ``basicConfig`` does nothing when the root logger has a handler, and
    belog's is one: an application that sets up its console after
    ``configure()`` would silently get none. So, as OpenTelemetry's SDK does
    for its handler, take belog's handler off the root and undo its level
    changes, run the real ``basicConfig`` (with the same arguments, ``force``
    included), then put both back: the new handler prints what it would have
    printed without belog, and belog keeps capturing.
    """
    original = _STATE.basic_config or logging.basicConfig
    if original is _basic_config:  # pragma: no cover - never saved ourselves
        return
    with _STATE.lock:
        handler, config = _STATE.handler, _STATE.config
        if handler is None or config is None:
            original(**kwargs)
            return
        root = logging.getLogger()
        root.removeHandler(handler)
        _restore_levels(root)
        try:
            original(**kwargs)
        finally:
            root.addHandler(handler)
            _lower_root_level(root, config.level_no)


def _restore_basic_config() -> None:
    """Put the real `logging.basicConfig` back, unless someone replaced ours since."""
    if logging.basicConfig is _basic_config and _STATE.basic_config is not None:
        logging.basicConfig = _STATE.basic_config


def _join_from_environment(config: Config) -> None:
    """In a child process started with `session_env()`, join the parent's session."""
    sid = os.environ.get("BELOG_SESSION_ID")
    if not sid or _context.REGISTRY.joined is not None:
        return
    from .session import Run

    _context.REGISTRY.joined = Run.joined(sid, os.environ, config)


def _configure_default() -> Pipeline:
    """Configure with defaults (first use before `configure()`); the active pipeline."""
    with _STATE.lock:
        if _STATE.pipeline is None:
            # Configuring implicitly (a session, a stdlib record or an audit
            # before configure()): an app that configured structlog itself,
            # e.g. with our processors in its own chain, keeps its chain.
            own = structlog.get_config() if structlog.is_configured() else None
            configure()
            if own is not None:
                structlog.configure(**own)
                _STATE.owns_structlog = False
        pipeline = _STATE.pipeline
    assert pipeline is not None  # noqa: S101 - configure() always sets it
    return pipeline


set_default_configure(_configure_default)


def reset() -> None:
    """Undo `configure()`: remove the handler, restore structlog's defaults if it set them.

    For tests and for applications that reconfigure logging from scratch.
    """
    with _STATE.lock:
        root = logging.getLogger()
        if _STATE.handler is not None:
            root.removeHandler(_STATE.handler)
        _restore_levels(root)
        _restore_basic_config()
        if _STATE.pipeline is not None and _STATE.pipeline.router is not None:
            _STATE.pipeline.router.shutdown()
        _STATE.handler = None
        _STATE.pipeline = None
        _CHAIN[:] = [_drop]
        _STATE.config = None
        _context.REGISTRY.joined = None
        if _STATE.owns_structlog:
            structlog.reset_defaults()
        _STATE.owns_structlog = False
        from .signals import uninstall_signal_handlers

        uninstall_signal_handlers()
    if hooks._configure_openai is not None:
        hooks.configure_openai(False)


def _drop(logger: Any, method_name: str, event_dict: dict[str, Any]) -> Any:
    """structlog's processor after `reset()`: a cached logger writes nothing."""
    raise structlog.DropEvent


#: The processor chain belog gives structlog: one item, the active pipeline's
#: ``__call__``. Changed in place, never replaced: a logger cached before a
#: reconfiguration holds this very list, so it follows the new pipeline with
#: no lookup per record.
_CHAIN: Final[list[Any]] = [_drop]


class _Sink:
    """The structlog "logger": the pipeline already wrote the record."""

    __slots__ = ("name",)

    def __init__(self, name: str | None) -> None:
        self.name = name

    def _nothing(self, *_: Any, **__: Any) -> None:
        return None

    debug = info = warning = warn = error = critical = exception = fatal = msg = log = _nothing


class _SinkLoggerFactory:
    def __call__(self, *args: Any) -> _Sink:
        name = args[0] if args and isinstance(args[0], str) else None
        return _Sink(name)
