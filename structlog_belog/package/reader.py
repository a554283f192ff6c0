"""Read what belog wrote: session folders, log files and packages.

Everything streams. Compressed members are decompressed in small steps with
a cap on every line, so a zstd bomb or a runaway line ends in a clear
`DecompressionLimitError` instead of an out-of-memory kill, and a truncated
frame ends in a `CorruptDataError` instead of silently missing records.
"""

from __future__ import annotations

import heapq
import io
import os
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import Any, Final

import orjson
import zstandard

from ..core.safe_io import open_file_beneath, open_regular
from ..exceptions import CorruptDataError, DecompressionLimitError, PackageError

__all__ = [
    "MAX_LINE_BYTES",
    "Package",
    "Raw",
    "iter_lines",
    "iter_records",
    "merged_batches",
    "read_package",
    "session_files",
]

#: The longest line a reader accepts (records are capped far below this).
MAX_LINE_BYTES: Final = 64 * 1024 * 1024
#: The most decompressed bytes one member may expand to by default.
MAX_OUTPUT_BYTES: Final = 64 * 1024 * 1024 * 1024
#: The largest metadata.json / execution_summary.md a reader loads whole.
MAX_DOCUMENT_BYTES: Final = 64 * 1024 * 1024
# Lines are split out of at most this much data at a time: a chunk of a
# newline bomb (one zstd step can expand to ~32 MiB of newlines) would
# otherwise become a list of millions of empty lines at once.
_SPLIT_BYTES: Final = 1024 * 1024
_BLANK_RUNS: Final = re.compile(b"\n{2,}")

# zstd can expand one input byte to at most ~32 KiB (an RLE block), so feeding
# 1 KiB at a time bounds the output of one step to ~32 MiB whatever the input.
_ZSTD_STEP: Final = 1024
_READ_SIZE: Final = 256 * 1024
_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
_SHARD: Final = re.compile(r"^(processing|prompts|belog)(?:\.(\d+))?\.jsonl$")
_PACKAGE_MEMBERS: Final = {
    "processing": "processing.jsonl",
    "prompts": "prompts_audit.jsonl",
    "belog": "belog.jsonl",
}


def open_read(path: Path, root: Path | None = None) -> io.BufferedReader:
    """Open *path* for reading: a regular file, no link followed (below *root*, if given).

    Raises:
        UnsafeFileError: *path* (or a folder below *root* on the way) is a link,
            or *path* is a FIFO, a device or a socket. Opening never blocks.
    """
    fd = open_regular(path) if root is None else open_file_beneath(root, path)
    return os.fdopen(fd, "rb")


def read_document(path: Path, root: Path | None = None, limit: int = MAX_DOCUMENT_BYTES) -> bytes:
    """The bytes of a small document (metadata, summary), refused past *limit* bytes."""
    with open_read(path, root) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        msg = f"{path}: larger than {limit} bytes; refusing to read it whole"
        raise DecompressionLimitError(msg, path, limit)
    return data


def _zstd_chunks(path: Path, max_output: int, root: Path | None = None) -> Iterator[bytes]:
    """Decompressed chunks of the (possibly multi-frame) zstd file *path*."""
    dctx = zstandard.ZstdDecompressor()
    dobj = dctx.decompressobj()
    started = False  # inside a frame that has not ended yet
    total = 0
    with open_read(path, root) as fh:
        while True:
            block = fh.read(_READ_SIZE)
            if not block:
                break
            view = memoryview(block)
            for i in range(0, len(view), _ZSTD_STEP):
                data: bytes | memoryview = view[i : i + _ZSTD_STEP]
                while data:
                    try:
                        out = dobj.decompress(data)
                    except zstandard.ZstdError as exc:
                        msg = f"{path}: not valid zstd data ({exc})"
                        raise CorruptDataError(msg, path) from exc
                    started = True
                    data = b""
                    if dobj.eof:
                        data = dobj.unused_data
                        dobj = dctx.decompressobj()
                        started = False
                    if out:
                        total += len(out)
                        if total > max_output:
                            msg = (
                                f"{path}: decompresses to more than {max_output} bytes; "
                                "refusing to continue (a zstd bomb?)"
                            )
                            raise DecompressionLimitError(msg, path, max_output)
                        yield out
    if started:
        msg = f"{path}: truncated zstd frame (the file ends inside a frame)"
        raise CorruptDataError(msg, path)


