"""The OpenTelemetry GenAI semantic-convention attributes of an ``llm_call`` record."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["call_attributes", "clean_attributes"]

#: ``gen_ai.operation.name`` of each audited API.
_OPERATIONS: Final = {"chat.completions": "chat", "responses": "chat", "embeddings": "embeddings"}
#: Request parameters copied into ``gen_ai.request.*`` attributes (numbers only).
_REQUEST_NUMBERS: Final = (
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("max_completion_tokens", "gen_ai.request.max_tokens"),
    ("max_output_tokens", "gen_ai.request.max_tokens"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
    ("seed", "gen_ai.request.seed"),
    ("n", "gen_ai.request.choice.count"),
    ("dimensions", "gen_ai.embeddings.dimension.count"),
)


def call_attributes(record: Mapping[str, Any]) -> dict[str, Any]:
    """The GenAI semantic-convention attributes of an ``llm_call`` record (no content)."""
    operation = _OPERATIONS.get(record.get("api") or "", "chat")
    provider = record.get("provider") or "openai"
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider,
        "gen_ai.system": provider,
        "gen_ai.request.model": record.get("model"),
        "belog.call_id": record.get("call_id"),
        "belog.call_name": record.get("name"),
        "belog.api": record.get("api"),
        "belog.status": record.get("status"),
        "belog.stream": record.get("stream"),
        "belog.latency_ms": record.get("latency_ms"),
        "belog.time_to_first_token_ms": record.get("time_to_first_token_ms"),
        "belog.cost_usd": record.get("cost_usd"),
        "belog.attempts": len(record.get("attempts") or ()),
    }
    request = record.get("request")
    if isinstance(request, Mapping):
        for key, name in _REQUEST_NUMBERS:
            value = request.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                attributes[name] = value
        stop = request.get("stop")
        attributes["gen_ai.request.stop_sequences"] = [stop] if isinstance(stop, str) else stop
        encoding = request.get("encoding_format")
        if isinstance(encoding, str):
            attributes["gen_ai.request.encoding_formats"] = [encoding]
    response = record.get("response")
    if isinstance(response, Mapping):
        attributes["gen_ai.response.id"] = response.get("id")
        attributes["gen_ai.response.model"] = response.get("model")
        choices = response.get("choices")
        reasons = (
            [c.get("finish_reason") for c in choices if isinstance(c, Mapping)]
            if isinstance(choices, list)
            else [response.get("finish_reason")]
        )
        attributes["gen_ai.response.finish_reasons"] = [r for r in reasons if isinstance(r, str)]
    usage = record.get("usage")
    if isinstance(usage, Mapping):
        attributes["gen_ai.usage.input_tokens"] = usage.get("input_tokens")
        attributes["gen_ai.usage.output_tokens"] = usage.get("output_tokens")
    error = record.get("error")
    if isinstance(error, Mapping):
        attributes["error.type"] = error.get("type")
        attributes["belog.error.status_code"] = error.get("status_code")
    return clean_attributes(attributes)


def clean_attributes(pairs: Mapping[str, Any]) -> dict[str, Any]:
    """The pairs whose value OpenTelemetry accepts (no None, no nested values)."""
    return {
        key: value
        for key, value in pairs.items()
        if isinstance(value, str | bool | int | float)
        or (isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value))
    }
