"""structlog-belog: session-scoped structured logging for pipeline runs.

One line, ``structlog_belog.configure()``, makes every record — structlog's
and the standard ``logging`` module's — carry the current session's ID and
land in that session's JSONL files.
"""

from __future__ import annotations

from ._audit import audit_llm, instrument_openai, last_call, uninstrument_openai
from ._belog import task
from ._config import Config, configure, get_config
from ._context import bind, bound, current_session
from ._package import package
from ._reader import Package, iter_records, read_package
from ._revision import generate_blueprint_revision, reflect
from ._session import Run, Stage, new_session_id, session
from ._store import open_store
from ._threads import ThreadPoolExecutor, propagate, session_env

__version__ = "0.1.0.dev0"

__all__ = [
    "Config",
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
    "instrument_openai",
    "iter_records",
    "last_call",
    "new_session_id",
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