def _plain_chunks(path: Path, root: Path | None = None) -> Iterator[bytes]:
    with open_read(path, root) as fh:
        while block := fh.read(_READ_SIZE):
            yield block


def _is_zstd(path: Path, root: Path | None = None) -> bool:
    if path.name.endswith(".zst"):
        return True
    with open_read(path, root) as fh:
        return fh.read(4) == _ZSTD_MAGIC


def _split_bounded(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The chunks in pieces of at most `_SPLIT_BYTES`, runs of blank lines squeezed.

    A newline bomb (millions of empty lines) would otherwise cost a Python
    step and a list slot per newline; JSONL has no blank lines, so the search
    for one (``memmem``) is all ordinary data pays.
    """
    for raw in chunks:
        chunk = _BLANK_RUNS.sub(b"\n", raw) if b"\n\n" in raw else raw
        if len(chunk) <= _SPLIT_BYTES:
            yield chunk
        else:
            view = memoryview(chunk)
            for i in range(0, len(chunk), _SPLIT_BYTES):
                yield bytes(view[i : i + _SPLIT_BYTES])


def iter_lines(
    path: Path | str,
    *,
    max_line_bytes: int = MAX_LINE_BYTES,
    max_output_bytes: int = MAX_OUTPUT_BYTES,
    root: Path | None = None,
) -> Iterator[bytes]:
    """Yield the lines of a JSONL file, plain or zstd, without their newline.

    Blank lines are skipped. A final line without a newline is yielded too.
    The file must be a regular file, not a link (nor, below *root* when given,
    under a linked folder).

    Raises:
        DecompressionLimitError: A line is longer than *max_line_bytes*, or the
            file decompresses to more than *max_output_bytes*.
        CorruptDataError: The zstd data is invalid or its last frame is cut off.
        UnsafeFileError: The file is a link, a FIFO, a device or a socket.
    """
    path = Path(path)
    chunks = (
        _zstd_chunks(path, max_output_bytes, root)
        if _is_zstd(path, root)
        else _plain_chunks(path, root)
    )
    pending = bytearray()
    for chunk in _split_bounded(chunks):
        last = chunk.rfind(b"\n")
        if last < 0:
            pending += chunk
            if len(pending) > max_line_bytes:
                _line_too_long(path, max_line_bytes)
            continue
        first = chunk.find(b"\n")
        if pending:
            pending += chunk[:first]
            if len(pending) > max_line_bytes:
                _line_too_long(path, max_line_bytes)
            yield bytes(pending)
            pending.clear()
        else:
            line = chunk[:first]
            if line:
                yield line
        if last > first:
            # filter(None, ...): blank lines dropped in C, so a newline bomb
            # costs no Python step per newline.
            for line in filter(None, chunk[first + 1 : last].split(b"\n")):
                if len(line) > max_line_bytes:
                    _line_too_long(path, max_line_bytes)
                yield line
        pending += chunk[last + 1 :]
        if len(pending) > max_line_bytes:
            _line_too_long(path, max_line_bytes)
    if pending.strip():
        yield bytes(pending)


def _line_too_long(path: Path, limit: int) -> None:
    msg = f"{path}: a line is longer than {limit} bytes; refusing to continue"
    raise DecompressionLimitError(msg, path, limit)


def parse_lines(
    lines: Iterable[bytes], on_corrupt: Callable[[int, bytes], None] | None = None
) -> Iterator[dict[str, Any]]:
    """Parse JSON lines into records; hand unparseable lines to *on_corrupt*.

    Without *on_corrupt* a damaged line raises `CorruptDataError`.
    """
    loads = orjson.loads
    for number, line in enumerate(lines, 1):
        try:
            record = loads(line)
        except orjson.JSONDecodeError:
            record = None
        if type(record) is dict:
            yield record
        elif on_corrupt is None:
            msg = f"line {number} is not a JSON object: {line[:80]!r}"
            raise CorruptDataError(msg)
        else:
            on_corrupt(number, line)


def session_files(
    directory: Path | str, stream: str = "processing", refused: list[Path] | None = None
) -> list[Path]:
    """The files of *stream* in a session folder: the session's own first, then shards by pid.

    An entry named like one that is not a regular file (a link, a FIFO, a
    folder...) is never opened; it is added to *refused* when given.
    """
    if stream not in _PACKAGE_MEMBERS:
        msg = f"stream must be one of {sorted(_PACKAGE_MEMBERS)}, got {stream!r}"
        raise ValueError(msg)
    found: list[tuple[int, Path]] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            m = _SHARD.match(entry.name)
            if not m or m.group(1) != stream:
                continue
            if entry.is_file(follow_symlinks=False):
                found.append((-1 if m.group(2) is None else int(m.group(2)), Path(entry.path)))
            elif refused is not None:
                refused.append(Path(entry.path))
    return [p for _, p in sorted(found)]


#: The raw bytes of a batch's lines, in pieces (each whole lines ending in a
#: newline) so that a block read from a file is passed on without a copy.
Raw = tuple[bytes | memoryview, ...]
#: A batch of a session file: the raw bytes of its good lines (or None when
#: lines had to be left out), those lines (each ending in a newline) and their
#: records.
Batch = tuple[Raw | None, list[bytes], list[dict[str, Any]]]
_BATCH_BYTES: Final = 64 * 1024


def _parse_batch(
    raw: Raw, lines: list[bytes], first: int, name: str, on_corrupt: Callable[[str, int], None]
) -> Batch:
    """Parse *lines*; the fast path maps orjson over all, the slow one sorts out damage."""
    try:
        records = list(map(orjson.loads, lines))
    except orjson.JSONDecodeError:
        records = []
    else:
        if len(set(map(type, records))) == 1 and type(records[0]) is dict:
            return raw, lines, records
    good_lines: list[bytes] = []
    good: list[dict[str, Any]] = []
    for number, line in enumerate(lines, first):
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            rec = None
        if type(rec) is dict:
            good_lines.append(line)
            good.append(rec)
        elif line.strip():
            on_corrupt(name, number)
    return None, good_lines, good


def session_batches(path: Path, on_corrupt: Callable[[str, int], None]) -> Iterator[Batch]:
    """Read a session file in batches of about 64 KiB of whole lines, parsed.

    Unreadable lines (not JSON, not an object, longer than `MAX_LINE_BYTES`)
    are reported to *on_corrupt* with the file name and line number, and left
    out. A last line without a newline (a file still being written) is kept,
    and given one. Every line of a batch ends in a newline.

    Each block is split once (`io.BytesIO.readlines` finds newlines with
    ``memchr``, a third faster than `bytes.split`) and its bytes are handed
    on as a view, not copied; only the line that straddles two blocks is joined.
    """
    name = path.name
    number = 1  # of the line being completed (the first line of the next batch)
    pending: list[bytes] = []  # the pieces of an unfinished line
    size = 0  # their length
    skipping = False  # inside a line longer than the cap
    with open_read(path) as fh:
        while block := fh.read(_BATCH_BYTES):
            lines = io.BytesIO(block).readlines()
            tail = lines.pop() if lines[-1][-1:] != b"\n" else b""
            if not lines:  # no newline: the unfinished line goes on
                if not skipping:
                    pending.append(block)
                    size += len(block)
                    if size > MAX_LINE_BYTES:
                        pending, size, skipping = [], 0, True
                continue
            start = len(lines[0])  # where the block's second line starts
            raw: Raw = (memoryview(block)[start : len(block) - len(tail)],)
            if pending:
                pending.append(lines[0])
                first = b"".join(pending)
                skipping = len(first) > MAX_LINE_BYTES + 1  # the cap leaves out the newline
                if not skipping:
                    lines[0] = first
                    raw = (first, *raw)
            if skipping:  # the first line ends one that is too long
                on_corrupt(name, number)
                number += 1
                del lines[0]
                skipping = False
            elif not pending:  # the block starts with a whole line
                raw = (memoryview(block)[: len(block) - len(tail)],)
            pending, size = ([tail], len(tail)) if tail else ([], 0)
            if size > MAX_LINE_BYTES:
                pending, size, skipping = [], 0, True
            if lines:
                yield _parse_batch(raw, lines, number, name, on_corrupt)
                number += len(lines)
        if skipping:
            on_corrupt(name, number)
        elif pending:
            last = b"".join(pending)
            if last.strip():
                last += b"\n"
                yield _parse_batch((last,), [last], number, name, on_corrupt)


class _Source:
    """One file of a k-way merge: its current batch and how far it was taken."""

    __slots__ = ("batches", "lines", "pos", "records", "stamps")

    def __init__(self, batches: Iterator[Batch]) -> None:
        self.batches = batches
        self.lines: list[bytes] = []
        self.records: list[dict[str, Any]] = []
        self.stamps: list[str] = []
        self.pos = 0

    def advance(self) -> bool:
        """Load the next non-empty batch; False at the end of the file."""
        for _, lines, records in self.batches:
            if records:
                self.lines, self.records, self.pos = lines, records, 0
                self.stamps = [
                    t if type(t) is str else "" for t in map(dict.get, records, repeat("timestamp"))
                ]
                return True
        return False


_SHORT_RUN: Final = 8


def _interleave(sources: list[_Source], lines: list[bytes], records: list[dict[str, Any]]) -> None:
    """Merge the sources' current batches record by record, up to the end of one of them.

    Every record up to the earliest last timestamp of the batches can be placed
    without reading further; the batch that ends there is used up.
    """
    limit = min(s.stamps[-1] for s in sources)
    parts = []
    for s in sources:
        end = bisect_right(s.stamps, limit, s.pos)
        parts.append(
            zip(s.stamps[s.pos : end], s.lines[s.pos : end], s.records[s.pos : end], strict=True)
        )
        s.pos = end
    for _, line, rec in heapq.merge(*parts, key=itemgetter(0)):
        lines.append(line)
        records.append(rec)


def merged_batches(
    files: list[Path], on_corrupt: Callable[[str, int], None], size: int = 4096
) -> Iterator[Batch]:
    """Batches of several session files, k-way merged by timestamp.

    Each file is in time order (one process appends it); on equal timestamps
    the file listed first goes first. The merge moves runs,
    not records: from the file whose next record is earliest it takes every
    record up to the next record of any other file (a bisection), so files that
    overlap little in time — a child process's burst — cost a few slices each.
    With one file its batches pass through untouched.
    """
    if len(files) == 1:
        yield from session_batches(files[0], on_corrupt)
        return
    sources = [_Source(session_batches(f, on_corrupt)) for f in files]
    sources = [s for s in sources if s.advance()]
    lines: list[bytes] = []
    records: list[dict[str, Any]] = []
    while sources:
        heads = [s.stamps[s.pos] for s in sources]
        first = min(range(len(sources)), key=heads.__getitem__)  # ties: earlier file
        src = sources[first]
        # Up to the next record of another file; on equal timestamps, files
        # listed earlier go first.
        end = len(src.records)
        if first:
            end = bisect_left(src.stamps, min(heads[:first]), src.pos, end)
        if first + 1 < len(heads):
            end = bisect_right(src.stamps, min(heads[first + 1 :]), src.pos, end)
        if end - src.pos >= _SHORT_RUN:
            lines += src.lines[src.pos : end]
            records += src.records[src.pos : end]
            src.pos = end
        else:  # files interleave finely: merge record by record up to a batch's end
            _interleave(sources, lines, records)
        for gone in [s for s in sources if s.pos == len(s.records) and not s.advance()]:
            sources.remove(gone)
        if len(records) >= size:
            yield None, lines, records
            lines, records = [], []
    if records:
        yield None, lines, records


def iter_records(
    source: Path | str,
    stream: str = "processing",
    *,
    skip_corrupt: bool = False,
) -> Iterator[dict[str, Any]]:
    """Yield the records of a session folder, a package or one JSONL file, in time order.

    *source* may be a session folder (``logs/sessions/<id>``: shards are merged
    by timestamp), a package folder (its ``logs/`` members are read, decompressing
    as needed) or a single ``.jsonl``/``.jsonl.zst`` file. *stream* picks
    ``"processing"``, ``"prompts"`` or ``"belog"`` for folders.

    Raises:
        CorruptDataError: A line is not a JSON object (unless *skip_corrupt*),
            or compressed data is damaged.
        DecompressionLimitError: A member expands past the reader's caps.
        PackageError: *source* is neither a file, a session nor a package.
    """
    path = Path(source)

    def skip(_: int, __: bytes) -> None:
        return None

    on_corrupt = skip if skip_corrupt else None
    if path.is_file() or path.is_symlink() or (path.exists() and not path.is_dir()):
        yield from parse_lines(iter_lines(path), on_corrupt)  # refuses links, FIFOs...
        return
    if (path / "logs").is_dir():
        member = _package_member(path, stream)
        if member is not None:
            yield from parse_lines(iter_lines(member, root=path), on_corrupt)
        return
    if path.is_dir():

        def damaged(name: str, number: int) -> None:
            if not skip_corrupt:
                msg = f"{name}: line {number} is not a JSON object"
                raise CorruptDataError(msg, path / name)

        for _, __, records in merged_batches(session_files(path, stream), damaged):
            yield from records
        return
    msg = f"not a session folder, package or log file: {str(path)!r}"
    raise PackageError(msg, path)


def _package_member(package: Path, stream: str) -> Path | None:
    if stream not in _PACKAGE_MEMBERS:
        msg = f"stream must be one of {sorted(_PACKAGE_MEMBERS)}, got {stream!r}"
        raise ValueError(msg)
    base = package / "logs" / _PACKAGE_MEMBERS[stream]
    for candidate in (base.with_name(base.name + ".zst"), base):
        if candidate.is_symlink() or candidate.exists():
            return candidate  # opened below the package: links and FIFOs refused there
    return None


@dataclass(frozen=True, slots=True)
class Package:
    """An execution package on disk, as returned by `read_package`.

    Attributes:
        path: The package folder.
        metadata: The parsed ``logs/metadata.json``.
        summary: The text of ``logs/execution_summary.md``.
    """

    path: Path
    metadata: dict[str, Any] = field(repr=False)
    summary: str = field(repr=False)

    @property
    def session_id(self) -> str | None:
        """The ID of the packaged session."""
        sid = self.metadata.get("session_id")
        return sid if isinstance(sid, str) else None

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record of the session (``processing.jsonl``), in time order."""
        return iter_records(self.path, "processing")

    def llm_calls(self) -> Iterator[dict[str, Any]]:
        """Every audited LLM call (``prompts_audit.jsonl``), each with its outputs."""
        return iter_records(self.path, "prompts")

    def belog_records(self) -> Iterator[dict[str, Any]]:
        """The BELog records of the run (``belog.jsonl``)."""
        return iter_records(self.path, "belog")

    def __repr__(self) -> str:
        return f"Package(path={str(self.path)!r}, session_id={self.session_id!r})"


def read_package(path: Path | str) -> Package:
    """Open the execution package at *path* (the folder holding ``logs/``).

    Metadata and summary are read at once; records are read lazily, streaming,
    through `Package.records`, `Package.llm_calls` and `Package.belog_records`.

    Raises:
        PackageError: *path* is not a package (no ``logs/metadata.json``) or its
            metadata is not a JSON object.
    """
    root = Path(path)
    meta_path = root / "logs" / "metadata.json"
    try:
        raw = read_document(meta_path, root)
    except FileNotFoundError as exc:
        msg = f"not a package (no logs/metadata.json): {str(root)!r}"
        raise PackageError(msg, root) from exc
    try:
        metadata = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        msg = f"{meta_path}: metadata.json is not valid JSON ({exc})"
        raise CorruptDataError(msg, meta_path) from exc
    if not isinstance(metadata, dict):
        msg = f"{meta_path}: metadata.json must hold a JSON object"
        raise CorruptDataError(msg, meta_path)
    summary_path = root / "logs" / "execution_summary.md"
    try:
        summary = read_document(summary_path, root).decode("utf-8", "replace")
    except FileNotFoundError:
        summary = ""
    return Package(path=root, metadata=metadata, summary=summary)
