"""Audited streams: identical chunks for the caller, one record per stream, however it ends."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import structlog_belog as belog
from structlog_belog.audit.fake_llm import FakeLLM, fake_openai_client
from structlog_belog.core.config import Config
from tests.audit.test_audit import MESSAGES, prompts

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "save_supertask",
            "parameters": {
                "type": "object",
                "properties": {"title": {"type": "string"}, "level": {"type": "integer"}},
                "required": ["title", "level"],
            },
        },
    }
]


def dumps(chunks: list[Any]) -> list[dict[str, Any]]:
    """What a caller can observe of each chunk, set fields included.

    Except ``created``: the server's clock, which may tick between the bare
    and the audited run.
    """
    return [{k: v for k, v in c.to_dict().items() if k != "created"} for c in chunks]


def chat_chunks(client: Any, **kwargs: Any) -> list[Any]:
    """Every chunk of a streamed chat call."""
    return list(client.chat.completions.create(model="gpt-4o-mini", stream=True, **kwargs))


def any_chunks(client: Any, async_: bool, **kwargs: Any) -> list[Any]:
    """Every chunk of a streamed chat call, from a sync or (with *async_*) an async client."""
    if not async_:
        return chat_chunks(client, messages=MESSAGES, **kwargs)

    async def collect() -> list[Any]:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, **kwargs
        )
        return [chunk async for chunk in stream]

    return asyncio.run(collect())


def chat_aggregator(*, hide_usage: bool) -> Any:
    """A `ChatAggregator` for a streamed chat call of its own (no session needed)."""
    from structlog_belog.audit.call import Call
    from structlog_belog.audit.stream import ChatAggregator

    call = Call(
        api="chat.completions",
        name="chat.completions.create",
        request={},
        capture_content=True,
        stream=True,
    )
    return ChatAggregator(call, hide_usage=hide_usage)


class Ragged(FakeLLM):
    """A FakeLLM whose streams arrive in reads of *size* bytes: lines split across reads."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def _answer(self, request: Any) -> tuple[int, dict[str, str], bytes | list[bytes]]:
        status, headers, body = super()._answer(request)
        if isinstance(body, list):
            joined = b"".join(body)
            body = [joined[i : i + self.size] for i in range(0, len(joined), self.size)]
        return status, headers, body


class Spaced(FakeLLM):
    """A FakeLLM that writes its streams' JSON with spaces (``"usage": null``), in 5-byte reads."""

    def _answer(self, request: Any) -> tuple[int, dict[str, str], bytes | list[bytes]]:
        status, headers, body = super()._answer(request)
        if isinstance(body, list):
            joined = b"".join(body).replace(b'":', b'": ').replace(b',"', b', "')
            body = [joined[i : i + 5] for i in range(0, len(joined), 5)]
        return status, headers, body


