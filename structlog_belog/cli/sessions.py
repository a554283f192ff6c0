"""``belog start|finish``: one session across several commands, from the shell.

``eval "$(belog start TITLE)"`` opens a session and exports its ID; every
command run with ``BELOG_SESSION_ID`` in its environment then resumes it
(`structlog_belog.session` does so on its own); ``belog finish ID`` ends it
and builds its one package.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

import orjson

__all__ = ["add_commands"]


def _configure(args: argparse.Namespace) -> None:
    from ..core.config import configure

    configure(
        log_dir=args.log_dir,
        package_dir=args.package_dir,
        console=False,
        handle_signals=False,
    )


def _start(args: argparse.Namespace) -> int:
    from ..core.session import session

    # A new session, even when the shell still exports a previous one.
    os.environ.pop("BELOG_SESSION_ID", None)
    _configure(args)
    run = session(
        args.title,
        execution_context=args.context,
        blueprint_id=args.blueprint,
        blueprint_version=args.blueprint_version,
        finish=False,
    )
    with run:
        pass
    if args.json:
        sys.stdout.write(orjson.dumps({"session_id": run.id}).decode() + "\n")
    else:
        sys.stdout.write(f"export BELOG_SESSION_ID={shlex.quote(run.id)}\n")
    return 0


def _finish(args: argparse.Namespace) -> int:
    from ..core.session import finish_session

    _configure(args)
    run = finish_session(args.session, failed=args.failed)
    if args.json:
        package = None if run.package_path is None else str(run.package_path)
        out = {"session_id": run.id, "package": package}
        sys.stdout.write(orjson.dumps(out).decode() + "\n")
    elif run.package_path is not None:
        sys.stdout.write(f"Finished {run.id} → {run.package_path}\n")
    else:
        sys.stdout.write(f"Finished {run.id} (not packaged: see the message above)\n")
    return 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``start`` and ``finish`` on the ``belog`` CLI."""
    start = subparsers.add_parser(
        "start",
        help="open a session that later commands resume (prints `export BELOG_SESSION_ID=...`)",
        description=(
            "Open a session for a pipeline of several commands. Run it as "
            '`eval "$(belog start TITLE)"`: every later command with BELOG_SESSION_ID in its '
            "environment resumes the session, until `belog finish` ends and packages it."
        ),
    )
    start.add_argument("title", metavar="TITLE", help="what the run is (names its package)")
    start.add_argument("--blueprint", help="blueprint ID (inherited by every task)")
    start.add_argument("--blueprint-version", help="blueprint version")
    start.add_argument("--context", help="execution context (free text)")
    start.add_argument("--json", action="store_true", help='print {"session_id": ...}')
    start.set_defaults(func=_start)

    finish = subparsers.add_parser(
        "finish",
        help="end a session opened by `belog start` (or finish=False) and package it",
        description="Write the session's end, covering every command, and build its package.",
    )
    finish.add_argument("session", metavar="SESSION_ID", help="the session to finish")
    finish.add_argument("--failed", action="store_true", help="record the run as failed")
    finish.add_argument("--json", action="store_true", help="print the package path as JSON")
    finish.set_defaults(func=_finish)
