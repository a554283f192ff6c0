"""The hooks by which the core reaches the layers above it.

Imports only go down (``cli → memory → package → audit → core``). Where the
core must start work that a higher layer owns — a session's end starts
packaging, ``run.task`` makes a BELog task — it calls a hook that the higher
layer registers when it is imported, as pluggy's hosts call their plugins.
``import structlog_belog`` imports every layer, so the hooks are always set
in an application; a hook that is still unset makes the call a clear error
rather than a silent no-op.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from pathlib import Path

# The session (`core.session.Run`) imports this module: typed `Any` here.
Run: TypeAlias = Any

__all__ = ["configure_openai", "finalize_run", "latest_version", "make_task", "register"]

_finalize_run: Callable[[Run], Path | None] | None = None
_make_task: Callable[..., Any] | None = None
_configure_openai: Callable[[bool], None] | None = None
_latest_version: Callable[[str], str | None] | None = None


def register(
    *,
    finalize_run: Callable[[Run], Path | None] | None = None,
    make_task: Callable[..., Any] | None = None,
    configure_openai: Callable[[bool], None] | None = None,
    latest_version: Callable[[str], str | None] | None = None,
) -> None:
    """Register the higher layers' implementations (each layer passes its own)."""
    global _finalize_run, _make_task, _configure_openai, _latest_version  # noqa: PLW0603 - set once, at import
    if finalize_run is not None:
        _finalize_run = finalize_run
    if make_task is not None:
        _make_task = make_task
    if configure_openai is not None:
        _configure_openai = configure_openai
    if latest_version is not None:
        _latest_version = latest_version


def _missing(name: str, layer: str) -> RuntimeError:
    return RuntimeError(f"{name} needs structlog_belog.{layer}: import structlog_belog first")


def finalize_run(run: Run) -> Path | None:
    """Package *run* (the ``package`` layer's finalizer); return the package path."""
    if _finalize_run is None:
        raise _missing("finalizing a session", "package")
    return _finalize_run(run)


def latest_version(blueprint_id: str) -> str | None:
    """The latest known version of *blueprint_id* (the ``memory`` layer's), or None.

    None too while no memory layer is registered: a session then simply has
    no version, as it had before.
    """
    return None if _latest_version is None else _latest_version(blueprint_id)


def make_task(name: str, **fields: Any) -> Any:
    """A BELog task (the ``memory`` layer's ``task``)."""
    if _make_task is None:
        raise _missing("run.task", "memory")
    return _make_task(name, **fields)


def configure_openai(on: bool) -> None:
    """Turn the process-wide OpenAI audit on or off for `configure()` (the ``audit`` layer's)."""
    if _configure_openai is None:
        raise _missing("configure(instrument_openai=...)", "audit")
    _configure_openai(on)
