"""Request-level capture: every SDK path, sync and async, one record per request answered.

Each path runs twice on a fresh `FakeLLM` (deterministic answers): once with
nothing instrumented, once with the whole process instrumented. The caller's
view must be equal in both; the audited run must write exactly one record per
request the server answered, whose usage, output text, status, stream flag
and attempts are those of the server's answer.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import warnings
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion
from pydantic import BaseModel

import structlog_belog as belog
from structlog_belog.audit.fake_llm import FakeLLM, fake_openai_client
from structlog_belog.core.config import Config
from tests.audit.test_audit import MESSAGES, prompts
from tests.conftest import read_jsonl, run_python

CHAT = {"model": "gpt-4o-mini", "messages": MESSAGES}
RESPONSES = {"model": "gpt-4.1", "input": "Plan my day", "instructions": "Be brief"}
EMBED = {"model": "text-embedding-3-small", "input": ["alpha", "beta"]}


class Plan(BaseModel):
    """A structured answer for the parse paths."""

    title: str
    steps: list[str]


class Recorder(FakeLLM):
    """A `FakeLLM` that keeps every answer it gave: (status, headers, body bytes)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.answers: list[tuple[int, dict[str, str], bytes]] = []

    def _answer(self, request: httpx.Request) -> tuple[int, dict[str, str], Any]:
        status, headers, body = super()._answer(request)
        whole = b"".join(body) if isinstance(body, list) else body
        self.answers.append((status, dict(headers), whole))
        return status, headers, body


# -- what the server sent, read independently of the audit ----------------------


def _events(body: bytes) -> list[dict[str, Any]]:
    events = []
    for block in body.decode().split("\n\n"):
        data = [line[5:].strip() for line in block.splitlines() if line.startswith("data:")]
        if data and data[0] != "[DONE]":
            events.append(json.loads("\n".join(data)))
    return events


def _usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    if "input_tokens" in usage:
        return {
            "input_tokens": usage["input_tokens"],
            "output_tokens": usage.get("output_tokens"),
            "total_tokens": usage.get("total_tokens"),
            "cached_tokens": (usage.get("input_tokens_details") or {}).get("cached_tokens"),
            "reasoning_tokens": (usage.get("output_tokens_details") or {}).get("reasoning_tokens"),
        }
    return {
        "input_tokens": usage["prompt_tokens"],
        "output_tokens": usage.get("completion_tokens"),
        "total_tokens": usage.get("total_tokens"),
        "cached_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens"),
        "reasoning_tokens": (usage.get("completion_tokens_details") or {}).get("reasoning_tokens"),
    }


def server_sent(answer: tuple[int, dict[str, str], bytes]) -> dict[str, Any]:
    """Usage, output text and embedding size of one answer, as the server sent them."""
    _, headers, body = answer
    if headers["content-type"].startswith("text/event-stream"):
        events = _events(body)
        if events and "type" in events[0]:  # Responses API events
            text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
            final = [e["response"] for e in events if e["type"] == "response.completed"]
            usage = final[0].get("usage") if final else None
        else:
            text = "".join(
                c["choices"][0]["delta"].get("content") or "" for c in events if c["choices"]
            )
            usage = next((c["usage"] for c in events if c.get("usage")), None)
        return {"output_text": text or None, "usage": _usage(usage)}
    data = json.loads(body)
    if data.get("object") == "list":  # embeddings
        first = data["data"][0]["embedding"]
        size = len(base64.b64decode(first)) // 4 if isinstance(first, str) else len(first)
        return {"dimensions": size, "usage": _usage(data["usage"])}
    if "choices" in data:
        return {
            "output_text": data["choices"][0]["message"]["content"],
            "usage": _usage(data["usage"]),
        }
    texts = [
        part["text"]
        for item in data["output"]
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    ]
    return {"output_text": "".join(texts) or None, "usage": _usage(data["usage"])}


# -- the paths ------------------------------------------------------------------


