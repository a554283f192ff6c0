"""The prompt audit: `audit_llm`, `instrument_openai`, `last_call` against the real SDK."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import structlog
from pydantic import BaseModel

import structlog_belog as belog
from structlog_belog.audit import call as _audit_call
from structlog_belog.audit import record as _audit_record
from structlog_belog.audit.fake_llm import FakeLLM, fake_openai_client
from structlog_belog.core.config import Config
from tests.conftest import read_jsonl

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Summarise the Naval notes."},
]


def prompts(run: belog.Run) -> list[dict[str, Any]]:
    """Every llm_call record of *run*, read from its prompts.jsonl."""
    path = run.directory / "prompts.jsonl"
    return read_jsonl(path) if path.exists() else []


def processing(run: belog.Run) -> list[dict[str, Any]]:
    """Every record of *run*'s processing.jsonl."""
    return read_jsonl(run.directory / "processing.jsonl")


class Plan(BaseModel):
    """A structured answer for the parse() tests."""

    title: str
    steps: list[str]


class TestAuditLlm:
    def test_chat_call_writes_one_record(self, belog_config: Config) -> None:
        """A decorated chat call writes exactly one llm_call record with the DESIGN fields."""
        client = fake_openai_client()

        @belog.audit_llm
        def call_llm(**kwargs: Any) -> Any:
            return client.chat.completions.create(**kwargs)

        with belog.session("audit") as run, run.stage("generation"):
            result = call_llm(model="gpt-4o-mini", messages=MESSAGES, temperature=0.2, seed=7)
        [record] = prompts(run)
        assert "llm_call" == record["kind"]
        assert "llm_call" == record["event"]
        assert run.id == record["session_id"]
        assert "generation" == record["stage"]
        assert "chat.completions" == record["api"]
        assert "gpt-4o-mini" == record["model"]
        assert MESSAGES == record["request"]["messages"]
        assert 0.2 == record["request"]["temperature"]
        assert 7 == record["request"]["seed"]
        assert result.id == record["response"]["id"]
        assert result.choices[0].message.content == record["response"]["output_text"]
        assert "stop" == record["response"]["finish_reason"]
        assert "ok" == record["status"]
        assert record["error"] is None
        assert record["stream"] is False
        assert record["latency_ms"] > 0
        assert "TestAuditLlm.test_chat_call_writes_one_record.<locals>.call_llm" == record["name"]
        assert record["call_id"].startswith("llm_")

    def test_usage_equals_what_the_server_sent(self, belog_config: Config) -> None:
        """Token counts in the record are the server's, call for call."""
        client = belog.instrument_openai(fake_openai_client())
        with belog.session("usage") as run:
            results = [
                client.chat.completions.create(
                    model="o3", messages=[{"role": "user", "content": f"question {i}" * i}]
                )
                for i in range(1, 6)
            ]
        records = prompts(run)
        assert [
            {
                "input_tokens": r.usage.prompt_tokens,
                "output_tokens": r.usage.completion_tokens,
                "total_tokens": r.usage.total_tokens,
                "cached_tokens": r.usage.prompt_tokens_details.cached_tokens,
                "reasoning_tokens": r.usage.completion_tokens_details.reasoning_tokens,
            }
            for r in results
            if r.usage is not None
            and r.usage.prompt_tokens_details is not None
            and r.usage.completion_tokens_details is not None
        ] == [rec["usage"] for rec in records]
        assert all(rec["usage"]["reasoning_tokens"] > 0 for rec in records)

    def test_decorator_with_options(self, belog_config: Config) -> None:
        """@audit_llm(name=...) names the call in the record."""
        client = fake_openai_client()

        @belog.audit_llm(name="summarise")
        def call_llm(**kwargs: Any) -> Any:
            return client.chat.completions.create(**kwargs)

        with belog.session("named") as run:
            call_llm(model="gpt-4o", messages=MESSAGES)
        assert ["summarise"] == [r["name"] for r in prompts(run)]

    def test_decorating_a_bound_create_method(self, belog_config: Config) -> None:
        """audit_llm(client.responses.create) audits the Responses API directly."""
        client = fake_openai_client()
        create = belog.audit_llm(client.responses.create)
        with belog.session("responses") as run:
            result = create(model="gpt-4.1", input="Plan my day", instructions="Be brief")
        [record] = prompts(run)
        assert "responses" == record["api"]
        assert "Plan my day" == record["request"]["input"]
        assert "Be brief" == record["request"]["instructions"]
        assert result.output_text == record["response"]["output_text"]
        assert result.usage is not None
        assert result.usage.input_tokens == record["usage"]["input_tokens"]
        assert result.usage.output_tokens == record["usage"]["output_tokens"]

    def test_embeddings(self, belog_config: Config) -> None:
        """Embeddings record the count and size of the vectors, never the vectors."""
        client = belog.instrument_openai(fake_openai_client())
        with belog.session("embeddings") as run:
            result = client.embeddings.create(model="text-embedding-3-small", input=["a", "bb"])
        [record] = prompts(run)
        assert "embeddings" == record["api"]
        assert {"model": "text-embedding-3-small", "embeddings": 2, "dimensions": 1536} == (
            record["response"]
        )
        assert result.usage.prompt_tokens == record["usage"]["input_tokens"]
        assert result.usage.total_tokens == record["usage"]["total_tokens"]
        assert pytest.approx(result.usage.prompt_tokens * 0.02 / 1e6) == record["cost_usd"]

    def test_parse_methods(self, belog_config: Config) -> None:
        """chat.completions.parse and responses.parse are audited, the schema sent recorded."""
        client = belog.instrument_openai(fake_openai_client())
        with belog.session("parse") as run:
            chat = client.chat.completions.parse(
                model="gpt-4o", messages=MESSAGES, response_format=Plan
            )
            resp = client.responses.parse(model="gpt-4o", input="plan", text_format=Plan)
        records = prompts(run)
        assert ["chat.completions.parse", "responses.parse"] == [r["name"] for r in records]
        sent = records[0]["request"]["response_format"]
        assert ("json_schema", "Plan") == (sent["type"], sent["json_schema"]["name"])
        assert ["steps", "title"] == sorted(sent["json_schema"]["schema"]["properties"])
        assert chat.choices[0].message.parsed is not None
        assert resp.output_parsed is not None
        assert json.loads(records[0]["response"]["output_text"]) == (
            chat.choices[0].message.parsed.model_dump()
        )

    def test_async_calls(self, belog_config: Config) -> None:
        """AsyncOpenAI calls, decorated or instrumented, are audited."""
        client = fake_openai_client(async_=True)

        @belog.audit_llm
        async def call_llm(**kwargs: Any) -> Any:
            return await client.chat.completions.create(**kwargs)

        async def main() -> belog.Run:
            async with belog.session("async") as run:
                await call_llm(model="gpt-4o-mini", messages=MESSAGES)
                belog.instrument_openai(client)
                await client.responses.create(model="gpt-4.1", input="hi")
                await client.embeddings.create(model="text-embedding-3-large", input="x")
            return run

        run = asyncio.run(main())
        assert ["chat.completions", "responses", "embeddings"] == [r["api"] for r in prompts(run)]

    def test_plain_function_returning_a_coroutine(self, belog_config: Config) -> None:
        """A sync wrapper around an async create is audited when its result is awaited."""
        client = fake_openai_client(async_=True)
        create = belog.audit_llm(client.chat.completions.create)

        async def main() -> belog.Run:
            async with belog.session("coroutine") as run:
                await create(model="gpt-4o-mini", messages=MESSAGES)
            return run

        [record] = prompts(asyncio.run(main()))
        assert "ok" == record["status"]
        assert record["usage"]["total_tokens"] > 0

    def test_one_shot_iterator_messages(self, belog_config: Config) -> None:
        """Messages given as a generator reach the server and the record intact."""
        transport = FakeLLM()
        client = fake_openai_client(transport=transport)
        create = belog.audit_llm(client.chat.completions.create)
        with belog.session("generator") as run:
            create(model="gpt-4o-mini", messages=(m for m in MESSAGES))
        assert MESSAGES == transport.requests[0]["messages"]
        assert MESSAGES == prompts(run)[0]["request"]["messages"]

    def test_record_is_a_snapshot_of_the_request(self, belog_config: Config) -> None:
        """Appending to messages after the call does not change the record of a stream."""
        client = belog.instrument_openai(fake_openai_client())
        messages = [dict(MESSAGES[1])]
        with belog.session("snapshot") as run:
            stream = client.chat.completions.create(
                model="gpt-4o-mini", messages=messages, stream=True
            )
            messages.append({"role": "assistant", "content": "later"})
            list(stream)
        assert [MESSAGES[1]] == prompts(run)[0]["request"]["messages"]

    def test_capture_content_false_stores_lengths_and_hashes(self, belog_config: Config) -> None:
        """capture_content=False keeps roles, lengths and SHA-256s, never the text."""
        client = fake_openai_client()
        create = belog.audit_llm(client.chat.completions.create, capture_content=False)
        with belog.session("private") as run:
            result = create(model="gpt-4o-mini", messages=MESSAGES)
        [record] = prompts(run)
        text = MESSAGES[1]["content"]
        assert {
            "role": "user",
            "content": {"length": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest()},
        } == record["request"]["messages"][1]
        answer = result.choices[0].message.content or ""
        assert (
            hashlib.sha256(answer.encode()).hexdigest()
            == (record["response"]["output_text"]["sha256"])
        )
        on_disk = (run.directory / "prompts.jsonl").read_text()
        assert text not in on_disk
        assert answer not in on_disk

    def test_bad_options_are_refused(self) -> None:
        """Wrong option types and unknown APIs are refused where they are given."""
        with pytest.raises(TypeError, match="capture_content must be a bool"):
            belog.audit_llm(capture_content="no")  # type: ignore[call-overload]
        with pytest.raises(ValueError, match="api must be one of"):
            belog.audit_llm(api="completions")
        with pytest.raises(TypeError, match="decorates a callable"):
            belog.audit_llm(42)  # type: ignore[call-overload]


