"""structlog_belog.otel: spans for sessions, stages, tasks and LLM calls; trace IDs on records.

Against the real opentelemetry-sdk (``InMemorySpanExporter`` behind a
``SimpleSpanProcessor``) and the real openai SDK answered by `FakeLLM`.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import re
import threading
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import structlog_belog as belog
from structlog_belog import _otel, otel
from structlog_belog.audit import call as _audit_call
from structlog_belog.core import config as _config
from structlog_belog.core import pipeline as _pipeline
from structlog_belog.core import tracing as _tracing
from structlog_belog.testing import FakeLLM, fake_openai_client

from .conftest import read_jsonl, run_python

PROMPT = "Summarise the Naval notes, please."
MESSAGES = [{"role": "user", "content": PROMPT}]
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


class Traced:
    """A tracer provider recording into memory, and the spans it finished."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    @property
    def spans(self) -> list[ReadableSpan]:
        """The finished spans, in the order they ended."""
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> ReadableSpan:
        """The one finished span called *name*."""
        [span] = [s for s in self.spans if s.name == name]
        return span


def ids(span: ReadableSpan) -> tuple[str, str]:
    """(trace_id, span_id) of *span* as records carry them."""
    assert span.context is not None
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"


def parent_of(span: ReadableSpan) -> int | None:
    """The span ID of *span*'s parent, or None for a root span."""
    return None if span.parent is None else span.parent.span_id


def span_id(span: ReadableSpan) -> int:
    """*span*'s own span ID."""
    assert span.context is not None
    return span.context.span_id


def processing(run: belog.Run) -> list[dict[str, Any]]:
    """Every record of *run*'s processing.jsonl."""
    assert run.directory is not None
    return read_jsonl(run.directory / "processing.jsonl")


def record_ids(record: dict[str, Any]) -> tuple[Any, Any]:
    """(trace_id, span_id) of a record as written."""
    return record.get("trace_id"), record.get("span_id")


@pytest.fixture(autouse=True)
def _uninstrumented() -> Iterator[None]:
    """Every test starts and ends with OpenTelemetry off."""
    otel.uninstrument()
    yield
    otel.uninstrument()


@pytest.fixture
def traced(belog_config: _config.Config) -> Iterator[Traced]:
    """belog configured into tmp_path and instrumented with an in-memory provider."""
    t = Traced()
    otel.instrument(t.provider)
    yield t
    otel.uninstrument()
    t.provider.shutdown()


class TestSpanTree:
    def test_session_stage_task_call(self, traced: Traced) -> None:
        """A session is a root span; stage, task and LLM call nest in it, in one trace."""
        client = fake_openai_client()
        belog.instrument_openai(client)
        with (
            belog.session("naval", blueprint_id="bp_003", blueprint_version="v1.2") as run,
            run.stage("generation"),
            run.task("Generate supertask"),
        ):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

        session = traced.named("belog.session naval")
        stage = traced.named("belog.stage generation")
        task = traced.named("belog.task Generate supertask")
        call = traced.named("chat gpt-4o-mini")
        assert None is session.parent
        assert span_id(session) == parent_of(stage)
        assert span_id(stage) == parent_of(task)
        assert span_id(task) == parent_of(call)
        assert {ids(session)[0]} == {ids(s)[0] for s in traced.spans}
        assert SpanKind.CLIENT == call.kind
        assert {SpanKind.INTERNAL} == {s.kind for s in (session, stage, task)}
        assert {StatusCode.UNSET} == {s.status.status_code for s in traced.spans}
        assert "structlog_belog" == session.instrumentation_scope.name
        assert belog.__version__ == session.instrumentation_scope.version

    def test_session_attributes(self, traced: Traced) -> None:
        """The session span carries the session's ID, title, blueprint and success."""
        with belog.session(
            "naval", blueprint_id="bp_003", blueprint_version="v1.2", execution_context="ctx"
        ) as run:
            pass
        assert {
            "belog.session.id": run.id,
            "belog.session.title": "naval",
            "belog.blueprint.id": "bp_003",
            "belog.blueprint.version": "v1.2",
            "belog.execution_context": "ctx",
            "belog.success": True,
        } == dict(traced.named("belog.session naval").attributes or {})

    def test_nested_sessions(self, traced: Traced) -> None:
        """A child session's span is a child of its parent session's span."""
        with (
            belog.session("parent", package=False) as parent,
            belog.session("child", package=False),
        ):
            pass
        child = traced.named("belog.session child")
        assert span_id(traced.named("belog.session parent")) == parent_of(child)
        assert parent.id == (child.attributes or {})["belog.session.parent_id"]

    def test_nested_stages(self, traced: Traced) -> None:
        """A stage inside a stage is its child, and names its parent stage."""
        with belog.session("s", package=False) as run, run.stage("outer"), run.stage("inner"):
            pass
        inner = traced.named("belog.stage inner")
        assert span_id(traced.named("belog.stage outer")) == parent_of(inner)
        assert "outer" == (inner.attributes or {})["belog.stage.parent"]

    def test_task_attributes(self, traced: Traced) -> None:
        """The task span carries the BELog record's trace ID, score, time and success."""
        with belog.session("s", package=False) as run, run.task("t") as task:
            pass
        attributes = dict(traced.named("belog.task t").attributes or {})
        assert task.record is not None
        assert {
            "belog.task.name": "t",
            "belog.execution_trace_id": task.record["execution_trace_id"],
            "belog.session.id": run.id,
            "belog.success": True,
            "belog.efficiency_score": task.record["efficiency_score"],
            "belog.execution_time": task.record["execution_time"],
            "belog.errors_encountered": 0,
        } == attributes


