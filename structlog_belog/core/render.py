"""render_jsonl: event dict → exactly one valid JSON line, whatever it holds.

Fast path: one ``orjson.dumps`` call. Only when orjson refuses the record
(lone surrogates, ints beyond 64 bits, non-string keys, cycles, nesting
deeper than orjson's limit, an object whose ``repr`` raises …) is the record
copied into a JSON-safe form and rendered again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any, Final

import orjson

from .redact import Vetted, VettedList

__all__ = ["as_written", "render_jsonl"]

# Tuples, not X | Y unions: isinstance with a union is several times slower.
_CONTAINERS: Final = (dict, list, tuple, set, frozenset)
_BYTES: Final = (bytes, bytearray, memoryview)
_WALKED: Final = (dict, list, tuple)
#: Values that are finite or not numbers; Vetted ones were built finite.
_LEAVES: Final = frozenset((str, int, bool, float, type(None), Vetted, VettedList))
_is_float: Final = float.__instancecheck__

_OPTIONS: Final = orjson.OPT_APPEND_NEWLINE
# Characters JSON leaves raw that line splitters other than "\n" break on
# (str.splitlines, JavaScript): NEL, LINE SEPARATOR, PARAGRAPH SEPARATOR.
_LINE_BREAKS: Final = (
    (b"\xc2\x85", b"\\u0085"),
    (b"\xe2\x80\xa8", b"\\u2028"),
    (b"\xe2\x80\xa9", b"\\u2029"),
)
# Deeper than this the slow path writes a placeholder (orjson stops at 255).
_MAX_DEPTH: Final = 200
_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1


def render_jsonl(_: Any, __: str, event_dict: Any, *, finite: bool = False) -> bytes:
    """Render *event_dict* as one UTF-8 JSON line ending in exactly one ``\\n``.

    Never raises. Values orjson does not know are written as text: ``bytes``
    decoded as UTF-8 (invalid bytes escaped as ``\\xNN``), sets as lists,
    paths as strings, anything else by its ``repr`` — or, when that raises,
    ``"<unrepresentable TypeName>"``. Lone surrogates are escaped as
    ``\\udXXX`` text, ints beyond 64 bits become strings, NaN and ±Infinity
    become the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``, non-string
    keys are stringified, cycles become ``"<cycle: dict>"`` and nesting deeper
    than 200 levels ``"<nested too deep: list>"``. CR, LF and every control
    character are escaped by JSON; U+0085, U+2028 and U+2029 are escaped too,
    so no line splitter sees more than one line.

    *finite* says the caller knows no NaN or Infinity is in *event_dict*
    (the record path's own records, made of `Vetted` parts and the floats
    it computed): the search for them is skipped.
    """
    try:
        line = orjson.dumps(event_dict, default=_default, option=_OPTIONS)
    except Exception:  # noqa: BLE001 - anything orjson refuses takes the slow path
        return _render_safely(event_dict)
    if (
        not finite
        and b"null" in line
        and type(event_dict) is dict
        and _has_non_finite(event_dict, 0)
    ):
        # orjson writes NaN and Infinity as null; say what they were.
        return _render_safely(event_dict)
    if not line.isascii():
        for raw, escaped in _LINE_BREAKS:
            if raw in line:
                line = line.replace(raw, escaped)
    return line


def as_written(event_dict: Any) -> dict[str, Any]:
    """A new plain dict of *event_dict* as `render_jsonl` writes it (read back from its JSON)."""
    copy: dict[str, Any] = orjson.loads(render_jsonl(None, "", event_dict))
    return copy


def _default(obj: Any) -> Any:
    """orjson's hook for types it does not know; must not raise."""
    if isinstance(obj, _BYTES):
        return bytes(obj).decode("utf-8", "backslashreplace")
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    return _safe_repr(obj)


def _safe_repr(obj: Any) -> str:
    try:
        text = repr(obj)
    except Exception:  # noqa: BLE001 - a repr that raises still yields a line
        return f"<unrepresentable {_type_name(obj)}>"
    if type(text) is not str:  # pragma: no cover - repr() enforces str
        return f"<unrepresentable {_type_name(obj)}>"
    return text


