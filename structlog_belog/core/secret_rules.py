"""The secret rules: which key names hold secrets, and what secrets look like in text.

This is what `SecretRedactor` (`core.redact`) applies: the sensitive key
names, the shapes of secrets (the table of formats is `core.secret_shapes`;
here it becomes one combined regex, anchored on characters rare in prose),
the ``name=value`` assignment rules and the stems that gate them. The engine
that walks records and caches verdicts is in `core.redact`; a new secret
format is one more rule in `core.secret_shapes`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from .secret_shapes import BACK, RULES, SecretRule

__all__ = ["SENSITIVE_KEYS"]

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
        "secret_access_key",
        "access_key",
        "account_key",
        "shared_access_key",
        "security_token",
        "api_token",
        "signing_key",
        "encryption_key",
        "master_key",
        "private_key_pem",
        "connection_string",
        "conn_str",
        "connstr",
        "database_url",
        "db_url",
        "dsn",
        "jwt",
        "bearer",
        "pass",
        "pw",
        "credential",
        "credentials",
    }
)

# camelCase and PascalCase word starts, an acronym's end too (``XApiKey``, ``APIKey``).
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


# Names whose assigned value is a secret in free text (``password=…``,
# ``"api_key": "…"``, ``Config(token='…')``), matched case-insensitively.
_ASSIGNED_NAMES: Final = (
    "aws_secret_access_key",
    "aws_secret_key",
    "secret_access_key",
    "client_secret",
    "secret_key",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "pass",
    "pwd",
    "pw",
    "access_token",
    "refresh_token",
    "auth_token",
    "api_token",
    "session_token",
    "token",
    "api_key",
    "api-key",
    "apikey",
    "private_key",
)
# "_" in a name matches "_", "-" or nothing: proxy-authorization, ProxyAuthorization.
_HEADER_NAMES: Final = ("authorization", "proxy_authorization")
_COOKIE_NAMES: Final = ("cookie", "set_cookie")


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


#: A lookahead every tail of an anchor's rules passes, tried before their
#: lookbehinds: it rejects the anchor in prose, paths, dates and code
#: (``well-known``, ``max_tokens``, ``api.example.com``) in one short step.
GUARDS: Final = {
    "-": "(?=[A-Za-z0-9_.=-]{16})",
    "_": "(?=[A-Za-z0-9_=+/-]{16})",
    ".": "(?=[A-Za-z0-9_-]{16})",
}

# A tail's leading literal characters (a quantified last one is not literal).
_LITERAL_HEAD = re.compile(r"(?:[A-Za-z0-9/%@~,;:!#&-]|\\[./])+(?![{*+?])")


def _has_top_level_branch(regex: str) -> bool:
    """Whether *regex* is an alternation at its top level (``a|b``, not ``(?:a|b)c``)."""
    depth = 0
    in_class = escaped = False
    for c in regex:
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            return True
    return False


def _branch(i: int, rule: SecretRule, not_marker: str) -> tuple[bool, str]:
    """Rule *i* as one branch: (whether it opens with a literal, its regex).

    A branch whose tail opens with literal characters checks them first: the
    regex engine rejects such a branch in one comparison, before any
    lookbehind. The empty group ``r<i>`` closes last, so ``lastgroup`` names
    the rule.
    """
    anchor = re.escape(rule.anchor)
    tail = rule.tail.replace("(?P<secret>", f"(?P<s{i}>{not_marker}")
    head = _LITERAL_HEAD.match(tail)
    literal = "" if head is None or _has_top_level_branch(tail) else head.group()
    rest = tail[len(literal) :]
    checks = ""
    if rule.lead:
        checks += f"(?<={rule.lead}{anchor}{literal})"
    if rule.word_start:
        checks += f"(?<![A-Za-z0-9]{rule.lead}{anchor}{literal})"
    return bool(literal), f"{literal}{checks}(?:{rest})(?P<r{i}>)"


def shapes_pattern(not_marker: str) -> str:
    """The combined regex of `RULES`; the group ``r<i>`` of a match names rule *i*.

    Each top-level branch opens with one anchor character, so the regex
    engine searches for the anchors in C and tries rules only there; each
    rule then checks its lead with a lookbehind. *not_marker* (a negative
    lookahead) opens every ``secret`` group so a marker is never redacted again.
    """
    literal: dict[str, list[str]] = {}
    guarded: dict[str, list[str]] = {}
    for i, rule in enumerate(RULES):
        opens_literal, branch = _branch(i, rule, not_marker)
        (literal if opens_literal else guarded).setdefault(rule.anchor, []).append(branch)
    parts = []
    for anchor in dict.fromkeys(rule.anchor for rule in RULES):
        options = literal.get(anchor, [])
        if anchor in guarded:
            options = [*options, f"{GUARDS.get(anchor, '')}(?:{'|'.join(guarded[anchor])})"]
        parts.append(f"{re.escape(anchor)}(?:{'|'.join(options)})")
    return "|".join(parts)


def _value_patterns(marker_prefix: str) -> tuple[str, str]:
    """The two combined patterns: secret *shapes* (`core.secret_shapes`), *named* assignments.

    Built for the regex engine's fast path. Each pattern opens with one
    character class (the anchors of its rules), so the engine only tries
    candidate positions; each branch then opens with a literal where it can
    and is rejected in one step. The named group of each named branch spans
    the secret, so ``lastgroup`` names its kind.
    """
    not_marker = f"(?!{re.escape(marker_prefix)})"
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
        shapes_pattern(not_marker),
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
# Each stem costs a str.find over the text (~1-2 µs per 2 KB): names whose
# values have a shape of their own (a JWT, a PEM block, a DSN's URL) need none.
_STEMS: Final = ("pass", "pw", "secret", "token", "key", "auth", "cookie")
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
            or "pw" in low
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


#: The shape rule a match's ``lastgroup`` names: group -> (kind, secret group or None, back).
_SHAPE_OF: Final = {
    f"r{i}": (rule.kind, f"s{i}" if rule.secret else None, BACK[i]) for i, rule in enumerate(RULES)
}

#: Every kind a shape rule writes in its marker.
_SHAPE_KINDS: Final = frozenset(rule.kind for rule in RULES)


def _normalize_key(key: str) -> str:
    return _CAMEL.sub("_", key).lower().replace("-", "_").strip("_ ")


def sensitive_kind(key: str, sensitive: frozenset[str] | set[str]) -> str | None:
    """The sensitive name *key* is (in any case style) or ends in, as in *sensitive*; or None.

    ``db_password``, ``x_api_key``, ``aws_session_token``: a sensitive name as suffix.
    """
    normal = _normalize_key(key)
    if normal in sensitive:
        return normal
    parts = normal.split("_")
    for i in range(1, len(parts)):
        tail = "_".join(parts[i:])
        if tail in sensitive:
            return tail
    return None


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


# --- rules given as options, checked once where they are given ---------------


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