class TestErrors:
    def test_failed_session(self, traced: Traced) -> None:
        """A run that raises: every open span is ERROR, with the exception recorded, redacted."""
        secret = "sk-" + "proj-" + "A" * 40
        with (
            pytest.raises(ValueError, match="boom"),
            belog.session("failing", package=False) as run,
            run.stage("st"),
            run.task("tk"),
        ):
            raise ValueError(f"boom with {secret}")

        for name in ("belog.session failing", "belog.stage st", "belog.task tk"):
            span = traced.named(name)
            assert StatusCode.ERROR == span.status.status_code
            assert False is (span.attributes or {})["belog.success"]
            [event] = span.events
            assert "exception" == event.name
            attributes = dict(event.attributes or {})
            assert "ValueError" == attributes["exception.type"]
            assert attributes["exception.message"].startswith("boom with ")
            assert secret not in str(attributes)
            assert secret not in (span.status.description or "")
            assert "Traceback" in attributes["exception.stacktrace"]

    def test_failed_task_inside_successful_session(self, traced: Traced) -> None:
        """Only the span whose block raised is ERROR."""
        with belog.session("s", package=False) as run, pytest.raises(KeyError), run.task("tk"):
            raise KeyError("missing")
        assert StatusCode.ERROR == traced.named("belog.task tk").status.status_code
        assert StatusCode.UNSET == traced.named("belog.session s").status.status_code
        assert 1 == (traced.named("belog.task tk").attributes or {})["belog.errors_encountered"]

    def test_redaction_off_keeps_message(self, tmp_path: Path) -> None:
        """With configure(redact=False) the exception message is recorded as raised."""
        belog.configure(log_dir=tmp_path, console=False, handle_signals=False, redact=False)
        t = Traced()
        otel.instrument(t.provider)
        secret = "sk-" + "proj-" + "B" * 40
        with pytest.raises(ValueError, match="x"), belog.session("s", package=False):
            raise ValueError(f"x {secret}")
        [event] = t.named("belog.session s").events
        assert f"x {secret}" == (event.attributes or {})["exception.message"]


