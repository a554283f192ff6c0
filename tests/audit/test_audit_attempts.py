"""Every HTTP attempt of an instrumented call, the SDK's retries included."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

import structlog_belog as belog
from structlog_belog.audit.call import audit_failures, describe_attempts
from structlog_belog.audit.fake_llm import FakeLLM, fake_openai_client
from structlog_belog.core.config import Config
from tests.audit.test_audit import MESSAGES, prompts


class TestAttempts:
    def test_retried_429s_are_listed(self, belog_config: Config) -> None:
        """Two 429s then a 200: three attempts with status, request ID and rate-limit headers."""
        client = belog.instrument_openai(fake_openai_client(fail_first=2, fail_status=429))
        with belog.session("retries") as run:
            result = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        [record] = prompts(run)
        attempts = record["attempts"]
        assert [429, 429, 200] == [a["status_code"] for a in attempts]
        assert [1, 2, 3] == [a["attempt"] for a in attempts]
        assert result._request_id == attempts[-1]["request_id"]
        assert 3 == len({a["request_id"] for a in attempts})
        assert "0" == attempts[0]["ratelimit"]["remaining_requests"]
        assert {"remaining_requests", "remaining_tokens", "reset_requests", "reset_tokens"} == set(
            attempts[-1]["ratelimit"]
        )
        assert 42 == attempts[-1]["processing_ms"]
        assert "1" == attempts[0]["retry_after"]
        assert all(a["duration_ms"] >= 0 for a in attempts)
        assert "ok" == record["status"]

    def test_exhausted_500s_are_an_error(self, belog_config: Config) -> None:
        """500s beyond the retry budget: every attempt listed, the error recorded and re-raised."""
        client = belog.instrument_openai(
            fake_openai_client(fail_first=10, fail_status=500, max_retries=2)
        )
        with (
            belog.session("server-error") as run,
            pytest.raises(openai.InternalServerError) as raised,
        ):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        [record] = prompts(run)
        assert [500, 500, 500] == [a["status_code"] for a in record["attempts"]]
        assert "error" == record["status"]
        assert 500 == record["error"]["status_code"]
        assert raised.value.request_id == record["error"]["request_id"]
        assert record["attempts"][-1]["request_id"] == record["error"]["request_id"]

    def test_streamed_call_attempts(self, belog_config: Config) -> None:
        """A streamed call retried once lists both attempts."""
        client = belog.instrument_openai(fake_openai_client(fail_first=1))
        with belog.session("stream-retry") as run:
            list(
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
            )
        [record] = prompts(run)
        assert [429, 200] == [a["status_code"] for a in record["attempts"]]

    def test_connection_errors_are_attempts_without_response(self, belog_config: Config) -> None:
        """An attempt that got no response is listed with the error type."""

        def refuse(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("refused", request=request)

        client = openai.OpenAI(
            api_key="-".join(("no", "network")),
            base_url="http://fake-llm.invalid/v1",
            http_client=httpx.Client(transport=httpx.MockTransport(refuse)),
            max_retries=1,
        )
        belog.instrument_openai(client)
        with belog.session("refused") as run, pytest.raises(openai.APIConnectionError):
            client.with_options(timeout=1).chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES
            )
        [record] = prompts(run)
        assert [None, None] == [a["status_code"] for a in record["attempts"]]
        assert ["APIConnectionError"] * 2 == [a["error"] for a in record["attempts"]]

    def test_decorator_alone_lists_no_attempts(self, belog_config: Config) -> None:
        """Without instrument_openai the attempts are unknown (null), not an empty list."""
        client = fake_openai_client(fail_first=1)
        create = belog.audit_llm(client.chat.completions.create)
        with belog.session("no-hooks") as run:
            create(model="gpt-4o-mini", messages=MESSAGES)
        assert [None] == [r["attempts"] for r in prompts(run)]

    def test_async_attempts(self, belog_config: Config) -> None:
        """AsyncOpenAI retries are listed too, each call with its own attempts."""
        transport = FakeLLM(fail_first=1)

        async def main() -> belog.Run:
            client = belog.instrument_openai(fake_openai_client(async_=True, transport=transport))
            async with belog.session("async-retries") as run:
                await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
                await client.embeddings.create(model="text-embedding-3-small", input="x")
            return run

        records = prompts(asyncio.run(main()))
        assert [[429, 200], [200]] == [[a["status_code"] for a in r["attempts"]] for r in records]


class _Answer:
    """What describe_attempts reads of an HTTP response: a status code and headers."""

    def __init__(self, headers: object) -> None:
        self.status_code = 200
        self.headers = headers


class _RawOnly:
    """Headers that give only ``raw`` pairs (not httpx's own type), names in any case."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.raw = raw


class _Unreadable:
    """Headers whose every read raises."""

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        raise RuntimeError("headers gone")


class TestDescribeAttempts:
    def test_headers_without_httpx_triples(self) -> None:
        """Headers that only give raw pairs are read by lower-cased name."""
        raw = [(b"X-Request-Id", b"req_raw"), (b"openai-processing-ms", b"soon")]
        [attempt] = describe_attempts([[1.0, 1.5, _Answer(_RawOnly(raw))]], None)
        assert {
            "attempt": 1,
            "status_code": 200,
            "duration_ms": 500.0,
            "request_id": "req_raw",
            "processing_ms": "soon",
        } == attempt

    def test_unreadable_headers_keep_the_attempt(self) -> None:
        """Headers that raise: the attempt keeps status and duration; the failure is counted."""
        before = audit_failures()
        [attempt] = describe_attempts([[2.0, 2.25, _Answer(_Unreadable())]], None)
        assert {"attempt": 1, "status_code": 200, "duration_ms": 250.0} == attempt
        assert before + 1 == audit_failures()

    def test_unanswered_attempt_names_the_error(self) -> None:
        """An attempt with no response has no duration and names the call's error."""
        described = describe_attempts([[1.0], [2.0]], TimeoutError())
        assert [
            {"attempt": 1, "status_code": None, "duration_ms": None, "error": "TimeoutError"},
            {"attempt": 2, "status_code": None, "duration_ms": None, "error": "TimeoutError"},
        ] == described
