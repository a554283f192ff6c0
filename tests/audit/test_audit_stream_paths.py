"""The two ways a chat stream is read: tapped (as the SDK parses it) and fed (chunk by chunk).

An SDK stream the audit wraps before it starts is tapped (`data_tap`): its
parsed chunks pass the aggregator before the SDK builds them. Any other is
fed its chunk objects. Both must give the caller an unaudited run's chunks
and write the same record, whatever the server's shape.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

import structlog_belog as belog
from structlog_belog.audit import aggregate
from structlog_belog.audit.call import audit_failures
from structlog_belog.audit.data_tap import HIDDEN, TappedClient, tap_data
from structlog_belog.audit.fake_llm import FakeLLM, fake_openai_client
from structlog_belog.core.config import Config
from tests.audit.test_audit import MESSAGES, prompts
from tests.audit.test_audit_stream import Ragged, Spaced, any_chunks, chat_aggregator, dumps

PATHS = ["tapped", "fed"]


@pytest.fixture(params=PATHS)
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with streams tapped (the default) or fed (tapping refused)."""
    if request.param == "fed":
        monkeypatch.setattr(aggregate, "tap_data", lambda *_: False)
    return str(request.param)


def _chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
    body = {"id": "chatcmpl-odd", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    return b"data: " + json.dumps({**body, "choices": choices, **extra}).encode() + b"\n\n"


class OddServer(FakeLLM):
    """A server with chunks of unusual shapes, and a usage event only when it is asked for.

    Two choices in one chunk, a choice without its ``index``, a delta whose
    tool calls cannot be read (an index that is a JSON object).
    """

    def _answer(self, request: httpx.Request) -> tuple[int, dict[str, str], bytes | list[bytes]]:
        payload = json.loads(request.read())
        asked = bool((payload.get("stream_options") or {}).get("include_usage"))
        body = [
            _chunk(
                [
                    {"index": 0, "delta": {"role": "assistant", "content": "Hel"}},
                    {"index": 1, "delta": {"role": "assistant", "content": "Bon"}},
                ]
            ),
            _chunk([{"index": 0, "delta": {"content": "!", "tool_calls": [{"index": {"x": 1}}]}}]),
            _chunk(
                [
                    {"delta": {"content": "lo"}, "finish_reason": "stop"},
                    {"index": 1, "delta": {"content": "jour"}, "finish_reason": "stop"},
                ]
            ),
        ]
        if asked:
            usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
            body.append(_chunk([], usage=usage))
        body.append(b"data: [DONE]\n\n")
        return 200, {"content-type": "text/event-stream"}, body


def odd_client(async_: bool) -> Any:
    return fake_openai_client(async_, transport=OddServer())


SERVERS: dict[str, Callable[[], FakeLLM]] = {
    "plain": FakeLLM,
    "ragged": lambda: Ragged(7),
    "spaced": Spaced,
}


@pytest.mark.parametrize("async_", [False, True])
@pytest.mark.parametrize("server", ["plain", "ragged", "spaced"])
def test_both_paths_give_the_unaudited_chunks(
    belog_config: Config, path: str, server: str, async_: bool
) -> None:
    """Tapped or fed, in any read size or JSON spacing: the caller's chunks, one true record."""

    bare = any_chunks(fake_openai_client(async_, transport=SERVERS[server]()), async_)
    client = belog.instrument_openai(fake_openai_client(async_, transport=SERVERS[server]()))
    with belog.session(f"{path}-{server}") as run:
        seen = any_chunks(client, async_)
    assert dumps(bare) == dumps(seen)
    assert all("usage" not in c.model_fields_set for c in seen)
    [record] = prompts(run)
    assert "ok" == record["status"]
    assert record["usage"]["output_tokens"] > 0
    text = "".join(c.choices[0].delta.content or "" for c in seen if c.choices)
    assert text == record["response"]["output_text"]
    assert record["response"]["id"] == seen[0].id
    assert record["response"]["finish_reason"] == "stop"
    assert 0 < record["time_to_first_token_ms"] <= record["latency_ms"]


@pytest.mark.parametrize("async_", [False, True])
@pytest.mark.parametrize("include_usage", [None, True])
def test_odd_shapes_are_read_and_a_bad_field_never_breaks_the_stream(
    belog_config: Config, path: str, async_: bool, include_usage: bool | None
) -> None:
    """Several choices per chunk, a missing index, unreadable tool calls: all as sent.

    The chunk whose tool calls cannot be read still reaches the caller, its
    text is kept, and the failure is counted.
    """
    extra = {} if include_usage is None else {"stream_options": {"include_usage": True}}
    bare = any_chunks(odd_client(async_), async_, **extra)
    client = belog.instrument_openai(odd_client(async_))
    failures = audit_failures()
    with belog.session(f"odd-{path}") as run:
        seen = any_chunks(client, async_, **extra)
    # The bad index would make to_dict() warn: the chunks are compared without it.
    assert [c.to_dict(warnings=False) for c in bare] == [c.to_dict(warnings=False) for c in seen]
    assert audit_failures() == failures + 1
    [record] = prompts(run)
    response = record["response"]
    assert ["Hel!lo", "Bonjour"] == [c["output_text"] for c in response["choices"]]
    assert ["stop", "stop"] == [c["finish_reason"] for c in response["choices"]]
    assert 7 == record["usage"]["total_tokens"]
    assert "ok" == record["status"]


def test_sdk_streams_are_tapped_and_the_client_stands_in_whole(belog_config: Config) -> None:
    """An SDK stream is tapped; its stand-in client answers for the real one."""
    client = belog.instrument_openai(fake_openai_client())
    with belog.session("tapped"):
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        inner = stream._inner
        assert stream._aggregator.tapped
        assert isinstance(inner._client, TappedClient)
        assert inner._client.base_url == client.base_url
        assert repr(inner._client) == repr(client)
        chunks = list(stream)
    assert chunks
    assert HIDDEN not in chunks
    assert "<chunk hidden by the audit>" == repr(HIDDEN)


def test_tap_refuses_what_it_cannot_tap_whole() -> None:
    """Started, subclassed, already tapped, or not an SDK stream: left to be fed."""
    client = fake_openai_client()

    def fresh() -> Any:
        return client.chat.completions.create(model="m", messages=MESSAGES, stream=True)

    def keep(build: Any) -> Any:
        return build

    assert not tap_data(object(), openai.Stream, keep)
    assert not tap_data(fresh(), object, keep)
    started = fresh()
    next(started)
    assert not tap_data(started, openai.Stream, keep)

    class Own(openai.Stream):  # type: ignore[type-arg]
        def __stream__(self) -> Any:
            yield from ()

    own = fresh()
    own.__class__ = Own
    assert not tap_data(own, openai.Stream, keep)
    twice = fresh()
    assert tap_data(twice, openai.Stream, keep)
    assert not tap_data(twice, openai.Stream, keep)
    assert list(twice)  # built by the real client through the stand-in


def test_async_stream_started_before_the_audit_is_fed(belog_config: Config) -> None:
    """An async SDK stream already read from is fed: the tap sees only unstarted ones."""

    async def run() -> None:
        client = fake_openai_client(async_=True)
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        await stream.__anext__()
        assert not tap_data(stream, openai.AsyncStream, lambda build: build)
        await stream.close()

    asyncio.run(run())


def test_fed_dict_chunks_of_every_shape() -> None:
    """Chunks that are dicts (a wrapper's generator): text, a choice without a delta, usage."""
    agg = chat_aggregator(hide_usage=True)
    usage = {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    shown = [
        agg.feed({"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}),
        agg.feed({"choices": [{"delta": None, "finish_reason": "stop"}], "usage": None}),
        agg.feed({"choices": [], "usage": usage}),  # the audit's usage-only chunk: hidden
    ]
    assert [True, True, False] == shown
    assert usage == agg.usage
    response = agg.response()
    assert ("c", "m", "Hi", "stop") == (
        response["id"],
        response["model"],
        response["output_text"],
        response["finish_reason"],
    )
    assert agg.finished


def test_fed_model_chunk_without_a_delta_is_read_through_its_fields() -> None:
    """An SDK chunk whose choice has no delta (None) still gives its finish reason."""
    from openai.types.chat import ChatCompletionChunk

    agg = chat_aggregator(hide_usage=False)
    chunk = ChatCompletionChunk.construct(
        id="c",
        model="m",
        object="chat.completion.chunk",
        created=1,
        choices=[{"index": 0, "delta": None, "finish_reason": "length"}],
    )
    assert agg.feed(chunk)
    assert "length" == agg.response()["finish_reason"]


def test_tapped_chunk_with_the_callers_usage_beside_its_choice(belog_config: Config) -> None:
    """A server that puts the usage the caller asked for in its last content chunk."""
    agg = chat_aggregator(hide_usage=False)

    def build(*, data: Any, cast_to: Any, response: Any) -> Any:
        return data

    process = agg._processor(build)
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    data = {
        "id": "c",
        "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}],
        "usage": usage,
    }
    assert data is process(data=data, cast_to=None, response=None)
    assert usage == agg.usage
    assert "ok" == agg.response()["output_text"]
