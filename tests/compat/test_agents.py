"""openai-agents over the audited SDK: run_sync and run_streamed, Responses and chat models."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)

from .conftest import MODEL, Compat, check_records, plain

set_tracing_disabled(True)  # the SDK would otherwise export traces to the service

PROMPT = "Write a beginner supertask from the Naval notes."
MODELS = {"responses": OpenAIResponsesModel, "chat.completions": OpenAIChatCompletionsModel}


@function_tool
def naval_notes(topic: str) -> str:
    """Return the notes on *topic*."""
    return f"Notes on {topic}: read, reflect, write."


def _agent(base_url: str, api_key: str, api: str, *, tools: bool = False) -> Agent:
    client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0)
    return Agent(
        name="writer",
        instructions="You write supertasks for a learning app.",
        model=MODELS[api](model=MODEL, openai_client=client),
        tools=[naval_notes] if tools else [],
    )


def _view(result: Any) -> Any:
    return {
        "final_output": result.final_output,
        "raw_responses": [plain(r) for r in result.raw_responses],
    }


@pytest.mark.parametrize("api", sorted(MODELS))
class TestRunner:
    def test_run_sync(self, compat: Compat, api_key: str, api: str) -> None:
        """Runner.run_sync: one record, the same final output and raw responses."""
        outcome = compat.compare(
            lambda url: Runner.run_sync(_agent(url, api_key, api), PROMPT), view=_view
        )
        records = check_records(outcome, calls=1, api=api, stream=False)
        assert outcome.result.final_output == records[0]["response"]["output_text"]

    def test_run_sync_with_tool(self, compat: Compat, api_key: str, api: str) -> None:
        """A tool call then the answer: two records, the first with the tool call."""
        outcome = compat.compare(
            lambda url: Runner.run_sync(_agent(url, api_key, api, tools=True), PROMPT), view=_view
        )
        records = check_records(outcome, calls=2, api=api, stream=False)
        assert "naval_notes" == records[0]["response"]["tool_calls"][0]["name"]

    def test_run_streamed(self, compat: Compat, api_key: str, api: str) -> None:
        """Runner.run_streamed: one streamed record, the same events and final output."""

        async def scenario(url: str) -> Any:
            run = Runner.run_streamed(_agent(url, api_key, api), PROMPT)
            events = [plain(event) async for event in run.stream_events()]
            return {"events": events, **_view(run)}

        outcome = compat.compare(scenario, view=lambda result: result)
        records = check_records(outcome, calls=1, api=api, stream=True)
        assert outcome.result["final_output"] == records[0]["response"]["output_text"]

    def test_error(self, compat: Compat, api_key: str, api: str) -> None:
        """A 400: recorded as an error; the runner raises what it raises unaudited."""
        outcome = compat.compare(
            lambda url: Runner.run_sync(_agent(url, api_key, api), PROMPT),
            setup=lambda server: server.fail_next(400),
        )
        assert outcome.error is not None
        check_records(outcome, calls=1, api=api, status="error")
