"""Case 16: every reader refuses what it should not open, with bounded memory and time.

A real session and its package are built, then copies are made hostile: a
session file or package member replaced by a FIFO nobody writes, by a link to
a file outside (holding a marker), by ``/dev/zero`` (a link to it, and as root
a real character device made with ``mknod``), by a 500 MB line, by a 2 KiB
zstd newline bomb (64 MiB of newlines), by a 67 KB zstd bomb (2 GiB of
zeros); the summary, metadata and checksums of a package linked outside.

Every command (``sessions``, ``show``, ``tail``, ``view``, ``summary``,
``package``, ``recover``, ``verify``, ``reindex``, ``last``) and the Python API
(``iter_records``, ``read_package``, ``verify_package``) runs in its own
measured process. Pass: ends within its timeout, peak RSS ≤ 256 MiB, no
traceback, the marker never printed; the healthy crashed session beside the
bad one is still listed and recovered.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest
import zstandard

from ._hostile import Measured, belog_cli, is_root, make_session, measured, python_code

MARKER = "OUTSIDE-FILE-MARKER-31337"
RSS_CAP_MIB = 256
TIMEOUT = 60


def rle_bomb(byte: bytes, blocks: int) -> bytes:
    """A zstd frame of *blocks* RLE blocks of 128 KiB of *byte*: 4 bytes per block."""
    header = b"\x28\xb5\x2f\xfd" + bytes([0x00, (17 - 10) << 3])
    body = bytearray()
    for i in range(blocks):
        last = 1 if i == blocks - 1 else 0
        body += ((128 * 1024) << 3 | 1 << 1 | last).to_bytes(3, "little") + byte
    return header + bytes(body)


def _outside(root: Path) -> Path:
    outside = root / "outside.jsonl"
    outside.write_bytes(orjson.dumps({"event": MARKER, "kind": "session_start"}) + b"\n")
    return outside


def _dev_zero(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))


def _hostile_file(path: Path, how: str, root: Path) -> None:
    """Make *path* hostile in the way *how* names."""
    path.unlink(missing_ok=True)
    if how == "fifo":
        os.mkfifo(path)
    elif how == "link-out":
        src = _outside(root)
        if path.name.endswith(".zst"):
            zst = root / "outside.jsonl.zst"
            zst.write_bytes(zstandard.ZstdCompressor().compress(src.read_bytes()))
            src = zst
        path.symlink_to(src)
    elif how == "link-devzero":
        path.symlink_to("/dev/zero")
    elif how == "devzero":
        _dev_zero(path)
    elif how == "long-line":
        with open(path, "wb") as fh:
            fh.write(b'{"event": "before"}\n')
            fh.truncate(500_000_000)  # one 500 MB line of NULs, no newline
    elif how == "newline-bomb":
        path.write_bytes(rle_bomb(b"\n", 512))  # 2 KiB -> 64 MiB of newlines
    elif how == "zeros-bomb":
        path.write_bytes(rle_bomb(b"\0", 16384))  # 64 KiB -> 2 GiB of zeros
    else:  # pragma: no cover
        raise AssertionError(how)


HOWS = ["fifo", "link-out", "link-devzero", "devzero", "long-line", "newline-bomb", "zeros-bomb"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real session and its package, built once for the module."""
    from tests.conftest import REPO_ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith("BELOG_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    root = tmp_path_factory.mktemp("hostile-base")
    make_session(root, env)
    return root


def _copy(built: Path, root: Path) -> tuple[Path, Path, Path]:
    """The base copied under *root*; a healthy crashed session beside; (logs, session, package)."""
    shutil.copytree(built / "logs", root / "logs", symlinks=True)
    shutil.copytree(built / "packages", root / "packages", symlinks=True)
    (session,) = (root / "logs" / "sessions").iterdir()
    (package,) = (root / "packages").iterdir()
    for name in ("sess_2000-01-01_00-00-00_aaaaaaaa", "sess_2000-01-01_00-00-01_bbbbbbbb"):
        crashed = root / "logs" / "sessions" / name
        shutil.copytree(session, crashed)
        (crashed / "packaged.json").unlink(missing_ok=True)
        own = crashed / "processing.jsonl"
        kept = [
            line
            for line in own.read_bytes().splitlines(keepends=True)
            if b'"session_end"' not in line
        ]
        own.write_bytes(b"".join(kept))
    return root / "logs", root / "logs" / "sessions" / "sess_2000-01-01_00-00-00_aaaaaaaa", package


def _check(run: Measured, figure: Any, name: str) -> None:
    figure(
        f"{name}: rc / seconds / peak RSS MiB",
        f"{run.rc} / {run.seconds:.2f} / {run.peak_rss_mib:.0f}",
    )
    assert "timeout" != run.rc, f"{name} hung"
    assert run.peak_rss_mib <= RSS_CAP_MIB, name
    assert "Traceback" not in run.stderr, f"{name}: {run.stderr[-3000:]}"
    assert MARKER not in run.stdout + run.stderr, name


def _skip_devzero(how: str) -> None:
    if how == "devzero" and not is_root():
        pytest.skip("mknod of a character device needs root")


@pytest.mark.slow
class TestHostileSessionFiles:
    """A bad session file is refused or read within bounds; the folder still works."""

    @pytest.mark.parametrize("how", HOWS)
    def test_every_command_bounded(
        self, how: str, built: Path, tmp_path: Path, subprocess_env: dict[str, str], figure: Any
    ) -> None:
        """sessions/show/tail/view/summary/package/recover and iter_records: bounded, no leak."""
        _skip_devzero(how)
        logs, bad, _ = _copy(built, tmp_path)
        target = bad / ("processing.jsonl.zst" if how.endswith("bomb") else "processing.jsonl")
        if how.endswith("bomb"):
            # A session's own file is plain JSONL; a bomb there is a shard named .zst
            # for the store's reindex, and the plain file gets the long line.
            _hostile_file(bad / "belog.jsonl.zst", how, tmp_path)
            _hostile_file(bad / "processing.jsonl", "long-line", tmp_path)
        else:
            _hostile_file(target, how, tmp_path)
        sid = bad.name
        d = ["--log-dir", str(logs), "--package-dir", str(tmp_path / "out")]
        commands = {
            "sessions": belog_cli(*d, "sessions", "--idle", "0"),
            "show": belog_cli(*d, "show", sid),
            "tail": belog_cli(*d, "tail", sid),
            "view": belog_cli(*d, "view", sid),
            "summary": belog_cli(*d, "summary", sid),
            "package": belog_cli(*d, "package", sid),
            "recover": belog_cli(*d, "recover", "--idle", "0"),
            "reindex": belog_cli(*d, "reindex"),
            "last": belog_cli(*d, "last"),
            "iter_records": python_code(
                """
                import sys
                from structlog_belog import iter_records
                try:
                    for _ in iter_records(sys.argv[1]):
                        pass
                except OSError as exc:
                    print("error:", exc, file=sys.stderr)
                """,
                str(bad),
            ),
        }
        runs = {
            name: measured(cmd, subprocess_env, timeout=TIMEOUT) for name, cmd in commands.items()
        }
        for name, run in runs.items():
            _check(run, figure, name)
        figure("peak RSS max (MiB)", round(max(r.peak_rss_mib for r in runs.values())))
        figure("seconds max", round(max(r.seconds for r in runs.values()), 2))
        assert "sess_2000-01-01_00-00-01_bbbbbbbb" in runs["sessions"].stdout
        recovered = list((tmp_path / "out").glob("*"))
        assert any(
            orjson.loads((p / "logs" / "metadata.json").read_bytes())["session_id"]
            == "sess_2000-01-01_00-00-01_bbbbbbbb"
            for p in recovered
        ), runs["recover"].stdout + runs["recover"].stderr


@pytest.mark.slow
class TestHostilePackages:
    """A bad package member, summary, metadata or checksum list is refused within bounds."""

    @pytest.mark.parametrize(
        ("member", "how"),
        [
            (member, how)
            for how in HOWS
            for member in (
                "logs/processing.jsonl.zst",
                "logs/execution_summary.md",
                "logs/metadata.json",
                "logs/SHA256SUMS",
            )
            # Decompression bombs only make sense as compressed members.
            if not how.endswith("bomb") or member.endswith(".zst")
        ],
    )
    def test_every_reader_bounded(
        self,
        member: str,
        how: str,
        built: Path,
        tmp_path: Path,
        subprocess_env: dict[str, str],
        figure: Any,
    ) -> None:
        """show/view/summary/verify and read_package/verify_package: bounded, no leak."""
        _skip_devzero(how)
        _, _, package = _copy(built, tmp_path)
        _hostile_file(package / member, how, tmp_path)
        p = str(package)
        commands = {
            "show": belog_cli("show", p),
            "view": belog_cli("view", p),
            "summary": belog_cli("summary", p, "--raw"),
            "verify": belog_cli("verify", p),
            "api": python_code(
                """
                import sys
                from structlog_belog import read_package
                from structlog_belog.package.verify import verify_package
                try:
                    pkg = read_package(sys.argv[1])
                    print(len(pkg.summary), sum(1 for _ in pkg.records()))
                except OSError as exc:
                    print("error:", exc, file=sys.stderr)
                print(verify_package(sys.argv[1])[:5])
                """,
                p,
            ),
        }
        runs = {
            name: measured(cmd, subprocess_env, timeout=TIMEOUT) for name, cmd in commands.items()
        }
        for name, run in runs.items():
            _check(run, figure, name)
        assert 0 != runs["verify"].rc
        figure("peak RSS max (MiB)", round(max(r.peak_rss_mib for r in runs.values())))
        figure("seconds max", round(max(r.seconds for r in runs.values()), 2))
