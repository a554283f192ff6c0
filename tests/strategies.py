"""Reusable test data: fake secrets of every kind, benign texts, hostile values.

Every secret is built at run time from random characters; no string in this
file looks like a real key. `make_secrets` and `make_benign_texts` are plain
generators (the reliability suite plants their output in whole sessions);
the Hypothesis strategies below draw the same shapes.
"""

# Test data, not cryptography: seeded random generators are what we want.
# ruff: noqa: S311

from __future__ import annotations

import base64
import json
import random
import string
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

__all__ = [
    "PLACES",
    "SECRET_KINDS",
    "Secret",
    "benign_texts",
    "hostile_values",
    "json_values",
    "make_benign_texts",
    "make_secret",
    "make_secrets",
    "plant",
    "secrets",
]

_ALNUM = string.ascii_letters + string.digits
_B64URL = _ALNUM + "-_"
_UPPER_DIGITS = string.ascii_uppercase + string.digits
# "sk" and "-" kept apart so no line of the repository holds a key prefix.
_SK = "sk" + "-"


@dataclass(frozen=True, slots=True)
class Secret:
    """One fake secret: its *kind*, the *text* to plant, the *needle* that must not leak."""

    kind: str
    text: str
    needle: str


def _pick(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _openai(rng: random.Random, prefix: str, n: int) -> Secret:
    body = _pick(rng, _B64URL if prefix else _ALNUM, n)
    text = _SK + prefix + body
    return Secret("openai_key", text, text[len(_SK) :])


def _anthropic(rng: random.Random, kind: str) -> Secret:
    text = _SK + "ant-" + kind + "-" + _pick(rng, _B64URL, 93) + "AA"
    return Secret("anthropic_key", text, text[len(_SK) :])


def _jwt(rng: random.Random) -> Secret:
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": _pick(rng, _ALNUM, 12), "iat": rng.randrange(10**9, 2 * 10**9)}
    payload = _b64url(json.dumps(claims).encode())
    signature = _b64url(rng.randbytes(32))
    text = f"{header}.{payload}.{signature}"
    return Secret("jwt", text, f"{payload}.{signature}")


def _bearer(rng: random.Random) -> Secret:
    token = _pick(rng, _ALNUM + "._~+/-", rng.randrange(24, 64)) + _pick(rng, _ALNUM, 8)
    return Secret("bearer_token", "Bearer " + token, token)


def _basic(rng: random.Random) -> Secret:
    user = _pick(rng, string.ascii_lowercase, 8)
    password = _pick(rng, _ALNUM + "!$%*", 16)
    credential = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return Secret("basic_auth", "Basic " + credential, credential)


def _aws_key_id(rng: random.Random) -> Secret:
    text = rng.choice(("AKIA", "ASIA")) + _pick(rng, _UPPER_DIGITS, 16)
    return Secret("aws_access_key_id", text, text)


def _aws_secret(rng: random.Random) -> Secret:
    value = _pick(rng, _ALNUM + "/+", 40)
    name = rng.choice(("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"))
    sep = rng.choice(("=", " = ", ": ", '": "'))
    return Secret("aws_secret_key", f"{name}{sep}{value}", value)


def _pem(rng: random.Random) -> Secret:
    label = rng.choice(("RSA ", "EC ", "OPENSSH ", ""))
    lines = [_pick(rng, _ALNUM + "+/", 64) for _ in range(rng.randrange(3, 8))]
    body = "\n".join(lines)
    text = f"-----BEGIN {label}PRIVATE KEY-----\n{body}\n-----END {label}PRIVATE KEY-----"
    return Secret("private_key", text, lines[0])


def _url(rng: random.Random) -> Secret:
    scheme = rng.choice(("postgres", "mysql", "redis", "https", "amqp"))
    user = _pick(rng, string.ascii_lowercase, 6)
    password = _pick(rng, _ALNUM + "!$%^*_-", 18)
    text = f"{scheme}://{user}:{password}@db{rng.randrange(100)}.internal:5432/app"
    return Secret("url_password", text, password)


def _github(rng: random.Random) -> Secret:
    text = "gh" + rng.choice("pousr") + "_" + _pick(rng, _ALNUM, 36)
    return Secret("github_token", text, text)


_MAKERS: dict[str, Any] = {
    "openai_legacy": lambda rng: _openai(rng, "", 48),
    "openai_project": lambda rng: _openai(rng, "proj-", 156),
    "openai_service_account": lambda rng: _openai(rng, "svcacct-", 156),
    "openai_admin": lambda rng: _openai(rng, "admin-", 156),
    "anthropic_api": lambda rng: _anthropic(rng, "api03"),
    "anthropic_admin": lambda rng: _anthropic(rng, "admin01"),
    "jwt": _jwt,
    "bearer": _bearer,
    "basic": _basic,
    "aws_access_key_id": _aws_key_id,
    "aws_secret_access_key": _aws_secret,
    "pem_private_key": _pem,
    "url_password": _url,
    "github_token": _github,
}

#: The generator's kinds (more than the nine the reliability suite asks for).
SECRET_KINDS: tuple[str, ...] = tuple(_MAKERS)


def make_secret(kind: str, rng: random.Random) -> Secret:
    """One fake secret of *kind* (one of `SECRET_KINDS`) drawn from *rng*."""
    made: Secret = _MAKERS[kind](rng)
    return made


def make_secrets(n: int, seed: int = 0) -> list[Secret]:
    """*n* fake secrets cycling through every kind, reproducible from *seed*."""
    rng = random.Random(seed)
    return [make_secret(SECRET_KINDS[i % len(SECRET_KINDS)], rng) for i in range(n)]


def plant(secret: Secret, where: str) -> dict[str, Any]:
    """Fields of a record that carry *secret* in the place named *where*.

    Places: ``message``, ``field``, ``nested`` (an LLM request: messages and
    headers), ``json`` (a JSON document inside a string), ``exception`` (a
    formatted traceback).
    """
    text = secret.text
    if where == "message":
        return {"event": f"connecting with {text} now"}
    if where == "field":
        return {"detail": f"config loaded: {text}"}
    if where == "nested":
        return {
            "request": {
                "messages": [
                    {"role": "system", "content": "You are helpful."},
                    {"role": "user", "content": f"please use {text} for the call"},
                ],
                "extra_headers": {"X-Debug": f"{text}"},
            },
            "attempts": [("retry", f"{text}")],
        }
    if where == "json":
        return {"body": json.dumps({"headers": {"X-Credential": text}, "note": f"key {text}"})}
    if where == "exception":
        return {
            "exception": (
                "Traceback (most recent call last):\n"
                '  File "app.py", line 3, in <module>\n'
                f"    connect({text!r})\n"
                f"ValueError: could not connect with {text}"
            )
        }
    msg = f"unknown place {where!r}"
    raise ValueError(msg)


PLACES: tuple[str, ...] = ("message", "field", "nested", "json", "exception")


# -- benign texts: nothing here may be redacted ----------------------------

_WORDS = (
    *("the", "pipeline", "parsed", "content", "template", "analysis", "generated"),
    *("supertasks", "for", "beginner", "advanced", "learners", "basic", "knowledge"),
    *("bearer", "of", "news", "token", "budget", "reset", "your", "password", "link"),
    *("key", "findings", "secret", "sauce", "authorization", "flow", "cookie", "banner"),
    *("session", "stage", "output", "schema", "validated", "retry", "latency", "model"),
)


def _prose(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randrange(6, 30))]
    return " ".join(words).capitalize() + rng.choice((".", "!", "?", ";"))


