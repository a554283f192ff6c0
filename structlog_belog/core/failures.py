"""Counting what failed inside belog without bothering the application.

Parts of belog that must never raise into the app (the LLM audit, the
OpenTelemetry side) count their own failures and say so once on stderr; the
count is public, so a test or a health check can read it.
"""

from __future__ import annotations

import sys
import threading

__all__ = ["FailureCounter"]


class FailureCounter:
    """A process-wide count of one part's internal failures; the first is reported.

    Args:
        part: What failed, as the stderr line names it ("the LLM audit").
        consequence: What the app should know, after the error ("the call
            itself went on").
    """

    __slots__ = ("_consequence", "_lock", "_part", "count")

    def __init__(self, part: str, consequence: str) -> None:
        self._part = part
        self._consequence = consequence
        self._lock = threading.Lock()
        #: Failures counted so far in this process.
        self.count = 0

    def note(self, where: str, exc: BaseException) -> None:
        """Count a failure in *where*; the first one is written to stderr. Never raises."""
        with self._lock:
            self.count += 1
            first = self.count == 1
        if first:
            try:
                sys.stderr.write(
                    f"structlog-belog: {self._part} failed in {where} "
                    f"({type(exc).__name__}: {exc}); {self._consequence}. "
                    "Further failures are counted, not reported.\n"
                )
            except Exception:  # noqa: BLE001, S110 - stderr may be closed; nothing left to tell
                pass
