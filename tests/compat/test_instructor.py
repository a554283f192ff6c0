"""instructor over the audited SDK: JSON and tools modes, validation retries, async, partials."""

from __future__ import annotations

from typing import Any

import instructor
import openai
import pytest
from pydantic import BaseModel, field_validator

from .conftest import MODEL, Compat, check_records

MESSAGES = [
    {"role": "system", "content": "You write supertasks for a learning app."},
    {"role": "user", "content": "Write a beginner supertask from the Naval notes."},
]


class Supertask(BaseModel):
    """What the scenarios ask instructor for."""

    title: str
    steps: list[str]
    minutes: int


def _client(base_url: str, api_key: str, mode: instructor.Mode, *, async_: bool = False) -> Any:
    cls = openai.AsyncOpenAI if async_ else openai.OpenAI
    sdk = cls(base_url=base_url, api_key=api_key, max_retries=0)
    return instructor.from_openai(sdk, mode=mode)


class TestInstructor:
    @pytest.mark.parametrize("mode", [instructor.Mode.JSON, instructor.Mode.TOOLS])
    def test_create(self, compat: Compat, api_key: str, mode: instructor.Mode) -> None:
        """A structured create in JSON or tools mode: one record, same object back."""

        def scenario(base_url: str) -> Supertask:
            client = _client(base_url, api_key, mode)
            return client.chat.completions.create(  # type: ignore[no-any-return]
                model=MODEL, response_model=Supertask, messages=MESSAGES
            )

        outcome = compat.compare(scenario)
        assert isinstance(outcome.result, Supertask)
        records = check_records(outcome, calls=1, api="chat.completions", stream=False)
        if mode is instructor.Mode.TOOLS:
            assert "Supertask" == records[0]["response"]["tool_calls"][0]["name"]

    def test_validation_retry(self, compat: Compat, api_key: str) -> None:
        """An answer that fails validation is asked again: two calls, two records."""

        def scenario(base_url: str) -> Any:
            seen: list[str] = []

            class Checked(BaseModel):
                title: str

                @field_validator("title")
                @classmethod
                def _second_time(cls, value: str) -> str:
                    seen.append(value)
                    if len(seen) == 1:
                        msg = "the title must name the learner's goal"
                        raise ValueError(msg)
                    return value

            client = _client(base_url, api_key, instructor.Mode.TOOLS)
            result = client.chat.completions.create(
                model=MODEL, response_model=Checked, messages=MESSAGES, max_retries=2
            )
            return {"title": result.title, "validations": len(seen)}

        outcome = compat.compare(scenario)
        assert 2 == outcome.result["validations"]
        records = check_records(outcome, calls=2, api="chat.completions", stream=False)
        retried = records[1]["request"]["messages"]
        assert any("learner's goal" in str(m.get("content")) for m in retried)

    @pytest.mark.parametrize("mode", [instructor.Mode.JSON, instructor.Mode.TOOLS])
    def test_async_create(self, compat: Compat, api_key: str, mode: instructor.Mode) -> None:
        """The same through AsyncOpenAI: one record, same object back."""

        async def scenario(base_url: str) -> Supertask:
            client = _client(base_url, api_key, mode, async_=True)
            return await client.chat.completions.create(  # type: ignore[no-any-return]
                model=MODEL, response_model=Supertask, messages=MESSAGES
            )

        outcome = compat.compare(scenario)
        assert isinstance(outcome.result, Supertask)
        check_records(outcome, calls=1, api="chat.completions", stream=False)

    def test_create_partial(self, compat: Compat, api_key: str) -> None:
        """create_partial streams partial objects: one streamed record, same partials."""

        def scenario(base_url: str) -> list[dict[str, Any]]:
            client = _client(base_url, api_key, instructor.Mode.TOOLS)
            partials = client.chat.completions.create_partial(
                model=MODEL, response_model=Supertask, messages=MESSAGES
            )
            return [p.model_dump() for p in partials]

        outcome = compat.compare(scenario)
        assert len(outcome.result) > 1
        check_records(outcome, calls=1, api="chat.completions", stream=True)

    def test_error(self, compat: Compat, api_key: str) -> None:
        """A 400 from the server: recorded as an error, raised to the caller as unaudited."""

        def scenario(base_url: str) -> Supertask:
            client = _client(base_url, api_key, instructor.Mode.TOOLS)
            return client.chat.completions.create(  # type: ignore[no-any-return]
                model=MODEL, response_model=Supertask, messages=MESSAGES, max_retries=0
            )

        outcome = compat.compare(scenario, setup=lambda server: server.fail_next(400))
        assert outcome.error is not None
        check_records(outcome, calls=1, api="chat.completions", status="error")