class _HttpSpans(FakeLLM):
    """A FakeLLM that opens a CLIENT span per HTTP request, as an HTTP instrumentation does."""

    def __init__(self, provider: TracerProvider, **options: Any) -> None:
        super().__init__(**options)
        self.tracer = provider.get_tracer("http-test")

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self.tracer.start_as_current_span("HTTP POST", kind=SpanKind.CLIENT):
            return super().handle_request(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with self.tracer.start_as_current_span("HTTP POST", kind=SpanKind.CLIENT):
            return await super().handle_async_request(request)


class TestLlmCallSpansNest:
    """The call's span is current while the SDK works: HTTP spans and records nest in it."""

    def test_http_spans_and_records_nest_under_the_call(self, traced: Traced) -> None:
        """Each HTTP attempt's span is a child of the call's span; so are records logged inside."""
        client = belog.instrument_openai(
            fake_openai_client(transport=_HttpSpans(traced.provider, fail_first=1))
        )
        with belog.session("s", package=False) as run:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            structlog.get_logger().info("after the call")
        call = traced.named("chat gpt-4o-mini")
        attempts = [span for span in traced.spans if span.name == "HTTP POST"]
        assert 2 == len(attempts)  # a 429, then the answer
        assert {span_id(call)} == {parent_of(span) for span in attempts}
        assert span_id(traced.named("belog.session s")) == parent_of(call)
        records = processing(run)
        [http_record, *_] = [r for r in records if r["logger"] == "httpx"]
        assert ids(call) == record_ids(http_record)
        [after] = [r for r in records if r["event"] == "after the call"]
        assert ids(traced.named("belog.session s")) == record_ids(after)

    def test_stream_span_ends_with_its_record(self, traced: Traced) -> None:
        """A stream's span covers the call; it is not current while the caller reads chunks."""
        client = belog.instrument_openai(fake_openai_client(transport=_HttpSpans(traced.provider)))
        with belog.session("s", package=False) as run:
            stream = client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
            current = trace.get_current_span()
            assert isinstance(current, Span)
            assert "belog.session s" == current.name  # the call's span was left on return
            structlog.get_logger().info("between")
            chunks = list(stream)
        assert chunks
        call = traced.named("chat gpt-4o-mini")
        [record] = read_jsonl(run.directory / "prompts.jsonl")  # type: ignore[operator]
        assert ids(call) == record_ids(record)
        assert span_id(call) == parent_of(traced.named("HTTP POST"))
        [between] = [r for r in processing(run) if r["event"] == "between"]
        assert ids(traced.named("belog.session s")) == record_ids(between)
        assert call.start_time is not None
        assert call.end_time is not None
        assert record["latency_ms"] == pytest.approx((call.end_time - call.start_time) / 1e6)

    def test_async_create_through_a_plain_function_has_one_span(self, traced: Traced) -> None:
        """A plain function returning the SDK's coroutine: one span, the HTTP span inside it."""
        client = fake_openai_client(async_=True, transport=_HttpSpans(traced.provider))
        started: list[str] = []

        class Starts(SpanProcessor):
            def on_start(self, span: Span, parent_context: Any = None) -> None:
                started.append(span.name)

        traced.provider.add_span_processor(Starts())

        @belog.audit_llm
        def create(**kwargs: Any) -> Any:
            return client.chat.completions.create(**kwargs)

        async def main() -> None:
            with belog.session("s", package=False):
                await create(model="gpt-4o-mini", messages=MESSAGES)

        asyncio.run(main())
        [call] = [s for s in traced.spans if s.name == "chat gpt-4o-mini"]
        assert span_id(call) == parent_of(traced.named("HTTP POST"))
        assert 1 == started.count("chat gpt-4o-mini")  # not a second one when awaited

    def test_async_calls_nest_each_in_its_own_span(self, traced: Traced) -> None:
        """Concurrent async calls: each HTTP span sits under its own call's span."""
        client = belog.instrument_openai(
            fake_openai_client(async_=True, transport=_HttpSpans(traced.provider))
        )

        async def main() -> None:
            with belog.session("s", package=False):
                await asyncio.gather(
                    *(
                        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
                        for _ in range(5)
                    )
                )

        asyncio.run(main())
        calls = {span_id(s) for s in traced.spans if s.name == "chat gpt-4o-mini"}
        http = [parent_of(s) for s in traced.spans if s.name == "HTTP POST"]
        assert 5 == len(calls)
        assert calls == set(http)
        assert 5 == len(http)


class TestLlmCallSpans:
    def test_genai_attributes(self, traced: Traced) -> None:
        """A chat call's span has the GenAI attributes from its record, and no content."""
        client = fake_openai_client()
        belog.instrument_openai(client)
        with belog.session("s", package=False) as run:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, temperature=0.2, max_tokens=50, seed=7
            )
        [record] = read_jsonl(run.directory / "prompts.jsonl")  # type: ignore[operator]
        span = traced.named("chat gpt-4o-mini")
        attributes = dict(span.attributes or {})
        assert {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.request.temperature": 0.2,
            "gen_ai.request.max_tokens": 50,
            "gen_ai.request.seed": 7,
            "gen_ai.response.id": record["response"]["id"],
            "gen_ai.response.model": record["response"]["model"],
            "gen_ai.response.finish_reasons": ("stop",),
            "gen_ai.usage.input_tokens": record["usage"]["input_tokens"],
            "gen_ai.usage.output_tokens": record["usage"]["output_tokens"],
            "belog.call_id": record["call_id"],
            "belog.call_name": record["name"],
            "belog.api": "chat.completions",
            "belog.status": "ok",
            "belog.stream": False,
            "belog.latency_ms": record["latency_ms"],
            "belog.cost_usd": record["cost_usd"],
            "belog.attempts": 1,
        } == attributes
        assert PROMPT not in str(attributes)
        assert record["response"]["output_text"] not in str(attributes)

    def test_span_lasts_the_call_latency(self, traced: Traced) -> None:
        """The call span's start and end are the call's, its duration the record's latency."""
        client = fake_openai_client(latency=0.05)
        belog.instrument_openai(client)
        with belog.session("s", package=False) as run:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        [record] = read_jsonl(run.directory / "prompts.jsonl")  # type: ignore[operator]
        span = traced.named("chat gpt-4o-mini")
        assert span.start_time is not None
        assert span.end_time is not None
        assert record["latency_ms"] == pytest.approx((span.end_time - span.start_time) / 1e6)
        assert record["latency_ms"] >= 50
        session = traced.named("belog.session s")
        assert session.start_time is not None
        assert session.end_time is not None
        assert session.start_time <= span.start_time <= span.end_time <= session.end_time

    def test_failed_call_is_error(self, traced: Traced) -> None:
        """A call that raised: status ERROR, error.type and the HTTP status on the span."""
        client = fake_openai_client(fail_first=5, fail_status=500, max_retries=0)
        belog.instrument_openai(client)
        with (
            belog.session("s", package=False),
            pytest.raises(openai.InternalServerError),
        ):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        span = traced.named("chat gpt-4o-mini")
        assert StatusCode.ERROR == span.status.status_code
        assert "InternalServerError" == span.status.description
        attributes = dict(span.attributes or {})
        assert "InternalServerError" == attributes["error.type"]
        assert 500 == attributes["belog.error.status_code"]
        assert "error" == attributes["belog.status"]

    def test_embeddings_and_stream(self, traced: Traced) -> None:
        """Embeddings are operation "embeddings"; a stream's span has its time to first token."""
        client = fake_openai_client()
        belog.instrument_openai(client)
        with belog.session("s", package=False):
            client.embeddings.create(
                model="text-embedding-3-small", input="hello", encoding_format="float"
            )
            stream = client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True, stop=["\n\n"]
            )
            for _ in stream:
                pass
        embed = dict(traced.named("embeddings text-embedding-3-small").attributes or {})
        assert "embeddings" == embed["gen_ai.operation.name"]
        assert ("float",) == embed["gen_ai.request.encoding_formats"]
        chat = dict(traced.named("chat gpt-4o-mini").attributes or {})
        assert True is chat["belog.stream"]
        assert ("\n\n",) == chat["gen_ai.request.stop_sequences"]
        assert chat["belog.time_to_first_token_ms"] >= 0

    def test_audit_llm_decorator_and_responses(self, traced: Traced) -> None:
        """audit_llm-decorated Responses API calls get spans too (operation chat)."""
        client = fake_openai_client()

        @belog.audit_llm(name="answer")
        def answer(**kwargs: Any) -> Any:
            return client.responses.create(**kwargs)

        with belog.session("s", package=False):
            answer(model="gpt-4o-mini", input=PROMPT, max_output_tokens=30)
        attributes = dict(traced.named("chat gpt-4o-mini").attributes or {})
        assert "responses" == attributes["belog.api"]
        assert "answer" == attributes["belog.call_name"]
        assert 30 == attributes["gen_ai.request.max_tokens"]

    def test_call_outside_session(self, traced: Traced) -> None:
        """A call made outside any session is a root span of its own."""
        client = fake_openai_client()
        belog.instrument_openai(client)
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        [span] = traced.spans
        assert None is span.parent


