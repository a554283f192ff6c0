"""Which files a BELog task changed: content snapshots before and after it."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__: list[str] = []


def _file_digest(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except FileNotFoundError:
        return "<missing>"
    except IsADirectoryError:
        return "<dir>"


def _watch_snapshot(paths: Sequence[Path]) -> dict[str, str]:
    snapshot: dict[str, str] = {}
    for root in paths:
        if root.is_dir():
            for path in root.rglob("*"):
                if path.is_file():
                    snapshot[str(path)] = _file_digest(path)
        else:
            snapshot[str(root)] = _file_digest(root)
    return snapshot


def _git_snapshot() -> dict[str, str]:
    """Content hashes of the paths ``git status`` reports as changed or untracked."""
    top = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], capture_output=True, check=True, text=True
    ).stdout.strip()
    out = subprocess.run(
        ["git", "-C", top, "status", "--porcelain=v1", "-z", "--untracked-files=all"],
        capture_output=True,
        check=True,
    ).stdout.decode("utf-8", "surrogateescape")
    entries = out.split("\0")
    snapshot: dict[str, str] = {}
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        status, path = entry[:2], entry[3:]
        if "R" in status or "C" in status:
            i += 1  # the rename's source path follows; the destination is what changed
        snapshot[path] = _file_digest(Path(top, path))
    return snapshot


def _changed(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