class TestAuditedStream:
    @pytest.mark.parametrize("stream_options", [None, {"include_usage": True}])
    def test_chunks_identical_to_unaudited(
        self, belog_config: Config, stream_options: dict[str, bool] | None
    ) -> None:
        """The caller sees the chunks an unaudited client sees, with or without include_usage."""
        extra = {} if stream_options is None else {"stream_options": stream_options}
        bare = chat_chunks(fake_openai_client(), messages=MESSAGES, **extra)
        audited_client = belog.instrument_openai(fake_openai_client())
        with belog.session("identical") as run:
            audited = chat_chunks(audited_client, messages=MESSAGES, **extra)
        assert dumps(bare) == dumps(audited)
        assert all(type(a) is type(b) for a, b in zip(bare, audited, strict=True))
        [record] = prompts(run)
        usage = chat_chunks(
            fake_openai_client(), messages=MESSAGES, stream_options={"include_usage": True}
        )[-1].usage
        assert usage is not None
        assert {
            "input_tokens": usage.prompt_tokens,
            "output_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "cached_tokens": 0,
            "reasoning_tokens": 0,
        } == record["usage"]
        assert (
            "".join(c.choices[0].delta.content or "" for c in audited if c.choices)
            == (record["response"]["output_text"])
        )
        assert record["stream"] is True
        assert "ok" == record["status"]
        assert 0 < record["time_to_first_token_ms"] <= record["latency_ms"]

    @pytest.mark.parametrize("read_size", [None, 1, 7, 64])
    @pytest.mark.parametrize("async_", [False, True])
    def test_null_usage_asked_for_never_reaches_the_sdk(
        self, belog_config: Config, async_: bool, read_size: int | None
    ) -> None:
        """The ``"usage": null`` the audit's include_usage adds is cut before the SDK parses it.

        Also when the server's lines are split across network reads; the
        caller's chunks equal an unaudited run's, and the usage is recorded.
        """

        def transport() -> FakeLLM:
            return FakeLLM() if read_size is None else Ragged(read_size)

        client = belog.instrument_openai(fake_openai_client(async_, transport=transport()))
        parsed: list[Any] = []
        process = client._process_response_data

        def counted(*args: Any, **kwargs: Any) -> Any:
            parsed.append(kwargs.get("data"))
            return process(*args, **kwargs)

        client._process_response_data = counted

        bare = any_chunks(fake_openai_client(async_, transport=transport()), async_)
        with belog.session("null-usage") as run:
            seen = any_chunks(client, async_)
        assert dumps(bare) == dumps(seen)
        assert len(seen) > 2
        # The SDK parsed the caller's chunks only, none with a usage.
        assert len(parsed) == len(seen)
        assert all("usage" not in data for data in parsed)
        [record] = prompts(run)
        asked = any_chunks(
            fake_openai_client(async_, transport=transport()),
            async_,
            stream_options={"include_usage": True},
        )
        usage = asked[-1].usage
        assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
            record["usage"]["input_tokens"],
            record["usage"]["output_tokens"],
            record["usage"]["total_tokens"],
        )

    @pytest.mark.parametrize("async_", [False, True])
    def test_null_usage_in_another_form_is_unmarked(
        self, belog_config: Config, async_: bool
    ) -> None:
        """A ``"usage": null`` written otherwise reaches the SDK; the audit unmarks it."""

        bare = any_chunks(fake_openai_client(async_, transport=Spaced()), async_)
        client = belog.instrument_openai(fake_openai_client(async_, transport=Spaced()))
        with belog.session("spaced") as run:
            seen = any_chunks(client, async_)
        assert dumps(bare) == dumps(seen)
        assert all("usage" not in c.model_fields_set for c in seen)
        [record] = prompts(run)
        assert record["usage"]["output_tokens"] > 0

    def test_explicit_opt_out_is_respected(self, belog_config: Config) -> None:
        """stream_options={"include_usage": False} is sent as given; usage is then unknown."""
        client = belog.instrument_openai(fake_openai_client())
        with belog.session("opt-out") as run:
            chat_chunks(client, messages=MESSAGES, stream_options={"include_usage": False})
        [record] = prompts(run)
        assert record["usage"] is None
        assert "ok" == record["status"]

    def test_tool_call_stream(self, belog_config: Config) -> None:
        """Tool-call deltas are assembled into whole calls in the record."""
        client = belog.instrument_openai(fake_openai_client())
        bare = fake_openai_client().chat.completions.create(
            model="gpt-4o", messages=MESSAGES, tools=TOOLS
        )
        with belog.session("tools") as run:
            chat_chunks(client, messages=MESSAGES, tools=TOOLS)
        [record] = prompts(run)
        [expected] = bare.choices[0].message.tool_calls or []
        assert [
            {
                "id": expected.id,
                "type": "function",
                "name": "save_supertask",
                "arguments": expected.function.arguments,  # type: ignore[union-attr]
            }
        ] == record["response"]["tool_calls"]
        assert "tool_calls" == record["response"]["finish_reason"]

    def test_break_and_drop_is_incomplete(self, belog_config: Config) -> None:
        """A stream abandoned after a few chunks is recorded once, as incomplete, with what came."""
        client = belog.instrument_openai(fake_openai_client(output_tokens=50))
        with belog.session("abandoned") as run:
            stream = client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
            seen = []
            for chunk in stream:
                seen.append(chunk.choices[0].delta.content or "")
                if len(seen) == 4:
                    break
            del stream, chunk
            gc.collect()
        [record] = prompts(run)
        assert "incomplete" == record["status"]
        assert "".join(seen) == record["response"]["output_text"]
        assert record["usage"] is None

    def test_never_iterated_and_dropped(self, belog_config: Config) -> None:
        """A stream dropped before its first chunk is still recorded once."""
        client = belog.instrument_openai(fake_openai_client())
        with belog.session("dropped") as run:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
            gc.collect()
        assert ["incomplete"] == [r["status"] for r in prompts(run)]

    def test_context_manager_and_close(self, belog_config: Config) -> None:
        """SDK streams used as context managers keep working; leaving early is incomplete."""
        client = belog.instrument_openai(fake_openai_client(output_tokens=30))
        with belog.session("with") as run:
            with client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            ) as stream:
                assert isinstance(stream, openai.Stream)
                next(stream)
                next(stream)
            assert stream.response.is_closed
            with client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            ) as whole:
                list(whole)
            closed = client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
            closed.close()
            closed.close()
        assert ["incomplete", "ok", "incomplete"] == [r["status"] for r in prompts(run)]

    def test_break_after_last_content_chunk_still_gets_usage(self, belog_config: Config) -> None:
        """Stopping at the finish_reason chunk is a whole answer: ok, with usage read for us."""
        client = belog.instrument_openai(fake_openai_client())
        with belog.session("finish") as run:
            stream = client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
            for chunk in stream:
                if chunk.choices and chunk.choices[0].finish_reason:
                    break
            stream.close()
        [record] = prompts(run)
        assert "ok" == record["status"]
        assert record["usage"]["total_tokens"] > 0

    def test_stream_helper_manager(self, belog_config: Config) -> None:
        """client.chat.completions.stream(...) goes through the audited create."""
        client = belog.instrument_openai(fake_openai_client())
        with (
            belog.session("helper") as run,
            client.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream,
        ):
            for _ in stream:
                pass
            final = stream.get_final_completion()
        [record] = prompts(run)
        assert final.choices[0].message.content == record["response"]["output_text"]
        assert final.usage is None
        assert record["usage"]["output_tokens"] > 0

    def test_responses_stream(self, belog_config: Config) -> None:
        """A streamed Responses call records the final response and its usage."""
        client = belog.instrument_openai(fake_openai_client())
        with belog.session("responses") as run:
            events = list(client.responses.create(model="gpt-4.1", input="hi", stream=True))
        [record] = prompts(run)
        final = events[-1].response
        assert final.output_text == record["response"]["output_text"]
        assert final.usage.total_tokens == record["usage"]["total_tokens"]
        assert record["time_to_first_token_ms"] is not None

    def test_responses_stream_abandoned(self, belog_config: Config) -> None:
        """A Responses stream closed early keeps the text deltas that came."""
        client = belog.instrument_openai(fake_openai_client(output_tokens=20))
        with belog.session("responses-abandoned") as run:
            stream = client.responses.create(model="gpt-4.1", input="hi", stream=True)
            deltas = []
            for event in stream:
                if event.type == "response.output_text.delta":
                    deltas.append(event.delta)
                    if len(deltas) == 3:
                        break
            stream.close()
        [record] = prompts(run)
        assert "incomplete" == record["status"]
        assert "".join(deltas) == record["response"]["output_text"]

    def test_error_mid_stream(self, belog_config: Config) -> None:
        """An error raised while reading a stream is recorded and re-raised unchanged."""
        failure = ConnectionResetError("peer went away")

        def chunks() -> Any:
            yield from fake_openai_client().chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
            raise failure

        @belog.audit_llm(api="chat.completions")
        def call_llm(**_: Any) -> Any:
            return chunks()

        with belog.session("mid-stream") as run:
            with pytest.raises(ConnectionResetError) as raised:
                list(call_llm(model="gpt-4o-mini", messages=MESSAGES, stream=True))
            assert failure is raised.value
        [record] = prompts(run)
        assert "error" == record["status"]
        assert "ConnectionResetError" == record["error"]["type"]

    def test_interrupt_mid_stream(self, belog_config: Config) -> None:
        """Ctrl-C while reading a stream records it as incomplete and lets the interrupt through."""

        def chunks() -> Any:
            stream = fake_openai_client().chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
            yield next(iter(stream))
            raise KeyboardInterrupt

        @belog.audit_llm(api="chat.completions")
        def call_llm(**_: Any) -> Any:
            return chunks()

        with belog.session("interrupted") as run:
            stream = call_llm(model="gpt-4o-mini", messages=MESSAGES, stream=True)
            assert f"AuditedStream({stream._inner!r})" == repr(stream)
            with pytest.raises(KeyboardInterrupt):
                list(stream)
        [record] = prompts(run)
        assert ("incomplete", "KeyboardInterrupt") == (record["status"], record["error"]["type"])


