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

import base64
import binascii
import datetime as _dt
import decimal
import enum
import itertools
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import PurePath
from typing import Any, Final

from ._truncate import cap_bytes, cap_text, rebuilt_like

__all__ = ["DEFAULT_MARKER", "SENSITIVE_KEYS", "SecretRedactor", "Vetted", "VettedList"]

# Tuples, not X | Y unions: isinstance with a union is several times slower.
_CONTAINERS: Final = (dict, list, tuple, set, frozenset)
_BYTES: Final = (bytes, bytearray, memoryview)

DEFAULT_MARKER: Final = "[REDACTED:{kind}]"

#: Key names whose values are secrets: exact, or as the ``_<name>`` suffix of
#: a key (``db_password``), compared case- and dash-insensitively, camelCase
#: split (``apiKey`` is ``api_key``). Plural counters (``input_tokens``,
#: ``max_tokens``) do not match ``token``.
SENSITIVE_KEYS: Final = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "client_secret",
        "secret_key",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "auth_token",
        "session_token",
        "api_key",
        "apikey",
        "x_api_key",
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "private_key",
        "aws_secret_access_key",
        "credential",
        "credentials",
    }
)

# Fields the core writes itself; scanning them would only cost time.
_TRUSTED_KEYS: Final = frozenset({"timestamp", "level", "session_id", "parent_session_id", "pid"})

# Key verdicts: scan the value (0, falsy: the common case costs one test),
# leave it alone (1), replace it whole (a str: the marker), or rename the key
# because the key itself holds a secret (a tuple: new key, verdict).
_SCAN: Final = 0
_TRUST: Final = 1
_Verdict = int | str | tuple[str, "int | str"]

_CACHE_MAX: Final = 4096  # entries in each bounded cache
_CLEAN_MAX_LEN: Final = 256  # only keys up to this length are remembered
_CLEAN_CHARS_MAX: Final = 4_000_000  # characters of clean text remembered at most
_CUTS_MAX: Final = 64  # over-long texts whose clean cut is remembered

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


class Vetted(dict):  # type: ignore[type-arg]
    """A dict the code that built it has already made safe to write.

    Everything in it is JSON-ready (str keys; str, int, finite float, bool,
    None, list and dict values) and has been through this process's
    `SecretRedactor` where it can hold a secret. The record path writes it as
    a plain object without walking it again: the LLM audit builds its request,
    response, usage and attempts this way, so their contents are scanned once,
    not twice. Private: a record a user logs is always walked.
    """

    __slots__ = ()


class VettedList(list):  # type: ignore[type-arg]
    """A list made safe to write by the code that built it (see `Vetted`)."""

    __slots__ = ()


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


# Names whose assigned value is a secret in free text (``password=…``,
# ``"api_key": "…"``, ``Config(token='…')``), matched case-insensitively.
_ASSIGNED_NAMES: Final = (
    "aws_secret_access_key",
    "aws_secret_key",
    "client_secret",
    "secret_key",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "access_token",
    "refresh_token",
    "auth_token",
    "token",
    "api_key",
    "api-key",
    "apikey",
    "private_key",
)
_HEADER_NAMES: Final = ("authorization", "proxy-authorization")
_COOKIE_NAMES: Final = ("cookie", "set-cookie")


def _ci(text: str) -> str:
    """*text* as a case-insensitive pattern made of plain character classes."""
    out = []
    for c in text:
        if c.isalpha():
            out.append(f"[{c.lower()}{c.upper()}]")
        elif c in "_-":
            out.append("[_-]?" if c == "_" else "[-_]")
        else:
            out.append(re.escape(c))
    return "".join(out)


