"""``belog last|attempts|next|revise|reindex``: the BELog memory on the command line."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.sanitize import visible
from .terminal import write_json, write_text

__all__ = ["add_commands"]

# Temporary index folders of this command, removed at exit.
_SCRATCH: list[tempfile.TemporaryDirectory[str]] = []


def _common(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: never overwrite a --log-dir the main parser may already have parsed.
    parser.add_argument(
        "--log-dir",
        default=argparse.SUPPRESS,
        help="log folder holding the BELog JSONL files and index (default: configured/BELOG_DIR)",
    )
    parser.add_argument(
        "--store",
        default=argparse.SUPPRESS,
        help="store location: a SQLite file, chroma:PATH or http(s)://HOST:PORT "
        "(default: $BELOG_STORE, as sessions use it, else the index in the log folder)",
    )


def _log_dir(args: argparse.Namespace) -> Path:
    from ..memory.store import default_log_dir

    given = getattr(args, "log_dir", None)
    return Path(given) if given else default_log_dir()


def _open(args: argparse.Namespace) -> Any:
    """The store a read command asks: ``--store``, else ``$BELOG_STORE``, else the log folder's."""
    from ..memory.stores import open_store

    location = getattr(args, "store", None)
    if location:
        return open_store(location)
    configured = os.environ.get("BELOG_STORE")
    if configured:
        return _open_configured(args, configured)
    return _open_local(args)


def _open_configured(args: argparse.Namespace, location: str) -> Any:
    """The store ``$BELOG_STORE`` names, read as sessions read it.

    A server is asked together with the log folder's index (its records the
    server may not have yet), as `SharedStore` does for a session; when the
    log folder does not exist, the server alone.
    """
    from ..memory.chroma_server import ChromaServerStore
    from ..memory.shared import SharedStore
    from ..memory.stores import open_store

    store = _opened("BELOG_STORE", location, open_store)
    if not isinstance(store, ChromaServerStore) or not _log_dir(args).is_dir():
        return store
    return SharedStore(_open_local(args), store, _log_dir(args))


def _opened(origin: str, location: str, opener: Callable[[str], Any]) -> Any:
    """``opener(location)``; a bad location is a `StoreError` naming where it came from."""
    from ..exceptions import StoreError

    try:
        return opener(location)
    except ValueError as exc:
        raise StoreError(location, f"{origin}: {exc}") from exc