def _type_name(obj: Any) -> str:
    try:
        return str(type(obj).__qualname__)
    except Exception:  # noqa: BLE001 - a metaclass can break even this
        return "object"


def _has_non_finite(obj: Any, depth: int) -> bool:
    """Whether a NaN or Infinity hides in *obj* (only asked when a null was written).

    The common records hold only strings, ints, finite floats and None: those
    are told apart by their types in C (a set of the types, the floats checked
    by ``math.isfinite``); only containers are walked.
    """
    values = obj.values() if isinstance(obj, dict) else obj
    kinds = set(map(type, values))
    if float in kinds and not all(map(math.isfinite, filter(_is_float, values))):
        return True
    if kinds <= _LEAVES:
        return False
    for value in values:
        tp = type(value)
        if tp in _LEAVES:
            continue
        if isinstance(value, float):  # a float subclass
            if not math.isfinite(value):
                return True
        elif (
            isinstance(value, _WALKED)  # dict, list, tuple and their subclasses
            and depth < _MAX_DEPTH
            and _has_non_finite(value, depth + 1)
        ):
            return True
    return False


def _render_safely(event_dict: Any) -> bytes:
    """Render *event_dict* through a JSON-safe copy (see `render_jsonl`). Never raises."""
    try:
        safe = _sanitize(event_dict, 0, set())
        line = orjson.dumps(safe, option=_OPTIONS)
    except Exception as exc:  # noqa: BLE001 - the last resort must not raise either
        line = orjson.dumps(
            {"event": "<unrenderable record>", "render_error": _safe_repr(exc)[:1000]},
            option=_OPTIONS,
        )
    if not line.isascii():
        for raw, escaped in _LINE_BREAKS:
            if raw in line:
                line = line.replace(raw, escaped)
    return line


def _sanitize(obj: Any, depth: int, path: set[int]) -> Any:  # noqa: PLR0911
    """A JSON-safe copy of *obj*: what orjson accepts without a hook."""
    tp = type(obj)
    if tp is str:
        return _safe_str(obj)
    if obj is None or tp is bool:
        return obj
    if isinstance(obj, int) and not isinstance(obj, bool):
        value = int(obj)
        if _INT_MIN <= value <= _INT_MAX:
            return value
        try:
            return str(value)
        except ValueError:  # more digits than int→str allows
            return hex(value)
    if isinstance(obj, float):
        number = float(obj)
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "Infinity" if number > 0 else "-Infinity"
        return number
    if isinstance(obj, str):
        return _safe_str(str(obj))
    if isinstance(obj, (*_CONTAINERS, Mapping)):
        if depth >= _MAX_DEPTH:
            return f"<nested too deep: {_type_name(obj)}>"
        oid = id(obj)
        if oid in path:
            return f"<cycle: {_type_name(obj)}>"
        path.add(oid)
        try:
            if isinstance(obj, (dict, Mapping)):
                return {_safe_key(k): _sanitize(v, depth + 1, path) for k, v in obj.items()}
            return [_sanitize(v, depth + 1, path) for v in obj]
        except RecursionError:
            return f"<nested too deep: {_type_name(obj)}>"
        except Exception:  # noqa: BLE001 - a mapping or iterable that breaks on iteration
            return _safe_str(_safe_repr(obj))
        finally:
            path.discard(oid)
    if isinstance(obj, _BYTES):
        return bytes(obj).decode("utf-8", "backslashreplace")
    if isinstance(obj, PurePath):
        return _safe_str(str(obj))
    # orjson's own types (datetime, UUID, enum, dataclass …) as orjson writes
    # them, when that works; everything else as text.
    try:
        return orjson.Fragment(orjson.dumps(obj))
    except Exception:  # noqa: BLE001 - not orjson-native, or holds something it refuses
        return _safe_str(_safe_repr(obj))


def _safe_key(key: Any) -> str:
    if type(key) is str:
        return _safe_str(key)
    if isinstance(key, str):
        return _safe_str(str(key))
    if key is None or isinstance(key, bool):
        return "null" if key is None else ("true" if key else "false")
    if isinstance(key, (int, float)):
        return str(_sanitize(key, 0, set()))
    return _safe_str(_safe_repr(key))


def _safe_str(text: str) -> str:
    """*text* with lone surrogates written as ``\\udXXX`` text."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
