"""The secret rule table: every format caught, benign texts kept, no secret split by a cut."""
# Seeded random generators make the test data; nothing cryptographic.
# ruff: noqa: S311

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from structlog_belog.core.redact import SecretRedactor
from structlog_belog.core.secret_rules import shapes_pattern
from structlog_belog.core.secret_shapes import RULES
from structlog_belog.core.truncate import ValueTruncator, head_length
from tests.secret_formats import FORMATS, make_benign_corpus, make_format


class TestRules:
    def test_sixty_formats_at_least(self) -> None:
        """The table names at least 60 formats, and the probe makes at least 60."""
        assert len({rule.name for rule in RULES}) >= 60
        assert len(FORMATS) >= 60

    def test_pattern_compiles_with_one_group_per_rule(self) -> None:
        """The combined regex names every rule (r<i>) and opens with an anchor character."""
        pattern = re.compile(shapes_pattern("(?!x)"))
        assert {f"r{i}" for i in range(len(RULES))} <= set(pattern.groupindex)

    @pytest.mark.parametrize("fmt", sorted(FORMATS))
    def test_every_format_caught_in_text(self, fmt: str) -> None:
        """A secret of each format is replaced in prose, JSON and after an assignment."""
        redactor = SecretRedactor()
        rng = random.Random(fmt)
        for _ in range(20):
            secret = make_format(fmt, rng)
            for text in (
                f"connecting with {secret.text} now",
                f'{{"config": "{secret.text}"}}',
                f"value={secret.text};",
                secret.text,
            ):
                out = redactor.redact_text(text)
                assert secret.needle not in out, (fmt, out)
                assert "[REDACTED:" in out
                assert out == redactor.redact_text(out)  # idempotent


class TestBenign:
    def test_thousand_benign_texts_unaltered(self) -> None:
        """1,000 texts without secrets (hashes, UUIDs, base64, prose, paths, URLs) stay as is."""
        redactor = SecretRedactor()
        texts = make_benign_corpus(1000, seed=14)

        altered = [t for t in texts if redactor.redact_text(t) != t]

        assert [] == altered

    @settings(max_examples=300, deadline=None)
    @given(seed=st.integers(0, 2**32), n=st.integers(1, 20))
    def test_generated_benign_texts_unaltered(self, seed: int, n: int) -> None:
        """Benign texts from any seed come back unchanged, alone and joined."""
        redactor = SecretRedactor()
        texts = make_benign_corpus(n, seed=seed)
        for text in [*texts, " ".join(texts), "\n".join(texts)]:
            assert text == redactor.redact_text(text)


class TestCutThroughSecret:
    """A value over the cap loses its middle; no secret may keep a piece at either cut."""

    CAP = 4096

    def _cut_through(self, fmt: str, side: str, offset: int) -> tuple[str, str]:
        secret = make_format(fmt, random.Random(f"{fmt}/{side}/{offset}"))
        needle_at = secret.text.index(secret.needle)
        head = head_length(self.CAP)
        if side == "head":
            # The head cut (at `head`) falls `offset` characters into the needle.
            before = ("w " * self.CAP)[-(head - needle_at - offset) :]
            text = before + secret.text + " tail" * 2000
        else:
            # The tail cut (`head` from the end) falls `offset` characters before its end.
            after = (" z" * self.CAP)[: head - (len(secret.text) - needle_at) + offset]
            text = "head " * 2000 + secret.text + after
        return text, secret.needle

    @pytest.mark.parametrize("fmt", sorted(FORMATS))
    @pytest.mark.parametrize("side", ["head", "tail"])
    def test_no_piece_of_a_cut_secret_kept(self, fmt: str, side: str) -> None:
        """Wherever a cut goes through a secret, no piece of 6+ characters of it is kept."""
        redactor = SecretRedactor(max_scan_chars=self.CAP)
        for offset in (1, 3, 8, 13):
            text, needle = self._cut_through(fmt, side, offset)
            assert len(text) > self.CAP

            out = redactor.redact_text(text)

            assert len(out) <= self.CAP
            assert "[truncated" in out
            pieces = {needle[i : i + 6] for i in range(len(needle) - 5)}
            kept = [p for p in pieces if p in out.replace("[REDACTED:", "")]
            assert [] == kept, (fmt, offset)

    def test_cut_of_a_clean_text_is_the_truncators(self) -> None:
        """Without a secret at a cut, the redactor cuts exactly as ValueTruncator."""
        text = "lorem ipsum " * 2000

        assert ValueTruncator(self.CAP).truncate(text) == SecretRedactor(
            max_scan_chars=self.CAP
        ).redact_text(text)

    def test_bytes_cut_through_a_secret(self) -> None:
        """Bytes over the cap are cut off a secret too."""
        secret = make_format("github_pat", random.Random(5))
        head = head_length(self.CAP)
        data = (b"h" * (head - 10)) + secret.text.encode() + b" x" * 4000

        out = SecretRedactor(max_scan_chars=self.CAP).redact_value({"b": data})["b"]

        assert secret.needle[10:].encode() not in (out if isinstance(out, bytes) else out.encode())


