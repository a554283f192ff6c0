"""The reader: streaming, capped decompression and record iterators."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from structlog_belog import iter_records, read_package
from structlog_belog.exceptions import CorruptDataError, DecompressionLimitError, PackageError
from structlog_belog.package import reader as _reader
from structlog_belog.package.reader import (
    iter_lines,
    merged_batches,
    parse_lines,
    session_batches,
    session_files,
)
from tests.session_files import full_session, rec, session_dir, write

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
records = st.lists(st.dictionaries(st.text(min_size=1), json_values, max_size=5), max_size=30)


def _zst(path: Path, data: bytes, *, frames: int = 1, level: int = 3) -> Path:
    cctx = zstandard.ZstdCompressor(level=level)
    step = max(1, len(data) // frames)
    parts = [data[i : i + step] for i in range(0, len(data), step)] or [b""]
    path.write_bytes(b"".join(cctx.compress(p) for p in parts))
    return path


def _bomb(path: Path, size: int, byte: bytes = b"0") -> Path:
    """A small .zst file that expands to *size* bytes of *byte* (no newline)."""
    cobj = zstandard.ZstdCompressor(level=1).compressobj()
    block = byte * (1024 * 1024)
    with open(path, "wb") as fh:
        for _ in range(size // len(block)):
            fh.write(cobj.compress(block))
        fh.write(cobj.flush())
    return path


class TestIterLines:
    @settings(
        max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(records, st.integers(1, 4))
    def test_round_trip(self, tmp_path: Path, recs: list[dict[str, object]], frames: int) -> None:
        """Records written as JSONL, compressed in one or several frames, read back equal."""
        data = b"".join(orjson.dumps(r) + b"\n" for r in recs)
        zst = _zst(tmp_path / "r.jsonl.zst", data, frames=frames)
        plain = tmp_path / "r.jsonl"
        plain.write_bytes(data)
        assert recs == list(parse_lines(iter_lines(zst)))
        assert recs == list(parse_lines(iter_lines(plain)))

    def test_long_lines_across_chunks(self, tmp_path: Path) -> None:
        """Lines longer than a read chunk are reassembled."""
        lines = [b"x" * 700_000, b"y", b"z" * 300_000]
        zst = _zst(tmp_path / "long.zst", b"\n".join(lines) + b"\n")
        assert lines == list(iter_lines(zst))

    def test_final_line_without_newline(self, tmp_path: Path) -> None:
        """A last line with no newline is still yielded; blank lines are not."""
        path = tmp_path / "a.jsonl"
        path.write_bytes(b'{"a":1}\n\n{"b":2}')
        assert [b'{"a":1}', b'{"b":2}'] == list(iter_lines(path))

    def test_zstd_detected_by_magic(self, tmp_path: Path) -> None:
        """A zstd file without the .zst suffix is still decompressed."""
        path = _zst(tmp_path / "noext.jsonl", b'{"a":1}\n')
        assert [b'{"a":1}'] == list(iter_lines(path))

    def test_truncated_frame(self, tmp_path: Path) -> None:
        """A .zst cut inside a frame raises CorruptDataError naming the file."""
        data = b"".join(orjson.dumps(rec(i, f"event {i}")) + b"\n" for i in range(2000))
        good = _zst(tmp_path / "good.zst", data).read_bytes()
        cut = tmp_path / "cut.jsonl.zst"
        cut.write_bytes(good[: len(good) // 2])
        with pytest.raises(CorruptDataError, match="truncated zstd frame") as info:
            list(iter_lines(cut))
        assert cut == info.value.path

    def test_garbage(self, tmp_path: Path) -> None:
        """Bytes that are not zstd after a valid frame raise CorruptDataError."""
        path = tmp_path / "bad.zst"
        path.write_bytes(zstandard.ZstdCompressor().compress(b"ok\n") + b"\x00garbage" * 10)
        with pytest.raises(CorruptDataError, match="not valid zstd data"):
            list(iter_lines(path))

    def test_bomb_line_cap(self, tmp_path: Path) -> None:
        """A zstd bomb (1 GiB, no newline) stops at the line cap with a clear error."""
        bomb = _bomb(tmp_path / "bomb.jsonl.zst", 1024 * 1024 * 1024)
        assert bomb.stat().st_size < 1024 * 1024
        with pytest.raises(DecompressionLimitError, match="longer than") as info:
            list(iter_lines(bomb, max_line_bytes=8 * 1024 * 1024))
        assert 8 * 1024 * 1024 == info.value.limit

    def test_bomb_output_cap(self, tmp_path: Path) -> None:
        """A bomb of empty lines stops at the output cap."""
        bomb = _bomb(tmp_path / "newlines.zst", 64 * 1024 * 1024, b"\n")
        with pytest.raises(DecompressionLimitError, match="decompresses to more than"):
            list(iter_lines(bomb, max_output_bytes=4 * 1024 * 1024))

    def test_bomb_memory_is_bounded(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """With default caps, reading a 1 GiB bomb errors out with bounded peak memory."""
        bomb = _bomb(tmp_path / "bomb.zst", 1024 * 1024 * 1024)
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the parent.
        code = (
            "from pathlib import Path\n"
            "from structlog_belog.package.reader import iter_lines\n"
            "from structlog_belog.exceptions import DecompressionLimitError\n"
            "try:\n"
            f"    list(iter_lines({str(bomb)!r}))\n"
            "except DecompressionLimitError as e:\n"
            "    status = Path('/proc/self/status').read_text().splitlines()\n"
            "    print('limit', next(x.split()[1] for x in status if x.startswith('VmHWM')))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True,
            check=True,
        ).stdout.split()  # fmt: skip
        assert "limit" == out[0]
        assert int(out[1]) < 400 * 1024  # KiB: far below the 1 GiB the bomb expands to


def _expected_batches(data: bytes, cap: int) -> tuple[list[bytes], list[int]]:
    """What session_batches must give: the good lines and the numbers of the bad ones."""
    good, bad = [], []
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    for number, line in enumerate(lines, 1):
        try:
            ok = len(line) <= cap and type(orjson.loads(line)) is dict
        except orjson.JSONDecodeError:
            ok = False
        if ok:
            good.append(line)
        elif line.strip():
            bad.append(number)
    return good, bad


line_kinds = st.lists(
    st.one_of(
        st.integers(0, 40).map(lambda n: orjson.dumps({"e": "x" * n})),
        st.sampled_from([b"", b"  ", b"not json", b"[1]", b'{"cut']),
    ),
    max_size=25,
)


class TestSessionBatches:
    @settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(lines=line_kinds, block=st.integers(1, 30), newline_at_end=st.booleans())
    def test_blocks_of_any_size(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        lines: list[bytes],
        block: int,
        newline_at_end: bool,
    ) -> None:
        """Lines across, within and over blocks: the lines, bytes and damage of a plain split.

        The cap (30 bytes here) is exact when it is at least the block size, as in use.
        """
        monkeypatch.setattr(_reader, "_BATCH_BYTES", block)
        monkeypatch.setattr(_reader, "MAX_LINE_BYTES", 30)
        data = b"\n".join(lines) + (b"\n" if newline_at_end and lines else b"")
        path = tmp_path / f"{uuid.uuid4().hex}.jsonl"
        path.write_bytes(data)
        bad: list[int] = []
        got_lines: list[bytes] = []
        got_raw = b""
        for raw, batch_lines, recs in session_batches(path, lambda _, n: bad.append(n)):
            assert [orjson.loads(x) for x in batch_lines] == recs
            assert all(x.endswith(b"\n") for x in batch_lines)
            got_lines += [x[:-1] for x in batch_lines]
            got_raw += b"".join(batch_lines if raw is None else raw)
        good, expected_bad = _expected_batches(data, 30)
        assert good == got_lines
        assert b"".join(x + b"\n" for x in good) == got_raw
        assert expected_bad == bad


class TestLineCaps:
    @pytest.mark.parametrize(
        "data",
        [
            b"a\n" + b"x" * 50 + b"\nb\n",  # a long line between two short ones
            b"a\n" + b"x" * 50,  # a long last line without its newline
            b"x" * (256 * 1024 + 5) + b"\n",  # a long line spanning two reads
        ],
    )
    def test_any_long_line_is_refused(self, tmp_path: Path, data: bytes) -> None:
        """A line past max_line_bytes raises wherever it sits in the read chunks."""
        path = tmp_path / "long.jsonl"
        path.write_bytes(data)
        limit = 256 * 1024 + 2 if len(data) > 1000 else 10
        with pytest.raises(DecompressionLimitError) as info:
            list(iter_lines(path, max_line_bytes=limit))
        assert (limit, path) == (info.value.limit, info.value.path)

    def test_leading_blank_line_is_skipped(self, tmp_path: Path) -> None:
        """An empty first line yields nothing; the lines after it do."""
        path = tmp_path / "blank.jsonl"
        path.write_bytes(b"\nabc\n\ndef\n")
        assert [b"abc", b"def"] == list(iter_lines(path))

    def test_session_batches_skip_over_long_lines(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Lines past MAX_LINE_BYTES in a session file are reported and skipped; reading goes on."""
        monkeypatch.setattr(_reader, "MAX_LINE_BYTES", 100)
        path = tmp_path / "processing.jsonl"
        block = _reader._BATCH_BYTES
        path.write_bytes(
            orjson.dumps(rec(1, "a")) + b"\n"
            + b"x" * (3 * block) + b"\n"  # spans whole batches, ends alone in one
            + b"y" * (block - 1) + b"\n"  # ends exactly at a batch boundary
            + orjson.dumps(rec(2, "b")) + b"\n"
            + b"z" * 200  # still being written, already too long
        )  # fmt: skip
        damaged: list[tuple[str, int]] = []
        events = [
            r["event"]
            for _, __, records in _reader.session_batches(path, lambda *a: damaged.append(a))
            for r in records
        ]
        assert ["a", "b"] == events
        assert [
            ("processing.jsonl", 2),
            ("processing.jsonl", 3),
            ("processing.jsonl", 5),
        ] == damaged


