"""Which command did what, in a session that several commands ran one after another.

A session opened by ``belog start`` (or ``finish=False``) is continued by
later commands: each writes ``session_resume`` when it joins and
``session_pause`` when it leaves (``session_end`` for the one that finishes
it). `CommandLog` folds those records into one row per command — its
command line, pid, times and outcome — tells the report which command ran
each stage, and turns failed or crashed commands and records the shared
BELog store did not receive into issues.
"""

from __future__ import annotations

import shlex
from collections import Counter
from typing import Any

from ..audit.stats import Issue, issue

__all__ = ["CommandLog"]


def _command(rec: dict[str, Any]) -> str | None:
    command = rec.get("command")
    if isinstance(command, str):
        return command
    argv = rec.get("argv")
    if isinstance(argv, list) and all(isinstance(a, str) for a in argv):
        return shlex.join(argv)
    return None


def _error(rec: dict[str, Any]) -> str | None:
    error = rec.get("error")
    if isinstance(error, dict):
        kind, message = error.get("type"), error.get("message")
        return f"{kind}: {message}" if message else str(kind)
    return None


class CommandLog:
    """The commands of one session, folded from its lifecycle records in time order."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self._open: dict[Any, dict[str, Any]] = {}
        self._owner: Any = None
        #: Records the shared BELog store did not receive, by store.
        self.store_pending: Counter[str] = Counter()

    def started(self, rec: dict[str, Any]) -> None:
        """A ``session_start`` or ``session_resume`` record: a command joins."""
        pid = rec.get("pid")
        if rec.get("kind") == "session_start":
            self._owner = pid
        row = {
            "pid": pid,
            "command": _command(rec),
            "start_time": rec.get("timestamp"),
            "end_time": None,
            "success": None,
            "error": None,
            "finished_session": False,
        }
        self.rows.append(row)
        self._open[pid] = row

    def left(self, rec: dict[str, Any]) -> None:
        """A ``session_pause`` or ``session_end`` record: a command leaves."""
        pid = rec.get("pid", self._owner)
        row = self._open.pop(pid, None)
        if row is None and rec.get("kind") == "session_end" and self._open and len(self.rows) == 1:
            row = self._open.pop(next(iter(self._open)))
        if row is None:
            return
        row["end_time"] = rec.get("timestamp")
        row["success"] = bool(rec.get("success", True))
        row["error"] = _error(rec)
        row["finished_session"] = rec.get("kind") == "session_end"

    def stage(self, rec: dict[str, Any]) -> tuple[Any, str | None]:
        """The pid and command line that ran the stage *rec* starts."""
        pid = rec.get("pid", self._owner)
        command = rec.get("command")
        if not isinstance(command, str):
            row = self._open.get(pid)
            command = None if row is None else row["command"]
        return pid, command

    def pending(self, rec: dict[str, Any]) -> None:
        """A ``store_pending`` record: one BELog record the shared store lacks."""
        self.store_pending[str(rec.get("store"))] += 1

    def issues(self, ended: bool) -> list[Issue]:
        """Failed and crashed commands, and records the shared store did not receive."""
        found: list[Issue] = []
        several = len(self.rows) > 1
        for row in self.rows:
            who = f"`{row['command']}` (pid {row['pid']})"
            if row["success"] is False and not row["finished_session"]:
                found.append(
                    issue(
                        "command_failed",
                        "error",
                        f"Command {who} failed: {row['error'] or 'an exception'}",
                        1,
                        [],
                    )
                )
            elif row["end_time"] is None and several and ended:
                found.append(
                    issue(
                        "command_crashed",
                        "error",
                        f"Command {who} did not end: it crashed or was killed",
                        1,
                        [],
                    )
                )
        for store, count in sorted(self.store_pending.items()):
            found.append(
                issue(
                    "store_pending",
                    "warning",
                    f"{count} BELog record(s) were not written to the shared store {store}; "
                    f"they are in belog.jsonl: run `belog reindex --store {store}` "
                    "(or the next session catches up)",
                    count,
                    [],
                )
            )
        return found
