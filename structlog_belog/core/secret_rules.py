"""The secret rules: which key names hold secrets, and what secrets look like in text.

This is the table `SecretRedactor` (`core.redact`) applies: the sensitive key
names, the shapes of secrets by kind (one combined regex, anchored on
characters rare in prose), the ``name=value`` assignment rules and the stems
that gate them. The engine that walks records and caches verdicts is in
`core.redact`; a new secret format is a change to this module only.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

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
        "credential",
        "credentials",
    }
)

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


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