class TestParseLines:
    def test_strict_and_reported(self) -> None:
        """A line that is no JSON object raises without on_corrupt, and is reported with it."""
        lines = [b'{"a": 1}', b"{oops", b"[1]", b'{"b": 2}']
        with pytest.raises(CorruptDataError, match="line 2 is not a JSON object"):
            list(parse_lines(lines))
        bad: list[tuple[int, bytes]] = []
        assert [{"a": 1}, {"b": 2}] == list(parse_lines(lines, lambda n, b: bad.append((n, b))))
        assert [(2, b"{oops"), (3, b"[1]")] == bad


class TestMergedBatches:
    @settings(
        max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        st.lists(st.lists(st.integers(0, 30), max_size=40), min_size=1, max_size=4),
        st.integers(1, 7),
    )
    def test_stable_time_order(self, tmp_path: Path, shards: list[list[int]], size: int) -> None:
        """Shards merge into timestamp order; equal timestamps keep file order, then line order."""
        folder = tmp_path / uuid.uuid4().hex
        folder.mkdir()
        files = []
        expected = []
        for f, seconds in enumerate(shards):
            path = folder / f"processing.{f}.jsonl"
            path.write_bytes(b"".join(orjson.dumps(rec(t, f"{f}:{i}")) + b"\n"
                                      for i, t in enumerate(sorted(seconds))))  # fmt: skip
            files.append(path)
            expected += [(t, f, i) for i, t in enumerate(sorted(seconds))]
        got = [r["event"] for _, __, rs in merged_batches(files, lambda *_: None, size) for r in rs]
        assert [f"{f}:{i}" for _, f, i in sorted(expected)] == got