def _name_branch(name: str) -> str:
    """A branch for *name*: its first letter was consumed by the leading class.

    The branch opens with the name's second letter (a character class, which
    the engine can reject in one step) and only then checks, looking back,
    that the first letter is right and starts a word.
    """
    first = f"[{name[0].lower()}{name[0].upper()}]"
    second = _ci(name[1])
    return f"{second}(?<={first}{second})(?<![A-Za-z0-9]{first}{second}){_ci(name[2:])}"


def _value_patterns(marker_prefix: str) -> tuple[str, str]:
    """The two combined patterns: secret *shapes*, and *named* assignments.

    Built for the regex engine's fast path. Each pattern opens with one
    character class (the anchors of its rules), so the engine only tries
    candidate positions; each branch then opens with a literal where it can
    and is rejected in one step. The shapes anchor on characters rare in
    prose (``-`` of ``sk-``, ``J`` of ``eyJ``, ``_`` of ``ghp_``): the part of
    a secret before its anchor is added back by `_BACK`. The named group of
    each branch spans the secret, so ``lastgroup`` names its kind.
    """
    not_marker = f"(?!{re.escape(marker_prefix)})"
    b64url = r"[A-Za-z0-9_-]"
    bearer = r"earer(?<![A-Za-z0-9]Bearer)[ \t]+(?P<bearer_token>[A-Za-z0-9._~+/-]{16,}=*)"
    basic = r"asic(?<![A-Za-z0-9]Basic)[ \t]+(?P<basic_auth>[A-Za-z0-9+/]{4,}={0,2})"
    shapes = [
        # PEM private key blocks, also cut short (no END line); and sk-… keys,
        # sk-ant-… (Anthropic) before OpenAI's legacy, project, service, admin.
        r"-(?:----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
        r"(?P<private_key>[\s\S]*?-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
        r"|[A-Za-z0-9+/=\s\\]*)"
        rf"|(?<=sk-)(?<![A-Za-z0-9]sk-)(?:(?P<anthropic_key>ant-[a-z]+[0-9]*-{b64url}{{20,}})"
        rf"|(?P<openai_key>(?:proj|svcacct|admin|None)-{b64url}{{20,}}|[A-Za-z0-9]{{20,}})))",
        rf"J(?<=eyJ)(?<![A-Za-z0-9_-]eyJ)(?P<jwt>{b64url}{{2,}}\.eyJ{b64url}{{2,}}\.{b64url}*)",
        r"A(?:[KSBC](?<![A-Za-z0-9]A.)(?:(?<=AK)IA|(?<=AS)IA|(?<=AB)IA|(?<=AC)CA)"
        r"(?P<aws_access_key_id>[A-Z0-9]{16})(?![A-Za-z0-9])"
        r"|I(?<![A-Za-z0-9]AI)za(?P<google_api_key>[A-Za-z0-9_-]{35}))",
        r"_(?<=gh[pousr]_)(?<![A-Za-z0-9]gh[pousr]_)(?P<github_token>[A-Za-z0-9]{36,})",
        r"xox(?<![A-Za-z0-9]xox)(?P<slack_token>[abposr]-[A-Za-z0-9-]{10,})",
        # Capitalised as RFC 7235 writes them; "authorization: bearer …" in
        # any case is the header rule's.
        f"B(?:{bearer}|{basic})",
        # scheme://user:password@host: keep scheme, user and host.
        r"://[^\s:/?#@\[\]\"'<>]*:"
        rf"{not_marker}(?P<url_password>[^\s/?#\"'<>]+)(?=@)",
    ]
    sep = r"(?![A-Za-z0-9_])\\?[\"']?[ \t]*[:=][ \t]*\\?[\"']?+"
    # None/null/true/false say no secret is there: ``Config(api_key=None)``.
    no_value = r"(?!(?:None|null|true|false|True|False)(?![A-Za-z0-9_]))"
    assigned_value = (
        rf"{not_marker}{no_value}(?P<assignment>(?<=\")[^\"\\\r\n]+|(?<=')[^'\\\r\n]+"
        r"|[^\s\"'\\,;&<>)}\]]+)"
    )
    header_value = (
        r"(?:(?:[bB]earer|[bB]asic|[tT]oken|[dD]igest|[nN]egotiate)[ \t]+)?+"
        rf"{not_marker}(?P<authorization>[^\s\"'\\,;]+)"
    )
    cookie_value = rf"[ \t]*:[ \t]*+{not_marker}(?P<cookie>[^\r\n\"\\]+)"
    named = []
    for names, tail in (
        (_HEADER_NAMES, sep + header_value),
        (_COOKIE_NAMES, cookie_value),
        (_ASSIGNED_NAMES, sep + assigned_value),
    ):
        named.append(f"(?:{'|'.join(_name_branch(n) for n in names)}){tail}")
    first = {n[0].lower() for n in _ALL_NAMES} | {n[0].upper() for n in _ALL_NAMES}
    return (
        "|".join(shapes),
        f"[{''.join(sorted(first))}](?:{'|'.join(named)})",
    )