def _dump(value: Any) -> Any:
    """What the caller got, as plain data to compare across runs."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", warnings=False)
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


def _stream_events(stream: Any) -> list[Any]:
    return [(getattr(e, "type", None), _dump(getattr(e, "chunk", e))) for e in stream]


@dataclass(frozen=True)
class CallPath:
    """One way of calling the API: its sync and async forms and what the record says."""

    name: str
    api: str
    stream: bool
    sync: Callable[[Any], Any]
    async_: Callable[[Any], Coroutine[Any, Any, Any]]


def _paths() -> Iterator[CallPath]:
    def chat_create(c: Any) -> Any:
        return _dump(c.chat.completions.create(**CHAT))

    async def achat_create(c: Any) -> Any:
        return _dump(await c.chat.completions.create(**CHAT))

    yield CallPath("chat.completions.create", "chat.completions", False, chat_create, achat_create)

    def chat_stream(c: Any) -> Any:
        return _dump(list(c.chat.completions.create(**CHAT, stream=True)))

    async def achat_stream(c: Any) -> Any:
        return _dump([x async for x in await c.chat.completions.create(**CHAT, stream=True)])

    yield CallPath(
        "chat.completions.create(stream)", "chat.completions", True, chat_stream, achat_stream
    )

    for prefix in ("chat", "beta.chat"):

        def resource(c: Any, prefix: str = prefix) -> Any:
            return c.beta.chat.completions if prefix == "beta.chat" else c.chat.completions

        def parse(c: Any, r: Any = resource) -> Any:
            return _dump(r(c).parse(**CHAT, response_format=Plan))

        async def aparse(c: Any, r: Any = resource) -> Any:
            return _dump(await r(c).parse(**CHAT, response_format=Plan))

        yield CallPath(f"{prefix}.completions.parse", "chat.completions", False, parse, aparse)

        def helper(c: Any, r: Any = resource) -> Any:
            with r(c).stream(**CHAT) as stream:
                events = _stream_events(stream)
            return events, _dump(stream.get_final_completion())

        async def ahelper(c: Any, r: Any = resource) -> Any:
            async with r(c).stream(**CHAT) as stream:
                events = [(e.type, _dump(getattr(e, "chunk", e))) async for e in stream]
            return events, _dump(await stream.get_final_completion())

        yield CallPath(f"{prefix}.completions.stream", "chat.completions", True, helper, ahelper)

    def responses_create(c: Any) -> Any:
        return _dump(c.responses.create(**RESPONSES))

    async def aresponses_create(c: Any) -> Any:
        return _dump(await c.responses.create(**RESPONSES))

    yield CallPath("responses.create", "responses", False, responses_create, aresponses_create)

    def responses_stream(c: Any) -> Any:
        return _dump(list(c.responses.create(**RESPONSES, stream=True)))

    async def aresponses_stream(c: Any) -> Any:
        return _dump([x async for x in await c.responses.create(**RESPONSES, stream=True)])

    yield CallPath(
        "responses.create(stream)", "responses", True, responses_stream, aresponses_stream
    )

    def responses_parse(c: Any) -> Any:
        return _dump(c.responses.parse(**RESPONSES, text_format=Plan))

    async def aresponses_parse(c: Any) -> Any:
        return _dump(await c.responses.parse(**RESPONSES, text_format=Plan))

    yield CallPath("responses.parse", "responses", False, responses_parse, aresponses_parse)

    def responses_helper(c: Any) -> Any:
        with c.responses.stream(**RESPONSES) as stream:
            events = [_dump(e) for e in stream]
        return events, _dump(stream.get_final_response())

    async def aresponses_helper(c: Any) -> Any:
        async with c.responses.stream(**RESPONSES) as stream:
            events = [_dump(e) async for e in stream]
        return events, _dump(await stream.get_final_response())

    yield CallPath("responses.stream", "responses", True, responses_helper, aresponses_helper)

    for encoding in ("default", "float", "base64"):
        extra = {} if encoding == "default" else {"encoding_format": encoding}

        def embed(c: Any, extra: dict[str, Any] = extra) -> Any:
            return _dump(c.embeddings.create(**EMBED, **extra))

        async def aembed(c: Any, extra: dict[str, Any] = extra) -> Any:
            return _dump(await c.embeddings.create(**EMBED, **extra))

        yield CallPath(f"embeddings.create({encoding})", "embeddings", False, embed, aembed)

    # with_raw_response: the body is read; the caller parses it.
    raw_calls: list[tuple[str, str, bool, Callable[[Any], Any], dict[str, Any]]] = [
        ("chat.completions.create", "chat.completions", False, lambda c: c.chat.completions, CHAT),
        (
            "chat.completions.create(stream)",
            "chat.completions",
            True,
            lambda c: c.chat.completions,
            {**CHAT, "stream": True},
        ),
        (
            "chat.completions.parse",
            "chat.completions",
            False,
            lambda c: c.chat.completions,
            {**CHAT, "response_format": Plan},
        ),
        (
            "beta.chat.completions.parse",
            "chat.completions",
            False,
            lambda c: c.beta.chat.completions,
            {**CHAT, "response_format": Plan},
        ),
        ("responses.create", "responses", False, lambda c: c.responses, RESPONSES),
        (
            "responses.create(stream)",
            "responses",
            True,
            lambda c: c.responses,
            {**RESPONSES, "stream": True},
        ),
        (
            "responses.parse",
            "responses",
            False,
            lambda c: c.responses,
            {**RESPONSES, "text_format": Plan},
        ),
        ("embeddings.create", "embeddings", False, lambda c: c.embeddings, EMBED),
    ]
    for name, api, stream, get, kwargs in raw_calls:
        method = "parse" if name.endswith(".parse") else "create"

        def raw(c: Any, get: Any = get, kwargs: Any = kwargs, method: str = method) -> Any:
            response = getattr(get(c).with_raw_response, method)(**kwargs)
            parsed = response.parse()
            return response.headers["x-request-id"], _dump(
                list(parsed) if kwargs.get("stream") else parsed
            )

        async def araw(c: Any, get: Any = get, kwargs: Any = kwargs, method: str = method) -> Any:
            response = await getattr(get(c).with_raw_response, method)(**kwargs)
            parsed = response.parse()  # with_raw_response's parse() is sync in AsyncOpenAI too
            if asyncio.iscoroutine(parsed):
                parsed = await parsed
            if kwargs.get("stream"):
                return response.headers["x-request-id"], _dump([x async for x in parsed])
            return response.headers["x-request-id"], _dump(parsed)

        yield CallPath(f"with_raw_response {name}", api, stream, raw, araw)

        if method == "parse" and api == "responses":
            continue  # the SDK has no responses.with_streaming_response.parse

        def streaming(c: Any, get: Any = get, kwargs: Any = kwargs, method: str = method) -> Any:
            with getattr(get(c).with_streaming_response, method)(**kwargs) as response:
                if kwargs.get("stream"):
                    return [line for line in response.iter_lines() if line]
                return _dump(response.parse())

        async def astreaming(
            c: Any, get: Any = get, kwargs: Any = kwargs, method: str = method
        ) -> Any:
            async with getattr(get(c).with_streaming_response, method)(**kwargs) as response:
                if kwargs.get("stream"):
                    return [line async for line in response.iter_lines() if line]
                return _dump(await response.parse())

        yield CallPath(f"with_streaming_response {name}", api, stream, streaming, astreaming)

    # A bare client.post to the endpoint, as litellm and others send it.
    posts: list[tuple[str, str, dict[str, Any]]] = [
        ("/chat/completions", "chat.completions", CHAT),
        ("/responses", "responses", RESPONSES),
        ("/embeddings", "embeddings", {**EMBED, "encoding_format": "base64"}),
    ]
    for url, api, body in posts:

        def post(c: Any, url: str = url, body: Any = body) -> Any:
            response = c.post(url, body=body, cast_to=httpx.Response)
            return response.json()

        async def apost(c: Any, url: str = url, body: Any = body) -> Any:
            response = await c.post(url, body=body, cast_to=httpx.Response)
            return response.json()

        yield CallPath(f"post {url}", api, False, post, apost)

    def post_model(c: Any) -> Any:
        return _dump(c.post("/chat/completions", body=CHAT, cast_to=ChatCompletion))

    async def apost_model(c: Any) -> Any:
        return _dump(await c.post("/chat/completions", body=CHAT, cast_to=ChatCompletion))

    yield CallPath(
        "post /chat/completions cast_to=ChatCompletion",
        "chat.completions",
        False,
        post_model,
        apost_model,
    )

    def post_stream(c: Any) -> Any:
        stream = c.post(
            "/chat/completions",
            body={**CHAT, "stream": True},
            cast_to=ChatCompletion,
            stream=True,
            stream_cls=openai.Stream[openai.types.chat.ChatCompletionChunk],
        )
        return _dump(list(stream))

    async def apost_stream(c: Any) -> Any:
        stream = await c.post(
            "/chat/completions",
            body={**CHAT, "stream": True},
            cast_to=ChatCompletion,
            stream=True,
            stream_cls=openai.AsyncStream[openai.types.chat.ChatCompletionChunk],
        )
        return _dump([x async for x in stream])

    yield CallPath(
        "post /chat/completions stream=True", "chat.completions", True, post_stream, apost_stream
    )

    def post_stream_raw(c: Any) -> Any:
        response = c.post(
            "/chat/completions", body={**CHAT, "stream": True}, cast_to=httpx.Response, stream=True
        )
        try:
            return [line for line in response.iter_lines() if line]
        finally:
            response.close()

    async def apost_stream_raw(c: Any) -> Any:
        response = await c.post(
            "/chat/completions", body={**CHAT, "stream": True}, cast_to=httpx.Response, stream=True
        )
        try:
            return [line async for line in response.aiter_lines() if line]
        finally:
            await response.aclose()

    yield CallPath(
        "post /chat/completions stream=True cast_to=httpx.Response",
        "chat.completions",
        True,
        post_stream_raw,
        apost_stream_raw,
    )


PATHS = list(_paths())


_TIMES = re.compile(r'"(created|created_at)": ?[0-9.]+')


def _timeless(value: Any) -> Any:
    """*value* without the server's clock readings (two runs answer a second apart)."""
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k not in ("created", "created_at")}
    if isinstance(value, list | tuple):
        return [_timeless(v) for v in value]
    if isinstance(value, str):
        return _TIMES.sub(r'"\1": 0', value)
    return value


