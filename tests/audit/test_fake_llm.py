"""FakeLLM: an offline OpenAI-compatible transport the real SDK talks to."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from typing import Any

import httpx
import openai
import pytest

from structlog_belog.audit.fake_llm import FAKE_BASE_URL, FakeLLM, fake_openai_client

MESSAGES = [{"role": "user", "content": "Write a supertask about patience."}]


def post(fake: FakeLLM, path: str, body: dict[str, Any]) -> httpx.Response:
    """One raw request through the sync transport."""
    with httpx.Client(transport=fake) as http:
        return http.post(f"{FAKE_BASE_URL}{path}", json=body)


class TestFakeLLM:
    def test_deterministic_answers(self) -> None:
        """The same prompt gets the same answer, a different prompt a different one."""
        first = fake_openai_client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
        again = fake_openai_client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
        other = fake_openai_client().chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Something else entirely"}]
        )
        assert first.choices[0].message.content == again.choices[0].message.content
        assert first.choices[0].message.content != other.choices[0].message.content

    def test_stream_matches_non_stream(self) -> None:
        """A stream's deltas join to the non-streamed answer; its usage chunk has the same usage."""
        client = fake_openai_client()
        whole = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        chunks = list(
            client.chat.completions.create(
                model="gpt-4o",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert whole.choices[0].message.content == text
        assert [] == chunks[-1].choices
        assert whole.usage == chunks[-1].usage
        assert whole.usage is not None
        assert len(chunks) - 3 == whole.usage.completion_tokens

    def test_no_usage_chunk_unless_asked(self) -> None:
        """Without include_usage no chunk carries usage, as with the real service."""
        chunks = list(
            fake_openai_client().chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True
            )
        )
        assert all(c.choices and c.usage is None for c in chunks)
        assert all("usage" not in c.to_dict() for c in chunks)

    def test_output_tokens_sets_the_stream_length(self) -> None:
        """output_tokens=200 gives 200 content chunks."""
        chunks = list(
            fake_openai_client(output_tokens=200).chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
        )
        assert 200 == sum(1 for c in chunks if c.choices and c.choices[0].delta.content)

    def test_tool_calls_then_text_after_tool_result(self) -> None:
        """With tools the model calls one; once a tool result is in, it answers in text."""
        tools = [
            {
                "type": "function",
                "function": {
                    "name": "lookup",
                    "parameters": {
                        "type": "object",
                        "properties": {"query": {"type": "string"}, "k": {"type": "integer"}},
                    },
                },
            }
        ]
        client = fake_openai_client()
        first = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=tools)
        [call] = first.choices[0].message.tool_calls or []
        assert "lookup" == call.function.name  # type: ignore[union-attr]
        assert {"query", "k"} == set(json.loads(call.function.arguments))  # type: ignore[union-attr]
        followup = [
            *MESSAGES,
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "found it"},
        ]
        second = client.chat.completions.create(model="gpt-4o", messages=followup, tools=tools)
        assert "stop" == second.choices[0].finish_reason
        assert second.choices[0].message.content

    def test_responses_api(self) -> None:
        """/responses answers with output_text and usage, streamed or not."""
        client = fake_openai_client()
        response = client.responses.create(model="gpt-4.1", input="hello")
        events = list(client.responses.create(model="gpt-4.1", input="hello", stream=True))
        assert "response.created" == events[0].type
        assert "response.completed" == events[-1].type
        deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        assert response.output_text == deltas
        assert response.usage == events[-1].response.usage

    def test_embeddings_float_and_base64(self) -> None:
        """Embeddings come as floats or base64 float32, the same vector either way."""
        fake = FakeLLM()
        floats = post(
            fake,
            "/embeddings",
            {"model": "text-embedding-3-small", "input": "x", "encoding_format": "float"},
        ).json()["data"][0]["embedding"]
        encoded = post(
            fake,
            "/embeddings",
            {"model": "text-embedding-3-small", "input": "x", "encoding_format": "base64"},
        ).json()["data"][0]["embedding"]
        decoded = struct.unpack(f"<{len(floats)}f", base64.b64decode(encoded))
        assert 1536 == len(floats)
        assert pytest.approx(floats, abs=1e-6) == list(decoded)
        sdk = fake_openai_client().embeddings.create(
            model="text-embedding-3-large", input=["a", "b"], dimensions=8
        )
        assert [8, 8] == [len(d.embedding) for d in sdk.data]

    def test_headers(self) -> None:
        """Every answer has a request ID, rate-limit and processing-time headers."""
        response = post(FakeLLM(), "/chat/completions", {"model": "gpt-4o", "messages": MESSAGES})
        assert response.headers["x-request-id"].startswith("req_")
        assert "9999" == response.headers["x-ratelimit-remaining-requests"]
        assert "42" == response.headers["openai-processing-ms"]

    def test_fault_injection(self) -> None:
        """fail_first makes the first N requests fail with fail_status; the SDK retries them."""
        fake = FakeLLM(fail_first=2, fail_status=503)
        client = fake_openai_client(transport=fake)
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert 3 == fake.calls
        with pytest.raises(openai.RateLimitError) as raised:
            fake_openai_client(fail_first=5, max_retries=1).chat.completions.create(
                model="gpt-4o", messages=MESSAGES
            )
        assert 429 == raised.value.status_code

    def test_unknown_path_and_bad_json(self) -> None:
        """Unknown paths are 404, unparsable bodies 400."""
        fake = FakeLLM()
        assert 404 == post(fake, "/images", {}).status_code
        with httpx.Client(transport=fake) as http:
            assert 400 == http.post(f"{FAKE_BASE_URL}/responses", content=b"{").status_code

    def test_cached_tokens_on_repeated_long_prompt(self) -> None:
        """A repeated prompt of 1024+ tokens reports cached tokens, as the service does."""
        client = fake_openai_client()
        long = [{"role": "user", "content": "patience " * 800}]
        first = client.chat.completions.create(model="gpt-4o", messages=long)
        second = client.chat.completions.create(model="gpt-4o", messages=long)
        assert first.usage is not None
        assert second.usage is not None
        assert 0 == first.usage.prompt_tokens_details.cached_tokens  # type: ignore[union-attr]
        assert 0 < second.usage.prompt_tokens_details.cached_tokens  # type: ignore[union-attr]

    def test_async_with_latency(self) -> None:
        """The async transport answers streams too (with latency and chunk delay set)."""

        async def main() -> int:
            client = fake_openai_client(
                async_=True, latency=0.001, chunk_delay=0.0005, output_tokens=5
            )
            stream = await client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True
            )
            return len([c async for c in stream])

        assert 7 == asyncio.run(main())

    @pytest.mark.parametrize(
        ("options", "match"),
        [
            ({"output_tokens": 0}, "output_tokens must be a positive integer"),
            ({"fail_first": -1}, "fail_first must be >= 0"),
            ({"fail_status": 200}, "fail_status must be an HTTP error status"),
        ],
    )
    def test_bad_options(self, options: dict[str, int], match: str) -> None:
        """Bad options are refused, naming the option."""
        with pytest.raises(ValueError, match=match):
            FakeLLM(**options)

    def test_transport_and_options_are_exclusive(self) -> None:
        """fake_openai_client takes a transport or FakeLLM options, not both."""
        with pytest.raises(TypeError, match="not both"):
            fake_openai_client(transport=FakeLLM(), latency=1.0)