class TestErrors:
    def test_error_is_recorded_and_reraised_unchanged(self, belog_config: Config) -> None:
        """A 400 is recorded with status and request ID, and the same object is raised."""
        client = belog.instrument_openai(fake_openai_client(fail_first=1, fail_status=400))
        with belog.session("errors") as run:
            with pytest.raises(openai.BadRequestError) as raised:
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            recorded_from = raised.value
        [record] = prompts(run)
        assert "error" == record["status"]
        assert "warning" == record["level"]
        assert {
            "type": "BadRequestError",
            "message": str(recorded_from),
            "status_code": 400,
            "request_id": recorded_from.request_id,
            "code": "injected_fault",
        } == record["error"]
        assert raised.value is recorded_from
        assert raised.traceback[-1].name != "audited"  # raised from the SDK, not rebuilt by us

    def test_same_exception_object_reaches_the_caller(self, belog_config: Config) -> None:
        """The exception the wrapped function raised is the one the caller catches."""
        failure = RuntimeError("boom")

        @belog.audit_llm
        def call_llm(**_: Any) -> Any:
            raise failure

        with belog.session("same"), pytest.raises(RuntimeError) as raised:
            call_llm(model="gpt-4o-mini", messages=MESSAGES)
        assert failure is raised.value

    def test_audit_failure_never_breaks_the_call(
        self,
        belog_config: Config,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """If building the record fails, the caller still gets its result; it is counted."""

        def broken(*_: Any) -> Any:
            raise ValueError("audit bug")

        monkeypatch.setattr("structlog_belog.audit.capture.result_of", broken)
        client = belog.instrument_openai(fake_openai_client())
        before = _audit_call.audit_failures()
        with belog.session("broken"):
            result = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert result.choices[0].message.content
        assert before + 1 == _audit_call.audit_failures()

    def test_sink_failure_never_breaks_the_call(
        self, belog_config: Config, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A failing record path is counted, and the call's result is still returned."""

        def broken(*_: Any) -> None:
            raise OSError("disk full")

        monkeypatch.setattr(_audit_call, "sink", broken)
        client = belog.instrument_openai(fake_openai_client())
        before = _audit_call.audit_failures()
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        assert list(stream)
        assert before + 1 == _audit_call.audit_failures()


class TestContentSafety:
    def test_api_key_in_prompt_never_on_disk(self, belog_config: Config) -> None:
        """An API key pasted into a prompt (and echoed back) is redacted in every file."""
        key = "sk-" + "proj-" + "A1b2C3d4" * 6
        client = belog.instrument_openai(fake_openai_client())
        with belog.session("secret") as run:
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"my key is {key}, keep it"}],
                extra_headers={"Authorization": f"Bearer {key}"},
            )
        files = list(Path(belog_config.log_dir).rglob("*.jsonl"))
        assert files
        for path in files:
            assert key not in path.read_text(), path
        [record] = prompts(run)
        assert "my key is" in record["request"]["messages"][0]["content"]

    def test_ten_megabyte_prompt_is_truncated(self, belog_config: Config) -> None:
        """A 10 MB prompt is capped on disk; the call itself sends it whole."""
        transport = FakeLLM()
        client = belog.instrument_openai(fake_openai_client(transport=transport))
        prompt = "naval " * (10 * 1024 * 1024 // 6)
        with belog.session("huge") as run:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}]
            )
        assert prompt == transport.requests[0]["messages"][0]["content"]
        size = (run.directory / "prompts.jsonl").stat().st_size
        assert size < 1024 * 1024
        [record] = prompts(run)
        assert len(prompt) > len(json.dumps(record["request"]["messages"]))