def _run(path: CallPath, client: Any, async_: bool) -> Any:
    if async_:
        return _timeless(asyncio.run(path.async_(client)))
    return _timeless(path.sync(client))


def _client(transport: FakeLLM, async_: bool) -> Any:
    return fake_openai_client(async_=async_, transport=transport)


def _instrument() -> None:
    belog.instrument_openai()


def _uninstrument() -> None:
    belog.uninstrument_openai()


@pytest.fixture
def process_wide() -> Iterator[None]:
    """The whole process instrumented for the test, and not after it."""
    _instrument()
    yield
    _uninstrument()


@pytest.mark.parametrize("async_", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
class TestEveryPath:
    def test_one_faithful_record_per_request(
        self, belog_config: Config, path: CallPath, async_: bool
    ) -> None:
        """The caller's view is the unaudited one; one record per answer, the server's figures."""
        bare = Recorder()
        with warnings.catch_warnings(record=True) as bare_warnings:
            warnings.simplefilter("always")
            expected = _run(path, _client(bare, async_), async_)
        audited = Recorder()
        _instrument()
        try:
            with belog.session("path") as run, warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                got = _run(path, _client(audited, async_), async_)
        finally:
            _uninstrument()
        assert expected == got
        assert [str(w.message) for w in bare_warnings] == [str(w.message) for w in seen]
        records = prompts(run)
        assert audited.calls == len(records)
        assert 1 == len(records)
        [record] = records
        [answer] = audited.answers
        sent = server_sent(answer)
        assert run.id == record["session_id"]
        assert path.api == record["api"]
        assert path.stream == record["stream"]
        assert "ok" == record["status"]
        if path.api == "embeddings":
            assert sent["dimensions"] == record["response"]["dimensions"]
        else:
            assert sent["output_text"] == record["response"]["output_text"]
        if sent["usage"] is not None or not path.stream:
            assert sent["usage"] == record["usage"]
        assert [(200, answer[1]["x-request-id"])] == [
            (a["status_code"], a["request_id"]) for a in record["attempts"]
        ]

    def test_errors_recorded_and_reraised_unchanged(
        self, belog_config: Config, path: CallPath, async_: bool
    ) -> None:
        """A 400 raises what it raises unaudited; the call is recorded once, as an error."""
        bare = Recorder(fail_first=1, fail_status=400)
        with pytest.raises(openai.APIStatusError) as unaudited:
            _run(path, _client(bare, async_), async_)
        audited = Recorder(fail_first=1, fail_status=400)
        _instrument()
        try:
            with belog.session("path-error") as run, pytest.raises(openai.APIStatusError) as raised:
                _run(path, _client(audited, async_), async_)
        finally:
            _uninstrument()
        assert type(unaudited.value) is type(raised.value)
        assert (str(unaudited.value), unaudited.value.body) == (
            str(raised.value),
            raised.value.body,
        )
        [record] = prompts(run)
        assert audited.calls == 1
        assert ("error", 400) == (record["status"], record["error"]["status_code"])
        assert raised.value.request_id == record["error"]["request_id"]
        assert [400] == [a["status_code"] for a in record["attempts"]]


class TestCounts:
    @pytest.mark.parametrize("async_", [False, True], ids=["sync", "async"])
    def test_requests_answered_equal_records_written(
        self, belog_config: Config, process_wide: None, async_: bool
    ) -> None:
        """Every path in one session, with retries: as many records as requests succeeded."""
        transport = Recorder(fail_first=2, fail_status=429)
        client = _client(transport, async_)
        with belog.session("counts") as run:
            for path in PATHS:
                _run(path, client, async_)
        records = prompts(run)
        assert len(PATHS) == len(records)
        assert transport.calls == sum(len(r["attempts"]) for r in records)
        assert [429, 429, 200] == [a["status_code"] for a in records[0]["attempts"]]
        assert {"ok"} == {r["status"] for r in records}


def _records_now(run: belog.Run) -> list[dict[str, Any]]:
    """The records written so far (the session still open)."""
    return prompts(run)


class TestInstrumentProcess:
    def test_existing_and_future_clients(self, belog_config: Config) -> None:
        """Clients made before and after instrument_openai() are both recorded, Azure too."""
        before = fake_openai_client()
        belog.instrument_openai()
        try:
            after = fake_openai_client(async_=True)
            azure = openai.AzureOpenAI(  # type: ignore[call-overload]
                api_key="-".join(("azure", "placeholder")),
                api_version="2024-10-21",
                azure_endpoint="http://azure.invalid",
                http_client=httpx.Client(transport=FakeLLM()),
            )
            async_azure = openai.AsyncAzureOpenAI(  # type: ignore[call-overload]
                api_key="-".join(("azure", "placeholder")),
                api_version="2024-10-21",
                azure_endpoint="http://azure.invalid",
                http_client=httpx.AsyncClient(transport=FakeLLM()),
            )

            async def async_calls() -> None:
                await after.chat.completions.create(**CHAT)
                await async_azure.chat.completions.create(**CHAT)

            with belog.session("process") as run:
                before.chat.completions.create(**CHAT)
                azure.chat.completions.create(**CHAT)
                asyncio.run(async_calls())
        finally:
            belog.uninstrument_openai()
        assert 4 == len(prompts(run))
        assert {"ok"} == {r["status"] for r in prompts(run)}

    def test_uninstrument_restores_the_sdk(self, belog_config: Config) -> None:
        """After uninstrument_openai() nothing is recorded and the SDK has its own methods."""
        from openai._base_client import AsyncAPIClient, SyncAPIClient

        originals = (SyncAPIClient.request, AsyncAPIClient.request, SyncAPIClient._send_request)
        assert belog.instrument_openai() is None
        assert originals[0] is not SyncAPIClient.request
        belog.uninstrument_openai()
        client = fake_openai_client()
        with belog.session("restored") as run:
            client.chat.completions.create(**CHAT)
        assert [] == prompts(run)
        assert originals == (
            SyncAPIClient.request,
            AsyncAPIClient.request,
            SyncAPIClient._send_request,
        )

    def test_both_ways_records_once(self, belog_config: Config) -> None:
        """A client instrumented itself and through the process records each call once."""
        client = belog.instrument_openai(fake_openai_client())
        belog.instrument_openai()
        with belog.session("both") as run:
            client.chat.completions.create(**CHAT)
            with client.chat.completions.stream(**CHAT) as stream:
                list(stream)
        belog.uninstrument_openai()
        with belog.session("client only") as alone:
            client.chat.completions.create(**CHAT)
        belog.uninstrument_openai(client)
        assert 2 == len(prompts(run))
        assert 1 == len(prompts(alone))

    def test_decorator_on_top_records_once(self, belog_config: Config) -> None:
        """@audit_llm around a call of an instrumented process is one record, the decorator's."""
        belog.instrument_openai()
        try:
            create = belog.audit_llm(name="mine")(fake_openai_client().chat.completions.create)
            with belog.session("decorated") as run:
                create(**CHAT)
        finally:
            belog.uninstrument_openai()
        [record] = prompts(run)
        assert "mine" == record["name"]
        assert [200] == [a["status_code"] for a in record["attempts"]]

    def test_copies_of_an_instrumented_client(self, belog_config: Config) -> None:
        """with_options() of an instrumented client is instrumented; others are not."""
        client = belog.instrument_openai(fake_openai_client())
        other = fake_openai_client()
        try:
            with belog.session("copies") as run:
                client.with_options(timeout=5).chat.completions.create(**CHAT)
                other.chat.completions.create(**CHAT)
        finally:
            belog.uninstrument_openai(client)
        assert 1 == len(prompts(run))

    def test_bad_arguments(self) -> None:
        """A non-client or a non-bool capture_content is refused, the argument named."""
        with pytest.raises(TypeError, match=r"expects an openai\.OpenAI"):
            belog.instrument_openai(object())
        with pytest.raises(TypeError, match="capture_content must be a bool"):
            belog.instrument_openai(capture_content="yes")  # type: ignore[arg-type]

    def test_configure_flag(self, tmp_path: Path) -> None:
        """configure(instrument_openai=True) instruments the process; reset() undoes it."""
        belog.configure(
            log_dir=tmp_path / "logs", console=False, handle_signals=False, instrument_openai=True
        )
        client = fake_openai_client()
        with belog.session("configured", package=False) as run:
            client.chat.completions.create(**CHAT)
        assert 1 == len(prompts(run))
        with pytest.raises(TypeError, match="instrument_openai must be a bool"):
            belog.configure(log_dir=tmp_path / "logs", instrument_openai="yes")  # type: ignore[arg-type]

    def test_environment_variable(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """BELOG_INSTRUMENT_OPENAI=1 makes configure() instrument the process."""
        code = (
            "import structlog_belog as belog\n"
            "from structlog_belog.audit.fake_llm import fake_openai_client\n"
            "belog.configure(console=False)\n"
            "c = fake_openai_client()\n"
            "with belog.session('env', package=False) as run:\n"
            "    c.embeddings.create(model='text-embedding-3-small', input='x')\n"
            "print(run.directory)\n"
        )
        env = {**subprocess_env, "BELOG_INSTRUMENT_OPENAI": "1", "BELOG_DIR": str(tmp_path)}
        directory = run_python(code, env).strip()
        [record] = read_jsonl(Path(directory) / "prompts.jsonl")
        assert "embeddings" == record["api"]


class TestLeftEarly:
    @pytest.mark.parametrize("api", ["chat", "responses"])
    def test_helper_left_by_break_is_recorded_at_once(
        self, belog_config: Config, process_wide: None, api: str
    ) -> None:
        """break inside a stream helper's with: recorded incomplete before the session ends."""
        client = _client(FakeLLM(output_tokens=50), async_=False)
        manager = (
            client.chat.completions.stream(**CHAT)
            if api == "chat"
            else client.responses.stream(**RESPONSES)
        )
        with belog.session("break") as run:
            with manager as stream:
                for _ in stream:
                    break
            [record] = _records_now(run)
            assert ("incomplete", True) == (record["status"], record["stream"])

    @pytest.mark.parametrize("api", ["chat", "responses"])
    def test_async_helper_closed_is_recorded_at_once(
        self, belog_config: Config, process_wide: None, api: str
    ) -> None:
        """close() on an async helper's stream: recorded incomplete at once."""
        client = _client(FakeLLM(output_tokens=50), async_=True)

        async def main() -> list[dict[str, Any]]:
            async with belog.session("close") as run:
                manager = (
                    client.chat.completions.stream(**CHAT)
                    if api == "chat"
                    else client.responses.stream(**RESPONSES)
                )
                stream = await manager.__aenter__()
                async for _ in stream:
                    break
                await stream.close()
                written = _records_now(run)
                await manager.__aexit__(None, None, None)
            return written

        [record] = asyncio.run(main())
        assert "incomplete" == record["status"]

    def test_streaming_response_left_unread(self, belog_config: Config, process_wide: None) -> None:
        """with_streaming_response left before reading: incomplete at once, once."""
        client = _client(FakeLLM(), async_=False)
        with belog.session("unread") as run:
            with client.chat.completions.with_streaming_response.create(**CHAT, stream=True) as r:
                next(r.iter_lines())
            [record] = _records_now(run)
            assert "incomplete" == record["status"]
        assert 1 == len(prompts(run))

    def test_stream_closed_early(self, belog_config: Config, process_wide: None) -> None:
        """create(stream=True) closed after one chunk: incomplete at once, with the text so far."""
        client = _client(FakeLLM(output_tokens=50), async_=False)
        with belog.session("closed") as run:
            stream = client.chat.completions.create(**CHAT, stream=True)
            first = next(iter(stream))
            stream.close()
            [record] = _records_now(run)
        assert "incomplete" == record["status"]
        assert (first.choices[0].delta.content or None) == record["response"]["output_text"]