class TestTraceIdsOnRecords:
    def test_records_carry_the_current_span(self, traced: Traced) -> None:
        """Each record on disk carries the IDs of the span it was written in."""
        client = fake_openai_client()
        belog.instrument_openai(client)
        with belog.session("s") as run, run.stage("st"), run.task("tk"):
            structlog.get_logger().info("from structlog")
            logging.getLogger("lib").warning("from stdlib")
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        session = ids(traced.named("belog.session s"))
        stage = ids(traced.named("belog.stage st"))
        task = ids(traced.named("belog.task tk"))
        call = ids(traced.named("chat gpt-4o-mini"))

        by_event = {r["event"]: record_ids(r) for r in processing(run)}
        assert session == by_event["session_start"]
        assert session == by_event["session_end"]
        assert stage == by_event["stage_start"]
        assert stage == by_event["stage_end"]
        assert task == by_event["from structlog"]
        assert task == by_event["from stdlib"]
        assert task == by_event["belog"]  # the reference line
        assert call == by_event["llm_call"]  # the reference line
        [prompt] = read_jsonl(run.directory / "prompts.jsonl")  # type: ignore[operator]
        assert call == record_ids(prompt)
        [belog_record] = read_jsonl(run.directory / "belog.jsonl")  # type: ignore[operator]
        assert task == record_ids(belog_record)
        for trace_id, sid in by_event.values():
            assert HEX32.match(trace_id)
            assert HEX16.match(sid)

    def test_package_keeps_the_ids(self, traced: Traced) -> None:
        """The packaged processing log keeps every record's trace_id and span_id."""
        with belog.session("s", compress=False) as run:
            structlog.get_logger().info("hello")
        assert run.package_path is not None
        packaged = read_jsonl(run.package_path / "logs" / "processing.jsonl")
        session = ids(traced.named("belog.session s"))
        assert [session] * len(packaged) == [record_ids(r) for r in packaged]

    def test_records_outside_spans_have_no_ids(self, traced: Traced) -> None:
        """A record written outside any span carries neither key."""
        structlog.get_logger().info("outside")
        config = _config.get_config()
        assert config is not None
        [record] = read_jsonl(config.log_dir / f"{config.app_name}.jsonl")
        assert "trace_id" not in record
        assert "span_id" not in record

    def test_caller_trace_id_is_kept(self, traced: Traced) -> None:
        """A trace_id the caller logs itself is not overwritten."""
        with belog.session("s", package=False) as run:
            structlog.get_logger().info("own", trace_id="mine")
        [record] = [r for r in processing(run) if r["event"] == "own"]
        assert "mine" == record["trace_id"]
        assert "span_id" not in record

    def test_records_validate_against_the_schemas(self, traced: Traced) -> None:
        """Records with trace IDs still match the shipped JSON Schemas."""
        import jsonschema
        from referencing import Registry, Resource

        schemas = resources.files("structlog_belog") / "schemas"
        loaded = {
            p.name: json.loads(p.read_text()) for p in schemas.iterdir() if p.name.endswith(".json")
        }
        registry: Registry[Any] = Registry().with_resources(
            (s["$id"], Resource.from_contents(s)) for s in loaded.values()
        )
        client = fake_openai_client()
        belog.instrument_openai(client)
        with belog.session("s", package=False) as run, run.stage("st"), run.task("tk"):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        records = [
            *processing(run),
            *read_jsonl(run.directory / "prompts.jsonl"),  # type: ignore[operator]
            *read_jsonl(run.directory / "belog.jsonl"),  # type: ignore[operator]
        ]
        checked = 0
        for record in records:
            name = f"{record.get('kind')}.schema.json"
            if record.get("ref") or name not in loaded:
                name = "record.schema.json"
            jsonschema.Draft202012Validator(loaded[name], registry=registry).validate(record)
            assert "trace_id" in record
            checked += 1
        assert checked == len(records) > 8


