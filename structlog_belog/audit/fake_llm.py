"""An offline, deterministic stand-in for the OpenAI HTTP API.

`FakeLLM` is an httpx transport (sync and async) that answers the three
endpoints the audit records — ``/chat/completions``, ``/responses`` and
``/embeddings`` — the way the real service does: same JSON shapes, server-sent
events for ``stream=True`` (with the usage-only chunk when
``stream_options.include_usage`` is set), tool calls, realistic ``usage``,
``x-request-id``, rate-limit and ``openai-processing-ms`` headers. Its content is
derived from the prompt, so the same request always gets the same answer.

Faults and latency are configurable, so retries, errors and slow streams can be
exercised without a network::

    from structlog_belog.audit.fake_llm import FakeLLM, fake_openai_client

    client = fake_openai_client(fail_first=2, fail_status=429)   # retried by the SDK
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}]
    )

    transport = FakeLLM(output_tokens=200)                       # a 200-chunk stream
    aclient = fake_openai_client(async_=True, transport=transport)

Used by the tests, the benchmarks and ``belog demo``. Requires ``httpx`` (and
``openai`` for `fake_openai_client`): ``pip install 'structlog-belog[openai]'``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
import threading
import time
from collections.abc import Mapping
from typing import Any

import httpx

from .fake_llm_content import (
    _DEFAULT_EMBEDDING_DIMENSIONS,
    _EMBEDDING_DIMENSIONS,
    _AsyncBody,
    _from_schema,
    _pieces,
    _response_events,
    _sse,
    _SyncBody,
    _text_of,
    _tokens,
    _Words,
    unit_vector,
)

__all__ = ["FAKE_BASE_URL", "FakeLLM", "fake_openai_client"]

#: The base URL `fake_openai_client` gives its client (never resolved: the transport answers).
FAKE_BASE_URL = "http://fake-llm.invalid/v1"

_RATE_LIMIT_REQUESTS = 10_000
_RATE_LIMIT_TOKENS = 2_000_000


class FakeLLM(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """An in-process, offline OpenAI-compatible model behind an httpx transport.

    Pass it as ``transport=`` to ``httpx.Client`` or ``httpx.AsyncClient``, then
    give that client to ``openai.OpenAI(http_client=...)`` (or use
    `fake_openai_client`). Answers are deterministic functions of the request.

    Args:
        output_tokens: Tokens (= stream deltas) in each chat/responses answer;
            by default 8 to 31, derived from the prompt.
        fail_first: The first *fail_first* requests fail with *fail_status*.
        fail_status: HTTP status of injected failures (429 carries
            ``retry-after-ms``; any 5xx is a ``server_error``).
        retry_after_ms: Value of the ``retry-after-ms`` header on injected
            failures (keeps SDK retries fast); ``None`` omits it.
        latency: Seconds to wait before answering each request.
        chunk_delay: Seconds to wait before each server-sent event of a stream.
        tool_calls: When the request offers tools and the conversation has no
            tool result yet, call the first (or the chosen) tool.
        processing_ms: Value of the ``openai-processing-ms`` header.

    Attributes:
        requests: The JSON body of every request received, in order.
        calls: How many requests were received (failed ones included).
    """

    def __init__(
        self,
        *,
        output_tokens: int | None = None,
        fail_first: int = 0,
        fail_status: int = 429,
        retry_after_ms: int | None = 1,
        latency: float = 0.0,
        chunk_delay: float = 0.0,
        tool_calls: bool = True,
        processing_ms: int = 42,
    ) -> None:
        if output_tokens is not None and output_tokens < 1:
            msg = f"output_tokens must be a positive integer, got {output_tokens!r}"
            raise ValueError(msg)
        if fail_first < 0:
            msg = f"fail_first must be >= 0, got {fail_first!r}"
            raise ValueError(msg)
        if not 400 <= fail_status <= 599:
            msg = f"fail_status must be an HTTP error status (400-599), got {fail_status!r}"
            raise ValueError(msg)
        self.output_tokens = output_tokens
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.retry_after_ms = retry_after_ms
        self.latency = latency
        self.chunk_delay = chunk_delay
        self.tool_calls = tool_calls
        self.processing_ms = processing_ms
        self.requests: list[dict[str, Any]] = []
        self.calls = 0
        self._lock = threading.Lock()
        self._seen_prompts: set[str] = set()

    def __repr__(self) -> str:
        return (
            f"FakeLLM(output_tokens={self.output_tokens!r}, fail_first={self.fail_first!r}, "
            f"fail_status={self.fail_status!r}, latency={self.latency!r}, calls={self.calls!r})"
        )

    # -- transport interface -------------------------------------------------

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Answer one request synchronously (``httpx.BaseTransport``)."""
        if self.latency:
            time.sleep(self.latency)
        status, headers, body = self._answer(request)
        if isinstance(body, list):
            return httpx.Response(
                status, headers=headers, stream=_SyncBody(body, self.chunk_delay), request=request
            )
        return httpx.Response(status, headers=headers, content=body, request=request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer one request asynchronously (``httpx.AsyncBaseTransport``)."""
        if self.latency:
            await asyncio.sleep(self.latency)
        status, headers, body = self._answer(request)
        if isinstance(body, list):
            return httpx.Response(
                status, headers=headers, stream=_AsyncBody(body, self.chunk_delay), request=request
            )
        return httpx.Response(status, headers=headers, content=body, request=request)

    # -- dispatch ------------------------------------------------------------

    def _answer(self, request: httpx.Request) -> tuple[int, dict[str, str], bytes | list[bytes]]:
        raw = request.read()
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            payload = None
        with self._lock:
            self.calls += 1
            number = self.calls
            if isinstance(payload, dict):
                self.requests.append(payload)
        headers = self._headers(number)
        if number <= self.fail_first:
            return self._failure(headers)
        if not isinstance(payload, dict):
            return self._error(headers, 400, "We could not parse the JSON body.", "invalid_json")
        path = request.url.path
        if path.endswith("/chat/completions"):
            return self._chat(headers, payload, number)
        if path.endswith("/responses"):
            return self._responses(headers, payload, number)
        if path.endswith("/embeddings"):
            return self._embeddings(headers, payload, number)
        return self._error(headers, 404, f"Unknown path {path!r}.", "not_found")

    def _headers(self, number: int) -> dict[str, str]:
        request_id = "req_" + hashlib.sha256(f"fake-llm:{number}".encode()).hexdigest()[:32]
        return {
            "x-request-id": request_id,
            "openai-processing-ms": str(self.processing_ms),
            "openai-version": "2020-10-01",
            "x-ratelimit-limit-requests": str(_RATE_LIMIT_REQUESTS),
            "x-ratelimit-remaining-requests": str(max(0, _RATE_LIMIT_REQUESTS - number)),
            "x-ratelimit-reset-requests": "6ms",
            "x-ratelimit-limit-tokens": str(_RATE_LIMIT_TOKENS),
            "x-ratelimit-remaining-tokens": str(max(0, _RATE_LIMIT_TOKENS - 100 * number)),
            "x-ratelimit-reset-tokens": "3ms",
        }

    def _failure(self, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if self.retry_after_ms is not None:
            headers["retry-after-ms"] = str(self.retry_after_ms)
        if self.fail_status == 429:
            headers["x-ratelimit-remaining-requests"] = "0"
            message = "Rate limit reached for requests (fake-llm injected fault)."
            return self._error(headers, 429, message, "rate_limit_exceeded", "requests")
        if self.fail_status >= 500:
            message = "The server had an error while processing your request (fake-llm)."
            return self._error(headers, self.fail_status, message, None, "server_error")
        message = f"Injected fault with status {self.fail_status} (fake-llm)."
        return self._error(headers, self.fail_status, message, "injected_fault")

    @staticmethod
    def _error(
        headers: dict[str, str],
        status: int,
        message: str,
        code: str | None,
        kind: str = "invalid_request_error",
    ) -> tuple[int, dict[str, str], bytes]:
        headers["content-type"] = "application/json"
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        return status, headers, json.dumps(body).encode()

    @staticmethod
    def _json(
        headers: dict[str, str], body: Mapping[str, Any]
    ) -> tuple[int, dict[str, str], bytes]:
        headers["content-type"] = "application/json"
        return 200, headers, json.dumps(body, separators=(",", ":")).encode()

    @staticmethod
    def _stream(
        headers: dict[str, str], events: list[bytes]
    ) -> tuple[int, dict[str, str], list[bytes]]:
        headers["content-type"] = "text/event-stream; charset=utf-8"
        return 200, headers, events

    # -- content -------------------------------------------------------------

    def _count(self, prompt: str) -> int:
        if self.output_tokens is not None:
            return self.output_tokens
        return 8 + hashlib.sha256(prompt.encode()).digest()[1] % 24

    def _usage_numbers(self, prompt: str, model: str, output: int) -> tuple[int, int, int, int]:
        """Return (input, cached, output, reasoning) token counts for one answer."""
        input_tokens = _tokens(prompt)
        with self._lock:
            repeated = prompt in self._seen_prompts
            self._seen_prompts.add(prompt)
        # Like the service: a repeated prompt of 1024+ tokens hits the cache in 128-token steps.
        cached = (input_tokens // 128) * 128 if repeated and input_tokens >= 1024 else 0
        reasoning = 2 * output if model.startswith(("o1", "o3", "o4", "gpt-5")) else 0
        return input_tokens, cached, output + reasoning, reasoning

    def _text_answer(self, prompt: str, response_format: Any, count: int) -> str:
        words = _Words(hashlib.sha256(prompt.encode()).digest())
        if isinstance(response_format, Mapping):
            kind = response_format.get("type")
            if kind in ("json_schema",):
                spec = response_format.get("json_schema", response_format)
                schema = spec.get("schema", {}) if isinstance(spec, Mapping) else {}
                return json.dumps(_from_schema(schema, words, schema))
            if kind == "json_object":
                return json.dumps({"answer": words.sentence(count)})
        return words.sentence(count)

    def _chosen_tool(
        self, tools: Any, tool_choice: Any, has_result: bool
    ) -> tuple[str, Any] | None:
        """Return (name, parameters schema) of the tool to call, or None to answer in text."""
        if not self.tool_calls or not tools or has_result or tool_choice == "none":
            return None
        functions: list[tuple[str, Any]] = []
        for tool in tools:
            if not isinstance(tool, Mapping):
                continue
            spec = tool.get("function", tool)
            if isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
                functions.append((spec["name"], spec.get("parameters", {})))
        if isinstance(tool_choice, Mapping):
            wanted = tool_choice.get("name") or (tool_choice.get("function") or {}).get("name")
            functions = [f for f in functions if f[0] == wanted] or functions
        return functions[0] if functions else None

    # -- /chat/completions ---------------------------------------------------

    def _chat(
        self, headers: dict[str, str], payload: dict[str, Any], number: int
    ) -> tuple[int, dict[str, str], bytes | list[bytes]]:
        model = str(payload.get("model", "gpt-4o-mini"))
        messages = payload.get("messages") or []
        prompt = "\n".join(
            f"{m.get('role')}: {_text_of(m.get('content'))}"
            for m in messages
            if isinstance(m, Mapping)
        )
        has_result = any(isinstance(m, Mapping) and m.get("role") == "tool" for m in messages)
        tool = self._chosen_tool(payload.get("tools"), payload.get("tool_choice"), has_result)
        count = self._count(prompt)
        call_id = "chatcmpl-" + hashlib.sha256(f"{number}:{prompt}".encode()).hexdigest()[:24]
        created = int(time.time())
        if tool is not None:
            words = _Words(hashlib.sha256(prompt.encode()).digest())
            arguments = json.dumps(_from_schema(tool[1], words, tool[1]))
            pieces = _pieces(arguments, count)
            tool_id = "call_" + hashlib.sha256(arguments.encode()).hexdigest()[:24]
            text, finish = None, "tool_calls"
        else:
            text = self._text_answer(prompt, payload.get("response_format"), count)
            pieces = _pieces(text, count)
            finish = "stop"
        input_tokens, cached, output, reasoning = self._usage_numbers(prompt, model, len(pieces))
        usage = {
            "prompt_tokens": input_tokens + 3 * len(messages),
            "completion_tokens": output,
            "total_tokens": input_tokens + 3 * len(messages) + output,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        base = {"id": call_id, "created": created, "model": model, "system_fingerprint": "fp_fake"}
        if not payload.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
            if tool is not None:
                message["tool_calls"] = [
                    {
                        "id": tool_id,
                        "type": "function",
                        "function": {"name": tool[0], "arguments": arguments},
                    }
                ]
            choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
            body = {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
            return self._json(headers, body)
        options = payload.get("stream_options") or {}
        include_usage = bool(options.get("include_usage"))
        extra = {"usage": None} if include_usage else {}

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
            return _sse({**base, "object": "chat.completion.chunk", "choices": [choice], **extra})

        events = [chunk({"role": "assistant", "content": "" if tool is None else None})]
        if tool is not None:
            head = {"index": 0, "id": tool_id, "type": "function"}
            events.append(
                chunk({"tool_calls": [{**head, "function": {"name": tool[0], "arguments": ""}}]})
            )
            events.extend(
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                for piece in pieces
            )
        else:
            events.extend(chunk({"content": piece}) for piece in pieces)
        events.append(chunk({}, finish))
        if include_usage:
            events.append(
                _sse({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
            )
        events.append(_sse("[DONE]"))
        return self._stream(headers, events)

    # -- /responses ----------------------------------------------------------

    def _responses(
        self, headers: dict[str, str], payload: dict[str, Any], number: int
    ) -> tuple[int, dict[str, str], bytes | list[bytes]]:
        model = str(payload.get("model", "gpt-4o-mini"))
        raw_input = payload.get("input")
        items = (
            raw_input if isinstance(raw_input, list) else [{"role": "user", "content": raw_input}]
        )
        texts = [str(payload.get("instructions") or "")]
        texts.extend(
            _text_of(item.get("content", item.get("output")))
            for item in items
            if isinstance(item, Mapping)
        )
        prompt = "\n".join(t for t in texts if t)
        has_result = any(
            isinstance(i, Mapping) and i.get("type") == "function_call_output" for i in items
        )
        tool = self._chosen_tool(payload.get("tools"), payload.get("tool_choice"), has_result)
        count = self._count(prompt)
        digest = hashlib.sha256(f"{number}:{prompt}".encode()).hexdigest()
        response_id, item_id = "resp_" + digest[:32], "msg_" + digest[32:56]
        text_format = (payload.get("text") or {}).get("format")
        if tool is not None:
            words = _Words(hashlib.sha256(prompt.encode()).digest())
            arguments = json.dumps(_from_schema(tool[1], words, tool[1]))
            pieces = _pieces(arguments, count)
            item_id = "fc_" + digest[32:56]
            done_item: dict[str, Any] = {
                "type": "function_call",
                "id": item_id,
                "call_id": "call_" + digest[:24],
                "name": tool[0],
                "arguments": arguments,
                "status": "completed",
            }
        else:
            fmt = text_format
            if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
                fmt = {"type": "json_schema", "json_schema": {"schema": fmt.get("schema", {})}}
            text = self._text_answer(prompt, fmt, count)
            pieces = _pieces(text, count)
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            done_item = {
                "type": "message",
                "id": item_id,
                "status": "completed",
                "role": "assistant",
                "content": [part],
            }
        input_tokens, cached, output, reasoning = self._usage_numbers(prompt, model, len(pieces))
        usage = {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": input_tokens + output,
        }
        response: dict[str, Any] = {
            "id": response_id,
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "model": model,
            "output": [done_item],
            "usage": usage,
            "error": None,
            "incomplete_details": None,
            "instructions": payload.get("instructions"),
            "metadata": payload.get("metadata") or {},
            "parallel_tool_calls": True,
            "temperature": payload.get("temperature", 1.0),
            "top_p": payload.get("top_p", 1.0),
            "tool_choice": payload.get("tool_choice", "auto"),
            "tools": payload.get("tools") or [],
        }
        if not payload.get("stream"):
            return self._json(headers, response)
        return self._stream(headers, _response_events(response, pieces))

    # -- /embeddings ---------------------------------------------------------

    def _embeddings(
        self, headers: dict[str, str], payload: dict[str, Any], _: int
    ) -> tuple[int, dict[str, str], bytes]:
        model = str(payload.get("model", "text-embedding-3-small"))
        raw = payload.get("input")
        inputs: list[Any] = raw if isinstance(raw, list) else [raw]
        if inputs and all(isinstance(i, int) for i in inputs):
            inputs = [inputs]  # one input given as a list of token ids
        dimensions = int(
            payload.get("dimensions")
            or _EMBEDDING_DIMENSIONS.get(model, _DEFAULT_EMBEDDING_DIMENSIONS)
        )
        as_base64 = payload.get("encoding_format") == "base64"
        data, tokens = [], 0
        for index, value in enumerate(inputs):
            text = value if isinstance(value, str) else json.dumps(value)
            tokens += len(value) if isinstance(value, list) else _tokens(text)
            vector = unit_vector(text, dimensions)
            embedding: Any = (
                base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
                if as_base64
                else vector
            )
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        body = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return self._json(headers, body)


def fake_openai_client(
    async_: bool = False,
    *,
    transport: FakeLLM | None = None,
    max_retries: int = 2,
    **options: Any,
) -> Any:
    """Return a real ``openai.OpenAI`` (or ``AsyncOpenAI``) answered by a `FakeLLM`.

    Args:
        async_: Return an ``AsyncOpenAI`` client instead of ``OpenAI``.
        transport: The `FakeLLM` to use; by default a new one built from *options*.
        max_retries: The SDK's retry budget (its default is 2).
        **options: Keyword arguments for `FakeLLM` (``fail_first``, ``latency``, ...).

    The client's API key is a placeholder built here; nothing leaves the process.
    Pass your own *transport* to inspect its ``requests`` and ``calls`` afterwards.

    Raises:
        ModuleNotFoundError: If the ``openai`` package is not installed.
        TypeError: If both *transport* and *options* are given.
    """
    try:
        import openai
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
        msg = "fake_openai_client requires openai: pip install 'structlog-belog[openai]'"
        raise ModuleNotFoundError(msg, name="openai") from exc
    if transport is not None and options:
        msg = f"pass FakeLLM options or a transport, not both (got options {sorted(options)!r})"
        raise TypeError(msg)
    fake = transport if transport is not None else FakeLLM(**options)
    placeholder = "-".join(("fake", "belog", "key"))
    http_client: Any
    if async_:
        http_client = httpx.AsyncClient(transport=fake)
        return openai.AsyncOpenAI(
            api_key=placeholder,
            base_url=FAKE_BASE_URL,
            http_client=http_client,
            max_retries=max_retries,
        )
    http_client = httpx.Client(transport=fake)
    return openai.OpenAI(
        api_key=placeholder,
        base_url=FAKE_BASE_URL,
        http_client=http_client,
        max_retries=max_retries,
    )