#: Key names that conventionally hold secrets, as services and SDKs spell them.
_KEY_NAMES = (
    *("password", "passwd", "pwd", "pass", "pw", "passphrase", "secret", "client_secret"),
    *("secret_key", "secret_access_key", "aws_secret_access_key", "access_key", "account_key"),
    *("shared_access_key", "token", "access_token", "refresh_token", "id_token", "auth_token"),
    *("session_token", "security_token", "api_token", "api_key", "x_api_key", "apikey"),
    *("authorization", "proxy_authorization", "cookie", "set_cookie", "private_key"),
    *("private_key_pem", "connection_string", "conn_str", "database_url", "db_url", "dsn"),
    *("jwt", "bearer", "credentials", "signing_key", "encryption_key", "master_key"),
)

#: Of those, the names whose ``name=value`` / ``"name": "value"`` is redacted in free text
#: (the others hold values with a shape of their own: a JWT, a PEM block, a URL).
_TEXT_NAMES = (
    *("password", "passwd", "pwd", "pass", "pw", "passphrase", "secret", "client_secret"),
    *("secret_key", "secret_access_key", "aws_secret_access_key", "token", "access_token"),
    *("refresh_token", "auth_token", "session_token", "api_token", "api_key", "private_key"),
    *("authorization", "proxy_authorization"),
)


def _styles(name: str) -> list[str]:
    """*name* in snake, SCREAMING, camel, Pascal, kebab and Train-Case."""
    words = name.split("_")
    camel = words[0] + "".join(w.title() for w in words[1:])
    return [
        name,
        name.upper(),
        camel,
        camel[0].upper() + camel[1:],
        name.replace("_", "-"),
        "-".join(w.title() for w in words),
    ]


class TestKeyNames:
    @pytest.mark.parametrize("name", _KEY_NAMES)
    def test_dict_key_in_any_style_replaced(self, name: str) -> None:
        """The value of a conventional secret key is replaced, however the key is spelt."""
        value = "v4lue-" + "Q" * 12
        redactor = SecretRedactor()
        for key in _styles(name):
            out = redactor(None, "info", {"event": "e", key: value, "nested": {key: value}})
            assert value not in repr(out), key

    @pytest.mark.parametrize("name", _TEXT_NAMES)
    def test_assignment_in_any_style_replaced(self, name: str) -> None:
        """``name=value``, ``"name": "value"`` and ``Name: value`` lose the value in any style."""
        value = "v4lue" + "Q" * 12
        redactor = SecretRedactor()
        for key in _styles(name):
            for text in (f"{key}={value}", f'{{"{key}": "{value}"}}', f"{key}: {value}"):
                assert value not in redactor.redact_text(f"config {text} end"), text

    def test_at_least_27_names(self) -> None:
        """The conventional names number at least the 27 the issue counted."""
        assert len(_KEY_NAMES) >= 27