class TestConsole:
    def test_console_leaves_trace_ids_to_the_files(
        self, traced: Traced, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """With tracing on, console lines carry no trace/span IDs; the file's records do."""
        belog.configure(log_dir=tmp_path / "logs", console=True, handle_signals=False)
        with belog.session("console") as run:
            structlog.get_logger().info("traced line", answer=42)
        err = capsys.readouterr().err
        [line] = [line for line in err.splitlines() if "traced line" in line]
        assert "answer=42" in line
        assert "trace_id" not in err
        assert "span_id" not in err
        [record] = [r for r in processing(run) if r["event"] == "traced line"]
        assert HEX32.match(record["trace_id"])


class TestAppSpans:
    def test_app_span_ids_without_belog_spans(self, belog_config: _config.Config) -> None:
        """With spans=False, records carry the app's own span and belog makes no spans."""
        t = Traced()
        otel.instrument(t.provider, spans=False)
        tracer = t.provider.get_tracer("app")
        with tracer.start_as_current_span("handle_request") as app_span:
            with belog.session("s", package=False) as run:
                structlog.get_logger().info("inside app span")
                assert "BELOG_TRACEPARENT" not in belog.session_env()
            expected = (
                f"{app_span.get_span_context().trace_id:032x}",
                f"{app_span.get_span_context().span_id:016x}",
            )
        assert ["handle_request"] == [s.name for s in t.spans]
        records = processing(run)
        assert [expected] * len(records) == [record_ids(r) for r in records]

    def test_session_inside_app_span(self, traced: Traced) -> None:
        """A session opened inside an app span is that span's child, in its trace."""
        tracer = traced.provider.get_tracer("app")
        with tracer.start_as_current_span("request"), belog.session("s", package=False):
            pass
        request = traced.named("request")
        session = traced.named("belog.session s")
        assert span_id(request) == parent_of(session)
        assert ids(request)[0] == ids(session)[0]

    def test_app_span_inside_task(self, traced: Traced) -> None:
        """An app span inside a task nests in it; records in it carry the app span's IDs."""
        tracer = traced.provider.get_tracer("app")
        with belog.session("s", package=False) as run, run.task("tk"):
            with tracer.start_as_current_span("retrieve"):
                structlog.get_logger().info("retrieving")
            structlog.get_logger().info("after")
        retrieve = traced.named("retrieve")
        task = traced.named("belog.task tk")
        assert span_id(task) == parent_of(retrieve)
        by_event = {r["event"]: record_ids(r) for r in processing(run)}
        assert ids(retrieve) == by_event["retrieving"]
        assert ids(task) == by_event["after"]

    def test_call_inside_app_span_nests_in_it(self, traced: Traced) -> None:
        """An LLM call made inside an app span (inside a task) is the app span's child."""
        client = fake_openai_client()
        belog.instrument_openai(client)
        tracer = traced.provider.get_tracer("app")
        with (
            belog.session("s", package=False) as run,
            run.task("tk"),
            tracer.start_as_current_span("step"),
        ):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert span_id(traced.named("step")) == parent_of(traced.named("chat gpt-4o-mini"))


class TestThreadsAndTasks:
    def test_thread_pool_and_propagate(self, traced: Traced) -> None:
        """Work in belog.ThreadPoolExecutor and propagate()d threads stays in the stage's span."""

        def work(i: int) -> None:
            structlog.get_logger().info("work", i=i)
            with belog.task(f"worker {i}"):
                logging.getLogger("lib").info("in task", extra={"i": i})

        with belog.session("s", package=False) as run, run.stage("fanout"):
            with belog.ThreadPoolExecutor(max_workers=3) as pool:
                list(pool.map(work, range(3)))
            thread = threading.Thread(target=belog.propagate(work), args=(3,))
            thread.start()
            thread.join()
        stage = traced.named("belog.stage fanout")
        records = processing(run)
        assert [ids(stage)] * 4 == [record_ids(r) for r in records if r["event"] == "work"]
        for i in range(4):
            task = traced.named(f"belog.task worker {i}")
            assert span_id(stage) == parent_of(task)
            [in_task] = [r for r in records if r["event"] == "in task" and r["i"] == i]
            assert ids(task) == record_ids(in_task)

    def test_plain_thread_uses_the_sole_session(self, traced: Traced) -> None:
        """A plain thread's records go to the sole session with its span's IDs; its stages nest."""

        def work() -> None:
            structlog.get_logger().info("plain thread")
            with run.stage("from thread"):
                structlog.get_logger().info("in thread stage")

        with belog.session("s", package=False) as run:
            thread = threading.Thread(target=work)
            thread.start()
            thread.join()
        session = traced.named("belog.session s")
        stage = traced.named("belog.stage from thread")
        assert span_id(session) == parent_of(stage)
        by_event = {r["event"]: r for r in processing(run)}
        assert "sole_session" == by_event["plain thread"]["attributed"]
        assert ids(session) == record_ids(by_event["plain thread"])
        assert ids(stage) == record_ids(by_event["in thread stage"])

    def test_asyncio_tasks(self, traced: Traced) -> None:
        """Concurrent asyncio tasks each get their own task span under the stage."""

        async def work(i: int) -> None:
            async with belog.task(f"async {i}"):
                await asyncio.sleep(0.01 * (3 - i))
                structlog.get_logger().info("async work", i=i)

        async def main() -> belog.Run:
            async with belog.session("s", package=False) as run, run.stage("gather"):
                await asyncio.gather(*(work(i) for i in range(3)))
            return run

        run = asyncio.run(main())
        stage = traced.named("belog.stage gather")
        assert span_id(traced.named("belog.session s")) == parent_of(stage)
        records = processing(run)
        for i in range(3):
            task = traced.named(f"belog.task async {i}")
            assert span_id(stage) == parent_of(task)
            [record] = [r for r in records if r["event"] == "async work" and r["i"] == i]
            assert ids(task) == record_ids(record)

    def test_async_call_and_decorated_task(self, traced: Traced) -> None:
        """An AsyncOpenAI call inside an async @task is the task span's child."""
        client = fake_openai_client(async_=True)
        belog.instrument_openai(client)

        @belog.task
        async def summarise() -> None:
            await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

        async def main() -> None:
            async with belog.session("s", package=False):
                await summarise()

        asyncio.run(main())
        task = traced.named(
            "belog.task TestThreadsAndTasks.test_async_call_and_decorated_task.<locals>.summarise"
        )
        assert span_id(task) == parent_of(traced.named("chat gpt-4o-mini"))

    def test_child_process_joins_the_trace(
        self, traced: Traced, subprocess_env: dict[str, str], tmp_path: Path
    ) -> None:
        """A child started with session_env() puts its spans and records in the run's trace."""
        code = (
            "import json, structlog, structlog_belog as belog\n"
            "from structlog_belog import otel\n"
            "from opentelemetry.sdk.trace import TracerProvider\n"
            "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
            "from opentelemetry.sdk.trace.export.in_memory_span_exporter import "
            "InMemorySpanExporter\n"
            "belog.configure(console=False, handle_signals=False)\n"
            "exporter = InMemorySpanExporter()\n"
            "provider = TracerProvider()\n"
            "provider.add_span_processor(SimpleSpanProcessor(exporter))\n"
            "otel.instrument(provider)\n"
            "structlog.get_logger().info('child outside')\n"
            "with belog.task('child task'):\n"
            "    structlog.get_logger().info('child inside')\n"
            "[span] = exporter.get_finished_spans()\n"
            "print(json.dumps([span.name, f'{span.context.trace_id:032x}',\n"
            "    f'{span.context.span_id:016x}', f'{span.parent.span_id:016x}',\n"
            "    span.parent.is_remote]))\n"
        )
        with belog.session("s", package=False) as run:
            env = {**subprocess_env, **belog.session_env()}
            out = run_python(code, env, cwd=tmp_path)
        session_trace, session_span = ids(traced.named("belog.session s"))
        assert env["BELOG_TRACEPARENT"].startswith(f"00-{session_trace}-{session_span}-")
        name, trace_id, task_span, parent_span, remote = json.loads(out)
        assert ["belog.task child task", session_trace, session_span, True] == [
            name,
            trace_id,
            parent_span,
            remote,
        ]
        assert run.directory is not None
        [shard] = run.directory.glob("processing.*.jsonl")
        by_event = {r["event"]: record_ids(r) for r in read_jsonl(shard)}
        assert (session_trace, session_span) == by_event["child outside"]
        assert (session_trace, task_span) == by_event["child inside"]

    def test_no_traceparent_without_a_session_span(
        self, belog_config: _config.Config, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """session_env() passes no span for a session begun uninstrumented, or if it fails."""
        t = Traced()
        with belog.session("before", package=False):
            otel.instrument(t.provider)
            assert "BELOG_TRACEPARENT" not in belog.session_env()
        with belog.session("after", package=False):
            before = otel.failure_count()
            with monkeypatch.context() as patch:

                def broken(*_: Any, **__: Any) -> None:
                    raise RuntimeError("inject broke")

                patch.setattr(_otel.TraceContextTextMapPropagator, "inject", broken)
                env = belog.session_env()
            assert "BELOG_SESSION_ID" in env
            assert "BELOG_TRACEPARENT" not in env
            assert 1 == otel.failure_count() - before

    def test_session_closed_from_another_context(self, traced: Traced) -> None:
        """A session ended from another thread (as at exit) still ends its span, quietly."""
        failures = _otel.failure_count()

        def enter_here_end_there() -> bool:
            run = belog.session("s", package=False)
            run.__enter__()
            thread = threading.Thread(target=run._end, args=(None,))
            thread.start()
            thread.join()
            # The entering context keeps its span current, as it keeps the
            # session: the other thread's token was not ours to reset.
            return trace.get_current_span().get_span_context().is_valid

        assert contextvars.copy_context().run(enter_here_end_there)
        assert [("belog.session s", True)] == [
            (s.name, (s.attributes or {})["belog.success"]) for s in traced.spans
        ]
        assert failures == _otel.failure_count()
        assert not trace.get_current_span().get_span_context().is_valid


class TestInstrument:
    def test_uninstrument(self, traced: Traced) -> None:
        """After uninstrument(): no spans, no IDs, the audit's sink restored."""
        assert otel.is_instrumented()
        otel.uninstrument()
        otel.uninstrument()
        assert not otel.is_instrumented()
        assert None is _tracing.tracer
        assert None is _pipeline.trace_fields
        assert _audit_call._emit is _audit_call.sink
        client = fake_openai_client()
        belog.instrument_openai(client)
        with belog.session("s", package=False) as run, run.task("tk"):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert [] == traced.spans
        assert [] == [r for r in processing(run) if "trace_id" in r or "span_id" in r]

    def test_idempotent(self, traced: Traced) -> None:
        """instrument() twice with the same provider is one instrumentation."""
        otel.instrument(traced.provider)
        client = fake_openai_client()
        belog.instrument_openai(client)
        with belog.session("s", package=False):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert ["chat gpt-4o-mini", "belog.session s"] == [s.name for s in traced.spans]

    def test_switch_provider(self, traced: Traced) -> None:
        """instrument() with another provider sends spans there from then on."""
        other = Traced()
        otel.instrument(other.provider)
        with belog.session("s", package=False):
            pass
        otel.instrument(other.provider, spans=False)
        with belog.session("t", package=False):
            pass
        assert [] == traced.spans
        assert ["belog.session s"] == [s.name for s in other.spans]

    def test_instrument_before_configure(self, tmp_path: Path) -> None:
        """instrument() before configure(), and a reconfiguration after, keep it on."""
        t = Traced()
        otel.instrument(t.provider)
        belog.configure(log_dir=tmp_path / "a", console=False, handle_signals=False)
        belog.configure(log_dir=tmp_path / "b", console=False, handle_signals=False)
        with belog.session("s", package=False) as run:
            structlog.get_logger().info("hello")
        [record] = [r for r in processing(run) if r["event"] == "hello"]
        assert ids(t.named("belog.session s")) == record_ids(record)
        assert (tmp_path / "b") in Path(str(run.directory)).parents

    def test_span_started_before_uninstrument_ends(self, traced: Traced) -> None:
        """A session open while OpenTelemetry is turned off still ends its span."""
        with belog.session("s", package=False):
            otel.uninstrument()
        assert ["belog.session s"] == [s.name for s in traced.spans]

    def test_sink_wrapped_after_instrument(self, traced: Traced) -> None:
        """A sink installed over ours survives uninstrument() and still gets every record."""
        seen: list[str] = []
        ours = _audit_call.sink

        def spy(record: dict[str, Any], level: str) -> None:
            seen.append(record["call_id"])
            ours(record, level)

        _audit_call.sink = spy
        try:
            otel.uninstrument()
            client = fake_openai_client()
            belog.instrument_openai(client)
            with belog.session("s", package=False) as run:
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        finally:
            _audit_call.sink = _audit_call._emit
        [record] = read_jsonl(run.directory / "prompts.jsonl")  # type: ignore[operator]
        assert [record["call_id"]] == seen
        assert [] == traced.spans

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"tracer_provider": "jaeger"}, "tracer_provider must be an opentelemetry"),
            ({"spans": 1}, "spans must be a bool, got 1"),
        ],
    )
    def test_bad_arguments(self, kwargs: dict[str, Any], message: str) -> None:
        """A bad argument raises TypeError naming it, and leaves OpenTelemetry off."""
        with pytest.raises(TypeError, match=message):
            otel.instrument(**kwargs)
        assert not otel.is_instrumented()

    def test_add_trace_ids_processor(self) -> None:
        """add_trace_ids adds the current span's IDs in a hand-made chain, nothing outside."""
        t = Traced()
        with t.provider.get_tracer("app").start_as_current_span("op") as span:
            inside = otel.add_trace_ids(None, "info", {"event": "x"})
            kept = otel.add_trace_ids(None, "info", {"event": "x", "trace_id": "own"})
        outside = otel.add_trace_ids(None, "info", {"event": "y"})
        context = span.get_span_context()
        assert {
            "event": "x",
            "trace_id": f"{context.trace_id:032x}",
            "span_id": f"{context.span_id:016x}",
        } == inside
        assert {"event": "x", "trace_id": "own"} == kept
        assert {"event": "y"} == outside


