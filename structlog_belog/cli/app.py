"""The ``belog`` command: list, show, tail, view, summarise, package, recover and verify sessions.

Every command that a program might read takes ``--json``. Log and package
folders default to ``$BELOG_DIR``/``logs`` and ``$BELOG_PACKAGE_DIR``/``packages``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..exceptions import BelogError
from ..package import catalog as _catalog
from ..package.packager import build_package
from ..package.reader import MAX_LINE_BYTES, open_read, read_package, session_files
from ..package.scan import scan_session
from ..package.summary import render_summary
from . import memory as _cli_memory
from . import report as _cli_report
from . import sessions as _cli_sessions
from .argtypes import positive, seconds
from .terminal import SafeConsole, one_line, write_json, write_json_line, write_text
from .view import call_view, find_call, session_tree, shorten

__all__ = ["main"]

_LEVELS: Final = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_LEVEL_STYLE: Final = {
    "debug": "dim",
    "info": "green",
    "warning": "yellow",
    "error": "bold red",
    "critical": "bold white on red",
}
_FOLLOW_READ: Final = 16 * 1024 * 1024
_STATUS_STYLE: Final = {
    "ok": "green",
    "failed": "red",
    "running": "cyan",
    "crashed": "bold red",
    "open": "yellow",
}
_SHOWN_KEYS: Final = frozenset(("timestamp", "level", "logger", "event", "session_id"))


def _out() -> Console:
    # Every view prints through a SafeConsole: control and bidi characters from
    # data are shown as escapes, whatever renderable carries them.
    console = SafeConsole(highlight=False, soft_wrap=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 200  # piped: do not fold IDs and paths at 80 columns
    return console


def _err() -> Console:
    # soft_wrap: an error is one line, however long.
    return SafeConsole(stderr=True, highlight=False, soft_wrap=True)


def _print_json(data: Any) -> None:
    write_json(data)


def _is_package(path: Path) -> bool:
    return (path / "logs" / "metadata.json").is_file()


# -- sessions ----------------------------------------------------------------------


def _cmd_sessions(args: argparse.Namespace) -> int:
    infos = _catalog.list_sessions(args.log_dir, idle_seconds=args.idle, on_error=_skipped)
    if args.limit:
        infos = infos[-args.limit :]
    if args.json:
        _print_json([i.as_json() for i in infos])
        return 0
    if not infos:
        _out().print(f"No sessions in {escape(str(args.log_dir / 'sessions'))}.")
        return 0
    table = Table(title=f"Sessions in {escape(str(args.log_dir))}")
    for name, justify in (
        ("Session", "left"),
        ("Title", "left"),
        ("Status", "left"),
        ("Started (UTC)", "left"),
        ("Duration", "right"),
        ("Records", "right"),
        ("Calls", "right"),
        ("Tokens", "right"),
    ):
        table.add_column(name, justify=justify, overflow="fold", no_wrap=name == "Session")  # type: ignore[arg-type]
    for i in infos:
        duration = "—" if i.duration_seconds is None else f"{i.duration_seconds:.2f} s"
        table.add_row(
            escape(i.id),
            escape(i.title or "—"),
            f"[{_STATUS_STYLE[i.status]}]{i.status}[/]",
            escape((i.start_time or "—")[:19].replace("T", " ")),
            duration,
            f"{i.records:,}",
            f"{i.calls:,}",
            f"{i.tokens:,}",
        )
    _out().print(table)
    return 0


def _skipped(directory: Path, exc: OSError) -> None:
    _err().print(
        f"[yellow]belog: skipped[/] {escape(directory.name)}: {escape(one_line(str(exc)))}"
    )


# -- show / tail --------------------------------------------------------------------


def _records(source: Path, stream: str) -> Iterator[dict[str, Any]]:
    from ..package.reader import iter_records

    return iter_records(source, stream, skip_corrupt=True)


def _matches(rec: dict[str, Any], args: argparse.Namespace) -> bool:
    if args.level and _LEVELS.get(str(rec.get("level")), 0) < _LEVELS[args.level]:
        return False
    if args.stage and rec.get("stage") != args.stage:
        return False
    if args.kind and rec.get("kind") != args.kind:
        return False
    if args.logger and not str(rec.get("logger", "")).startswith(args.logger):
        return False
    return not (args.grep and args.grep.lower() not in orjson.dumps(rec).decode().lower())


def _line(rec: dict[str, Any]) -> str:
    level = str(rec.get("level", ""))
    style = _LEVEL_STYLE.get(level, "none")
    ts = escape(str(rec.get("timestamp", ""))[11:23])
    level = escape(f"{level:<8}")
    extras = " ".join(
        f"[dim]{escape(str(k))}=[/]{escape(shorten(v, 120))}"
        for k, v in rec.items()
        if k not in _SHOWN_KEYS
    )
    event = escape(str(rec.get("event", "")))
    logger = escape(str(rec.get("logger", "")))
    return f"[dim]{ts}[/] [{style}]{level}[/] [blue]{logger}[/] {event} {extras}".rstrip()


def _emit(rec: dict[str, Any], args: argparse.Namespace, console: Console) -> None:
    if args.json:
        write_json_line(rec)
    else:
        console.print(_line(rec))


def _source(args: argparse.Namespace) -> Path:
    ref = args.session or "last"
    path = Path(ref)
    if path.is_dir() and _is_package(path):
        return path
    return _catalog.find(ref, args.log_dir)


def _cmd_show(args: argparse.Namespace) -> int:
    console = _out()
    shown = 0
    for rec in _records(_source(args), args.stream):
        if _matches(rec, args):
            _emit(rec, args, console)
            shown += 1
            if args.limit and shown >= args.limit:
                break
    return 0


def _cmd_tail(args: argparse.Namespace) -> int:
    source = _source(args)
    console = _out()
    last: deque[dict[str, Any]] = deque(maxlen=args.lines)
    for rec in _records(source, args.stream):
        if _matches(rec, args):
            last.append(rec)
    ended = any(rec.get("kind") == "session_end" for rec in last)
    for rec in last:
        _emit(rec, args, console)
    sys.stdout.flush()
    if not args.follow or _is_package(source):
        return 0
    if not ended:
        ended = _catalog.session_info(source).status in ("ok", "failed")
    if ended:
        return 0
    return _follow(source, args, console)


def _follow(directory: Path, args: argparse.Namespace, console: Console) -> int:
    """Print new lines of the session's files until its ``session_end`` arrives."""
    offsets = {p: p.stat().st_size for p in session_files(directory, args.stream)}
    pending: dict[Path, bytes] = {}
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    try:
        while deadline is None or time.monotonic() < deadline:
            new: list[dict[str, Any]] = []
            for path in session_files(directory, args.stream):
                with open_read(path) as fh:  # no link, no FIFO
                    fh.seek(offsets.get(path, 0))
                    data = pending.pop(path, b"") + fh.read(_FOLLOW_READ)
                    offsets[path] = fh.tell()
                if len(data) > MAX_LINE_BYTES:  # a runaway line: skip what is there
                    data = b""
                *lines, rest = data.split(b"\n")
                if rest:
                    pending[path] = rest
                for line in lines:
                    try:
                        rec = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        continue
                    if isinstance(rec, dict):
                        new.append(rec)
            new.sort(key=lambda r: str(r.get("timestamp", "")))
            for rec in new:
                if _matches(rec, args):
                    _emit(rec, args, console)
            sys.stdout.flush()
            if any(r.get("kind") == "session_end" for r in new):
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 130
    return 0


