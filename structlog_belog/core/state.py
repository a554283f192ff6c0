"""The installed record path: what `configure()` set up, and how to reach it.

`STATE` holds the active pipeline and configuration. Code below `configure()`
in the core (sessions, threads, the stdlib handler) and the layers above reach
the record path through `ensure_pipeline` and `emit`; the first use before
`configure()` configures with defaults through the hook `core.config`
registers, so nothing here imports `configure` itself.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .pipeline import _LEVELS

if TYPE_CHECKING:
    from .pipeline import Pipeline
    from .settings import Config

__all__ = ["STATE", "emit", "ensure_pipeline", "get_config", "set_default_configure"]


class _State:
    """Everything `configure()` installs, so it can be replaced or undone."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.config: Config | None = None
        self.pipeline: Pipeline | None = None
        self.handler: logging.Handler | None = None
        # What `_lower_root_level` changed, to undo: the root's level before
        # and the one set, and each app handler given a level, with that level.
        self.root_level: int | None = None
        self.root_level_set: int | None = None
        self.pinned: list[tuple[logging.Handler, int]] = []
        # logging.basicConfig as it was before `_basic_config` replaced it.
        self.basic_config: Callable[..., None] | None = None
        # False when an implicit configure() left the app's own structlog setup in place.
        self.owns_structlog = False


STATE = _State()

#: Everything `configure()` installed.
STATE = _State()

_configure_default: Callable[[], Pipeline] | None = None


def set_default_configure(hook: Callable[[], Pipeline]) -> None:
    """Register how to configure with defaults on first use (`core.config` does)."""
    global _configure_default  # noqa: PLW0603 - set once, at import
    _configure_default = hook


def get_config() -> Config | None:
    """The active `Config`, or None before `configure()`."""
    return STATE.config


def ensure_pipeline() -> Pipeline:
    """The active pipeline, configuring with defaults on first use."""
    pipeline = STATE.pipeline
    if pipeline is None:
        if _configure_default is None:
            msg = "the record path is not set up: import structlog_belog first"
            raise RuntimeError(msg)
        pipeline = _configure_default()
    return pipeline


def emit(
    event: str,
    *,
    level: str = "info",
    logger: str = "structlog_belog",
    **fields: Any,
) -> None:
    """Send one record through the configured chain (configuring if needed).

    Used by the session lifecycle, the LLM audit and BELog tasks. Never raises.
    """
    try:
        pipeline = ensure_pipeline()
        # Built in reading order: these keys first, then the record's fields.
        ed = {"timestamp": None, "level": None, "logger": logger, "event": event, **fields}
        pipeline.process(ed, _LEVELS.get(level, level), time.time())
    except Exception:  # noqa: BLE001 - never raise into the application
        sys.stderr.write("structlog-belog: could not emit a record\n")
