"""The pure functions that turn SDK objects and call arguments into llm_call fields."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

import openai
from hypothesis import given
from hypothesis import strategies as st
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from structlog_belog.audit import record as record_fields


class FrozenMapping(Mapping[str, Any]):
    """A Mapping that is not a dict, as some wrappers return."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def sha(text: str) -> str:
    """SHA-256 hex of *text*."""
    return hashlib.sha256(text.encode()).hexdigest()


def chat_completion(**overrides: Any) -> ChatCompletion:
    """A ChatCompletion built the way the SDK builds one from JSON."""
    data: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "one"},
            },
            {
                "index": 1,
                "finish_reason": "length",
                "message": {"role": "assistant", "content": None, "refusal": "no"},
            },
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
    data.update(overrides)
    return ChatCompletion.construct(**data)  # type: ignore[no-any-return]


class TestJsonable:
    def test_kinds(self) -> None:
        """Tuples become lists, Mappings dicts, unknown objects their repr, models their dump."""
        usage = openai.types.CompletionUsage(prompt_tokens=1, completion_tokens=2, total_tokens=3)
        value = (FrozenMapping({"a": 1}), usage, object, 1.5, None)
        out = record_fields.jsonable(value)
        assert {"a": 1} == out[0]
        assert {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3} == out[1]
        assert "builtins.object" == out[2]
        assert [1.5, None] == out[3:]
        assert record_fields.jsonable(openai.NOT_GIVEN) is None
        assert record_fields.jsonable(b"ab") == {"bytes": 2}
        assert record_fields.jsonable({1}).startswith("{")

    def test_deep_nesting_is_cut(self) -> None:
        """Values nested deeper than the limit are stored as their repr."""
        deep: list[Any] = []
        node = deep
        for _ in range(50):
            child: list[Any] = []
            node.append(child)
            node = child
        flattened = record_fields.jsonable(deep)
        for _ in range(33):
            flattened = flattened[0]
        assert isinstance(flattened, str)

    def test_broken_model_dump_is_named(self) -> None:
        """An object whose model_dump raises is stored as its repr."""

        class Broken:
            def model_dump(self, **_: Any) -> Any:
                raise RuntimeError("no")

            def __repr__(self) -> str:
                return "<Broken>"

        assert "<Broken>" == record_fields.jsonable(Broken())

    @given(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(),
            lambda children: st.lists(children) | st.dictionaries(st.text(), children),
            max_leaves=20,
        )
    )
    def test_json_values_round_trip(self, value: Any) -> None:
        """Plain JSON values come back equal (and are copies, not the same containers)."""
        copied = record_fields.jsonable(value)
        assert value == copied
        if isinstance(value, list | dict) and value:
            assert copied is not value

    def test_message_lists_are_copied_deep_enough(self) -> None:
        """Flat message dicts are copied (a caller editing one later changes no record)."""
        messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": None}]
        copied = record_fields.jsonable(messages)
        messages[0]["content"] = "changed"
        messages.append({"role": "user", "content": "b"})
        assert [{"role": "user", "content": "a"}, {"role": "assistant", "content": None}] == copied

    def test_lists_with_values_to_convert_take_the_slow_path(self) -> None:
        """Sentinels, floats and nested containers inside message lists are still converted."""
        messages = [
            {"role": "user", "content": "a", "name": openai.NOT_GIVEN},
            {"role": "user", "content": [{"type": "text", "text": "b"}], "weight": float("nan")},
        ]
        assert [
            {"role": "user", "content": "a"},
            {"role": "user", "content": [{"type": "text", "text": "b"}], "weight": "NaN"},
        ] == record_fields.jsonable(messages)
        assert ["x", 1, None, "Infinity"] == record_fields.jsonable(["x", 1, None, float("inf")])


class TestRequestOf:
    def test_transport_arguments_left_out(self) -> None:
        """timeout/extra_query are not model arguments; headers and extra body are kept apart."""
        request = record_fields.request_of(
            {
                "model": "m",
                "temperature": openai.omit,
                "timeout": 3,
                "extra_query": {"a": "b"},
                "extra_headers": {"X-Trace": "1"},
                "extra_body": {"reasoning": {"effort": "low"}},
            }
        )
        assert {
            "model": "m",
            "headers": {"X-Trace": "1"},
            "extra_body": {"reasoning": {"effort": "low"}},
        } == request


class TestGuessApi:
    def test_from_result_types(self) -> None:
        """The result's type names the API when arguments are ambiguous."""
        embedding = CreateEmbeddingResponse.construct(data=[], model="m", object="list")
        response = Response.construct(id="r", object="response", output=[])
        assert "embeddings" == record_fields.guess_api({"input": "x"}, embedding)
        assert "chat.completions" == record_fields.guess_api({"input": "x"}, chat_completion())
        assert "responses" == record_fields.guess_api({"input": "x"}, response)
        assert "responses" == record_fields.guess_api({"input": "x"}, 42)