def _cmd_view(args: argparse.Namespace) -> int:
    source = _source(args)
    if args.call is not None:
        call = find_call(_records(source, "prompts"), args.call)
        if args.json:
            _print_json(call)
            return 0
        outputs = (r for r in _records(source, "processing") if r.get("kind") == "output")
        _out().print(call_view(call, outputs))
        return 0
    if args.json:
        msg = "--json needs --call (for records as JSON: belog show --json)"
        raise ValueError(msg)
    # Only what the tree shows of each call: its attempts.
    calls = (
        {"call_id": c.get("call_id"), "attempts": c.get("attempts")}
        for c in _records(source, "prompts")
    )
    _out().print(session_tree(_records(source, "processing"), calls, all_records=args.all))
    return 0


# -- summary / package / recover / verify -------------------------------------------


def _cmd_summary(args: argparse.Namespace) -> int:
    path = Path(args.target)
    if path.is_dir() and _is_package(path):
        pkg = read_package(path)
        metadata, text = pkg.metadata, pkg.summary
    else:
        directory = _catalog.find(args.target, args.log_dir)
        report = scan_session(directory)
        metadata = report.to_metadata()
        text = render_summary(report, metadata, _template())
    if args.json:
        _print_json(metadata)
    elif args.raw or not sys.stdout.isatty():
        write_text(text)
    else:
        from rich.markdown import Markdown

        _out().print(Markdown(text))
    return 0


def _template() -> Path | None:
    from ..core.config import get_config

    config = get_config()
    return None if config is None else config.summary_template