class TestInstrumentOpenai:
    def test_instrumenting_twice_records_once(self, belog_config: Config) -> None:
        """instrument_openai twice, or with the decorator on top, still writes one record."""
        client = fake_openai_client()
        belog.instrument_openai(client)
        belog.instrument_openai(client)
        create = belog.audit_llm(client.chat.completions.create)
        with belog.session("twice") as run:
            create(model="gpt-4o-mini", messages=MESSAGES)
        assert 1 == len(prompts(run))
        assert [] == client._client.event_hooks["request"]  # nothing on the app's HTTP client

    def test_uninstrument_restores(self, belog_config: Config) -> None:
        """After uninstrument_openai the client's calls are not recorded; it is as it was."""
        client = fake_openai_client()
        original = client.chat.completions.create
        belog.instrument_openai(client)
        belog.uninstrument_openai(client)
        with belog.session("restored") as run:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert [] == prompts(run)
        assert original == client.chat.completions.create
        assert [] == client._client.event_hooks["request"]

    def test_other_clients_untouched(self, belog_config: Config) -> None:
        """Instrumenting one client does not audit another."""
        belog.instrument_openai(fake_openai_client())
        other = fake_openai_client()
        with belog.session("other") as run:
            other.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert [] == prompts(run)

    def test_not_a_client(self) -> None:
        """Something that is not an OpenAI client is refused, named in the message."""
        with pytest.raises(TypeError, match=r"expects an openai\.OpenAI"):
            belog.instrument_openai(object())

    def test_raw_response_calls_are_recorded(self, belog_config: Config) -> None:
        """with_raw_response: the caller gets the raw response; the record comes from parse()."""
        client = belog.instrument_openai(fake_openai_client(fail_first=1))
        with belog.session("raw") as run:
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Team": "audit"}
            )
        result = raw.parse()
        assert result is raw.parse()
        [record] = prompts(run)
        assert "ok" == record["status"]
        assert result.choices[0].message.content == record["response"]["output_text"]
        assert result.usage.total_tokens == record["usage"]["total_tokens"]
        assert raw.headers["x-request-id"] == record["attempts"][-1]["request_id"]
        assert [429, 200] == [a["status_code"] for a in record["attempts"]]
        assert {"X-Team": "audit"} == record["request"]["headers"]

    def test_raw_response_errors_are_recorded(self, belog_config: Config) -> None:
        """A with_raw_response call that fails is recorded and its exception re-raised."""
        client = belog.instrument_openai(
            fake_openai_client(fail_first=10, fail_status=500, max_retries=1)
        )
        with belog.session("raw-error") as run, pytest.raises(openai.InternalServerError):
            client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
        [record] = prompts(run)
        assert ("error", 500) == (record["status"], record["error"]["status_code"])

    def test_streaming_response_calls_are_recorded(self, belog_config: Config) -> None:
        """with_streaming_response: recorded from the body the caller reads, once."""
        client = belog.instrument_openai(fake_openai_client())
        with (
            belog.session("streaming-response") as run,
            client.chat.completions.with_streaming_response.create(
                model="gpt-4o-mini", messages=MESSAGES
            ) as response,
        ):
            result = response.parse()
        [record] = prompts(run)
        assert result.choices[0].message.content == record["response"]["output_text"]
        assert ("ok", False) == (record["status"], record["stream"])

    def test_raw_streams_are_recorded(self, belog_config: Config) -> None:
        """with_raw_response with stream=True: the SDK's own stream, recorded from its bytes."""
        client = belog.instrument_openai(fake_openai_client())
        with belog.session("raw-stream") as run:
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
            chunks = list(raw.parse())
        assert type(chunks[0]).__name__ == "ChatCompletionChunk"
        [record] = prompts(run)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert (text, True) == (record["response"]["output_text"], record["stream"])


