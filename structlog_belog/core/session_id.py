"""Session IDs: ``sess_YYYY-mm-dd_HH-MM-SS_<8 hex>``, unique within a process."""

from __future__ import annotations

import os
import secrets
import threading
from datetime import datetime

__all__ = ["new_session_id"]


class _IssuedIds:
    """The random parts this process has given out in the current second.

    Eight hex digits are 32 random bits: at 100 sessions a second, two would
    share an ID (and a folder) about once a week. Within one process that
    never happens: a part already given out in the same second is drawn again.
    """

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        # A fresh lock in a forked child: the parent's may have been held.
        self.lock = threading.Lock()
        self.second = ""
        self.parts: set[str] = set()

    def new(self) -> str:
        second = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        with self.lock:
            if second != self.second:
                self.second, self.parts = second, set()
            part = secrets.token_hex(4)
            while part in self.parts:
                part = secrets.token_hex(4)
            self.parts.add(part)
        return f"sess_{second}_{part}"


_issued = _IssuedIds()


def new_session_id() -> str:
    """A new session ID: ``sess_YYYY-mm-dd_HH-MM-SS_<8 hex>`` (local time).

    IDs made by one process are all different; two processes may, rarely
    (32 random bits per second), make the same one.
    """
    return _issued.new()