_ALL_NAMES: Final = _HEADER_NAMES + _COOKIE_NAMES + _ASSIGNED_NAMES
#: Where a name rule can match: a first letter of a name, not inside a word.
_NAME_START: Final = re.compile(
    "(?<![A-Za-z0-9])["
    + "".join(sorted({c for n in _ALL_NAMES for c in (n[0], n[0].upper())}))
    + "]"
)

# Stems of every name rule: a match of the named pattern starts at most
# `_NAME_BACK` characters before one of them (lower-cased). Finding the stems
# with str.find and trying the pattern only there is what keeps prose cheap:
# the pattern's leading class holds common letters, so searching the whole
# text tried it at a third of all positions (~70 ns per character).
_STEMS: Final = ("pass", "pwd", "secret", "token", "key", "auth", "cookie")
_STEM_CHUNK: Final = 1 << 14
_STEM_OVERLAP: Final = max(map(len, _STEMS)) - 1


# Trying the name rules near a stem costs about what a whole-text search
# costs on this many characters (~1 µs against ~70 ns per character): with
# denser stems ("keykeykey…") the whole text is searched at once.
_CHARS_PER_STEM: Final = 16


def _stem_back(name: str) -> int:
    """How far into *name* (as written, separators included) its first stem starts."""
    found = [i for i in map(name.find, _STEMS) if i >= 0]
    if not found:  # pragma: no cover - checked for every name at import
        msg = f"name rule {name!r} has none of the stems {_STEMS!r}"
        raise AssertionError(msg)
    return min(found)


# Separators in a name are optional in the pattern, so a match is never
# further from its stem than the name as written.
_NAME_BACK: Final = max(_stem_back(name) for name in (*_HEADER_NAMES, *_COOKIE_NAMES,
                                                      *_ASSIGNED_NAMES))  # fmt: skip


def _has_stem(text: str) -> bool:
    if len(text) <= _STEM_CHUNK:
        low = text.lower()
        return (
            "pass" in low
            or "pwd" in low
            or "secret" in low
            or "token" in low
            or "key" in low
            or "auth" in low
            or "cookie" in low
        )
    # Long text: lower-case it piecewise, never as a whole copy.
    step = _STEM_CHUNK
    for i in range(0, len(text), step):
        low = text[max(0, i - _STEM_OVERLAP) : i + step].lower()
        if any(stem in low for stem in _STEMS):
            return True
    return False


def _stem_positions(text: str) -> list[int] | None:
    """Where a stem starts in *text* (lower-cased), in no order; None if positions shift.

    A long text is lower-cased piecewise, never as a whole copy. A character
    whose lower case is longer (``İ``) would shift positions: None then asks
    for a search of the whole text.
    """
    found: list[int] = []
    step = _STEM_CHUNK
    for base in range(0, len(text), step):
        piece = text[base : base + step + _STEM_OVERLAP]
        low = piece.lower()
        if len(low) != len(piece):
            return None
        for stem in _STEMS:
            i = low.find(stem)
            while 0 <= i < step:  # a stem starting in the overlap is the next piece's
                found.append(base + i)
                i = low.find(stem, i + 1)
    return found


