"""Helpers for testing code that logs with structlog-belog.

`FakeLLM` (an ``httpx`` transport) and `fake_openai_client()` give a real
``openai`` client answered offline by a deterministic fake model — the one
``belog demo`` uses — so pipelines can be tested without network or key.

`capture_session` collects, in memory, every record logged during a block —
from structlog loggers (cached ones included), stdlib loggers, LLM audits and
BELog tasks — after session injection and redaction, exactly as written.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .audit.fake_llm import FakeLLM, fake_openai_client

__all__ = ["Capture", "FakeLLM", "capture_session", "fake_openai_client"]

_FAKE_LLM_NAMES = frozenset(("FakeLLM", "fake_openai_client"))


def __getattr__(name: str) -> Any:
    """`FakeLLM` and `fake_openai_client`: the offline OpenAI-compatible model.

    Imported on first use, because they need the ``openai`` extra (httpx).
    """
    if name in _FAKE_LLM_NAMES:
        from .audit import fake_llm as _fake_llm

        return getattr(_fake_llm, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


class Capture:
    """Records captured by `capture_session`.

    Attributes:
        records: Every record, as the event dict that was rendered.
    """

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        # Re-entrant: a signal handler may log while this thread is appending.
        self._lock = threading.RLock()

    def _add(self, event_dict: dict[str, Any]) -> None:
        try:
            record = copy.deepcopy(event_dict)
        except Exception:  # noqa: BLE001 - uncopyable values: keep a shallow copy
            record = dict(event_dict)
        with self._lock:
            self.records.append(record)

    @property
    def calls(self) -> list[dict[str, Any]]:
        """The ``llm_call`` records."""
        return self.of_kind("llm_call")

    @property
    def belogs(self) -> list[dict[str, Any]]:
        """The ``belog`` records."""
        return self.of_kind("belog")

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """The records whose ``kind`` is *kind*."""
        return [r for r in self.records if r.get("kind") == kind]

    def events(self) -> list[str]:
        """The ``event`` of every record, in order."""
        return [str(r.get("event")) for r in self.records]

    def __repr__(self) -> str:
        return f"<Capture records={len(self.records)}>"


@contextlib.contextmanager
def capture_session() -> Iterator[Capture]:
    """Capture every record logged during the ``with`` block.

    Configures structlog-belog with defaults if it was not configured. The
    records are still written to the log files as usual.

    >>> with capture_session() as cap:
    ...     structlog.get_logger().info("hello", n=1)
    >>> cap.records[0]["event"]
    'hello'
    """
    from .core.config import ensure_pipeline

    pipeline = ensure_pipeline()
    capture = Capture()
    pipeline.captures = (*pipeline.captures, capture)
    try:
        yield capture
    finally:
        from .core.config import get_config

        current = ensure_pipeline() if get_config() is not None else pipeline
        current.captures = tuple(c for c in current.captures if c is not capture)