class TestLastCall:
    def test_innermost_context_first(self, belog_config: Config) -> None:
        """last_call() returns the call of the current stage, else of the session."""
        client = belog.instrument_openai(fake_openai_client())
        with belog.session("last") as run:
            assert belog.last_call() is None
            with run.stage("one"):
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
                first = belog.last_call()
            with run.stage("two"):
                assert first == belog.last_call()
                client.embeddings.create(model="text-embedding-3-small", input="x")
                second = belog.last_call()
        assert first is not None
        assert second is not None
        assert "chat.completions" == first["api"]
        assert "embeddings" == second["api"]
        assert [first["call_id"], second["call_id"]] == [r["call_id"] for r in prompts(run)]

    def test_outside_any_session(self, belog_config: Config) -> None:
        """Outside sessions, last_call() is the last call made outside; it is in the global log."""
        client = belog.instrument_openai(fake_openai_client())
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        record = belog.last_call()
        assert record is not None
        lines = read_jsonl(Path(belog_config.log_dir) / f"{belog_config.app_name}.jsonl")
        assert [record["call_id"]] == [
            r.get("call_id") for r in lines if r.get("kind") == "llm_call"
        ]

    def test_a_new_plain_copy_each_time(self, belog_config: Config) -> None:
        """last_call() gives a new plain dict each time: changing one changes no other."""
        client = belog.instrument_openai(fake_openai_client())
        with belog.session("copies") as run:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            first, second = belog.last_call(), belog.last_call()
        assert first is not None
        assert second is not None
        assert (dict, dict) == (type(first), type(first["request"]))
        assert first == second
        first["request"]["messages"].append({"role": "user", "content": "changed"})  # type: ignore[index]
        assert second == prompts(run)[0]

    def test_a_changed_copy_logged_again_is_scanned(self, belog_config: Config) -> None:
        """A secret put into last_call()'s record and logged is redacted like any value."""
        key = "sk-" + "proj-" + "Q9w8E7r6" * 6
        client = belog.instrument_openai(fake_openai_client())
        with belog.session("logged-again") as run:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            record = belog.last_call()
            assert record is not None
            record["request"]["note"] = f"key {key}"  # type: ignore[index]
            structlog.get_logger().info("call again", call=record)
        written = b"".join(p.read_bytes() for p in run.directory.glob("*.jsonl"))  # type: ignore[union-attr]
        assert b"call again" in written
        assert key.encode() not in written


