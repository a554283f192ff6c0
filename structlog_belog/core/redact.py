"""SecretRedactor: replace secrets in a record with a marker naming their kind.

Two rules, applied to the whole record (nested dicts, lists, tuples and sets too):

* **Keys.** The value of a sensitive key (``password``, ``api_key``,
  ``authorization``, ``db_password``, ``X-Api-Key``, ``accessToken`` …) is
  replaced whole, whatever its type (``None`` stays ``None``).
* **Values.** Every string is scanned for secrets that look like secrets
  wherever they stand: API keys, bearer and basic credentials, JWTs, AWS keys,
  PEM private keys, passwords in URLs, and ``password=…`` style assignments.

The hot path is the per-record walk, so it looks things up once: key verdicts
are cached, short strings that were found clean (event names, logger names)
are remembered in a bounded set (clean ones only: no secret is kept), and
non-string scalars are never scanned. A string costs one combined regex for
the secret shapes, anchored on characters rare in prose; the
case-insensitive ``name=value`` rules, which the regex engine cannot skip
through quickly, are tried only where one of their stems (``pass``, ``key``,
``token`` …, found with ``str.find``) starts a name.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
import itertools
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import PurePath
from typing import Any, Final

from .reserved import RESERVED, demoted_key
from .secret_rules import (
    _CHARS_PER_STEM,
    _NAME_BACK,
    _NAME_START,
    _SHAPE_KINDS,
    _SHAPE_OF,
    SENSITIVE_KEYS,
    _canonical,
    _check_extra_keys,
    _check_int,
    _check_marker,
    _compile_extra,
    _has_stem,
    _looks_like_basic,
    _normalize_key,
    _stem_positions,
    _value_patterns,
    sensitive_kind,
)
from .truncate import cap_bytes_between, cap_text_between, rebuilt_like, safe_cuts
from .vetted import Vetted, VettedList

__all__ = ["DEFAULT_MARKER", "LOG_CALL", "SENSITIVE_KEYS", "SecretRedactor", "Vetted", "VettedList"]

# Tuples, not X | Y unions: isinstance with a union is several times slower.
_CONTAINERS: Final = (dict, list, tuple, set, frozenset)
_BYTES: Final = (bytes, bytearray, memoryview)

DEFAULT_MARKER: Final = "[REDACTED:{kind}]"

# Fields the core writes itself; scanning them would only cost time.
# (`session_id` and `pid` are reserved fields: judged before these, see `_judge_key`.)
_TRUSTED_KEYS: Final = frozenset({"timestamp", "level", "parent_session_id"})

# Key verdicts: scan the value (0, falsy: the common case costs one test),
# leave it alone (1), replace it whole (a str: the marker), or rename the key
# because the key itself holds a secret (a tuple: new key, verdict). A field
# only belog may set (`reserved.RESERVED`) is scanned (2) and, at the top of a
# log call's record, moved under ``app.<name>``: the check rides on the verdict
# lookup every key pays anyway, so ordinary records pay nothing for it.
_SCAN: Final = 0
_TRUST: Final = 1
_RESERVED: Final = 2

#: What belog's record path passes as a processor's *logger* for a record made
#: by a log call (not by belog itself): its reserved fields become data.
LOG_CALL: Final = object()
_Verdict = int | str | tuple[str, "int | str"]

_CACHE_MAX: Final = 4096  # entries in each bounded cache
_CLEAN_MAX_LEN: Final = 256  # only keys up to this length are remembered
_CLEAN_CHARS_MAX: Final = 4_000_000  # characters of clean text remembered at most
_CUTS_MAX: Final = 64  # over-long texts whose clean cut is remembered
#: Markers found stable under the built-in rules (without extra patterns).
_STABLE_MARKERS: set[str] = set()


# Types whose values are left alone where a record is walked.
_SCALARS: Final = (int, float, bool, Vetted, VettedList)
_STR_ONLY: Final = frozenset((str,))
_DICT_ONLY: Final = frozenset((dict,))

# Scalars that cannot hold a secret, or whose rendering is their value.
_OPAQUE: Final = (
    int,
    float,
    complex,
    _dt.date,
    _dt.time,
    _dt.timedelta,
    uuid.UUID,
    decimal.Decimal,
    PurePath,
    enum.Enum,
    type,
)


class SecretRedactor:
    """Replace secrets in keys and values with a marker naming their kind.

    On by default in `structlog_belog.configure` (``redact=True``). Idempotent:
    redacting a redacted record changes nothing. The top-level event dict is
    changed in place; nested containers the caller owns are never mutated
    (changed ones are copied). Cycle-safe; containers nested deeper than
    *max_depth* are replaced by the ``depth_limit`` marker, since what cannot
    be walked cannot be vouched for.

    Place it after `structlog.processors.format_exc_info` (the core does) so
    the traceback text is scanned.

    Args:
        extra_keys: More sensitive key names (same matching rules as
            `SENSITIVE_KEYS`).
        extra_patterns: ``{kind: regex}``; every match is replaced by the
            marker for *kind*. A pattern must not match its own marker.
        marker: Format of the replacement, with a ``{kind}`` field and a
            non-empty literal before it (so a marker is recognised again).
        max_depth: How deep nested containers are walked.
        max_scan_chars: Longer strings (and bytes) are first cut to this
            length as `ValueTruncator` cuts them (head, marker with length
            and SHA-256, tail; a cut that would split a secret moves off it,
            so the kept ends hold no piece of one), then scanned: no text
            leaves unscanned and a 100 MB value costs no 100 MB scan. Keep it
            equal to the ValueTruncator's *max_chars* (both default to 131,072).

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: An argument has the right type but an unusable value; the
            message names the argument.
    """

    __slots__ = (
        "_clean",
        "_clean_chars",
        "_cuts",
        "_cuts_chars",
        "_extra",
        "_key_cache",
        "_kind_of_name",
        "_marker",
        "_marker_prefix",
        "_markers",
        "_max_depth",
        "_max_scan",
        "_named",
        "_scanned_keys",
        "_sensitive",
        "_shapes",
    )

    def __init__(
        self,
        *,
        extra_keys: Iterable[str] = (),
        extra_patterns: Mapping[str, str | re.Pattern[str]] | None = None,
        marker: str = DEFAULT_MARKER,
        max_depth: int = 64,
        max_scan_chars: int = 131_072,
    ) -> None:
        self._sensitive = SENSITIVE_KEYS | _check_extra_keys(extra_keys)
        self._marker_prefix = _check_marker(marker)
        self._marker = marker
        self._max_depth = _check_int("max_depth", max_depth, 1)
        self._max_scan = _check_int("max_scan_chars", max_scan_chars, 256)
        self._extra = () if extra_patterns is None else _compile_extra(extra_patterns)

        shapes, named = _value_patterns(self._marker_prefix)
        self._shapes = re.compile(shapes)
        self._named = re.compile(named)
        self._markers: dict[str, str] = {}
        self._kind_of_name: dict[str, str] = {}
        self._key_cache: dict[Any, _Verdict] = {}
        #: Cached keys whose values are only scanned (not sensitive, not renamed).
        self._scanned_keys: set[str] = set()
        self._clean: set[str] = set()
        self._clean_chars = 0
        #: Over-long texts whose cut was clean -> that cut (the same object each time).
        #: The texts stay in memory while remembered (as the application's own
        #: prompt does); what is written is only ever the scanned cut.
        self._cuts: dict[str, str] = {}
        self._cuts_chars = 0
        self._check_markers_stable()

    def _check_markers_stable(self) -> None:
        """A marker must survive a second pass in every context a rule keeps."""
        if not self._extra and self._marker in _STABLE_MARKERS:
            return  # the rules are fixed: checked once per process
        for extra, kind in self._extra:
            if extra.search(self._marker_for(kind)) or extra.search(self._marker_for("x")):
                msg = f"extra_patterns[{kind!r}] matches the marker {self._marker_for(kind)!r}"
                raise ValueError(msg)
        kinds = _SHAPE_KINDS | {"password", "cookie", "depth_limit"}
        for kind in sorted(kinds):
            shown = self._marker_for(kind)
            for context in (
                shown,
                f"Bearer {shown}",
                f"password={shown}",
                f'"api_key": "{shown}"',
                f"Authorization: Basic {shown}",
                f"Cookie: {shown}",
                f"https://user:{shown}@host",
            ):
                if self._redact_str(context) != context:
                    msg = f"marker {self._marker!r} is redacted again in {context!r}; pick another"
                    raise ValueError(msg)
        if not self._extra:
            _STABLE_MARKERS.add(self._marker)

    def __repr__(self) -> str:
        extra = len(self._sensitive) - len(SENSITIVE_KEYS)
        return (
            f"SecretRedactor(marker={self._marker!r}, extra_keys={extra}, "
            f"extra_patterns={len(self._extra)}, max_depth={self._max_depth})"
        )

    # -- the processor -------------------------------------------------------

    # One frame for the whole record: the hot path pays no call per field.
    def __call__(self, logger: Any, _: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        clean = self._clean
        judged = self._key_cache.get
        renamed: list[tuple[str, str]] | None = None
        for key, value in event_dict.items():
            verdict = judged(key)
            if verdict is None:
                verdict = self._judge_key(key)
            if verdict:
                if type(verdict) is tuple:
                    if renamed is None:
                        renamed = []
                    renamed.append((key, verdict[0]))
                    verdict = verdict[1]
                if verdict == _TRUST:
                    continue
                if type(verdict) is str:
                    if value is not None:
                        # Replacing the value of an existing key keeps the
                        # dict's size: safe while iterating.
                        event_dict[key] = verdict
                    continue
                if verdict == _RESERVED and logger is LOG_CALL:
                    if renamed is None:
                        renamed = []
                    renamed.append((key, ""))  # "": demote (see the loop below)
            if type(value) is str:
                if value in clean:
                    continue
                new = self._redact_str(value)
            elif value is None or type(value) in _SCALARS:
                continue
            else:
                new = self._redact_obj(value, 1, None)
            if new is not value:
                event_dict[key] = new
        if renamed is not None:
            for old, new_key in renamed:
                value = event_dict.pop(old)
                event_dict[new_key or demoted_key(old, event_dict)] = value
        return event_dict

    # -- strings -------------------------------------------------------------

    def redact_text(self, text: str) -> str:
        """Return *text* with every secret value replaced by its marker."""
        return self._redact_str(text)

    def redact_value(self, value: Any) -> Any:
        """Return *value* with its secrets replaced, as the processor does a field's value.

        Containers are walked (keys judged, strings scanned); one that changes
        is copied, never mutated. A value without secrets is returned itself.
        """
        if type(value) is str:
            return value if value in self._clean else self._redact_str(value)
        return self._redact_obj(value, 1, None)

    def _redact_str(self, text: str) -> str:
        if len(text) > self._max_scan:
            # A long prompt sent with every call: its clean cut is remembered, so
            # it is not hashed (SHA-256 of the whole text) and cut each time.
            known = self._cuts.get(text)
            if known is not None:
                return known
            head_end, tail_start = safe_cuts(
                len(text), self._max_scan, text.__getitem__, self._spans
            )
            capped = cap_text_between(text, head_end, tail_start)
            # The same long text is cut the same way each time: scan its cut once.
            if capped not in self._clean:
                redacted = self._scan(capped)
                if redacted is not capped:
                    return redacted
            self._remember_cut(text, capped)
            return capped
        return self._scan(text)

    def _spans(self, text: str) -> Iterator[tuple[int, int]]:
        """Where in *text* a scan would replace something, context (a name) included."""
        for pattern in (self._shapes, self._named):
            pos = 0
            for match in pattern.finditer(text):
                found = self._span(text, match, pos)
                if found is not None:
                    yield min(found[0], match.start()), found[1]
                    pos = found[1]
        for extra, _kind in self._extra:
            for match in extra.finditer(text):
                yield match.span()

    def _remember_cut(self, text: str, cut: str) -> None:
        """Remember *cut* as the clean cut of *text*, within a budget of characters."""
        size = len(text)
        if len(self._cuts) >= _CUTS_MAX or self._cuts_chars + size > _CLEAN_CHARS_MAX:
            self._cuts.clear()
            self._cuts_chars = 0
        if size <= _CLEAN_CHARS_MAX:
            self._cuts[text] = cut
            self._cuts_chars += size

    def _scan(self, text: str) -> str:
        """*text* with its secrets replaced; *text* itself when it has none."""
        new = text
        if self._shapes.search(text) is not None:
            new = self._apply(new, self._shapes.finditer(new))
        if _has_stem(new):  # most text has none: a few `in` tests in C say so
            stems = _stem_positions(new)
            if stems is None or len(stems) * _CHARS_PER_STEM > len(new):
                # Positions shift, or stems so dense that one search is cheaper.
                new = self._apply(new, self._named.finditer(new))
            else:
                new = self._apply(new, self._named_at(new, stems))
        for extra, kind in self._extra:
            new = extra.sub(self._marker_for(kind), new)
        if new == text:
            # Remembered clean, long texts included (a system prompt sent with
            # every call is scanned once, not per call: a scan costs ~15-30 µs
            # per KB of prose, a lookup ~0.4), within a budget of characters.
            size = len(text)
            clean = self._clean
            if len(clean) >= _CACHE_MAX or self._clean_chars + size > _CLEAN_CHARS_MAX:
                clean.clear()
                self._clean_chars = 0
            clean.add(text)
            self._clean_chars += size
            return text
        return new

    def _named_at(self, text: str, stems: list[int]) -> Iterator[re.Match[str]]:
        """The named pattern's matches in *text*, as ``finditer`` finds them.

        Tried only where a name can start: at the start of a word, up to
        `_NAME_BACK` characters before a stem, left to right, each after the
        previous match. Both searches run in C; Python sees a stem or two per
        line of prose.
        """
        next_start = _NAME_START.search
        match_at = self._named.match
        back = _NAME_BACK
        pos = 0  # where the next match may start: after the last match, past tried places
        for stem in sorted(stems):
            while pos <= stem:
                candidate = next_start(text, max(pos, stem - back), stem + 1)
                if candidate is None:
                    pos = stem + 1
                    break
                start = candidate.start()
                match = match_at(text, start)
                if match is None:
                    pos = start + 1
                else:
                    yield match
                    pos = match.end()

    def _apply(self, text: str, matches: Iterable[re.Match[str]]) -> str:
        """*text* with each of *matches* (of a rule pattern) replaced by its marker."""
        parts: list[str] = []
        pos = 0
        for match in matches:
            found = self._span(text, match, pos)
            if found is None:
                continue
            start, end, kind = found
            parts.append(text[pos:start])
            parts.append(self._marker_for(kind))
            pos = end
        if not parts:
            return text
        parts.append(text[pos:])
        return "".join(parts)

    def _span(self, text: str, match: re.Match[str], pos: int) -> tuple[int, int, str] | None:
        """What *match* replaces in *text*: (start, end, kind), or None for a look-alike.

        *pos* is where the previous replacement ended (a match's lead never reaches back
        past it).
        """
        group = match.lastgroup
        if group is None:  # pragma: no cover - every branch ends in a named group
            return None
        shape = _SHAPE_OF.get(group)
        if shape is not None:
            kind, secret, back = shape
            if secret is None:
                start, end = max(pos, match.start() - back), match.end()
            else:
                start, end = match.span(secret)
            if kind == "basic_auth" and not _looks_like_basic(text[start:end]):
                return None
            return start, end, kind
        start, end = match.span(group)
        kind = group
        if kind == "assignment":
            kind = self._assignment_kind(text[match.start() : start])
        return start, end, kind

    def _assignment_kind(self, keep: str) -> str:
        name = keep.rstrip("\"'\\ \t:=")
        kind = self._kind_of_name.get(name)
        if kind is None:
            normal = _normalize_key(name)
            kind = "aws_secret_key" if normal.startswith("aws") else _canonical(normal)
            if len(self._kind_of_name) < _CACHE_MAX:
                self._kind_of_name[name] = kind
        return kind

    def _marker_for(self, kind: str) -> str:
        marker = self._markers.get(kind)
        if marker is None:
            marker = self._marker.format(kind=kind)
            if len(self._markers) < _CACHE_MAX:
                self._markers[kind] = marker
        return marker

    # -- keys ----------------------------------------------------------------

    def _judge_key(self, key: Any) -> _Verdict:
        if type(key) is not str:
            return _SCAN
        verdict: _Verdict
        if key in RESERVED:
            verdict = _RESERVED
        elif key in _TRUSTED_KEYS:
            verdict = _TRUST
        else:
            kind = sensitive_kind(key, self._sensitive)
            verdict = _SCAN if kind is None else self._marker_for(kind)
        new_key = self._redact_str(key)
        if new_key != key:
            verdict = (new_key, verdict)
        if len(key) <= _CLEAN_MAX_LEN:
            cache = self._key_cache
            if len(cache) >= _CACHE_MAX:
                cache.clear()
                self._scanned_keys.clear()
            cache[key] = verdict
            if type(verdict) is int and verdict != _TRUST:  # _SCAN, _RESERVED
                self._scanned_keys.add(key)
        return verdict

    # -- containers ----------------------------------------------------------

    def _redact_obj(self, obj: Any, depth: int, path: set[int] | None) -> Any:  # noqa: PLR0911
        tp = type(obj)
        if tp is str:
            return obj if obj in self._clean else self._redact_str(obj)
        if obj is None or tp is bool or tp is int or tp is float:
            return obj
        if isinstance(obj, _CONTAINERS):
            if depth > self._max_depth:
                return self._marker_for("depth_limit")
            oid = id(obj)
            if path is None:
                path = set()
            elif oid in path:
                return obj  # a cycle; the renderer names it
            path.add(oid)
            try:
                if isinstance(obj, dict):
                    return self._redact_dict(obj, depth, path)
                return self._redact_seq(obj, depth, path)
            finally:
                path.discard(oid)
        if isinstance(obj, str):
            text = str(obj)
            new = self._redact_str(text)
            return obj if new is text else new
        if isinstance(obj, _BYTES):
            return self._redact_bytes(obj)
        if isinstance(obj, _OPAQUE):
            return obj
        # Anything else is rendered through its repr later: vet that text now,
        # and only replace the object when it would leak.
        try:
            text = repr(obj)
        except Exception:  # noqa: BLE001 - the renderer names unrepresentable objects
            return obj
        new = self._redact_str(text)
        return obj if new is text else new

    def _redact_dict(self, obj: dict[Any, Any], depth: int, path: set[int]) -> dict[Any, Any]:
        if self._scanned_keys.issuperset(obj) and self._all_clean(obj.values()):
            return obj  # a message: known keys, clean strings (checked in C)
        out: dict[Any, Any] | None = None
        judged = self._key_cache.get
        clean = self._clean
        for key, value in obj.items():
            verdict = judged(key)
            if verdict is None:
                verdict = self._judge_key(key)
            new_key = key
            if type(verdict) is tuple:
                new_key, verdict = verdict
            if not verdict:
                # Clean strings and scalars, the bulk of any payload, cost no call.
                tp = type(value)
                if (tp is str and value in clean) or value is None or tp in _SCALARS:
                    if new_key is key:
                        continue
                    new = value
                else:
                    new = self._redact_obj(value, depth + 1, path)
            elif type(verdict) is str:
                new = value if value is None else verdict
            elif verdict == _TRUST:
                new = value
            else:  # _RESERVED: nested, it is data like any other
                new = self._redact_obj(value, depth + 1, path)
            if new is not value or new_key is not key:
                if out is None:
                    out = dict(obj)
                if new_key is not key:
                    del out[key]
                out[new_key] = new
        return obj if out is None else out

    def _redact_seq(self, obj: Any, depth: int, path: set[int]) -> Any:
        if (
            _DICT_ONLY == set(map(type, obj))
            and self._scanned_keys.issuperset(itertools.chain.from_iterable(obj))
            and self._all_clean(itertools.chain.from_iterable(map(dict.values, obj)))
        ):
            return obj  # a list of messages: known keys, clean strings (checked in C)
        items: list[Any] | None = None
        clean = self._clean
        for i, value in enumerate(obj):
            tp = type(value)
            if (tp is str and value in clean) or value is None or tp in _SCALARS:
                continue
            new = self._redact_obj(value, depth + 1, path)
            if new is not value:
                if items is None:
                    items = list(obj)
                items[i] = new
        return obj if items is None else rebuilt_like(obj, items)

    def _all_clean(self, values: Iterable[Any]) -> bool:
        """Whether *values* are all strings already known clean (False when unsure)."""
        values = list(values)
        return _STR_ONLY >= set(map(type, values)) and self._clean.issuperset(values)

    def _redact_bytes(self, obj: bytes | bytearray | memoryview) -> Any:
        # The renderer writes bytes as UTF-8 text, so scan that same text.
        capped: bytes | bytearray | memoryview = obj
        if len(obj) > self._max_scan:
            # Latin-1 maps each byte to one character: positions stay byte offsets,
            # and the ASCII of a secret reads the same.
            view = memoryview(obj).cast("B")
            cuts = safe_cuts(
                len(view),
                self._max_scan,
                lambda part: bytes(view[part]).decode("latin-1"),
                self._spans,
            )
            capped = cap_bytes_between(obj, *cuts)
        text = bytes(capped).decode("utf-8", "backslashreplace")
        # Escapes may make the text longer than the cap: scan it all, cut nothing.
        new = self._scan(text)
        if new is not text:
            return new
        return capped
