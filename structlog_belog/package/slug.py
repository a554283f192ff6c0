"""Safe package names, and package folders that cannot be redirected.

A package folder's name comes from the session title, which may come from
anywhere. `slugify` turns any title into one short, ASCII, single path
component; `place_package` moves a finished package into ``package_dir`` under
a name nobody else holds, without ever following a link someone planted there.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Final

__all__ = ["package_name", "place_package", "prepare_root", "slugify"]

_UNSAFE: Final = re.compile(r"[^a-z0-9_]+")
_MAX_ATTEMPTS: Final = 1000


def slugify(title: str, *, max_length: int = 64) -> str:
    """Return a safe, single path component for *title*.

    ASCII letters, digits, ``_`` and ``-`` only, lower case, no leading or
    trailing separator, at most *max_length* characters. Path separators,
    ``..``, NUL and control characters cannot survive. A title with nothing
    ASCII left in it becomes ``session-<8 hex of its hash>``.
    """
    if max_length < 16:
        msg = f"max_length must be at least 16, got {max_length!r}"
        raise ValueError(msg)
    ascii_text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    slug = _UNSAFE.sub("-", ascii_text.lower()).strip("-_")
    slug = slug[:max_length].rstrip("-_")
    if not slug:
        digest = hashlib.sha256(title.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        slug = f"session-{digest}"
    return slug


def package_name(title: str, when: datetime) -> str:
    """``<slug>-YYYY-mm-dd-HH-MM`` for a package of *title* created at *when*."""
    return f"{slugify(title)}-{when:%Y-%m-%d-%H-%M}"


def prepare_root(package_dir: Path | str) -> Path:
    """Create *package_dir* (0700) if missing and return its resolved path.

    The root itself may be a link the user made on purpose; everything below it
    is created by us and never followed.
    """
    root = Path(package_dir)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    root = root.resolve(strict=True)
    if not root.is_dir():
        msg = f"package_dir must be a directory, got {str(package_dir)!r}"
        raise NotADirectoryError(msg)
    return root


def place_package(built: Path, root: Path, name: str) -> Path:
    """Move the finished folder *built* (inside *root*) to ``root/name[-N]``.

    The name is claimed with ``mkdir``, which fails on anything already there
    (a folder, a file, a planted link); then *built* is renamed over our own
    empty folder. If the claimed folder is swapped for something else in the
    meantime, ``rename`` fails and the next suffix is tried: a package can land
    only in a new folder directly inside *root*.

    Raises:
        FileExistsError: No free name was found after many attempts.
    """
    if os.sep in name or name in ("", ".", ".."):
        msg = f"name must be a single path component, got {name!r}"
        raise ValueError(msg)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for n in range(1, _MAX_ATTEMPTS + 1):
            candidate = name if n == 1 else f"{name}-{n}"
            try:
                os.mkdir(candidate, 0o700, dir_fd=fd)
            except FileExistsError:
                continue
            try:
                os.rename(built.name, candidate, src_dir_fd=fd, dst_dir_fd=fd)
            except OSError:
                _rmdir_quietly(candidate, fd)
                continue
            return root / candidate
    finally:
        os.close(fd)
    msg = f"no free package name for {name!r} in {str(root)!r}"
    raise FileExistsError(msg)


def _rmdir_quietly(name: str, dir_fd: int) -> None:
    try:
        os.rmdir(name, dir_fd=dir_fd)
    except OSError:
        pass
