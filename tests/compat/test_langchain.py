"""langchain-openai over the audited SDK: invoke, stream, ainvoke, Responses, structured, embed."""

from __future__ import annotations

from typing import Any

from langchain_openai import ChatOpenAI, OpenAIEmbeddings
from pydantic import BaseModel

from .conftest import EMBEDDING_MODEL, MODEL, Compat, check_records

PROMPT = "Write a beginner supertask from the Naval notes."


class Supertask(BaseModel):
    """What the structured-output scenarios ask for."""

    title: str
    steps: list[str]
    minutes: int


def _chat(base_url: str, api_key: str, **options: Any) -> ChatOpenAI:
    return ChatOpenAI(model=MODEL, base_url=base_url, api_key=api_key, max_retries=0, **options)


class TestChatOpenAI:
    def test_invoke(self, compat: Compat, api_key: str) -> None:
        """invoke: one record, the same message back."""
        outcome = compat.compare(lambda url: _chat(url, api_key).invoke(PROMPT))
        records = check_records(outcome, calls=1, api="chat.completions", stream=False)
        assert outcome.result.content == records[0]["response"]["output_text"]

    def test_stream(self, compat: Compat, api_key: str) -> None:
        """stream: one streamed record, the same chunks back."""
        outcome = compat.compare(lambda url: list(_chat(url, api_key).stream(PROMPT)))
        records = check_records(outcome, calls=1, api="chat.completions", stream=True)
        text = "".join(str(chunk.content) for chunk in outcome.result)
        assert text == records[0]["response"]["output_text"]

    def test_stream_usage(self, compat: Compat, api_key: str) -> None:
        """stream with stream_usage=True: the usage chunk reaches LangChain, and the record."""
        outcome = compat.compare(
            lambda url: list(_chat(url, api_key, stream_usage=True).stream(PROMPT))
        )
        records = check_records(outcome, calls=1, api="chat.completions", stream=True)
        usage = [c.usage_metadata for c in outcome.result if c.usage_metadata]
        assert records[0]["usage"]["total_tokens"] == usage[-1]["total_tokens"]

    def test_ainvoke(self, compat: Compat, api_key: str) -> None:
        """ainvoke: one record, the same message back."""
        outcome = compat.compare(lambda url: _chat(url, api_key).ainvoke(PROMPT))
        check_records(outcome, calls=1, api="chat.completions", stream=False)

    def test_astream(self, compat: Compat, api_key: str) -> None:
        """astream: one streamed record, the same chunks back."""

        async def scenario(url: str) -> list[Any]:
            return [chunk async for chunk in _chat(url, api_key).astream(PROMPT)]

        outcome = compat.compare(scenario)
        check_records(outcome, calls=1, api="chat.completions", stream=True)

    def test_responses_api_invoke(self, compat: Compat, api_key: str) -> None:
        """use_responses_api=True: one responses record, the same message back."""
        outcome = compat.compare(
            lambda url: _chat(url, api_key, use_responses_api=True).invoke(PROMPT)
        )
        check_records(outcome, calls=1, api="responses", stream=False)

    def test_responses_api_stream(self, compat: Compat, api_key: str) -> None:
        """use_responses_api=True, streamed: one streamed responses record, the same chunks."""
        outcome = compat.compare(
            lambda url: list(_chat(url, api_key, use_responses_api=True).stream(PROMPT))
        )
        check_records(outcome, calls=1, api="responses", stream=True)

    def test_structured_output_invoke(self, compat: Compat, api_key: str) -> None:
        """with_structured_output(...).invoke: one record, the same object back."""
        outcome = compat.compare(
            lambda url: _chat(url, api_key).with_structured_output(Supertask).invoke(PROMPT)
        )
        assert isinstance(outcome.result, Supertask)
        check_records(outcome, calls=1, api="chat.completions", stream=False)

    def test_structured_output_stream(self, compat: Compat, api_key: str) -> None:
        """with_structured_output(...).stream (the SDK's beta stream helper): one record."""
        outcome = compat.compare(
            lambda url: list(_chat(url, api_key).with_structured_output(Supertask).stream(PROMPT))
        )
        assert isinstance(outcome.result[-1], Supertask)
        check_records(outcome, calls=1, api="chat.completions", stream=True)

    def test_structured_output_tools(self, compat: Compat, api_key: str) -> None:
        """with_structured_output(method="function_calling"): one record with the tool call."""
        outcome = compat.compare(
            lambda url: (
                _chat(url, api_key)
                .with_structured_output(Supertask, method="function_calling")
                .invoke(PROMPT)
            )
        )
        records = check_records(outcome, calls=1, api="chat.completions", stream=False)
        assert "Supertask" == records[0]["response"]["tool_calls"][0]["name"]

    def test_error(self, compat: Compat, api_key: str) -> None:
        """A 500 with no retries left: recorded as an error, raised as unaudited."""
        outcome = compat.compare(
            lambda url: _chat(url, api_key).invoke(PROMPT),
            setup=lambda server: server.fail_next(500),
        )
        assert outcome.error is not None
        check_records(outcome, calls=1, api="chat.completions", status="error")

    def test_rate_limited_then_answered(self, compat: Compat, api_key: str) -> None:
        """A 429 with retry-after, retried by the SDK: one record, two attempts."""
        outcome = compat.compare(
            lambda url: ChatOpenAI(
                model=MODEL, base_url=url, api_key=api_key, max_retries=2
            ).invoke(PROMPT),
            setup=lambda server: server.fail_next(429),
        )
        records = check_records(
            outcome, calls=1, api="chat.completions", stream=False, attempts=[2]
        )
        assert [429, 200] == [a["status_code"] for a in records[0]["attempts"]]


class TestOpenAIEmbeddings:
    def _embeddings(self, url: str, api_key: str) -> OpenAIEmbeddings:
        # Without check_embedding_ctx_length=False LangChain would fetch a tokenizer.
        return OpenAIEmbeddings(
            model=EMBEDDING_MODEL,
            base_url=url,
            api_key=api_key,  # type: ignore[arg-type]
            check_embedding_ctx_length=False,
            max_retries=0,
        )

    def test_embed_documents(self, compat: Compat, api_key: str) -> None:
        """embed_documents: one record, the same vectors back."""
        outcome = compat.compare(
            lambda url: self._embeddings(url, api_key).embed_documents(["raw notes", "a task"])
        )
        records = check_records(outcome, calls=1, api="embeddings", stream=False)
        assert 2 == records[0]["response"]["embeddings"]

    def test_aembed_query(self, compat: Compat, api_key: str) -> None:
        """aembed_query: one record, the same vector back."""
        outcome = compat.compare(lambda url: self._embeddings(url, api_key).aembed_query("notes"))
        check_records(outcome, calls=1, api="embeddings", stream=False)
