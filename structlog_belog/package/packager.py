"""The finalizer: a session's files in, a self-contained execution package out.

``packages/<slug>-YYYY-mm-dd-HH-MM/`` holds the content the run asked to keep
(``run.add_content``) and ``logs/``: the session's records (shards merged by
time), its LLM calls (each with the outputs it produced), its BELog records,
``metadata.json``, ``execution_summary.md``, ``execution_report.html`` (the
run report page) and ``SHA256SUMS``. The package is
built in a temporary folder inside ``package_dir`` and renamed into place, so
a failure leaves no half package, and session files are only ever read.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson

from ..audit.stats import issue
from ..core import hooks as _hooks
from ..core.safe_io import replace_file
from ..exceptions import PackageError, SessionNotFoundError
from .members import (
    HASH_CHUNK,
    REPORT_PAGE,
    StreamWriter,
    open_new,
    write_file,
    write_page,
    write_sums,
)
from .reader import Raw, open_read, session_files
from .report import SessionReport
from .scan import scan_session
from .slug import package_name, place_package, prepare_root

if TYPE_CHECKING:
    from ..core.session import Run

__all__ = ["DEFAULT_LEVEL", "build_package", "finalize_run", "find_session", "package"]

#: zstd level used when ``compress=True``.
DEFAULT_LEVEL: Final = 3
#: Marker a package leaves in the session folder: the path of its last package.
PACKAGED_MARKER: Final = "packaged.json"
_STREAM_FILES: Final = {
    "processing": "processing.jsonl",
    "prompts": "prompts_audit.jsonl",
    "belog": "belog.jsonl",
}
#: The run report page, in ``logs/``.


@dataclass(frozen=True, slots=True)
class _Options:
    level: int | None
    template: Path | str | None
    html_report: bool = True


def _level(compress: bool | int) -> int | None:
    if compress is True:
        return DEFAULT_LEVEL
    if compress is False:
        return None
    if isinstance(compress, int) and -7 <= compress <= 22:
        return compress
    msg = f"compress must be True, False or a zstd level from -7 to 22, got {compress!r}"
    raise ValueError(msg)


def _safe_relative(name: str) -> Path:
    """*name* as a relative path with no ``..``, root, NUL or control character."""
    parts = []
    for part in name.replace("\\", "/").split("/"):
        cleaned = "".join(ch for ch in part if ch >= " " and ch != "\x7f")
        if cleaned in ("", ".", ".."):
            continue
        parts.append(cleaned)
    if not parts:
        parts = ["content"]
    if parts[0] == "logs":
        parts[0] = "logs_content"
    return Path(*parts)


def _copy_one(src: Path, dst: Path) -> None:
    """Copy a file (0600 from creation, times kept) or a link (as a link)."""
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
        return
    with open(src, "rb") as fin, open_new(dst) as fout:
        shutil.copyfileobj(fin, fout, HASH_CHUNK)
    st = src.stat()
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_tree(src: Path, dst: Path, refused: list[str]) -> None:
    """Copy a folder: folders 0700 and files 0600 from creation, links as links.

    A FIFO, a device or a socket in it is never opened: its path goes to *refused*.

    Not `shutil.copytree`: it creates with the umask's modes and copies the
    source's modes afterwards, so copied content could be readable by others.
    """
    os.mkdir(dst, 0o700)
    with os.scandir(src) as entries:
        for entry in entries:
            child = src / entry.name
            if entry.is_dir(follow_symlinks=False):
                _copy_tree(child, dst / entry.name, refused)
            elif entry.is_file(follow_symlinks=False) or entry.is_symlink():
                _copy_one(child, dst / entry.name)
            else:
                refused.append(str(child))


def _copy_contents(report: SessionReport, root: Path) -> tuple[list[str], list[str]]:
    """Copy what ``run.add_content`` asked for into *root*.

    Returns the paths that no longer exist, and those refused because they
    are neither a folder, a file nor a link (a FIFO, a device, a socket).
    """
    missing: list[str] = []
    refused: list[str] = []
    for item in report.contents:
        src = Path(str(item.get("path")))
        as_name = item.get("as_name") or src.name
        dst = root / _safe_relative(str(as_name))
        if not (src.exists() or src.is_symlink()):
            missing.append(str(src))
            continue
        dst.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        base, n = dst, 1
        while dst.exists() or dst.is_symlink():
            n += 1
            dst = base.with_name(f"{base.name}-{n}")
        if src.is_dir() and not src.is_symlink():
            # Links are copied as links, never followed: a link in the content
            # cannot pull files from outside it into the package, nor loop.
            _copy_tree(src, dst, refused)
        elif src.is_symlink() or src.is_file():
            _copy_one(src, dst)
        else:  # a FIFO, a device, a socket: never opened (a FIFO would hang)
            refused.append(str(src))
            continue
        item["copied_to"] = dst.relative_to(root).as_posix()
    return missing, refused


def output_file_sizes(outputs: dict[str, list[str]]) -> dict[str, int]:
    """Sizes of the output files that exist now (relative to the working folder)."""
    sizes = {}
    for path in outputs:
        try:
            st = os.stat(path)
        except OSError:
            continue
        if not os.path.isdir(path):
            sizes[path] = st.st_size
    return sizes


def _when(report: SessionReport) -> datetime:
    ts = report.start_time
    if ts:
        try:
            return datetime.fromisoformat(ts).astimezone()
        except ValueError:
            pass
    return datetime.now().astimezone()


def build_package(
    directory: Path,
    package_dir: Path | str,
    *,
    session_id: str | None = None,
    title: str | None = None,
    compress: bool | int = True,
    summary_template: Path | str | None = None,
    progress: Callable[[int], None] | None = None,
    html_report: bool = True,
) -> Path:
    """Package the session folder *directory* into a new folder under *package_dir*.

    Args:
        directory: The session folder (``logs/sessions/<id>``).
        package_dir: Where packages go; created (0700) if missing.
        session_id: Defaults to the folder name.
        title: The package's title (and slug); defaults to the session's title.
        compress: ``True`` (zstd level 3), ``False`` (plain JSONL) or a zstd level.
        summary_template: A Jinja2 template file replacing the packaged one.
        progress: Called with the number of bytes of records read so far.
        html_report: Write ``logs/execution_report.html``, the run report page
            (``False`` only to measure what the page costs).

    Returns:
        The path of the new package.

    Raises:
        PackageError: The package could not be built; nothing is left behind
            in *package_dir* and the session folder is untouched.
        ValueError: *compress* is not a valid setting.
    """
    opts = _Options(_level(compress), summary_template, html_report)
    directory = Path(directory)
    if not directory.is_dir():
        raise SessionNotFoundError(session_id or directory.name, directory)
    seen = _marker_state(directory)
    with _packaging_lock(directory):
        # Another process packaged this session while we waited for the lock
        # (two `belog recover`s, an exit hook and a CLI): one package, theirs.
        if _marker_state(directory) != seen:
            made = packaged_at(directory)
            if made is not None and (made / "logs" / "metadata.json").is_file():
                return made
        return _build_locked(directory, package_dir, session_id, title, opts, progress)


def _marker_state(directory: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(directory / PACKAGED_MARKER, follow_symlinks=False)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ino)


@contextlib.contextmanager
def _packaging_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the session folder itself while packaging.

    The folder's own descriptor is locked: no file is added to the session.
    Where no lock can be taken, packaging goes on without.
    """
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)  # releases the lock