class TestCorrelation:
    def test_add_output_links_the_calls_before_it(
        self, belog_config: Config, tmp_path: Path
    ) -> None:
        """run.add_output links the calls made in the same context since the previous output."""
        client = belog.instrument_openai(fake_openai_client())
        out = tmp_path / "beginner.json"
        out.write_text("{}")
        with belog.session("outputs") as run, run.stage("generation"):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            linked = run.add_output(out)
            assert [] == run.add_output(out)
        call_ids = [r["call_id"] for r in prompts(run)]
        assert call_ids == linked
        outputs = [r["call_ids"] for r in processing(run) if r.get("kind") == "output"]
        assert [call_ids, []] == outputs

    def test_processing_log_has_a_reference_line(self, belog_config: Config) -> None:
        """Each call leaves a compact reference line in processing.jsonl, in order."""
        client = belog.instrument_openai(fake_openai_client())
        with belog.session("reference") as run:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        [record] = prompts(run)
        [ref] = [r for r in processing(run) if r.get("kind") == "llm_call"]
        assert record["call_id"] == ref["call_id"]
        assert record["usage"] == ref["usage"]
        assert "request" not in ref


class TestLoopback:
    def test_real_http_server(self, belog_config: Config) -> None:
        """Against a real loopback HTTP server, via the SDK's own HTTP client calls are audited."""
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        fake = FakeLLM(fail_first=1)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                request = httpx.Request("POST", f"http://loopback{self.path}", content=body)
                response = fake.handle_request(request)
                content = response.read()
                self.send_response(response.status_code)
                for name, value in response.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *_: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            client = openai.OpenAI(
                api_key="-".join(("loopback", "placeholder")),
                base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
            )
            belog.instrument_openai(client)
            with belog.session("loopback") as run:
                result = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
                chunks = list(
                    client.chat.completions.create(
                        model="gpt-4o-mini", messages=MESSAGES, stream=True
                    )
                )
            client.close()
        finally:
            server.shutdown()
            server.server_close()
        records = prompts(run)
        assert [429, 200] == [a["status_code"] for a in records[0]["attempts"]]
        assert result.usage is not None
        assert result.usage.total_tokens == records[0]["usage"]["total_tokens"]
        assert all(c.usage is None for c in chunks)
        assert records[1]["usage"]["total_tokens"] == records[0]["usage"]["total_tokens"]