class _Failing(SpanProcessor):
    """A span processor that raises, as a broken exporter setup might."""

    def __init__(self, on: str) -> None:
        self.on = on

    def on_start(self, span: Span, parent_context: Any = None) -> None:
        if self.on == "start":
            raise RuntimeError("processor broke on start")

    def on_end(self, span: ReadableSpan) -> None:
        if self.on == "end":
            raise RuntimeError("processor broke on end")


class TestFailures:
    def test_task_record_not_built(self, traced: Traced, monkeypatch: pytest.MonkeyPatch) -> None:
        """A task whose BELog record could not be built still ends its span, failed by *exc*."""
        from structlog_belog.memory import task as _belog

        def broken(*_: Any) -> Any:
            raise RuntimeError("no record")

        monkeypatch.setattr(_belog.Task, "_build", broken)
        with belog.session("s", package=False) as run, run.task("tk") as task:
            assert repr(task._span).startswith("<span ")
        assert None is task.record
        assert True is (traced.named("belog.task tk").attributes or {})["belog.success"]

    @pytest.mark.parametrize("on", ["start", "end"])
    def test_broken_processor_never_breaks_the_run(
        self,
        belog_config: _config.Config,
        on: str,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A raising span processor: the run, its calls and all its records go on; counted."""
        monkeypatch.setattr(_otel._FAILURES, "count", 0)
        provider = TracerProvider()
        provider.add_span_processor(_Failing(on))
        otel.instrument(provider)
        before = otel.failure_count()
        client = fake_openai_client()
        belog.instrument_openai(client)
        with belog.session("s", package=False) as run, run.stage("st"), run.task("tk"):
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            structlog.get_logger().info("still here")
        assert reply.choices[0].message.content
        events = [r["event"] for r in processing(run)]
        for event in ("session_start", "stage_start", "still here", "llm_call", "belog"):
            assert event in events
        assert 1 == len(read_jsonl(run.directory / "prompts.jsonl"))  # type: ignore[operator]
        assert otel.failure_count() - before >= 4  # session, stage, task, call
        [message] = [
            line for line in capsys.readouterr().err.splitlines() if "OpenTelemetry" in line
        ]
        assert "processor broke on " + on in message

    def test_broken_trace_fields_keeps_the_record(
        self, traced: Traced, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When reading the current span fails, the record is written without IDs."""

        def broken() -> Any:
            raise RuntimeError("context broke")

        with belog.session("s", package=False) as run:
            before = otel.failure_count()
            monkeypatch.setattr(trace, "get_current_span", broken)
            structlog.get_logger().info("kept")
            monkeypatch.undo()
        [record] = [r for r in processing(run) if r["event"] == "kept"]
        assert "trace_id" not in record
        assert 1 == otel.failure_count() - before

    def test_broken_context_never_breaks_a_stage(
        self, traced: Traced, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When reading the current span fails as a stage starts, the stage runs spanless."""

        def broken() -> Any:
            raise RuntimeError("context broke")

        with belog.session("s", package=False) as run:
            before = otel.failure_count()
            with monkeypatch.context() as patch:
                patch.setattr(trace, "get_current_span", broken)
                with run.stage("st"):
                    pass
        assert ["belog.session s"] == [s.name for s in traced.spans]
        assert ["stage_start", "stage_end"] == [
            r["event"] for r in processing(run) if r["event"].startswith("stage")
        ]
        assert otel.failure_count() - before >= 1

    def test_broken_finish_still_ends_the_span(
        self, traced: Traced, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A failure while finishing a span's attributes still ends it and restores context."""

        def broken(*_: Any) -> None:
            raise RuntimeError("finish broke")

        monkeypatch.setattr(_otel, "_success", broken)
        before = otel.failure_count()
        with belog.session("s", package=False):
            pass
        assert ["belog.session s"] == [s.name for s in traced.spans]
        assert not trace.get_current_span().get_span_context().is_valid
        assert 1 == otel.failure_count() - before

    def test_broken_call_attributes_keep_the_record(
        self, traced: Traced, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When building a call's span fails, the llm_call record is still written."""

        def broken(_: Any) -> Any:
            raise RuntimeError("attributes broke")

        monkeypatch.setattr(_otel, "_call_attributes", broken)
        before = otel.failure_count()
        client = fake_openai_client()
        belog.instrument_openai(client)
        with belog.session("s", package=False) as run:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert 1 == len(read_jsonl(run.directory / "prompts.jsonl"))  # type: ignore[operator]
        assert ["belog.session s"] == [s.name for s in traced.spans]
        assert 2 == otel.failure_count() - before  # at the call's start, and at its record


_BLOCK_OTEL = """
import sys
from importlib.abc import MetaPathFinder

class Block(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Block())
"""


class TestImport:
    def test_core_never_imports_opentelemetry(
        self, subprocess_env: dict[str, str], tmp_path: Path
    ) -> None:
        """import structlog_belog and a whole session load no opentelemetry module."""
        code = (
            "import sys, structlog, structlog_belog as belog\n"
            f"belog.configure(log_dir={str(tmp_path)!r}, console=False)\n"
            "with belog.session('s', package=False) as run, run.stage('a'), run.task('t'):\n"
            "    structlog.get_logger().info('hi')\n"
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
        )
        out = run_python(code, subprocess_env, cwd=tmp_path)
        assert "[]" == out.strip()

    def test_without_the_extra(self, subprocess_env: dict[str, str], tmp_path: Path) -> None:
        """Without opentelemetry, the core works and importing otel names the extra."""
        code = _BLOCK_OTEL + (
            "import structlog_belog as belog\n"
            f"belog.configure(log_dir={str(tmp_path)!r}, console=False)\n"
            "with belog.session('s', package=False):\n"
            "    pass\n"
            "try:\n"
            "    import structlog_belog.otel\n"
            "except ModuleNotFoundError as exc:\n"
            "    print(exc.name)\n"
            "    print(exc)\n"
        )
        out = run_python(code, subprocess_env, cwd=tmp_path)
        name, message = out.strip().splitlines()
        assert "opentelemetry" == name
        assert "pip install 'structlog-belog[otel]'" in message
        assert issubclass(ModuleNotFoundError, ImportError)

    def test_global_provider_set_after_instrument(
        self, subprocess_env: dict[str, str], tmp_path: Path
    ) -> None:
        """instrument() with no provider uses the global one, even when it is set later."""
        code = (
            "import json, structlog, structlog_belog as belog\n"
            "from structlog_belog import otel\n"
            "from opentelemetry import trace\n"
            "from opentelemetry.sdk.trace import TracerProvider\n"
            "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
            "from opentelemetry.sdk.trace.export.in_memory_span_exporter import "
            "InMemorySpanExporter\n"
            f"belog.configure(log_dir={str(tmp_path)!r}, console=False)\n"
            "otel.instrument()\n"
            "exporter = InMemorySpanExporter()\n"
            "provider = TracerProvider()\n"
            "provider.add_span_processor(SimpleSpanProcessor(exporter))\n"
            "trace.set_tracer_provider(provider)\n"
            "with belog.session('s', package=False) as run, run.stage('a'):\n"
            "    structlog.get_logger().info('hi')\n"
            "span = [s for s in exporter.get_finished_spans() if s.name == 'belog.stage a'][0]\n"
            "print(json.dumps([f'{span.context.trace_id:032x}', f'{span.context.span_id:016x}']))\n"
            "print(run.directory)\n"
        )
        out = run_python(code, subprocess_env, cwd=tmp_path)
        expected, directory = out.strip().splitlines()
        records = read_jsonl(Path(directory) / "processing.jsonl")
        [record] = [r for r in records if r["event"] == "hi"]
        assert json.loads(expected) == [record["trace_id"], record["span_id"]]