class TestIterRecords:
    def test_session_folder(self, tmp_path: Path) -> None:
        """A session folder's shards are merged in time order."""
        d = full_session(tmp_path)
        stamps = [r["timestamp"] for r in iter_records(d)]
        assert 15 == len(stamps)
        assert sorted(stamps) == stamps
        assert ["c1", "c2"] == [r["call_id"] for r in iter_records(d, "prompts")]

    def test_corrupt_line_strict_and_skipped(self, tmp_path: Path) -> None:
        """A damaged line raises by default and is skipped with skip_corrupt."""
        d = session_dir(tmp_path)
        write(d / "processing.jsonl", [rec(1, "a"), b"{oops\n", rec(2, "b")])
        with pytest.raises(CorruptDataError, match="line 2"):
            list(iter_records(d))
        assert ["a", "b"] == [r["event"] for r in iter_records(d, skip_corrupt=True)]

    def test_single_file(self, tmp_path: Path) -> None:
        """A single JSONL file can be read directly."""
        path = write(tmp_path / "x.jsonl", [rec(1, "only")])
        assert ["only"] == [r["event"] for r in iter_records(path)]

    def test_not_a_source(self, tmp_path: Path) -> None:
        """A missing path raises PackageError naming it."""
        with pytest.raises(PackageError, match="not a session folder"):
            list(iter_records(tmp_path / "nope"))

    def test_single_file_skipping_damage(self, tmp_path: Path) -> None:
        """A single JSONL file read with skip_corrupt leaves damaged lines out."""
        path = write(tmp_path / "x.jsonl", [rec(1, "a"), b"{oops\n", rec(2, "b")])
        assert ["a", "b"] == [r["event"] for r in iter_records(path, skip_corrupt=True)]

    def test_bad_stream_of_a_package(self, tmp_path: Path) -> None:
        """An unknown stream name is refused for a package too."""
        (tmp_path / "pkg" / "logs").mkdir(parents=True)
        with pytest.raises(ValueError, match="stream must be one of"):
            list(iter_records(tmp_path / "pkg", "bogus"))

    def test_bad_stream(self, tmp_path: Path) -> None:
        """An unknown stream name is refused."""
        with pytest.raises(ValueError, match="stream must be one of"):
            session_files(session_dir(tmp_path), "bogus")

    def test_shard_order(self, tmp_path: Path) -> None:
        """The session's own file comes first, then shards by pid, links ignored."""
        d = session_dir(tmp_path)
        for name in ("processing.20.jsonl", "processing.3.jsonl", "processing.jsonl",
                     "prompts.jsonl", "processing.x.jsonl"):  # fmt: skip
            (d / name).touch()
        (d / "processing.7.jsonl").symlink_to(d / "processing.jsonl")
        names = [p.name for p in session_files(d)]
        assert ["processing.jsonl", "processing.3.jsonl", "processing.20.jsonl"] == names