class TestAuditedAsyncStream:
    def test_async_chunks_identical_and_recorded(self, belog_config: Config) -> None:
        """Async streams give the caller the unaudited chunks and write one record."""

        async def collect(client: Any) -> list[Any]:
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
            return [chunk async for chunk in stream]

        async def main() -> tuple[list[Any], list[Any], belog.Run]:
            bare = await collect(fake_openai_client(async_=True))
            client = belog.instrument_openai(fake_openai_client(async_=True))
            async with belog.session("async-stream") as run:
                audited = await collect(client)
            return bare, audited, run

        bare, audited, run = asyncio.run(main())
        assert dumps(bare) == dumps(audited)
        [record] = prompts(run)
        assert "ok" == record["status"]
        assert record["usage"]["output_tokens"] > 0

    def test_async_context_manager_early_exit(self, belog_config: Config) -> None:
        """async with on an audited stream closes it; leaving early is incomplete."""

        async def main() -> belog.Run:
            client = belog.instrument_openai(fake_openai_client(async_=True, output_tokens=40))
            async with belog.session("async-with") as run:
                async with await client.chat.completions.create(
                    model="gpt-4o-mini", messages=MESSAGES, stream=True
                ) as stream:
                    assert isinstance(stream, openai.AsyncStream)
                    await stream.__anext__()
                stream2 = await client.responses.create(model="gpt-4.1", input="x", stream=True)
                async for _ in stream2:
                    pass
            return run

        run = asyncio.run(main())
        assert ["incomplete", "ok"] == [r["status"] for r in prompts(run)]

    def test_async_break_and_close_after_finish(self, belog_config: Config) -> None:
        """Closing an async stream after the finish chunk reads the usage and records ok."""

        async def main() -> belog.Run:
            client = belog.instrument_openai(fake_openai_client(async_=True))
            async with belog.session("async-finish") as run:
                stream = await client.chat.completions.create(
                    model="gpt-4o-mini", messages=MESSAGES, stream=True
                )
                async for chunk in stream:
                    if chunk.choices and chunk.choices[0].finish_reason:
                        break
                await stream.close()
            return run

        [record] = prompts(asyncio.run(main()))
        assert "ok" == record["status"]
        assert record["usage"]["total_tokens"] > 0

    def test_async_stream_dropped_in_the_loop(self, belog_config: Config) -> None:
        """An async stream broken out of and dropped is recorded once, as incomplete."""

        async def main() -> belog.Run:
            client = belog.instrument_openai(fake_openai_client(async_=True, output_tokens=30))
            async with belog.session("async-drop") as run:
                stream = await client.chat.completions.create(
                    model="gpt-4o-mini", messages=MESSAGES, stream=True
                )
                async for _ in stream:
                    break
                del stream
                gc.collect()
                await asyncio.sleep(0)
            return run

        assert ["incomplete"] == [r["status"] for r in prompts(asyncio.run(main()))]

    def test_cancelled_call_is_incomplete(self, belog_config: Config) -> None:
        """A call cancelled while waiting for the server is recorded as incomplete."""

        async def main() -> belog.Run:
            client = belog.instrument_openai(fake_openai_client(async_=True, latency=5.0))
            async with belog.session("cancelled") as run:
                task = asyncio.create_task(
                    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
                )
                await asyncio.sleep(0.05)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            return run

        [record] = prompts(asyncio.run(main()))
        assert "incomplete" == record["status"]
        assert "CancelledError" == record["error"]["type"]

    def test_async_generator_from_a_wrapper(self, belog_config: Config) -> None:
        """A wrapper yielding chunks from an async generator is audited and closed cleanly."""
        source = fake_openai_client(async_=True)
        closed: list[bool] = []

        async def chunks(**kwargs: Any) -> Any:
            try:
                async for chunk in await source.chat.completions.create(**kwargs):
                    yield chunk
            finally:
                closed.append(True)

        @belog.audit_llm(api="chat.completions")
        def call_llm(**kwargs: Any) -> Any:
            return chunks(**kwargs)

        async def main() -> belog.Run:
            async with belog.session("async-generator") as run:
                stream = call_llm(model="gpt-4o-mini", messages=MESSAGES, stream=True)
                await stream.__anext__()
                assert stream.response is None
                await stream.close()
            return run

        [record] = prompts(asyncio.run(main()))
        assert [True] == closed
        assert "incomplete" == record["status"]

    @pytest.mark.parametrize(
        ("failure", "status"),
        [(ConnectionResetError("peer went away"), "error"), (KeyboardInterrupt(), "incomplete")],
    )
    def test_async_failure_mid_stream(
        self, belog_config: Config, failure: BaseException, status: str
    ) -> None:
        """An async stream failing mid-way is recorded (error, or incomplete for an interrupt)."""
        source = fake_openai_client(async_=True)

        async def chunks(**kwargs: Any) -> Any:
            async for chunk in await source.chat.completions.create(**kwargs):
                yield chunk
                raise failure

        @belog.audit_llm(api="chat.completions")
        def call_llm(**kwargs: Any) -> Any:
            return chunks(**kwargs)

        async def main() -> belog.Run:
            async with belog.session("async-failure") as run:
                stream = call_llm(model="gpt-4o-mini", messages=MESSAGES, stream=True)
                assert f"AuditedAsyncStream({stream._inner!r})" == repr(stream)
                with pytest.raises(type(failure)) as raised:
                    async for _ in stream:
                        pass
                assert failure is raised.value
            return run

        [record] = prompts(asyncio.run(main()))
        assert (status, type(failure).__name__) == (record["status"], record["error"]["type"])

    def test_responses_stream_helpers(self, belog_config: Config) -> None:
        """responses.stream(...) and the async chat stream helper go through the audit."""
        client = belog.instrument_openai(fake_openai_client())
        with (
            belog.session("responses-helper") as run,
            client.responses.stream(model="gpt-4.1", input="hi") as stream,
        ):
            for _ in stream:
                pass
            final = stream.get_final_response()

        async def main() -> belog.Run:
            aclient = belog.instrument_openai(fake_openai_client(async_=True))
            async with (
                belog.session("async-helper") as arun,
                aclient.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as astream,
            ):
                async for _ in astream:
                    pass
            return arun

        [record] = prompts(run)
        assert final.output_text == record["response"]["output_text"]
        assert [["ok"]] == [[r["status"] for r in prompts(asyncio.run(main()))]]