def _package_one(directory: Path, args: argparse.Namespace, title: str | None = None) -> Path:
    compress: bool | int = False if args.no_compress else (args.zstd_level or True)
    kwargs: dict[str, Any] = {
        "session_id": directory.name,
        "title": title,
        "compress": compress,
        "summary_template": _template(),
    }
    err = _err()
    if not err.is_terminal or getattr(args, "json", False):
        return build_package(directory, args.dest or args.package_dir, **kwargs)
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
    )

    total = sum(
        p.stat().st_size
        for stream in ("processing", "prompts", "belog")
        for p in session_files(directory, stream)
    )
    columns = (BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(f"packaging {directory.name}", total=total or None)
        return build_package(
            directory,
            args.dest or args.package_dir,
            progress=lambda done: progress.update(task, completed=done),
            **kwargs,
        )


def _cmd_package(args: argparse.Namespace) -> int:
    directory = _catalog.find(args.session, args.log_dir)
    path = _package_one(directory, args, args.title)
    if args.json:
        _print_json({"session_id": directory.name, "package": str(path)})
    else:
        _out().print(f"Packaged {escape(directory.name)} → [bold]{escape(str(path))}[/]")
    return 0


def _cmd_recover(args: argparse.Namespace) -> int:
    crashed = [
        i
        for i in _catalog.list_sessions(args.log_dir, idle_seconds=args.idle, on_error=_skipped)
        if i.status == "crashed" and (i.package is None or args.again)
    ]
    results = []
    failed = 0
    for info in crashed:
        entry: dict[str, Any] = {"session_id": info.id, "package": None, "error": None}
        if not args.dry_run:
            # One bad session is reported and skipped; the others still recover.
            try:
                entry["package"] = str(_package_one(info.directory, args))
            except (OSError, ValueError) as exc:
                entry["error"] = str(exc)
                failed += 1
        results.append(entry)
    if args.json:
        _print_json(results)
    else:
        console = _out()
        if not results:
            console.print("No crashed sessions to recover.")
        for entry in results:
            if entry["error"]:
                console.print(f"[red]✗[/] {escape(entry['session_id'])}: {escape(entry['error'])}")
            elif args.dry_run:
                console.print(f"would package {escape(entry['session_id'])}")
            else:
                console.print(
                    f"[green]✓[/] {escape(entry['session_id'])} → {escape(entry['package'])}"
                )
    return 1 if failed else 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from ..package.verify import verify_package

    problems = verify_package(args.package, schemas=not args.no_schemas)
    if args.json:
        _print_json({"package": str(args.package), "ok": not problems, "problems": problems})
    else:
        console = _out()
        for problem in problems:
            console.print(f"[red]✗[/] {escape(problem)}")
        if not problems:
            checked = "checksums" if args.no_schemas else "checksums and schemas"
            console.print(f"[green]✓[/] {escape(str(args.package))}: {checked} OK")
    return 1 if problems else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    out = Path(args.out)
    path = run_demo(out, live=args.live)
    pkg = read_package(path)
    if args.json:
        _print_json({"package": str(path), "metadata": pkg.metadata})
        return 0
    console = _out()
    if not args.quiet:
        if console.is_terminal and not args.raw:
            from rich.markdown import Markdown

            console.print(Markdown(pkg.summary))
        else:
            write_text(pkg.summary + "\n")
    console.print(f"Package: [bold]{escape(str(path))}[/]")
    return 0


# -- parser -------------------------------------------------------------------------


def _env_dir(name: str, default: str) -> Path:
    return Path(os.environ.get(name) or default)


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--level",
        choices=sorted(_LEVELS, key=_LEVELS.__getitem__),
        help="only records at this level or above",
    )
    p.add_argument("--stage", help="only records of this stage")
    p.add_argument("--kind", help="only records of this kind (llm_call, stage_end, ...)")
    p.add_argument("--logger", help="only records whose logger name starts with this")
    p.add_argument("--grep", help="only records containing this text (case-insensitive)")
    p.add_argument(
        "--stream",
        choices=("processing", "prompts", "belog"),
        default="processing",
        help="which file to read (default: processing)",
    )
    p.add_argument("--json", action="store_true", help="print records as JSON lines")


def _package_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dest", type=Path, help="package folder (default: --package-dir)")
    p.add_argument("--no-compress", action="store_true", help="plain .jsonl instead of zstd")
    p.add_argument("--zstd-level", type=int, help="zstd compression level (default 3)")