def _open_local(args: argparse.Namespace) -> Any:
    """The SQLite index of the log folder, built from the logs when it is missing."""
    from ..exceptions import StoreError
    from ..memory.store import DEFAULT_FILENAME
    from ..memory.stores import open_store

    log_dir = _log_dir(args)
    path = log_dir / DEFAULT_FILENAME
    if not log_dir.is_dir():
        msg = f"no log folder {str(log_dir)!r}: pass --log-dir or set BELOG_DIR"
        raise StoreError(str(path), msg)
    if not os.access(log_dir, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        # A read-only log folder: SQLite cannot even read a WAL index there, and
        # none can be built. The index is disposable: build one in a private
        # temporary folder from the logs, for this command.
        scratch = tempfile.TemporaryDirectory(prefix="belog-index-")
        _SCRATCH.append(scratch)
        return open_store(Path(scratch.name) / DEFAULT_FILENAME, reindex_from=log_dir)
    if path.exists() or path.is_symlink():
        return open_store(path)
    # No index yet (or it was deleted): it is disposable, build it from the logs.
    return open_store(path, reindex_from=log_dir)


def _dump(data: Any) -> None:
    write_json(data)


def _last(args: argparse.Namespace) -> int:
    from ..memory.revision import reflect

    store = _open(args)
    record = store.last_execution(args.blueprint)
    if record is None:
        scope = f" of blueprint {args.blueprint!r}" if args.blueprint else ""
        sys.stderr.write(visible(f"no BELog record{scope} in {store.location}\n"))
        return 1
    if args.json:
        _dump(record)
    else:
        write_text(reflect(record["task_name"], store) + "\n")
    return 0


def _next(args: argparse.Namespace) -> int:
    from ..memory.next_step import next_step

    step = next_step(args.task, store=_open(args), record=False)
    if args.json:
        _dump(step.to_dict())
    else:
        sys.stdout.write(step.to_text() + "\n")
    return 0


def _attempts(args: argparse.Namespace) -> int:
    store = _open(args)
    attempts = store.get_past_attempts(args.task, args.limit)
    if args.json:
        _dump(attempts)
        return 0
    if not attempts:
        sys.stderr.write(visible(f"no attempt of task {args.task!r} in {store.location}\n"))
        return 1
    header = f"{'timestamp':<27} {'trace id':<36} {'ok':<3} {'time s':>9} {'score':>6} errors"
    lines = [header]
    for a in attempts:
        ok = "yes" if a.get("success") is True else "no"
        lines.append(
            f"{a.get('timestamp', ''):<27} {a.get('execution_trace_id', ''):<36} {ok:<3} "
            f"{float(a.get('execution_time') or 0):>9.3f} "
            f"{float(a.get('efficiency_score') or 0):>6.1f} "
            f"{len(a.get('errors_encountered') or [])}"
        )
    write_text("\n".join(lines) + "\n")
    return 0


def _revise(args: argparse.Namespace) -> int:
    from ..memory.revision import generate_blueprint_revision

    store = _open(args)
    out_dir = args.out or _log_dir(args) / "revisions"
    try:
        revision = generate_blueprint_revision(
            args.blueprint, store, write=not args.no_write, out_dir=out_dir
        )
    except OSError as exc:  # a read-only folder, a planted link: still show it
        sys.stderr.write(visible(f"belog: revision not written ({exc})\n"))
        revision = generate_blueprint_revision(args.blueprint, store, write=False)
    if revision.records_considered == 0:
        sys.stderr.write(visible(f"no BELog record of blueprint {args.blueprint!r}\n"))
        return 1
    if args.json:
        _dump(revision.to_dict())
    else:
        write_text(revision.to_markdown())
    if revision.path is not None:
        sys.stderr.write(visible(f"written to {revision.path} (and .md)\n"))
    return 0


def _reindex(args: argparse.Namespace) -> int:
    from ..memory.chroma_server import ChromaServerStore
    from ..memory.shared import PENDING_MARKER, pending_sessions
    from ..memory.sqlite import SQLiteStore
    from ..memory.store import DEFAULT_FILENAME
    from ..memory.stores import location_scheme, open_store

    sources = args.sources or [_log_dir(args)]
    where = ", ".join(str(s) for s in sources)
    location = getattr(args, "store", None)
    configured = None if location else os.environ.get("BELOG_STORE") or None
    location = location or configured
    origin = "BELOG_STORE" if configured else "--store"
    scheme = location_scheme(location)
    if configured and scheme in ("http", "https"):
        # As a session with BELOG_STORE writes: the log folder's index and the server.
        _reindex_local(SQLiteStore(_log_dir(args) / DEFAULT_FILENAME), sources)
    if scheme in ("http", "https"):
        # Not a task: this command may wait, and sends in larger requests.
        server = _opened(
            origin,
            str(location),
            lambda at: ChromaServerStore(at, timeout=_REINDEX_TIMEOUT, batch_size=500),
        )
        count = server.reindex(*sources)
        server.close()
        # Every record of the folders is on the server now: nothing is pending.
        for source in sources:
            for folder in pending_sessions(Path(source)):
                (folder / PENDING_MARKER).unlink(missing_ok=True)
        write_text(
            f"added {count} BELog records from {where} to {server.location} "
            "(records it held already were left as they were)\n"
        )
        return 0
    if scheme is not None:
        store = _opened(origin, str(location), open_store)
    else:
        # A plain SQLiteStore, not open_store: a corrupted index must not stop its own rebuild.
        store = SQLiteStore(location or _log_dir(args) / DEFAULT_FILENAME)
    _reindex_local(store, sources)
    return 0


#: Seconds one request of `belog reindex` to a server may take.
_REINDEX_TIMEOUT = 60.0


def _reindex_local(store: Any, sources: list[Any]) -> None:
    count = store.reindex(*sources)
    store.close()
    where = ", ".join(str(s) for s in sources)
    write_text(f"indexed {count} BELog records from {where} into {store.location}\n")


def _run(handler: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        from ..exceptions import StoreError

        try:
            return int(handler(args))
        except StoreError as exc:
            sys.stderr.write(visible(f"belog: {exc}\n"))
            return 2

    return run


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``last``, ``attempts``, ``next``, ``revise`` and ``reindex`` on the ``belog`` CLI.

    Each sub-command stores its handler as ``func`` (``func(args) -> exit code``).
    """
    last = subparsers.add_parser(
        "last",
        help="what was done last: the latest BELog record",
        description="Show the most recent BELog record and what it says for the next attempt.",
    )
    last.add_argument("--blueprint", help="only records of this blueprint ID")
    last.add_argument("--json", action="store_true", help="print the record as JSON")
    _common(last)
    last.set_defaults(func=_run(_last))

    attempts = subparsers.add_parser(
        "attempts",
        help="past attempts of a task, newest first",
        description="List the past attempts of TASK with outcome, time and efficiency.",
    )
    attempts.add_argument("task", metavar="TASK", help="task name")
    attempts.add_argument("--limit", type=int, default=10, help="how many (default 10)")
    attempts.add_argument("--json", action="store_true", help="print the records as JSON")
    _common(attempts)
    attempts.set_defaults(func=_run(_attempts))

    nxt = subparsers.add_parser(
        "next",
        help="the next step of the loop for a task: what to run and how to change it",
        description="Answer step 4 of the BELog loop for TASK from its records: the task to "
        "run next and how to change it, each change with its evidence.",
    )
    nxt.add_argument("task", metavar="TASK", help="task name")
    nxt.add_argument("--json", action="store_true", help="print the step as JSON")
    _common(nxt)
    nxt.set_defaults(func=_run(_next))

    revise = subparsers.add_parser(
        "revise",
        help="propose revisions of a blueprint from its BELogs",
        description="Generate a Blueprint Revision Proposal, with evidence, for BLUEPRINT.",
    )
    revise.add_argument("blueprint", metavar="BLUEPRINT", help="blueprint ID")
    revise.add_argument("--json", action="store_true", help="print the proposal as JSON")
    revise.add_argument("--no-write", action="store_true", help="do not write logs/revisions/")
    revise.add_argument("--out", help="folder for the proposal (default LOG_DIR/revisions)")
    _common(revise)
    revise.set_defaults(func=_run(_revise))

    reindex = subparsers.add_parser(
        "reindex",
        help="rebuild the BELog index from the JSONL files",
        description="Rebuild the BELog store from belog*.jsonl[.zst] files (also recovers "
        "a corrupted index).",
    )
    reindex.add_argument(
        "sources", nargs="*", metavar="DIR", help="folders to read (default: the log folder)"
    )
    _common(reindex)
    reindex.set_defaults(func=_run(_reindex))