def _code(rng: random.Random) -> str:
    name = rng.choice(("parse", "render", "load_tokens", "api_client", "get_secret_name"))
    return (
        f"def {name}(path: str, max_tokens: int = {rng.randrange(100, 4000)}) -> dict:\n"
        f"    data = json.loads(Path(path).read_text())  # input_tokens counted\n"
        f"    return {{'total_tokens': len(data), 'items': data[{rng.randrange(9)}:]}}"
    )


def _uuid(rng: random.Random) -> str:
    h = rng.getrandbits(128).to_bytes(16, "big").hex()
    return f"request {h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]} done"


def _hash(rng: random.Random) -> str:
    return f"sha256:{rng.randbytes(32).hex()} md5 {rng.randbytes(16).hex()}"


def _image(rng: random.Random) -> str:
    raw = rng.randbytes(rng.randrange(300, 3000))
    return "data:image/png;base64," + base64.b64encode(raw).decode("ascii")


def _url_plain(rng: random.Random) -> str:
    host = rng.choice(("example.com", "api.openai.com", "localhost:8080", "10.0.0.1:443"))
    return f"GET https://{host}/v1/items/{rng.randrange(10**6)}?page={rng.randrange(9)}&q=a@b"


def _path(rng: random.Random) -> str:
    parts = [rng.choice(("work", "01_raw", "tokens", "keys", "secrets", "out")) for _ in range(4)]
    return "/home/user/" + "/".join(parts) + f"/file_{rng.randrange(999)}.json"


_BENIGN = (_prose, _code, _uuid, _hash, _image, _url_plain, _path)


def make_benign_texts(n: int, seed: int = 0) -> list[str]:
    """*n* texts without secrets: prose, code, UUIDs, hashes, base64 images, URLs, paths."""
    rng = random.Random(seed)
    return [_BENIGN[i % len(_BENIGN)](rng) for i in range(n)]


# -- Hypothesis strategies -----------------------------------------------


def secrets() -> st.SearchStrategy[Secret]:
    """Any fake secret of any kind."""
    return st.builds(make_secret, st.sampled_from(SECRET_KINDS), st.randoms(use_true_random=False))


def benign_texts() -> st.SearchStrategy[str]:
    """Benign texts of the kinds `make_benign_texts` makes."""
    return st.builds(
        lambda maker, rng: maker(rng),
        st.sampled_from(_BENIGN),
        st.randoms(use_true_random=False),
    )


_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)


def json_values() -> st.SearchStrategy[Any]:
    """Values strict JSON can carry exactly (what orjson round-trips)."""
    return st.recursive(
        _JSON_SCALARS,
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
        max_leaves=25,
    )


class _ReprRaises:
    def __repr__(self) -> str:
        msg = "repr refuses"
        raise RuntimeError(msg)


_HOSTILE_SCALARS = (
    _JSON_SCALARS
    | st.floats()
    | st.integers()
    | st.integers(min_value=2**64, max_value=2**300)
    | st.binary(max_size=20)
    | st.text(st.characters(codec=None, categories=["Cs", "Zl", "Zp", "Cc", "Lu"]), max_size=8)
    | st.builds(_ReprRaises)
    | st.sampled_from(("\r\n", "\u2028", "\u2029", "\x85", "\x1b[31m", "</script>"))
)


def hostile_values() -> st.SearchStrategy[Any]:
    """Values that strict JSON cannot carry as they are; render_jsonl must cope."""
    keys = st.text(max_size=5) | st.integers() | st.none() | st.tuples(st.integers())
    return st.recursive(
        _HOSTILE_SCALARS,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.tuples(inner, inner)
            | st.frozensets(st.integers() | st.text(max_size=3), max_size=3)
            | st.dictionaries(keys, inner, max_size=4)
        ),
        max_leaves=20,
    )
