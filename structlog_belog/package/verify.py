"""JSON Schemas for records and packages, and `verify_package`.

The schemas ship in ``structlog_belog/schemas/`` (one per record kind, one for
``metadata.json``). Validating needs ``jsonschema``, imported only here and only
when a schema is used.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any, Final

import orjson

from ..exceptions import CorruptDataError
from .reader import iter_lines, parse_lines, read_package

__all__ = ["KINDS", "load_schema", "validate_metadata", "validate_record", "verify_package"]

#: Record kinds that have their own schema (DESIGN §4).
KINDS: Final = (
    "session_start",
    "session_end",
    "stage_start",
    "stage_end",
    "llm_call",
    "belog",
    "input",
    "output",
    "content",
    "metric",
    "drops",
)
_URN: Final = "urn:structlog-belog:schema:"
_SUMS_LINE: Final = re.compile(r"^(\\?)([0-9a-f]{64}) [ *](.+)$")
_MEMBERS: Final = (
    ("processing", "processing.jsonl"),
    ("prompts", "prompts_audit.jsonl"),
    ("belog", "belog.jsonl"),
)
_MAX_PROBLEMS: Final = 50


def load_schema(name: str) -> dict[str, Any]:
    """The shipped JSON Schema *name* (``"record"``, ``"metadata"`` or a record kind)."""
    path = resources.files("structlog_belog") / "schemas" / f"{name}.schema.json"
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError as exc:
        msg = f"name must be 'record', 'metadata' or one of {KINDS}, got {name!r}"
        raise ValueError(msg) from exc
    if not isinstance(data, dict):  # pragma: no cover - the shipped files are objects
        msg = f"schema {name!r} is not a JSON object"
        raise TypeError(msg)
    return data


@functools.cache
def _validators() -> dict[str, Any]:
    try:
        import jsonschema  # type: ignore[import-untyped]
        from referencing import Registry, Resource
    except ImportError as exc:
        msg = "validating against the schemas requires jsonschema: pip install jsonschema"
        raise ModuleNotFoundError(msg, name="jsonschema") from exc
    names = ("record", "metadata", *KINDS)
    schemas = {name: load_schema(name) for name in names}
    registry: Any = Registry().with_resources(
        (_URN + name, Resource.from_contents(schema)) for name, schema in schemas.items()
    )
    return {
        name: jsonschema.Draft202012Validator(schema, registry=registry)
        for name, schema in schemas.items()
    }


def record_problems(record: dict[str, Any], *, reference: bool = False) -> list[str]:
    """Schema violations of one record (empty when valid).

    The schema is chosen by ``kind``. With *reference*, ``llm_call``/``belog``
    records are checked as the short reference lines ``processing.jsonl`` holds.
    """
    kind = record.get("kind")
    if (
        not isinstance(kind, str)
        or kind not in KINDS
        or (reference and kind in ("llm_call", "belog"))
    ):
        kind = "record"
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(record)'}: {e.message}"
        for e in _validators()[kind].iter_errors(record)
    ]


def validate_record(record: dict[str, Any]) -> None:
    """Check *record* against the schema of its ``kind`` (or the common record schema).

    Raises:
        jsonschema.ValidationError: The record does not match.
        ModuleNotFoundError: jsonschema is not installed.
    """
    kind = record.get("kind")
    name = kind if isinstance(kind, str) and kind in KINDS else "record"
    _validators()[name].validate(record)


def validate_metadata(document: dict[str, Any]) -> None:
    """Check a ``metadata.json`` document against its schema.

    Raises:
        jsonschema.ValidationError: The document does not match.
        ModuleNotFoundError: jsonschema is not installed.
    """
    _validators()["metadata"].validate(document)


def _unescape(name: str) -> str:
    return name.replace("\\\\", "\0").replace("\\n", "\n").replace("\\r", "\r").replace("\0", "\\")


def check_sums(package: Path) -> Iterator[str]:
    """Problems with ``logs/SHA256SUMS``: bad lines, missing files, wrong digests, strays."""
    logs = package / "logs"
    root = package.resolve()
    try:
        text = (logs / "SHA256SUMS").read_text("utf-8", "surrogateescape")
    except OSError as exc:
        yield f"SHA256SUMS: cannot be read ({exc})"
        return
    listed = set()
    for number, line in enumerate(text.splitlines(), 1):
        m = _SUMS_LINE.match(line)
        if not m:
            yield f"SHA256SUMS:{number}: not a checksum line"
            continue
        escaped, digest, name = m.groups()
        name = _unescape(name) if escaped else name
        path = (logs / name).resolve()
        if not path.is_relative_to(root):
            yield f"SHA256SUMS:{number}: {name!r} points outside the package"
            continue
        listed.add(path)
        try:
            actual = _sha256(path)
        except OSError as exc:
            yield f"{name}: cannot be read ({exc.strerror or exc})"
            continue
        if actual != digest:
            yield f"{name}: checksum mismatch"
    for dirpath, _, filenames in os.walk(package):
        for filename in filenames:
            path = Path(dirpath, filename)
            if path.name != "SHA256SUMS" and not path.is_symlink() and path.resolve() not in listed:
                yield f"{os.path.relpath(path, logs)}: not listed in SHA256SUMS"


def _sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1024 * 1024):
            sha.update(block)
    return sha.hexdigest()


def verify_package(path: Path | str, *, schemas: bool = True) -> list[str]:
    """Check a package: checksums, that every member decompresses and parses, and schemas.

    Returns the problems found (at most 50 per member), empty when the package
    is sound.

    Raises:
        ModuleNotFoundError: *schemas* is true and jsonschema is not installed.
    """
    package = Path(path)
    problems = list(check_sums(package))
    try:
        pkg = read_package(package)
    except (OSError, ValueError) as exc:
        return [*problems, str(exc)]
    if schemas:
        problems += [f"metadata.json: {p}" for p in _metadata_problems(pkg.metadata)]
    for stream, name in _MEMBERS:
        member = next(
            (p for p in (package / "logs" / f"{name}.zst", package / "logs" / name) if p.exists()),
            None,
        )
        if member is None:
            problems.append(f"logs/{name}[.zst]: missing")
            continue
        found = 0
        try:
            for number, record in enumerate(parse_lines(iter_lines(member)), 1):
                if not schemas:
                    continue
                for problem in record_problems(record, reference=stream == "processing"):
                    found += 1
                    if found <= _MAX_PROBLEMS:
                        problems.append(f"{member.name}:{number}: {problem}")
        except CorruptDataError as exc:
            problems.append(f"{member.name}: {exc}")
    return problems


def _metadata_problems(document: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(document)'}: {e.message}"
        for e in _validators()["metadata"].iter_errors(document)
    ]