# Characters of a secret before the anchor its pattern matched at.
_BACK: Final = {"anthropic_key": 2, "openai_key": 2, "jwt": 2, "github_token": 3}

# Kinds whose whole match is the secret; the others keep the text before it.
_WHOLE: Final = frozenset(
    {
        "private_key",
        "anthropic_key",
        "openai_key",
        "jwt",
        "aws_access_key_id",
        "google_api_key",
        "github_token",
        "slack_token",
    }
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
            length exactly as `ValueTruncator` cuts them (head, marker with
            length and SHA-256, tail), then scanned: no text leaves unscanned
            and a 100 MB value costs no 100 MB scan. Keep it equal to the
            ValueTruncator's *max_chars* (both default to 131,072).

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
        for extra, kind in self._extra:
            if extra.search(self._marker_for(kind)) or extra.search(self._marker_for("x")):
                msg = f"extra_patterns[{kind!r}] matches the marker {self._marker_for(kind)!r}"
                raise ValueError(msg)
        for kind in (*_WHOLE, "bearer_token", "url_password", "password", "cookie", "depth_limit"):
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

    def __repr__(self) -> str:
        extra = len(self._sensitive) - len(SENSITIVE_KEYS)
        return (
            f"SecretRedactor(marker={self._marker!r}, extra_keys={extra}, "
            f"extra_patterns={len(self._extra)}, max_depth={self._max_depth})"
        )

    # -- the processor -------------------------------------------------------

    # One frame for the whole record: the hot path pays no call per field.
    def __call__(self, _: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
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
                event_dict[new_key] = event_dict.pop(old)
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
            capped = cap_text(text, self._max_scan)
            # The same long text is cut the same way each time: scan its cut once.
            if capped not in self._clean:
                redacted = self._scan(capped)
                if redacted is not capped:
                    return redacted
            self._remember_cut(text, capped)
            return capped
        return self._scan(text)

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
            kind = match.lastgroup
            if kind is None:  # pragma: no cover - every branch ends in a named group
                continue
            start, end = match.span(kind)
            if kind in _WHOLE:
                start = max(pos, match.start() - _BACK.get(kind, 0))
                end = match.end()
            elif kind == "assignment":
                kind = self._assignment_kind(text[match.start() : start])
            elif kind == "basic_auth" and not _looks_like_basic(text[start:end]):
                continue
            parts.append(text[pos:start])
            parts.append(self._marker_for(kind))
            pos = end
        if not parts:
            return text
        parts.append(text[pos:])
        return "".join(parts)

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
        if key in _TRUSTED_KEYS:
            verdict = _TRUST
        else:
            kind = self._sensitive_kind(key)
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
            if type(verdict) is int and verdict == _SCAN:
                self._scanned_keys.add(key)
        return verdict

    def _sensitive_kind(self, key: str) -> str | None:
        normal = _normalize_key(key)
        sensitive = self._sensitive
        if normal in sensitive:
            return normal
        # db_password, x_api_key, aws_session_token: a sensitive name as suffix.
        parts = normal.split("_")
        for i in range(1, len(parts)):
            tail = "_".join(parts[i:])
            if tail in sensitive:
                return tail
        return None

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
            else:
                new = value
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
        capped = cap_bytes(obj, self._max_scan)
        text = bytes(capped).decode("utf-8", "backslashreplace")
        # Escapes may make the text longer than the cap: scan it all, cut nothing.
        new = self._scan(text)
        if new is not text:
            return new
        return capped


def _normalize_key(key: str) -> str:
    return _CAMEL.sub("_", key).lower().replace("-", "_").strip("_ ")


def _canonical(normal: str) -> str:
    """Name the kind of an assignment by its sensitive suffix (``db_password`` → password)."""
    parts = normal.split("_")
    for i in range(len(parts)):
        tail = "_".join(parts[i:])
        if tail in SENSITIVE_KEYS:
            return tail
    if normal.startswith("pass"):
        return "password"
    return "secret"


def _looks_like_basic(credential: str) -> bool:
    """``Basic`` followed by base64 of ``user:password`` (not the word "Basic knowledge")."""
    try:
        raw = base64.b64decode(credential + "=" * (-len(credential) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return ":" in text and text.isprintable()


def _check_extra_keys(extra_keys: Any) -> frozenset[str]:
    if isinstance(extra_keys, str) or not isinstance(extra_keys, Iterable):
        msg = f"extra_keys must be an iterable of key names, got {extra_keys!r}"
        raise TypeError(msg)
    keys = set()
    for key in extra_keys:
        if not isinstance(key, str) or not key.strip():
            msg = f"extra_keys must hold non-empty strings, got {key!r}"
            raise ValueError(msg)
        keys.add(_normalize_key(key))
    return frozenset(keys)


def _check_marker(marker: Any) -> str:
    """Check the marker format; return its literal prefix (how a marker is recognised)."""
    if not isinstance(marker, str):
        msg = f"marker must be a str with a {{kind}} field, got {marker!r}"
        raise TypeError(msg)
    try:
        sample = marker.format(kind="x")
    except (KeyError, IndexError, ValueError) as exc:
        msg = f"marker must be a format string whose only field is {{kind}}, got {marker!r}"
        raise ValueError(msg) from exc
    prefix = marker.split("{kind}", 1)[0]
    if "{kind}" not in marker or not prefix or "{" in prefix or sample == marker:
        msg = f"marker must contain {{kind}} after a non-empty literal prefix, got {marker!r}"
        raise ValueError(msg)
    if any(c.isspace() or c in "\"'\\,;&<>" for c in sample):
        msg = f"marker must not contain whitespace, quotes, \\ , ; & < or >, got {marker!r}"
        raise ValueError(msg)
    return prefix


def _check_int(name: str, value: Any, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{name} must be an int of at least {least}, got {value!r}"
        raise TypeError(msg)
    if value < least:
        msg = f"{name} must be an int of at least {least}, got {value!r}"
        raise ValueError(msg)
    return value


def _compile_extra(extra_patterns: Any) -> tuple[tuple[re.Pattern[str], str], ...]:
    """Check and compile ``extra_patterns`` (typed ``Any``: it comes from users)."""
    if not isinstance(extra_patterns, Mapping):
        msg = f"extra_patterns must be a mapping of kind to regex, got {extra_patterns!r}"
        raise TypeError(msg)
    compiled: list[tuple[re.Pattern[str], str]] = []
    for kind, pattern in extra_patterns.items():
        if not isinstance(kind, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", kind):
            msg = f"extra_patterns keys must be kind names like 'my_token', got {kind!r}"
            raise ValueError(msg)
        regex: re.Pattern[str]
        if isinstance(pattern, re.Pattern):
            if not isinstance(pattern.pattern, str):
                msg = f"extra_patterns[{kind!r}] must be a str pattern, got {pattern!r}"
                raise TypeError(msg)
            regex = pattern
        elif isinstance(pattern, str):
            try:
                regex = re.compile(pattern)
            except re.error as exc:
                msg = f"extra_patterns[{kind!r}] is not a valid regex: {exc}"
                raise ValueError(msg) from exc
        else:
            msg = f"extra_patterns[{kind!r}] must be a regex string or pattern, got {pattern!r}"
            raise TypeError(msg)
        if regex.search(""):
            msg = f"extra_patterns[{kind!r}] matches the empty string"
            raise ValueError(msg)
        compiled.append((regex, kind))
    return tuple(compiled)
