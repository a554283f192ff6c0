"""``belog report``: the run report page of a session — finished, running or crashed — or a package.

A session's page is made by the same single pass the finalizer makes (no
package is written). A package's own ``logs/execution_report.html`` is copied;
a package made before pages existed gets one built from its logs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import webbrowser
from pathlib import Path
from typing import Any

import orjson

from ..package import catalog as _catalog
from ..package.reader import iter_lines, read_package
from ..package.report_page import PageBuilder, page_data, page_pieces
from ..package.scan import scan_session

__all__ = ["add_command", "report_pieces"]

_MEMBERS = {
    "processing": "processing.jsonl",
    "prompts": "prompts_audit.jsonl",
    "belog": "belog.jsonl",
}


def _from_session(
    directory: Path, session_id: str | None = None, title: str | None = None
) -> tuple[str, tuple[bytes, ...]]:
    page = PageBuilder()
    report = scan_session(directory, session_id, title=title, page=page)
    return report.session_id, page_pieces(page_data(report, page))


def _from_package(package: Path) -> tuple[str, tuple[bytes, ...]]:
    pkg = read_package(package)
    sid = pkg.session_id or package.name
    own = package / "logs" / "execution_report.html"
    if own.is_file() and not own.is_symlink():
        return sid, (own.read_bytes(),)
    title = pkg.metadata.get("title")
    # The package's members, decompressed as a session folder, take the same pass.
    with tempfile.TemporaryDirectory(prefix="belog-report-") as name:
        folder = Path(name)
        for stream, member in _MEMBERS.items():
            source = next(
                (p for p in (package / "logs" / f"{member}.zst", package / "logs" / member)
                 if p.is_file()),
                None,
            )  # fmt: skip
            with open(folder / f"{stream}.jsonl", "wb") as out:
                for line in iter_lines(source) if source is not None else ():
                    out.write(line + b"\n")
        found, pieces = _from_session(folder, sid, title if isinstance(title, str) else None)
    return found, pieces


def report_pieces(target: str, log_dir: Path) -> tuple[str, tuple[bytes, ...]]:
    """The session ID and the page (as byte pieces) of *target*: a session or a package.

    Raises:
        SessionNotFoundError: *target* is neither a package nor a known session.
        PackageError: The package cannot be read.
    """
    path = Path(target)
    if path.is_dir() and (path / "logs" / "metadata.json").is_file():
        return _from_package(path)
    return _from_session(_catalog.find(target, log_dir))


def _write(path: Path, pieces: tuple[bytes, ...]) -> None:
    # The page holds prompts and answers: created 0600 like the package's files.
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
    with os.fdopen(os.open(path, flags, 0o600), "wb") as fh:
        for piece in pieces:
            fh.write(piece)


def _cmd_report(args: argparse.Namespace) -> int:
    session_id, pieces = report_pieces(args.target, args.log_dir)
    out = Path(args.output) if args.output else Path(f"{session_id}.report.html")
    _write(out, pieces)
    if args.json:
        data = {"report": str(out.resolve()), "session_id": session_id}
        print(orjson.dumps(data).decode())
    else:
        print(out.resolve())
    if args.open:
        webbrowser.open(out.resolve().as_uri())
    return 0


def add_command(sub: Any) -> None:
    """Register ``belog report`` on the subcommand parsers *sub*."""
    p = sub.add_parser(
        "report",
        help="write the interactive HTML run report of a session (running or crashed too) "
        "or package",
    )
    p.add_argument("target", help="session ID, prefix, folder or 'last', or a package folder")
    p.add_argument("-o", "--output", help="file to write (default: ./<session ID>.report.html)")
    p.add_argument("--open", action="store_true", help="open it in the default web browser")
    p.add_argument("--json", action="store_true", help="print the page's path and session as JSON")
    p.set_defaults(func=_cmd_report)
