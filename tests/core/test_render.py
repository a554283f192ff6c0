"""render_jsonl: one valid JSON line for any record, and orjson's speed for plain ones."""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from structlog_belog.core.render import render_jsonl
from tests.strategies import hostile_values, json_values


def _refuse_constant(name: str) -> Any:
    msg = f"non-standard JSON constant {name}"
    raise ValueError(msg)


def strict_line(line: bytes) -> Any:
    """Parse *line* as exactly one strict JSON line (no NaN/Infinity tokens)."""
    assert line.endswith(b"\n")
    assert not line.endswith(b"\n\n")
    assert 1 == line.count(b"\n")
    assert b"\r" not in line
    text = line.decode("utf-8")
    assert 1 == len(text.splitlines())
    return json.loads(text, parse_constant=_refuse_constant)


def render(record: Any) -> Any:
    return strict_line(render_jsonl(None, "info", record))


class _ReprRaises:
    def __repr__(self) -> str:
        msg = "no repr for you"
        raise RuntimeError(msg)


class _Color(enum.Enum):
    RED = "red"


@dataclass
class _Point:
    x: int
    y: int


class TestRenderJsonl:
    @given(value=json_values())
    def test_round_trip(self, value: Any) -> None:
        """Any JSON-able value comes back equal through a strict parser."""
        assert {"v": value} == render({"v": value})

    @given(value=hostile_values())
    def test_hostile_values_give_one_line(self, value: Any) -> None:
        """Whatever the value, the result is one strict JSON line."""
        assert "v" in render({"v": value, "event": "x"})

    def test_fast_path_is_plain_orjson(self) -> None:
        """A plain record renders exactly as orjson.dumps with a newline."""
        record = {"event": "x", "n": 1, "f": 1.5, "l": [1, None], "session_id": None}

        expected = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)

        assert expected == render_jsonl(None, "info", record)

    def test_non_finite_floats_named(self) -> None:
        """NaN and ±Infinity become the strings "NaN", "Infinity", "-Infinity"."""
        record = {"a": math.nan, "b": math.inf, "c": [-math.inf], "d": {"e": math.nan}}

        assert {
            "a": "NaN",
            "b": "Infinity",
            "c": ["-Infinity"],
            "d": {"e": "NaN"},
        } == render(record)

    def test_non_finite_floats_in_subclasses_named(self) -> None:
        """NaN hidden in an OrderedDict, a named tuple or a float subclass is named too."""
        import collections

        class Ratio(float):
            pass

        point = collections.namedtuple("point", "x y")
        record = {
            "n": None,
            "o": collections.OrderedDict(x=math.nan),
            "t": point(1.0, math.inf),
            "f": Ratio("-inf"),
        }

        assert {"n": None, "o": {"x": "NaN"}, "t": [1.0, "Infinity"], "f": "-Infinity"} == render(
            record
        )

    def test_null_without_nan_kept(self) -> None:
        """A record with None and finite floats keeps null and numbers."""
        assert {"a": None, "b": 0.5} == render({"a": None, "b": 0.5})

    def test_lone_surrogates_escaped(self) -> None:
        """Lone surrogates in values and keys are written as escape text."""
        out = render({"s": "a\ud800b", "\udfff": 1})

        assert {"s": "a\\ud800b", "\\udfff": 1} == out

    def test_big_ints_as_strings(self) -> None:
        """Ints beyond 64 bits become decimal strings (hex past int→str's limit)."""
        out = render({"big": 2**70, "neg": -(2**64), "ok": 2**64 - 1, "huge": 10**5000})

        assert str(2**70) == out["big"]
        assert str(-(2**64)) == out["neg"]
        assert 2**64 - 1 == out["ok"]
        assert out["huge"].startswith("0x")

    def test_bytes_decoded_with_escapes(self) -> None:
        """Bytes are UTF-8 text; invalid bytes are escaped as \\xNN."""
        assert {"b": "ok é \\xff"} == render({"b": "ok é ".encode() + b"\xff"})

    def test_repr_raising_object(self) -> None:
        """An object whose repr raises becomes a placeholder naming its type."""
        assert {"o": "<unrepresentable _ReprRaises>"} == render({"o": _ReprRaises()})

    def test_cycles(self) -> None:
        """Cycles are cut with a placeholder naming the container."""
        loop: dict[str, Any] = {}
        loop["self"] = loop
        items: list[Any] = []
        items.append(items)

        out = render({"loop": loop, "items": items})

        assert {"self": "<cycle: dict>"} == out["loop"]
        assert ["<cycle: list>"] == out["items"]

    def test_ten_thousand_deep(self) -> None:
        """10,000-deep nesting yields one line, cut with a placeholder."""
        deep: list[Any] = []
        for _ in range(10_000):
            deep = [deep]

        line = render_jsonl(None, "info", {"deep": deep})

        assert b"<nested too deep: list>" in line
        strict_line(line)

    def test_non_string_keys(self) -> None:
        """Keys that are not strings are written as text."""
        out = render({1: "a", None: "b", False: "c", (1, 2): "d", 1.5: "e"})

        assert {"1": "a", "null": "b", "false": "c", "(1, 2)": "d", "1.5": "e"} == out

    def test_common_types(self) -> None:
        """Sets, tuples, paths, datetimes, UUIDs, enums, dataclasses and exceptions render."""
        when = dt.datetime(2025, 1, 18, 17, 30, tzinfo=dt.UTC)
        out = render(
            {
                "set": {3},
                "tuple": (1, "a"),
                "path": Path("/tmp/x"),
                "pure": PurePosixPath("a/b"),
                "when": when,
                "id": uuid.UUID(int=7),
                "color": _Color.RED,
                "point": _Point(1, 2),
                "error": ValueError("bad"),
            }
        )

        assert {
            "set": [3],
            "tuple": [1, "a"],
            "path": "/tmp/x",
            "pure": "a/b",
            "when": "2025-01-18T17:30:00+00:00",
            "id": str(uuid.UUID(int=7)),
            "color": "red",
            "point": {"x": 1, "y": 2},
            "error": "ValueError('bad')",
        } == out

    def test_slow_path_keeps_orjson_types(self) -> None:
        """When one value forces the slow path, the others keep orjson's rendering."""
        when = dt.datetime(2025, 1, 18, tzinfo=dt.UTC)

        out = render({"when": when, "big": 2**80, "point": _Point(3, 4)})

        assert "2025-01-18T00:00:00+00:00" == out["when"]
        assert {"x": 3, "y": 4} == out["point"]

    @pytest.mark.parametrize(
        "text", ["a\nb", "a\rb", "a\r\nb", "a\u2028b", "a\u2029b", "a\x85b", "a\x0bb", "\x1b[31m"]
    )
    def test_line_breaks_escaped(self, text: str) -> None:
        """CR, LF, U+2028, U+2029, NEL and control characters never split the line."""
        assert {"event": text} == render({"event": text})

    @given(text=st.text())
    def test_any_text_one_line(self, text: str) -> None:
        """Any text value renders as exactly one line that parses back to it."""
        assert {"event": text} == render({"event": text})

    def test_not_a_dict(self) -> None:
        """A processor that returned something else still gets one line."""
        assert [1, "x"] == render([1, "x"])
        assert "just text" == render("just text")

    def test_mapping_that_breaks(self) -> None:
        """A mapping whose iteration raises is written as its repr text."""

        class Broken(dict[str, Any]):
            def items(self) -> Any:
                msg = "no items"
                raise RuntimeError(msg)

            def __iter__(self) -> Any:
                msg = "no iteration"
                raise RuntimeError(msg)

        out = render({"m": Broken(a=1), "big": 2**70})

        assert str(2**70) == out["big"]
        assert isinstance(out["m"], str | dict)