class TestRecordHelpers:
    def test_jsonable_copies_and_names(self) -> None:
        """jsonable dumps SDK models, names classes and copies containers."""
        nested = {"a": [1, {"b": Plan}], "c": b"xyz", "d": openai.omit}
        assert {"a": [1, {"b": "tests.audit.test_audit.Plan"}], "c": {"bytes": 3}} == (
            _audit_record.jsonable(nested)
        )

    def test_guess_api_from_arguments(self) -> None:
        """Without a result, the API is guessed from the create call's arguments."""
        assert "chat.completions" == _audit_record.guess_api({"messages": []})
        assert "embeddings" == _audit_record.guess_api({"model": "text-embedding-3-small"})
        assert "responses" == _audit_record.guess_api({"model": "gpt-4.1", "input": "x"})


class TestWrapperShapes:
    def test_stream_options_without_include_usage_get_it(self, belog_config: Config) -> None:
        """Given stream_options without include_usage, the audit adds it and hides the chunk."""
        transport = FakeLLM()
        client = belog.instrument_openai(fake_openai_client(transport=transport))
        with belog.session("options") as run:
            chunks = list(
                client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=MESSAGES,
                    stream=True,
                    stream_options={"include_obfuscation": False},
                )
            )
        assert {"include_obfuscation": False, "include_usage": True} == (
            transport.requests[0]["stream_options"]
        )
        assert all(c.choices for c in chunks)
        [record] = prompts(run)
        assert {"include_obfuscation": False} == record["request"]["stream_options"]
        assert record["usage"]["total_tokens"] > 0

    def test_fixed_signature_wrapper_is_not_given_stream_options(
        self, belog_config: Config
    ) -> None:
        """A wrapper without stream_options/**kwargs is called with exactly its arguments."""
        client = fake_openai_client()

        @belog.audit_llm(api="chat.completions")
        def ask(*, model: str, messages: list[dict[str, str]], stream: bool) -> Any:
            return client.chat.completions.create(model=model, messages=messages, stream=stream)

        with belog.session("fixed") as run:
            chunks = list(ask(model="gpt-4o-mini", messages=MESSAGES, stream=True))
        [record] = prompts(run)
        assert chunks
        assert "ok" == record["status"]
        assert record["usage"] is None

    def test_nested_async_audits_record_once(self, belog_config: Config) -> None:
        """An async wrapper around an instrumented async client records one call, not two.

        The with_raw_response call after it is a call of its own, recorded once.
        """
        client = belog.instrument_openai(fake_openai_client(async_=True))

        @belog.audit_llm(name="outer")
        async def outer(**kwargs: Any) -> Any:
            return await client.chat.completions.create(**kwargs)

        async def main() -> belog.Run:
            async with belog.session("nested") as run:
                await outer(model="gpt-4o-mini", messages=MESSAGES)
                await client.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini", messages=MESSAGES
                )
            return run

        names = [r["name"] for r in prompts(asyncio.run(main()))]
        assert ["outer", "chat.completions.create"] == names

    def test_start_failure_still_makes_the_call(
        self, belog_config: Config, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """If the audit cannot start a record, the call is made unaudited and counted."""

        def broken(*_: Any) -> Any:
            raise ValueError("audit bug")

        monkeypatch.setattr("structlog_belog.audit.capture.request_of", broken)
        client = belog.instrument_openai(fake_openai_client())
        before = _audit_call.audit_failures()
        with belog.session("no-start") as run:
            result = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert result.choices
        assert [] == prompts(run)
        assert before + 1 == _audit_call.audit_failures()

    def test_builtin_without_signature(self, belog_config: Config) -> None:
        """A callable whose signature cannot be read is audited without usage injection."""
        audited_max = belog.audit_llm(max)
        assert 2 == audited_max([1, 2])


class TestShippedSchema:
    def test_records_validate(self, belog_config: Config) -> None:
        """ok, error, streamed, abandoned and embeddings records match llm_call.schema.json."""
        from importlib import resources

        import jsonschema
        from referencing import Registry, Resource

        schemas = resources.files("structlog_belog") / "schemas"
        loaded = [json.loads(p.read_text()) for p in schemas.iterdir() if p.name.endswith(".json")]
        registry: Registry[Any] = Registry().with_resources(
            (s["$id"], Resource.from_contents(s)) for s in loaded if "$id" in s
        )
        schema = json.loads((schemas / "llm_call.schema.json").read_text())
        validator = jsonschema.Draft202012Validator(schema, registry=registry)
        client = belog.instrument_openai(fake_openai_client(fail_first=1))
        failing = belog.instrument_openai(fake_openai_client(fail_first=1, fail_status=400))
        with belog.session("schema") as run:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            list(client.responses.create(model="gpt-4.1", input="x", stream=True))
            stream = client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
            next(stream)
            stream.close()
            client.embeddings.create(model="text-embedding-3-small", input="x")
            with pytest.raises(openai.BadRequestError):
                failing.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        records = prompts(run)
        assert ["ok", "ok", "incomplete", "ok", "error"] == [r["status"] for r in records]
        for record in records:
            validator.validate(record)


class TestImport:
    def test_importing_the_package_does_not_import_openai(
        self, python: str, subprocess_env: dict[str, str]
    ) -> None:
        """openai is an optional extra: `import structlog_belog` must not load it."""
        import subprocess

        code = "import sys, structlog_belog; print('openai' in sys.modules)"
        out = subprocess.run(
            [python, "-c", code], env=subprocess_env, capture_output=True, text=True, check=True
        )
        assert "False" == out.stdout.strip()


class TestCaptureSession:
    def test_calls_are_captured_in_memory(self, belog_config: Config) -> None:
        """structlog_belog.testing.capture_session() sees each llm_call record once."""
        from structlog_belog.testing import capture_session

        client = belog.instrument_openai(fake_openai_client())
        with capture_session() as captured, belog.session("captured"):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        [call] = captured.calls
        assert "chat.completions" == call["api"]
        assert call["usage"]["total_tokens"] > 0


def _client_answering(answer: httpx.Response) -> openai.OpenAI:
    """A real SDK client whose every request gets *answer* (status, headers, JSON body)."""

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            answer.status_code, headers=answer.headers, content=answer.content, request=request
        )

    return openai.OpenAI(
        api_key="-".join(("test", "placeholder")),
        base_url="http://answer.invalid/v1",
        http_client=httpx.Client(transport=httpx.MockTransport(handle)),
        max_retries=0,
    )