class TestStreamProperties:
    @settings(max_examples=15, deadline=None)
    @given(
        output_tokens=st.integers(1, 60),
        include_usage=st.sampled_from([None, True, False]),
        break_after=st.one_of(st.none(), st.integers(0, 70)),
    )
    def test_caller_view_and_usage(
        self,
        tmp_path_factory: pytest.TempPathFactory,
        output_tokens: int,
        include_usage: bool | None,
        break_after: int | None,
    ) -> None:
        """For any stream length, usage choice and break point: same chunks, one honest record."""
        log_dir = tmp_path_factory.mktemp("logs")
        belog.configure(log_dir=log_dir, console=False, handle_signals=False)
        extra = (
            {} if include_usage is None else {"stream_options": {"include_usage": include_usage}}
        )

        def read(client: Any) -> list[Any]:
            seen = []
            stream = client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True, **extra
            )
            for i, chunk in enumerate(stream):
                seen.append(chunk)
                if break_after is not None and i >= break_after:
                    break
            stream.close()
            return seen

        bare = read(fake_openai_client(output_tokens=output_tokens))
        client = belog.instrument_openai(fake_openai_client(output_tokens=output_tokens))
        with belog.session("property", package=False) as run:
            audited = read(client)
        assert dumps(bare) == dumps(audited)
        [record] = prompts(run)
        # Visible chunks: the role chunk, one per token, the finish chunk.
        whole = break_after is None or break_after >= output_tokens + 1
        assert ("ok" if whole else "incomplete") == record["status"]
        if whole and include_usage is not False:
            assert output_tokens == record["usage"]["output_tokens"]
        assert "".join(c.choices[0].delta.content or "" for c in audited if c.choices) == (
            record["response"]["output_text"] or ""
        )