class TestReadPackage:
    def test_not_a_package(self, tmp_path: Path) -> None:
        """A folder without logs/metadata.json is not a package."""
        with pytest.raises(PackageError, match="not a package"):
            read_package(tmp_path)

    def test_bad_metadata(self, tmp_path: Path) -> None:
        """Invalid or non-object metadata.json raises CorruptDataError."""
        (tmp_path / "logs").mkdir()
        (tmp_path / "logs" / "metadata.json").write_text("{nope")
        with pytest.raises(CorruptDataError, match="not valid JSON"):
            read_package(tmp_path)
        (tmp_path / "logs" / "metadata.json").write_text("[]")
        with pytest.raises(CorruptDataError, match="JSON object"):
            read_package(tmp_path)

    def test_members(self, tmp_path: Path) -> None:
        """Metadata and summary are loaded; members are iterated, zstd or plain."""
        logs = tmp_path / "logs"
        logs.mkdir()
        (logs / "metadata.json").write_text('{"session_id": "sess_x"}')
        _zst(logs / "processing.jsonl.zst", orjson.dumps(rec(1, "p")) + b"\n")
        write(logs / "prompts_audit.jsonl", [rec(2, "c")])
        pkg = read_package(tmp_path)
        assert "sess_x" == pkg.session_id
        assert "" == pkg.summary
        assert ["p"] == [r["event"] for r in pkg.records()]
        assert ["c"] == [r["event"] for r in pkg.llm_calls()]
        assert [] == list(pkg.belog_records())
        assert f"Package(path={str(tmp_path)!r}, session_id='sess_x')" == repr(pkg)
