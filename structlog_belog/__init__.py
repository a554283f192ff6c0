"""structlog-belog: session-scoped structured logging for pipeline runs.

One line, ``structlog_belog.configure()``, makes every record — structlog's
and the standard ``logging`` module's — carry the current session's ID and
land in that session's JSONL files.
"""

from __future__ import annotations

from ._config import Config, configure, get_config
from ._context import bind, bound, current_session
from ._package import package
from ._reader import Package, iter_records, read_package
from ._session import Run, Stage, new_session_id, session
from ._threads import ThreadPoolExecutor, propagate, session_env

__version__ = "0.1.0.dev0"

__all__ = [
    "Config",
    "Package",
    "Run",
    "Stage",
    "ThreadPoolExecutor",
    "__version__",
    "bind",
    "bound",
    "configure",
    "current_session",
    "get_config",
    "iter_records",
    "new_session_id",
    "package",
    "propagate",
    "read_package",
    "session",
    "session_env",
]