def _chat_answer(message: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    return httpx.Response(200, headers=headers or {}, json=body)


class TestEachPartRedactedOnce:
    """The audit redacts its parts where it builds them; the record path skips them."""

    def test_secret_in_answer_and_tool_arguments_never_on_disk(self, belog_config: Config) -> None:
        """A key the model echoes, in its text or in a tool call's arguments, is redacted."""
        key = "sk-" + "proj-" + "Z9y8X7w6" * 6
        answer = _chat_answer(
            {
                "role": "assistant",
                "content": f"your key: {key}",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "store", "arguments": json.dumps({"api_key": key})},
                    }
                ],
            }
        )
        client = belog.instrument_openai(_client_answering(answer))
        with belog.session("echo") as run:
            result = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert key in (result.choices[0].message.content or "")  # the caller gets it whole
        for path in Path(belog_config.log_dir).rglob("*.jsonl"):
            assert key not in path.read_text(), path
        [record] = prompts(run)
        assert record["response"]["output_text"].startswith("your key: [REDACTED:")
        assert "store" == record["response"]["tool_calls"][0]["name"]

    def test_secret_in_error_message_never_on_disk(self, belog_config: Config) -> None:
        """A server error that quotes the key it was sent is recorded without it."""
        key = "sk-" + "proj-" + "Q1w2E3r4" * 6
        refused = httpx.Response(
            401, json={"error": {"message": f"Incorrect API key provided: {key}", "code": "bad"}}
        )
        client = belog.instrument_openai(_client_answering(refused))
        with belog.session("refused") as run, pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        [record] = prompts(run)
        assert 401 == record["error"]["status_code"]
        assert "Incorrect API key provided: [REDACTED:" in record["error"]["message"]
        for path in Path(belog_config.log_dir).rglob("*.jsonl"):
            assert key not in path.read_text(), path

    def test_bound_context_fields_are_redacted_in_call_records(self, belog_config: Config) -> None:
        """Fields bound to the context (belog.bind, structlog's contextvars) are scanned too."""
        import structlog

        token = "ghp_" + "a1B2c3D4e5" * 4
        password = "-".join(("hunter2", "long", "enough"))
        client = belog.instrument_openai(fake_openai_client())
        with belog.session("bound") as run, belog.bound(note=f"token {token}"):
            structlog.contextvars.bind_contextvars(user_password=password)
            try:
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            finally:
                structlog.contextvars.clear_contextvars()
        [record] = prompts(run)
        assert token not in record["note"]
        assert "[REDACTED:" in record["note"]
        assert password != record["user_password"]
        for path in Path(belog_config.log_dir).rglob("*.jsonl"):
            text = path.read_text()
            assert token not in text, path
            assert password not in text, path

    def test_non_finite_parameters_are_written_as_text(self, belog_config: Config) -> None:
        """NaN and Infinity in the request are written as the record path writes them.

        The SDK refuses to send them (JSON has no such numbers); the call is
        recorded with its arguments and the SDK's error is re-raised.
        """
        client = belog.instrument_openai(fake_openai_client())
        create = client.chat.completions.create
        with belog.session("nan") as run:
            with pytest.raises(ValueError, match="JSON"):
                create(model="gpt-4o-mini", messages=MESSAGES, temperature=float("nan"))
            with pytest.raises(ValueError, match="JSON"):
                create(model="gpt-4o-mini", messages=MESSAGES, logit_bias={"1": float("-inf")})
        first, second = prompts(run)
        assert "NaN" == first["request"]["temperature"]
        assert {"1": "-Infinity"} == second["request"]["logit_bias"]
        assert "ValueError" == first["error"]["type"]

    def test_non_finite_bound_field_on_a_call_record(self, belog_config: Config) -> None:
        """A NaN bound in the context reaches the call record and its reference as "NaN"."""
        client = belog.instrument_openai(fake_openai_client())
        with (
            belog.session("bound-nan") as run,
            belog.bound(score=float("nan"), efficiency_score=float("inf")),
        ):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        [record] = prompts(run)
        assert ("NaN", "Infinity") == (record["score"], record["efficiency_score"])
        [ref] = [r for r in read_jsonl(run.directory / "processing.jsonl") if r.get("ref")]
        assert (record["call_id"], "Infinity") == (ref["call_id"], ref["efficiency_score"])

    def test_non_finite_bound_field_on_a_truncated_call_record(self, belog_config: Config) -> None:
        """A call record cut by the truncator still writes a NaN from the context as "NaN"."""
        client = belog.instrument_openai(fake_openai_client())
        long_prompt = [{"role": "user", "content": "word " * 400_000}]
        with belog.session("bound-nan-long") as run, belog.bound(score=float("nan")):
            client.chat.completions.create(model="gpt-4o-mini", messages=long_prompt)
        [record] = prompts(run)
        assert "NaN" == record["score"]
        assert len(record["request"]["messages"][0]["content"]) < 400_000 * 5

    def test_model_of_another_type_is_written_json_safe(self, belog_config: Config) -> None:
        """A wrapper called with a non-string model: the record holds a JSON-safe copy."""

        @belog.audit_llm(api="chat.completions")
        def call(**kwargs: Any) -> dict[str, Any]:
            return {"id": "x", "choices": [], "usage": None}

        with belog.session("odd-model") as run:
            call(model=float("inf"), messages=MESSAGES)
        [record] = prompts(run)
        assert "Infinity" == record["model"]
        assert "Infinity" == record["request"]["model"]
        assert record["cost_usd"] is None

    def test_capitalised_header_names_are_read(self, belog_config: Config) -> None:
        """A transport that keeps header names' case still gives the attempt its request ID."""
        answer = _chat_answer(
            {"role": "assistant", "content": "fine"},
            headers={"X-Request-ID": "req_upper", "X-RateLimit-Remaining-Requests": "7"},
        )
        client = belog.instrument_openai(_client_answering(answer))
        with belog.session("case") as run:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        [record] = prompts(run)
        [attempt] = record["attempts"]
        assert "req_upper" == attempt["request_id"]
        assert {"remaining_requests": "7"} == attempt["ratelimit"]

    def test_last_call_is_the_record_written(self, belog_config: Config) -> None:
        """last_call() returns the record as it was written: redacted, with its session fields."""
        key = "sk-" + "proj-" + "L0k9J8h7" * 6
        client = belog.instrument_openai(fake_openai_client())
        with belog.session("last") as run:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"key {key}"}]
            )
            call = belog.last_call()
        assert call is not None
        [record] = prompts(run)
        assert record == json.loads(json.dumps(call))
        assert run.id == call["session_id"]
        assert key not in json.dumps(call)