class TestFakeLLMShapes:
    def test_schema_driven_arguments(self) -> None:
        """Tool arguments follow the schema: refs, unions, enums, consts, arrays, scalars."""
        schema = {
            "type": "object",
            "$defs": {"Level": {"enum": ["easy", "hard"]}},
            "properties": {
                "level": {"$ref": "#/$defs/Level"},
                "kind": {"const": "supertask"},
                "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "tags": {"type": "array", "items": {"type": "string"}},
                "score": {"type": "number"},
                "done": {"type": "boolean"},
                "nothing": {"type": "null"},
                "maybe": {"type": ["null", "integer"]},
            },
        }
        tools = [{"type": "function", "function": {"name": "save", "parameters": schema}}]
        reply = fake_openai_client().chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,
            tools=tools,
            tool_choice={"type": "function", "function": {"name": "save"}},
        )
        [call] = reply.choices[0].message.tool_calls or []
        arguments = json.loads(call.function.arguments)  # type: ignore[union-attr]
        assert "easy" == arguments["level"]
        assert "supertask" == arguments["kind"]
        assert isinstance(arguments["note"], str)
        assert 1 == len(arguments["tags"])
        assert isinstance(arguments["score"], float)
        assert arguments["done"] is True
        assert arguments["nothing"] is None
        assert isinstance(arguments["maybe"], int)

    def test_tool_choice_none_and_json_mode(self) -> None:
        """tool_choice="none" answers in text; json_object mode answers JSON."""
        tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
        client = fake_openai_client()
        text = client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, tools=tools, tool_choice="none"
        )
        assert text.choices[0].message.tool_calls is None
        as_json = client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": [{"type": "text", "text": "as json"}]}],
            response_format={"type": "json_object"},
        )
        assert "answer" in json.loads(as_json.choices[0].message.content or "")

    def test_responses_tool_calls(self) -> None:
        """/responses calls a tool, streamed or not, and answers after its output."""
        tools = [
            {
                "type": "function",
                "name": "lookup",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            }
        ]
        client = fake_openai_client()
        first = client.responses.create(model="gpt-4.1", input="find it", tools=tools)
        [call] = [item for item in first.output if item.type == "function_call"]
        events = list(
            client.responses.create(model="gpt-4.1", input="find it", tools=tools, stream=True)
        )
        deltas = "".join(
            e.delta for e in events if e.type == "response.function_call_arguments.delta"
        )
        assert call.arguments == deltas
        after = client.responses.create(
            model="gpt-4.1",
            input=[
                {"role": "user", "content": "find it"},
                {"type": "function_call_output", "call_id": call.call_id, "output": "42"},
            ],
            tools=tools,
        )
        assert after.output_text

    def test_embeddings_of_token_ids(self) -> None:
        """An input of token IDs is one input, counted token for token."""
        result = post(
            FakeLLM(),
            "/embeddings",
            {"model": "text-embedding-ada-002", "input": [1, 2, 3], "encoding_format": "float"},
        ).json()
        assert 1 == len(result["data"])
        assert 3 == result["usage"]["prompt_tokens"]

    def test_other_fault_status(self) -> None:
        """A 4xx fault other than 429 is an invalid-request error the SDK does not retry."""
        fake = FakeLLM(fail_first=1, fail_status=403, retry_after_ms=None)
        with pytest.raises(openai.PermissionDeniedError):
            fake_openai_client(transport=fake).chat.completions.create(
                model="gpt-4o", messages=MESSAGES
            )
        assert 1 == fake.calls
        assert "FakeLLM(" in repr(fake)
