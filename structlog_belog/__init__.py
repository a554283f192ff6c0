"""structlog-belog: session-scoped structured logging for pipeline runs.

One line, ``structlog_belog.configure()``, makes every record — structlog's
and the standard ``logging`` module's — carry the current session's ID and
land in that session's JSONL files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .audit.wrap import audit_llm, instrument_openai, last_call, uninstrument_openai
from .core.config import Config, configure, get_config
from .core.context import bind, bound, current_session
from .core.session import Run, Stage, new_session_id, session
from .core.threads import ThreadPoolExecutor, propagate, session_env
from .core.version import VERSION
from .memory.next_step import NextStep, next_step
from .memory.stores import open_store
from .memory.task import get_latest_blueprint_version, task
from .package.packager import package
from .package.reader import Package, iter_records, read_package

if TYPE_CHECKING:
    from .memory.revision import generate_blueprint_revision, reflect

__version__ = VERSION

# Imported on first use: proposals read the whole BELog history and pull in
# `statistics`; an application that only logs never pays for them.
_FROM_REVISION = frozenset(("generate_blueprint_revision", "reflect"))


def __getattr__(name: str) -> Any:
    if name in _FROM_REVISION:
        from .memory import revision

        value = getattr(revision, name)
        globals()[name] = value
        return value
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


__all__ = [
    "Config",
    "NextStep",
    "Package",
    "Run",
    "Stage",
    "ThreadPoolExecutor",
    "__version__",
    "audit_llm",
    "bind",
    "bound",
    "configure",
    "current_session",
    "generate_blueprint_revision",
    "get_config",
    "get_latest_blueprint_version",
    "instrument_openai",
    "iter_records",
    "last_call",
    "new_session_id",
    "next_step",
    "open_store",
    "package",
    "propagate",
    "read_package",
    "reflect",
    "session",
    "session_env",
    "task",
    "uninstrument_openai",
]