def _build_locked(
    directory: Path,
    package_dir: Path | str,
    session_id: str | None,
    title: str | None,
    opts: _Options,
    progress: Callable[[int], None] | None,
) -> Path:
    try:
        root = prepare_root(package_dir)
        building = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    except OSError as exc:
        msg = f"cannot create a package in {str(package_dir)!r}: {exc}"
        raise PackageError(msg, package_dir) from exc
    try:
        final = _build(directory, root, building, session_id, title, opts, progress)
    except BaseException as exc:
        shutil.rmtree(building, ignore_errors=True)
        if isinstance(exc, PackageError) or not isinstance(exc, OSError | ValueError):
            raise
        msg = f"packaging session {session_id or directory.name!r} failed: {exc}"
        raise PackageError(msg, directory) from exc
    _leave_marker(directory, final)
    return final


def _build(
    directory: Path,
    root: Path,
    building: Path,
    session_id: str | None,
    title: str | None,
    opts: _Options,
    progress: Callable[[int], None] | None,
) -> Path:
    logs = building / "logs"
    os.mkdir(logs, 0o700)
    suffix = "" if opts.level is None else ".zst"
    writers = {
        stream: StreamWriter(logs / (name + suffix), opts.level)
        for stream, name in _STREAM_FILES.items()
    }
    done = 0

    def sink(stream: str, pieces: Raw, count: int) -> None:
        nonlocal done
        writer = writers[stream]
        for data in pieces:
            writer.write(data)
        writer.lines += count
        if progress is not None:
            done += sum(map(len, pieces))
            progress(done)

    page = None
    if opts.html_report:
        # Imported when a package is made, not with structlog_belog (like jinja2 below).
        from .report_page import PageBuilder

        page = PageBuilder()
    try:
        report = scan_session(
            directory,
            session_id,
            title=title,
            sink=sink,
            output_sizes=output_file_sizes,
            page=page,
        )
        digests = {name + suffix: writers[stream].close() for stream, name in _STREAM_FILES.items()}
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    missing, refused = _copy_contents(report, building)
    if refused:
        report.issues.append(
            issue(
                "refused_content",
                "warning",
                f"{len(refused)} content path(s) given to add_content are not regular "
                "files, folders or links (a FIFO, a device or a socket): not copied",
                len(refused),
                refused,
            )
        )
    if missing:
        report.issues.append(
            issue(
                "missing_content",
                "warning",
                f"{len(missing)} content path(s) given to add_content no longer exist",
                len(missing),
                missing,
            )
        )
    page_entry = None
    if page is not None:
        from .report_page import page_data, page_pieces

        page_entry = write_page(logs / REPORT_PAGE, page_pieces(page_data(report, page)))
        digests[REPORT_PAGE] = page_entry["sha256"]
        page_entry.update(calls_shown=len(page.calls), calls_total=page.calls_total)
    metadata = report.to_metadata()
    metadata["package"] = {
        "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "compression": None if opts.level is None else {"format": "zstd", "level": opts.level},
        "records": {stream: w.lines for stream, w in writers.items()},
        "source_files": sorted(p.name for s in _STREAM_FILES for p in session_files(directory, s)),
        "report": page_entry,
    }
    meta_bytes = orjson.dumps(metadata, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    digests["metadata.json"] = write_file(logs / "metadata.json", meta_bytes)
    from .summary import render_summary  # jinja2: imported when a package is made

    summary = render_summary(report, metadata, opts.template)
    digests["execution_summary.md"] = write_file(
        logs / "execution_summary.md", summary.encode("utf-8")
    )
    write_sums(building, digests)
    return place_package(building, root, package_name(report.title, _when(report)))


def _leave_marker(directory: Path, final: Path) -> None:
    data = orjson.dumps({"package": str(final)}, option=orjson.OPT_APPEND_NEWLINE)
    try:
        replace_file(directory / PACKAGED_MARKER, data)  # never through a planted link
    except OSError:
        pass  # a read-only session folder still gets its package


def packaged_at(directory: Path) -> Path | None:
    """The package made last from the session folder *directory*, if any."""
    try:
        with open_read(directory / PACKAGED_MARKER) as fh:
            data = orjson.loads(fh.read(64 * 1024))
    except (OSError, orjson.JSONDecodeError):
        return None
    path = data.get("package") if isinstance(data, dict) else None
    return Path(path) if isinstance(path, str) else None


# -- where things are ----------------------------------------------------------


def default_dirs() -> tuple[Path, Path, Any]:
    """``(log_dir, package_dir, config or None)`` from `configure()` or the environment."""
    try:
        from ..core.config import get_config
    except ImportError:  # pragma: no cover - the core ships _config
        config = None
    else:
        config = get_config()
    if config is not None:
        return Path(config.log_dir), Path(config.package_dir), config
    log_dir = Path(os.environ.get("BELOG_DIR") or "logs")
    package_dir = Path(os.environ.get("BELOG_PACKAGE_DIR") or "packages")
    return log_dir, package_dir, None


def find_session(session: str | Path, log_dir: Path | None = None) -> Path:
    """The folder of *session*: a session ID under ``log_dir/sessions`` or a folder path.

    Raises:
        SessionNotFoundError: No such session.
    """
    if log_dir is None:
        log_dir = default_dirs()[0]
    text = str(session)
    candidate = Path(text)
    if candidate.is_dir() and (candidate.name.startswith("sess_") or os.sep in text):
        return candidate
    if text != candidate.name or text in ("", ".", ".."):
        raise SessionNotFoundError(text, log_dir / "sessions")
    path = log_dir / "sessions" / text
    if not path.is_dir():
        raise SessionNotFoundError(text, log_dir / "sessions")
    return path


def package(
    session_id: str,
    *,
    dest: Path | str | None = None,
    title: str | None = None,
    compress: bool | int = True,
) -> Path:
    """(Re)package a finished or crashed session from its log files.

    Args:
        session_id: The session's ID (its folder under ``<log_dir>/sessions``)
            or the path of a session folder.
        dest: The folder to put the package in; defaults to the configured
            ``package_dir`` (``BELOG_PACKAGE_DIR``, else ``packages``).
        title: The package's title; defaults to the session's own.
        compress: ``True`` (zstd), ``False`` (plain JSONL) or a zstd level.

    Returns:
        The path of the new package folder.

    Raises:
        SessionNotFoundError: There is no such session.
        PackageError: The package could not be built (nothing is left behind).
    """
    log_dir, package_dir, config = default_dirs()
    directory = find_session(session_id, log_dir)
    template = getattr(config, "summary_template", None)
    return build_package(
        directory,
        Path(dest) if dest is not None else package_dir,
        session_id=directory.name,
        title=title,
        compress=compress,
        summary_template=template,
    )


def finalize_run(run: Run) -> Path | None:
    """Build the run's package when the session ends; return its path.

    Called by the session's exit (also after an exception) when
    ``package=True``. Never raises: a failure is reported once on stderr and
    the session's files stay as they are, ready for ``belog package``.
    """
    if run.directory is None:  # never started: nothing to package
        return None
    try:
        _, default_package_dir, config = default_dirs()
        package_dir = getattr(run, "package_dir", None) or default_package_dir
        compress = getattr(run, "compress", None)
        if compress is None:
            compress = getattr(config, "compress", True)
        return build_package(
            run.directory,
            package_dir,
            session_id=run.id,
            title=run.title,
            compress=compress,
            summary_template=getattr(config, "summary_template", None),
        )
    except Exception as exc:  # noqa: BLE001 - the session exit must not raise
        try:
            sys.stderr.write(
                f"structlog-belog: could not package session {run.id!r}: {exc}. "
                f"Its logs are intact; retry with: belog package {run.id}\n"
            )
        except Exception:  # noqa: BLE001, S110 - stderr itself may be gone
            pass
        return None


_hooks.register(finalize_run=finalize_run)
