"""litellm over the audited SDK: completion (plain and streamed), acompletion, embedding.

litellm builds its own ``openai`` clients (and caches them), sends plain
``client.post``-style requests through ``with_raw_response``, and runs its
async calls over its own aiohttp transport.
"""

from __future__ import annotations

from typing import Any

import litellm

from .conftest import EMBEDDING_MODEL, MODEL, Compat, check_records

MESSAGES = [
    {"role": "system", "content": "You write supertasks for a learning app."},
    {"role": "user", "content": "Write a beginner supertask from the Naval notes."},
]


def _options(base_url: str, api_key: str, **extra: Any) -> dict[str, Any]:
    return {"api_base": base_url, "api_key": api_key, "max_retries": 0, **extra}


def _view(result: Any) -> Any:
    """A litellm response, without the fields litellm fills from clocks."""
    from .conftest import plain

    data = plain(result)
    if isinstance(data, dict):
        data.pop("_hidden_params", None)
    return data


class TestLitellm:
    def test_completion(self, compat: Compat, api_key: str) -> None:
        """completion: one record, the same response back."""
        outcome = compat.compare(
            lambda url: litellm.completion(
                model=f"openai/{MODEL}", messages=MESSAGES, **_options(url, api_key)
            ),
            view=_view,
        )
        records = check_records(outcome, calls=1, api="chat.completions", stream=False)
        assert outcome.result.choices[0].message.content == records[0]["response"]["output_text"]

    def test_completion_stream(self, compat: Compat, api_key: str) -> None:
        """completion(stream=True): one streamed record, the same chunks back."""
        outcome = compat.compare(
            lambda url: list(
                litellm.completion(
                    model=f"openai/{MODEL}",
                    messages=MESSAGES,
                    stream=True,
                    **_options(url, api_key),
                )
            ),
            view=lambda chunks: [_view(c) for c in chunks],
        )
        records = check_records(outcome, calls=1, api="chat.completions", stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in outcome.result if c.choices)
        assert text == records[0]["response"]["output_text"]

    def test_completion_stream_with_usage(self, compat: Compat, api_key: str) -> None:
        """A stream asking for usage (litellm sends it with_raw_response): the record has it."""
        outcome = compat.compare(
            lambda url: list(
                litellm.completion(
                    model=f"openai/{MODEL}",
                    messages=MESSAGES,
                    stream=True,
                    stream_options={"include_usage": True},
                    **_options(url, api_key),
                )
            ),
            view=lambda chunks: [_view(c) for c in chunks],
        )
        records = check_records(outcome, calls=1, api="chat.completions", stream=True)
        assert records[0]["usage"]["output_tokens"] > 0

    def test_acompletion(self, compat: Compat, api_key: str) -> None:
        """acompletion (litellm's aiohttp transport): one record, the same response back."""
        outcome = compat.compare(
            lambda url: litellm.acompletion(
                model=f"openai/{MODEL}", messages=MESSAGES, **_options(url, api_key)
            ),
            view=_view,
        )
        check_records(outcome, calls=1, api="chat.completions", stream=False)

    def test_acompletion_stream(self, compat: Compat, api_key: str) -> None:
        """acompletion(stream=True): one streamed record, the same chunks back."""

        async def scenario(url: str) -> list[Any]:
            stream = await litellm.acompletion(
                model=f"openai/{MODEL}", messages=MESSAGES, stream=True, **_options(url, api_key)
            )
            return [chunk async for chunk in stream]

        outcome = compat.compare(scenario, view=lambda chunks: [_view(c) for c in chunks])
        check_records(outcome, calls=1, api="chat.completions", stream=True)

    def test_embedding(self, compat: Compat, api_key: str) -> None:
        """embedding (litellm's default encoding): one record, the same vectors back."""
        outcome = compat.compare(
            lambda url: litellm.embedding(
                model=f"openai/{EMBEDDING_MODEL}",
                input=["raw notes", "a task"],
                **_options(url, api_key),
            ),
            view=_view,
        )
        records = check_records(outcome, calls=1, api="embeddings", stream=False)
        assert 2 == records[0]["response"]["embeddings"]

    def test_error(self, compat: Compat, api_key: str) -> None:
        """A 400: recorded as an error; litellm raises what it raises unaudited."""
        outcome = compat.compare(
            lambda url: litellm.completion(
                model=f"openai/{MODEL}", messages=MESSAGES, **_options(url, api_key)
            ),
            setup=lambda server: server.fail_next(400),
        )
        assert outcome.error is not None
        check_records(outcome, calls=1, api="chat.completions", status="error")
