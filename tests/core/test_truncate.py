"""ValueTruncator: head and tail kept, length and SHA-256 stated, memory bounded."""

from __future__ import annotations

import copy
import hashlib
import re
import shutil
import subprocess
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from structlog_belog.core.truncate import ValueTruncator
from tests.conftest import run_python

_MARKER = re.compile(r"\.\.\.\[truncated (\d+) (chars|bytes), sha256:([0-9a-f]{64})\]\.\.\.")


def truncate(record: dict[str, Any], truncator: ValueTruncator | None = None) -> dict[str, Any]:
    return (truncator or ValueTruncator())(None, "info", record)


class TestValueTruncator:
    def test_short_values_untouched(self) -> None:
        """Values up to the cap are the same objects afterwards."""
        text = "x" * 131_072
        nested = {"a": ["y" * 10]}

        out = truncate({"event": text, "nested": nested})

        assert text is out["event"]
        assert nested is out["nested"]

    def test_long_value_keeps_head_tail_length_hash(self) -> None:
        """A long string keeps head and tail; the marker states length and SHA-256."""
        text = "H" * 1000 + "m" * 10_000 + "T" * 1000

        out = ValueTruncator(max_chars=2000).truncate(text)

        match = _MARKER.search(out)
        assert match is not None
        assert ("12000", "chars") == match.group(1, 2)
        assert hashlib.sha256(text.encode()).hexdigest() == match.group(3)
        head, tail = out[: match.start()], out[match.end() :]
        assert text.startswith(head)
        assert text.endswith(tail)
        assert len(head) == len(tail) > 900
        assert len(out) <= 2000

    def test_hash_matches_sha256sum(self, tmp_path: Path) -> None:
        """The stated hash is what ``sha256sum`` prints for the original's UTF-8 bytes."""
        tool = shutil.which("sha256sum")
        if tool is None:
            pytest.skip("needs the sha256sum program")
        text = "é∑🙂" * 50_000
        path = tmp_path / "original.txt"
        path.write_text(text, encoding="utf-8")

        out = ValueTruncator(max_chars=1000).truncate(text)

        printed = subprocess.run([tool, str(path)], capture_output=True, check=True, text=True)
        match = _MARKER.search(out)
        assert match is not None
        assert printed.stdout.split()[0] == match.group(3)

    def test_cap_fields_says_whether_it_changed(self) -> None:
        """cap_fields caps in place and returns True only when it cut a value."""
        truncator = ValueTruncator(max_chars=300)
        short = {"a": "x" * 300, "n": 1, "nested": {"b": ["y" * 300]}}
        assert False is truncator.cap_fields(short)
        assert {"a": "x" * 300, "n": 1, "nested": {"b": ["y" * 300]}} == short
        top, nested = {"a": "x" * 301}, {"nested": {"b": ["y" * 301]}}
        assert True is truncator.cap_fields(top)
        assert True is truncator.cap_fields(nested)
        assert 300 >= len(top["a"])
        assert 300 >= len(nested["nested"]["b"][0])

    def test_nested_values_capped_without_mutating(self) -> None:
        """Long strings in nested dicts, lists and tuples are capped in copies."""
        record = {"request": {"messages": [{"content": "z" * 5000}], "pair": ("a", "b" * 5000)}}
        request = record["request"]
        before = copy.deepcopy(request)

        out = truncate(record, ValueTruncator(max_chars=1000))

        assert before == request
        assert len(out["request"]["messages"][0]["content"]) <= 1000
        assert tuple is type(out["request"]["pair"])
        assert len(out["request"]["pair"][1]) <= 1000

    def test_bytes_capped(self) -> None:
        """Huge bytes keep head and tail and state their length and hash."""
        data = bytes(range(256)) * 100

        out = truncate({"body": data}, ValueTruncator(max_chars=1000))["body"]

        assert bytes is type(out)
        assert len(out) <= 1000
        digest = hashlib.sha256(data).hexdigest()
        assert f"[truncated {len(data)} bytes, sha256:{digest}]".encode() in out
        assert out.startswith(data[:100])

    def test_lone_surrogates_hashed(self) -> None:
        """A string with lone surrogates is capped and hashed without error."""
        text = "\ud800" * 5000

        out = ValueTruncator(max_chars=1000).truncate(text)

        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        assert digest in out

    def test_cycles(self) -> None:
        """Cyclic containers are walked without error."""
        loop: list[Any] = ["q" * 3000]
        loop.append(loop)

        out = truncate({"loop": loop}, ValueTruncator(max_chars=1000))

        assert len(out["loop"][0]) <= 1000

    @given(
        text=st.text(min_size=0, max_size=3000),
        cap=st.integers(min_value=256, max_value=2500),
    )
    def test_idempotent_and_bounded(self, text: str, cap: int) -> None:
        """Truncating twice equals truncating once, and results fit the cap."""
        truncator = ValueTruncator(max_chars=cap)

        once = truncator.truncate(text)

        assert once == truncator.truncate(once)
        assert len(once) <= cap

    def test_100_mb_string_memory_bounded(self) -> None:
        """A 100 MB string is capped with memory growth under 3x the cap."""
        cap = 131_072
        text = "a" * (100 * 1024 * 1024)
        truncator = ValueTruncator(max_chars=cap)
        tracemalloc.start()
        try:
            out = truncate({"blob": text}, truncator)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        assert peak < 3 * cap
        assert len(out["blob"]) <= cap
        assert f"truncated {len(text)} chars" in out["blob"]

    @pytest.mark.parametrize(
        ("kwargs", "culprit"),
        [
            ({"max_chars": 0}, "max_chars"),
            ({"max_chars": 255}, "max_chars"),
            ({"max_chars": "10"}, "max_chars"),
            ({"max_chars": True}, "max_chars"),
            ({"max_bytes": -1}, "max_bytes"),
            ({"max_depth": 0}, "max_depth"),
        ],
    )
    def test_bad_values_name_the_argument(self, kwargs: dict[str, Any], culprit: str) -> None:
        """Unusable configuration raises ValueError naming the argument."""
        with pytest.raises(ValueError, match=culprit):
            ValueTruncator(**kwargs)

    def test_defaults(self) -> None:
        """The default cap is 131,072 characters, and bytes follow it."""
        truncator = ValueTruncator()

        assert (131_072, 131_072) == (truncator.max_chars, truncator.max_bytes)
        assert "ValueTruncator(max_chars=131072, max_bytes=131072)" == repr(truncator)


_CHAIN = """
import resource, sys
from structlog_belog.processors import SecretRedactor, ValueTruncator, render_jsonl

redactor, truncator = SecretRedactor(), ValueTruncator()
render_jsonl(None, "info", truncator(None, "info", redactor(None, "info", {"warm": "up"})))
text = "a" * (100 * 1024 * 1024)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
line = render_jsonl(None, "info", truncator(None, "info", redactor(None, "info", {"v": text})))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert b"truncated 104857600 chars" in line, line[:200]
print((after - before) * 1024)
"""


class TestValueTruncatorInChain:
    def test_100_mb_value_peak_rss(self, subprocess_env: dict[str, str]) -> None:
        """A 100 MB value through redactor, truncator and renderer: peak RSS grows < 3x the cap."""
        out = run_python(_CHAIN, subprocess_env, timeout=120)

        assert int(out) < 3 * 131_072, out