def build_parser() -> argparse.ArgumentParser:
    """The ``belog`` argument parser (the memory commands included)."""
    parser = argparse.ArgumentParser(
        prog="belog",
        description="Look at, package and verify structlog-belog sessions.",
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=_env_dir("BELOG_DIR", "logs"),
        help="log folder (default: $BELOG_DIR or ./logs)",
    )
    parser.add_argument(
        "--package-dir",
        type=Path,
        default=_env_dir("BELOG_PACKAGE_DIR", "packages"),
        help="package folder (default: $BELOG_PACKAGE_DIR or ./packages)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_view_commands(sub)
    _add_package_commands(sub)
    _cli_report.add_command(sub)
    _cli_memory.add_commands(sub)
    _cli_sessions.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``belog`` with *argv* (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = int(args.func(args))
        sys.stdout.flush()
    except BrokenPipeError:
        # `belog show | head`: the reader left. End quietly, as `yes | head` does,
        # and keep the interpreter's own last flush from complaining.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # no descriptor behind stdout: nothing to flush there
            pass
        return 141
    except KeyboardInterrupt:
        return 130
    except (BelogError, OSError, ValueError, ModuleNotFoundError) as exc:
        _err().print(f"[red]belog: error:[/] {escape(one_line(str(exc)))}")
        return 1
    except Exception as exc:  # noqa: BLE001 - malformed data: one line, never a traceback
        what = f"{type(exc).__name__}: {exc}"
        _err().print(f"[red]belog: error:[/] {escape(one_line(what))} (malformed data?)")
        return 1
    return status


_SubParsers = argparse._SubParsersAction  # the type argparse gives add_subparsers()


def _add_view_commands(sub: _SubParsers[argparse.ArgumentParser]) -> None:

    p = sub.add_parser("sessions", help="list sessions with status, duration, records, calls")
    p.add_argument("--limit", type=positive, help="only the N most recent")
    p.add_argument(
        "--idle",
        type=seconds,
        default=300.0,
        help="seconds without writes after which an unfinished session whose "
        "process cannot be checked counts as crashed (default 300)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_sessions)

    p = sub.add_parser("show", help="print a session's or package's records")
    p.add_argument("session", nargs="?", help="session ID, ID prefix, folder, package or 'last'")
    _filters(p)
    p.add_argument("--limit", type=positive, help="stop after N records")
    p.set_defaults(func=_cmd_show)

    p = sub.add_parser("tail", help="print the last records of a session; -f to follow it")
    p.add_argument("session", nargs="?", help="session ID, prefix or folder (default: last)")
    p.add_argument("-n", "--lines", type=positive, default=10, help="records to show (10)")
    p.add_argument("-f", "--follow", action="store_true", help="wait for new records")
    p.add_argument("--interval", type=seconds, default=0.25, help="seconds between polls")
    p.add_argument("--timeout", type=seconds, help="stop following after this many seconds")
    _filters(p)
    p.set_defaults(func=_cmd_tail)

    p = sub.add_parser(
        "view", help="a session as a tree of stages, tasks and LLM calls; --call: one call whole"
    )
    p.add_argument("session", nargs="?", help="session ID, ID prefix, folder, package or 'last'")
    p.add_argument("--call", metavar="CALL_ID", help="show this LLM call (ID, prefix or 'last')")
    p.add_argument(
        "--all",
        action="store_true",
        help="list every record: plain log records, and past 50 entries per stage or task",
    )
    p.add_argument("--json", action="store_true", help="with --call: the call's record as JSON")
    p.set_defaults(func=_cmd_view)


def _add_package_commands(sub: _SubParsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("summary", help="print the execution summary of a session or package")
    p.add_argument("target", help="session ID, prefix, folder, or package folder")
    p.add_argument("--raw", action="store_true", help="print Markdown source")
    p.add_argument("--json", action="store_true", help="print metadata.json instead")
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser("package", help="(re)build the package of a session")
    p.add_argument("session", help="session ID, prefix or folder")
    p.add_argument("--title", help="package title (default: the session's)")
    _package_options(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_package)

    p = sub.add_parser("recover", help="package every crashed session")
    p.add_argument("--dry-run", action="store_true", help="list them, package nothing")
    p.add_argument("--again", action="store_true", help="also those already packaged")
    p.add_argument(
        "--idle",
        type=seconds,
        default=300.0,
        help="seconds without writes before an unchecked session counts as crashed (default 300)",
    )
    _package_options(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_recover)

    p = sub.add_parser("verify", help="check a package's checksums, members and schemas")
    p.add_argument("package", type=Path, help="package folder")
    p.add_argument("--no-schemas", action="store_true", help="checksums and parsing only")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("demo", help="run an offline demo pipeline and package it")
    p.add_argument("--out", default="belog-demo", help="folder for logs and packages")
    p.add_argument(
        "--live", action="store_true", help="call the real OpenAI API (needs OPENAI_API_KEY)"
    )
    p.add_argument("--quiet", action="store_true", help="print only the package path")
    p.add_argument("--raw", action="store_true", help="print the summary's Markdown source")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_demo)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
