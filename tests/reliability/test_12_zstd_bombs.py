"""Case 12: zstd bombs and truncated frames against the package reader.

Inputs, each read in a child process whose peak RSS is measured:
a small frame declaring a 1 PiB content size; a frame asking for a 2 GiB
window; a real high-ratio bomb made by the ``zstd`` program (2 GiB of zeros,
about 64 KiB compressed) as a package member; the same with newlines (2 GiB
of short lines, read with a 256 MiB output cap); and a package member cut
short. Pass: a clean `CorruptDataError`/`DecompressionLimitError`, peak RSS
under 256 MiB.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import child_json, run_child

if shutil.which("zstd") is None:  # pragma: no cover - CI images have zstd
    pytest.skip("the zstd program is not installed", allow_module_level=True)


def _declared_huge(path: Path) -> None:
    # Frame header: magic, FHD (8-byte content size), window descriptor, content
    # size 2**50, then one raw last block of 100 bytes.
    body = b"x" * 100
    header = b"\x28\xb5\x2f\xfd" + bytes([0xC0, 0x58]) + struct.pack("<Q", 1 << 50)
    block = ((len(body) << 3) | 1).to_bytes(3, "little") + body
    path.write_bytes(header + block)


def _huge_window(path: Path) -> None:
    # No content size, window descriptor asking for 2**31 bytes.
    body = b"y" * 100
    header = b"\x28\xb5\x2f\xfd" + bytes([0x00, (31 - 10) << 3])
    block = ((len(body) << 3) | 1).to_bytes(3, "little") + body
    path.write_bytes(header + block)


def _zstd_bomb(path: Path, chunk: bytes, total: int) -> None:
    """Compress *total* bytes of repeated *chunk* with the ``zstd`` program."""
    with subprocess.Popen(["zstd", "-q", "-3", "-o", str(path)], stdin=subprocess.PIPE) as proc:
        assert proc.stdin is not None
        block = chunk * ((1 << 20) // len(chunk))
        for _ in range(total // len(block)):
            proc.stdin.write(block)
        proc.stdin.close()
    assert 0 == proc.returncode


@pytest.mark.slow
class TestZstdBombs:
    """Hostile compressed input ends in a clean error with bounded memory."""

    @pytest.mark.parametrize(
        "case", ["declared-huge", "huge-window", "zeros-bomb", "lines-bomb", "truncated"]
    )
    def test_clean_error_bounded_memory(
        self, case: str, tmp_path: Path, subprocess_env: dict[str, str], figure: Any
    ) -> None:
        """A clean error, and peak RSS under 256 MiB."""
        member = tmp_path / "processing.jsonl.zst"
        if case == "declared-huge":
            _declared_huge(member)
        elif case == "huge-window":
            _huge_window(member)
        elif case == "zeros-bomb":
            _zstd_bomb(member, b"\0", 2 << 30)
        elif case == "lines-bomb":
            _zstd_bomb(member, b'{"event":"x"}\n', 2 << 30)
        else:
            lines = tmp_path / "lines"
            lines.write_bytes(b"".join(b'{"event":"x","seq":%d}\n' % i for i in range(200_000)))
            subprocess.run(["zstd", "-q", "-3", str(lines), "-o", str(member)], check=True)
            data = member.read_bytes()
            member.write_bytes(data[: len(data) * 2 // 3])
        size = member.stat().st_size
        r = child_json(run_child(subprocess_env, "read_bomb", str(member), case, timeout=240))
        figure("compressed size (bytes)", size)
        figure("error", r["error"])
        figure("peak RSS (MiB)", round(r["peak_rss_mib"], 1))
        figure("seconds", round(r["seconds"], 2))
        assert r["error"] in ("CorruptDataError", "DecompressionLimitError")
        assert r["peak_rss_mib"] < 256