class TestScrub:
    def test_request(self) -> None:
        """Every message, input item and instruction becomes length + hash."""
        request = {
            "model": "m",
            "input": [{"role": "user", "content": "hi"}, "plain"],
            "instructions": "be brief",
            "messages": [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}],
                },
                "odd",
            ],
        }
        scrubbed = record_fields.scrub_request(request)
        assert {"role": "user", "content": {"length": 2, "sha256": sha("hi")}} == (
            scrubbed["input"][0]
        )
        assert {"length": 5, "sha256": sha("plain")} == scrubbed["input"][1]
        assert {"length": 8, "sha256": sha("be brief")} == scrubbed["instructions"]
        assert "assistant" == scrubbed["messages"][0]["role"]
        assert "length" in scrubbed["messages"][0]["tool_calls"]
        assert "m" == scrubbed["model"]
        assert {"length": 4, "sha256": sha("text")} == record_fields.scrub_request(
            {"input": "text"}
        )["input"]

    def test_response(self) -> None:
        """Output text, refusals, tool-call arguments and each choice are hashed."""
        response = {
            "output_text": "answer",
            "refusal": "no",
            "tool_calls": [{"id": "c", "name": "f", "arguments": '{"a": 1}'}],
            "choices": [{"output_text": "x", "finish_reason": "stop"}],
        }
        scrubbed = record_fields.scrub_response(response)
        assert sha("answer") == scrubbed["output_text"]["sha256"]
        assert sha("no") == scrubbed["refusal"]["sha256"]
        assert "f" == scrubbed["tool_calls"][0]["name"]
        assert sha('{"a": 1}') == scrubbed["tool_calls"][0]["arguments"]["sha256"]
        assert sha("x") == scrubbed["choices"][0]["output_text"]["sha256"]


class TestUsageOf:
    def test_shapes(self) -> None:
        """Chat, responses and embeddings usage, as objects or dicts, map to one shape."""
        assert record_fields.usage_of(None) is None
        assert {
            "input_tokens": 3,
            "output_tokens": None,
            "total_tokens": 3,
            "cached_tokens": None,
            "reasoning_tokens": None,
        } == record_fields.usage_of({"prompt_tokens": 3, "total_tokens": 3})
        assert {
            "input_tokens": 4,
            "output_tokens": 6,
            "total_tokens": 10,
            "cached_tokens": 1,
            "reasoning_tokens": 2,
        } == record_fields.usage_of(
            FrozenMapping(
                {
                    "input_tokens": 4,
                    "output_tokens": 6,
                    "total_tokens": 10,
                    "input_tokens_details": {"cached_tokens": 1},
                    "output_tokens_details": {"reasoning_tokens": 2},
                }
            )
        )


class TestResponseOf:
    def test_chat_with_several_choices(self) -> None:
        """n > 1 lists every choice; a refusal is kept."""
        response = record_fields.result_of("chat.completions", chat_completion())[0]
        assert "one" == response["output_text"]
        assert [0, 1] == [c["index"] for c in response["choices"]]
        assert "no" == response["choices"][1]["refusal"]
        empty = record_fields.result_of("chat.completions", chat_completion(choices=[]))[0]
        assert empty["output_text"] is None

    def test_responses_items(self) -> None:
        """Function calls, refusals, other output types and statuses are read."""
        result = {
            "id": "r",
            "model": "m",
            "status": "incomplete",
            "incomplete_details": {"reason": "max_output_tokens"},
            "output": [
                {"type": "reasoning"},
                {
                    "type": "message",
                    "content": [
                        {"type": "output_text", "text": "a"},
                        {"type": "refusal", "refusal": "no"},
                    ],
                },
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            ],
        }
        response = record_fields.result_of("responses", result)[0]
        assert "max_output_tokens" == response["finish_reason"]
        assert "a" == response["output_text"]
        assert "no" == response["refusal"]
        assert ["reasoning"] == response["output_types"]
        assert [{"id": "c", "type": "function", "name": "f", "arguments": "{}"}] == (
            response["tool_calls"]
        )
        failed = record_fields.result_of("responses", {"status": "failed", "output": []})[0]
        assert "failed" == failed["finish_reason"]
        calls = record_fields.result_of(
            "responses", {"status": "completed", "output": [result["output"][2]]}
        )[0]
        assert "tool_calls" == calls["finish_reason"]

    def test_embeddings_without_data(self) -> None:
        """An empty embeddings result has no dimensions."""
        assert {"model": "m", "embeddings": 0, "dimensions": None} == record_fields.result_of(
            "embeddings", {"model": "m", "data": []}
        )[0]


class TestDescribeError:
    def test_plain_exception(self) -> None:
        """A non-SDK exception has no status, request ID or code."""
        assert {
            "type": "ValueError",
            "message": "bad",
            "status_code": None,
            "request_id": None,
        } == record_fields.describe_error(ValueError("bad"))
