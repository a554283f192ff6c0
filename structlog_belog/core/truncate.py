"""ValueTruncator: cap long string and bytes values, keeping head, tail, length and hash."""

from __future__ import annotations

import hashlib
from typing import Any, Final

__all__ = ["ValueTruncator", "cap_bytes", "cap_text", "rebuilt_like"]

# A tuple, not an X | Y union: isinstance with a union is several times slower.
_CONTAINERS: Final = (dict, list, tuple, set, frozenset)

# Hash long strings piecewise: never one encoded copy of the whole value.
_HASH_CHUNK: Final = 1 << 15
_SCALARS: Final = (int, float, bool)
# A cap leaves room for the marker (about 100 characters) and some text, so
# a capped value always fits its cap and capping is idempotent.
_MIN_CAP: Final = 256


class ValueTruncator:
    """Cap every string value longer than *max_chars*, nested ones too.

    A capped string keeps its head and tail around a marker that states the
    original length and the SHA-256 of the original (of its UTF-8 encoding,
    lone surrogates passed through), so the full value can be recognised
    later without being stored::

        head...[truncated 10485760 chars, sha256:9f86d0...]...tail

    The result is at most *max_chars* long. ``bytes`` and ``bytearray`` values
    longer than *max_bytes* are capped the same way (``bytes`` result,
    ``[truncated N bytes, sha256:…]``). Idempotent; the top-level event dict
    is changed in place, nested containers are copied when changed, never
    mutated. Cycle-safe; containers deeper than *max_depth* are left as they
    are (the renderer bounds them).

    Args:
        max_chars: Cap for ``str`` values, at least 256.
        max_bytes: Cap for ``bytes``; defaults to *max_chars*.
        max_depth: How deep nested containers are walked.

    Raises:
        ValueError: A cap below 256 or a *max_depth* below 1; the message names
            the argument.
    """

    __slots__ = ("_max_depth", "max_bytes", "max_chars")

    def __init__(
        self, max_chars: int = 131_072, *, max_bytes: int | None = None, max_depth: int = 64
    ) -> None:
        if max_bytes is None:
            max_bytes = max_chars
        for name, value in (
            ("max_chars", max_chars),
            ("max_bytes", max_bytes),
            ("max_depth", max_depth),
        ):
            least = 1 if name == "max_depth" else _MIN_CAP
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                msg = f"{name} must be an int of at least {least}, got {value!r}"
                raise ValueError(msg)
        self.max_chars = max_chars
        self.max_bytes = max_bytes
        self._max_depth = max_depth

    def __repr__(self) -> str:
        return f"ValueTruncator(max_chars={self.max_chars}, max_bytes={self.max_bytes})"

    def __call__(self, _: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        self.cap_fields(event_dict)
        return event_dict

    def cap_fields(self, event_dict: dict[str, Any]) -> bool:
        """Cap *event_dict*'s values in place, as the processor does; return whether any changed.

        The record path renders a record again only when this is true.
        """
        limit = self.max_chars
        changed = False
        for key, value in event_dict.items():
            tp = type(value)
            if tp is str:
                if len(value) > limit:
                    event_dict[key] = self.truncate(value)
                    changed = True
            elif value is None or tp in _SCALARS:
                continue
            else:
                new = self._walk(value, 1, None)
                if new is not value:
                    event_dict[key] = new
                    changed = True
        return changed

    def truncate(self, text: str) -> str:
        """Return *text* capped (unchanged when it is short enough)."""
        return cap_text(text, self.max_chars)

    def truncate_bytes(
        self, data: bytes | bytearray | memoryview
    ) -> bytes | bytearray | memoryview:
        """Return *data* capped as ``bytes`` (unchanged when short enough)."""
        return cap_bytes(data, self.max_bytes)

    def _walk(self, obj: Any, depth: int, path: set[int] | None) -> Any:
        if isinstance(obj, str):
            return self.truncate(obj)
        if isinstance(obj, (bytes, bytearray)):
            return self.truncate_bytes(obj)
        if depth > self._max_depth or not isinstance(obj, _CONTAINERS):
            return obj
        oid = id(obj)
        if path is None:
            path = set()
        elif oid in path:
            return obj
        path.add(oid)
        try:
            if isinstance(obj, dict):
                return self._walk_dict(obj, depth, path)
            return self._walk_items(obj, depth, path)
        finally:
            path.discard(oid)

    def _walk_dict(self, obj: dict[Any, Any], depth: int, path: set[int]) -> dict[Any, Any]:
        out: dict[Any, Any] | None = None
        limit = self.max_chars
        for key, value in obj.items():
            tp = type(value)
            # Short strings and scalars, the bulk of any payload, cost no call.
            if (tp is str and len(value) <= limit) or value is None or tp in _SCALARS:
                continue
            new = self._walk(value, depth + 1, path)
            if new is not value:
                if out is None:
                    out = dict(obj)
                out[key] = new
        return obj if out is None else out

    def _walk_items(self, obj: Any, depth: int, path: set[int]) -> Any:
        items: list[Any] | None = None
        limit = self.max_chars
        for i, value in enumerate(obj):
            tp = type(value)
            if (tp is str and len(value) <= limit) or value is None or tp in _SCALARS:
                continue
            new = self._walk(value, depth + 1, path)
            if new is not value:
                if items is None:
                    items = list(obj)
                items[i] = new
        return obj if items is None else rebuilt_like(obj, items)


def cap_text(text: str, max_chars: int) -> str:
    """*text* cut to *max_chars* (at least 256): head, marker with length and SHA-256, tail."""
    n = len(text)
    if n <= max_chars:
        return text
    digest = hashlib.sha256()
    for i in range(0, n, _HASH_CHUNK):
        digest.update(text[i : i + _HASH_CHUNK].encode("utf-8", "surrogatepass"))
    head = (max_chars - _LONGEST_MARKER) // 2
    marker = _marker(n, digest.hexdigest(), "chars")
    # One join: no intermediate head+marker copy.
    return "".join((text[:head], marker, text[n - head :]))


def cap_bytes(
    data: bytes | bytearray | memoryview, max_bytes: int
) -> bytes | bytearray | memoryview:
    """*data* cut to *max_bytes* (at least 256) as ``bytes``, like `cap_text`."""
    n = len(data)
    if n <= max_bytes:
        return data
    digest = hashlib.sha256(memoryview(data)).hexdigest()
    head = (max_bytes - _LONGEST_MARKER) // 2
    marker = _marker(n, digest, "bytes").encode("utf-8")
    return b"".join((data[:head], marker, data[n - head :]))


def rebuilt_like(original: Any, items: list[Any]) -> Any:
    """*items* as a container of *original*'s kind: list, tuple, or set (else a list)."""
    if isinstance(original, list):
        return items
    if isinstance(original, tuple):
        return tuple(items)
    try:
        return type(original)(items)
    except Exception:  # noqa: BLE001 - unhashable replacements in a set, odd subclasses
        return items


def _marker(length: int, digest: str, unit: str) -> str:
    # ASCII on purpose: "…" would make an ASCII value a 2-byte-per-char str,
    # doubling the memory of every capped value.
    return f"...[truncated {length} {unit}, sha256:{digest}]..."


# Room taken by the longest marker: head and tail share the rest of the cap.
_LONGEST_MARKER: Final = len(_marker(10**18, "0" * 64, "chars"))