class TestUsageCutter:
    """What the byte cut takes out of a chat stream, and what it leaves to the SDK."""

    USAGE = b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'

    @staticmethod
    def aggregator() -> Any:
        return chat_aggregator(hide_usage=True)

    def cutter(self) -> Any:
        from structlog_belog.audit.usage_cut import UsageCutter

        return UsageCutter(self.aggregator())

    def run(self, *parts: bytes) -> tuple[bytes, Any]:
        cutter = self.cutter()
        out = b"".join(cutter.cut(part) for part in parts) + cutter.flush()
        return out, cutter.aggregator.usage

    def test_null_usage_and_usage_event_cut(self) -> None:
        body = (
            b'data: {"choices":[{"index":0}],"usage":null}\n\n' + self.USAGE + b"data: [DONE]\n\n"
        )
        whole = self.run(body)
        assert whole == (
            b'data: {"choices":[{"index":0}]}\n\ndata: [DONE]\n\n',
            {"prompt_tokens": 3, "completion_tokens": 2},
        )
        # Any split into reads gives the same, the usage event's blank line included.
        for size in (1, 2, 3, 13, 40):
            parts = [body[i : i + size] for i in range(0, len(body), size)]
            assert self.run(*parts) == whole

    @pytest.mark.parametrize(
        "event",
        [
            b'data: {"choices":[],"prompt_filter_results":[]}\n\n',  # no usage object
            b'event: x\ndata: {"choices":[],"usage":{"prompt_tokens":1}}\n\n',  # not alone
            b'data: {"choices":[],"usage":{"prompt_tokens":1}}\nid: 7\n\n',  # not alone
            b'data: {"choices":[], "usage": oops}\n\n',  # not JSON
            b'data: {"choices":[],"usage":null}\n\n',  # a null usage: only cut
        ],
    )
    def test_other_events_left_to_the_sdk(self, event: bytes) -> None:
        out, usage = self.run(event + b"data: [DONE]\n\n")
        assert usage is None
        assert out == event.replace(b',"usage":null}\n', b"}\n") + b"data: [DONE]\n\n"

    def test_unterminated_body_handed_on_at_the_end(self) -> None:
        assert self.run(b'data: {"choices":[]', b',"usage":null}') == (
            b'data: {"choices":[],"usage":null}',
            None,
        )

    @pytest.mark.parametrize("async_", [False, True])
    def test_response_bytes_routed_through_the_cut(self, async_: bool) -> None:
        import httpx

        from structlog_belog.audit.usage_cut import cut_usage

        body = b'data: {"choices":[{"index":0}],"usage":null}\n\n' + self.USAGE + b"data: [DONE]"
        inner = type("Inner", (), {})()
        inner.response = httpx.Response(200, content=body)
        aggregator = self.aggregator()
        cut_usage(inner, aggregator, async_=async_)

        async def read_async() -> bytes:
            return b"".join([part async for part in inner.response.aiter_bytes()])

        out = asyncio.run(read_async()) if async_ else b"".join(inner.response.iter_bytes())
        assert out == b'data: {"choices":[{"index":0}]}\n\ndata: [DONE]'
        assert aggregator.usage == {"prompt_tokens": 3, "completion_tokens": 2}
