"""A loopback HTTP server that speaks the OpenAI API, for tests of real client libraries.

Libraries such as litellm, LangChain, instructor and openai-agents build their
own ``openai`` clients (and litellm's async path its own aiohttp transport), so
an in-process httpx transport cannot reach them: they need a real server at a
``base_url``. `FakeOpenAIServer` is one, on 127.0.0.1 and a free port, in a
thread of the test process. Its answers come from `FakeLLM` (the package's
offline model, the one ``belog demo`` uses): chat completions (plain, tools,
JSON and structured output, server-sent event streams with the usage chunk),
the Responses API (plain and streamed events) and embeddings (float and
base64). Each request may be given a fault first (`fail_next`: a 429 with
``retry-after``, a 500, any status), and every exchange is kept (`exchanges`)
with what was sent back — status, request ID, usage, output text — so a test
can check an audit record against what the server really answered::

    with FakeOpenAIServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key=placeholder_key())
        client.chat.completions.create(model="gpt-4o-mini", messages=[...])
        assert 1 == server.answered
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from structlog_belog.audit.fake_llm import FakeLLM

__all__ = ["Exchange", "FakeOpenAIServer", "SchemaFollowingLLM", "placeholder_key"]

_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
#: A JSON object embedded in a prompt, as instructor's JSON mode quotes its schema.
_EMBEDDED_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def placeholder_key() -> str:
    """An API key for the fake server, built at run time (it is never a real one)."""
    return "-".join(("fake", "compat", "key"))


class SchemaFollowingLLM(FakeLLM):
    """`FakeLLM` that follows a JSON schema quoted in the prompt, and a forced tool choice.

    A real model asked for JSON "that matches the following json_schema: {...}"
    (instructor's JSON mode) answers an instance of that schema; `FakeLLM`
    alone answers ``{"answer": ...}`` to any ``json_object`` request. And a
    ``tool_choice`` naming a function (or ``"required"``) makes the real
    service call a tool even after a tool result (instructor's re-ask does
    this); `FakeLLM` alone answers in text once there is a tool result.
    """

    def _chosen_tool(
        self, tools: Any, tool_choice: Any, has_result: bool
    ) -> tuple[str, Any] | None:
        forced = isinstance(tool_choice, Mapping) or tool_choice == "required"
        return super()._chosen_tool(tools, tool_choice, has_result and not forced)

    def _text_answer(self, prompt: str, response_format: Any, count: int) -> str:
        if isinstance(response_format, Mapping) and response_format.get("type") == "json_object":
            schema = _quoted_schema(prompt)
            if schema is not None:
                response_format = {"type": "json_schema", "json_schema": {"schema": schema}}
        return str(super()._text_answer(prompt, response_format, count))


def _quoted_schema(prompt: str) -> dict[str, Any] | None:
    """The outermost JSON object in *prompt* when it looks like a JSON schema."""
    start = prompt.find("{")
    while start != -1:
        match = _EMBEDDED_OBJECT.match(prompt, start)
        if match is None:
            return None
        text = match.group()
        # Trim from the right until the text parses (the prompt may go on after it).
        end = len(text)
        while end > 0:
            try:
                value = json.loads(text[:end])
            except ValueError:
                end = text.rfind("}", 0, end - 1) + 1
                continue
            if isinstance(value, dict) and ("properties" in value or "$defs" in value):
                return value
            break
        start = prompt.find("{", start + 1)
    return None


@dataclass
class Exchange:
    """One request the server answered, and what it sent back.

    Attributes:
        path: The URL path (``/v1/chat/completions``, ...).
        request: The JSON body of the request (``None`` if it was not JSON).
        status: The HTTP status sent.
        request_id: The ``x-request-id`` header sent.
        stream: Whether the answer was a server-sent event stream.
        body: The parsed JSON answer, or the list of parsed stream events.
    """

    path: str
    request: dict[str, Any] | None
    status: int
    request_id: str
    stream: bool
    body: Any = None
    raw: bytes = b""
    events: list[Any] = field(default_factory=list)

    @property
    def api(self) -> str:
        """``chat.completions``, ``responses`` or ``embeddings``."""
        tail = self.path.rstrip("/").rsplit("/", 2)
        return "chat.completions" if tail[-1] == "completions" else tail[-1]

    def usage(self) -> dict[str, int | None] | None:
        """The token counts sent, in the audit record's names (``None`` if none were sent)."""
        raw = _sent_usage(self)
        if raw is None:
            return None
        chat = "prompt_tokens" in raw  # chat.completions and embeddings name them so
        input_details = raw.get("prompt_tokens_details" if chat else "input_tokens_details")
        output_details = raw.get("completion_tokens_details" if chat else "output_tokens_details")
        return {
            "input_tokens": raw.get("prompt_tokens" if chat else "input_tokens"),
            "output_tokens": raw.get("completion_tokens" if chat else "output_tokens"),
            "total_tokens": raw.get("total_tokens"),
            "cached_tokens": (input_details or {}).get("cached_tokens"),
            "reasoning_tokens": (output_details or {}).get("reasoning_tokens"),
        }

    def output_text(self) -> str | None:
        """The answer's text as sent (``None`` for a tool call or an embedding)."""
        if self.api == "embeddings" or self.status >= 400:
            return None
        if self.api == "chat.completions":
            if not self.stream:
                return self.body["choices"][0]["message"]["content"]  # type: ignore[no-any-return]
            parts = [
                choice["delta"].get("content") or ""
                for event in self.events
                if isinstance(event, dict)
                for choice in event.get("choices", [])
            ]
            return "".join(parts) or None
        response = self.body if not self.stream else self.events[-1]["response"]
        texts = [
            part["text"]
            for item in response["output"]
            if item["type"] == "message"
            for part in item["content"]
            if part["type"] == "output_text"
        ]
        return "".join(texts) or None

    def tool_arguments(self) -> str | None:
        """The arguments of the tool call sent, if the answer was one."""
        if self.api == "chat.completions":
            if not self.stream:
                calls = self.body["choices"][0]["message"].get("tool_calls") or []
                return calls[0]["function"]["arguments"] if calls else None
            parts = [
                call["function"].get("arguments") or ""
                for event in self.events
                if isinstance(event, dict)
                for choice in event.get("choices", [])
                for call in choice["delta"].get("tool_calls") or []
            ]
            return "".join(parts) or None
        if self.api == "responses":
            response = self.body if not self.stream else self.events[-1]["response"]
            calls = [i for i in response["output"] if i["type"] == "function_call"]
            return calls[0]["arguments"] if calls else None
        return None


def _sent_usage(exchange: Exchange) -> dict[str, Any] | None:
    if exchange.status >= 400:
        return None
    if not exchange.stream:
        return exchange.body.get("usage") if isinstance(exchange.body, dict) else None
    for event in reversed(exchange.events):
        if not isinstance(event, dict):
            continue
        if event.get("usage"):
            return event["usage"]  # type: ignore[no-any-return]
        response = event.get("response")
        if isinstance(response, dict) and response.get("usage"):
            return response["usage"]  # type: ignore[no-any-return]
    return None


@dataclass
class _Fault:
    status: int
    retry_after: str | None
    message: str


class FakeOpenAIServer:
    """An OpenAI-compatible HTTP server on 127.0.0.1, answered by a `FakeLLM`.

    Use it as a context manager (or call `start` and `stop`). ``base_url`` ends
    in ``/v1``, as the SDK expects.

    Args:
        llm: The model that answers; by default a new `SchemaFollowingLLM`.
        **options: Options for that default model (``output_tokens``, ...).

    Attributes:
        exchanges: Every request answered, in order (faults included).
    """

    def __init__(self, llm: FakeLLM | None = None, **options: Any) -> None:
        if llm is not None and options:
            msg = f"pass a FakeLLM or its options, not both (got options {sorted(options)!r})"
            raise TypeError(msg)
        self.llm = llm if llm is not None else SchemaFollowingLLM(**options)
        self.exchanges: list[Exchange] = []
        self._faults: deque[_Fault] = deque()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life ----------------------------------------------------------------

    def start(self) -> FakeOpenAIServer:
        """Listen on a free port of 127.0.0.1 and answer in a background thread."""
        server = self

        class Handler(_Handler):
            owner = server

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False  # keep-alive connections a client left open
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening (idempotent)."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        if self._httpd is None:
            msg = "the server is not started"
            raise RuntimeError(msg)
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    # -- behaviour -----------------------------------------------------------

    def fail_next(
        self, status: int = 429, *, times: int = 1, retry_after: float | None = 0.01
    ) -> None:
        """Answer the next *times* requests with *status* (a 429 or 5xx carries ``retry-after``).

        Args:
            status: The HTTP error status (400-599).
            times: How many requests in a row fail.
            retry_after: Seconds for the ``retry-after`` header, or ``None`` to omit it.
        """
        if not 400 <= status <= 599:
            msg = f"status must be an HTTP error status (400-599), got {status!r}"
            raise ValueError(msg)
        header = None if retry_after is None else f"{retry_after:g}"
        message = f"Injected fault {status} (fake OpenAI server)."
        with self._lock:
            self._faults.extend(_Fault(status, header, message) for _ in range(times))

    @property
    def answered(self) -> int:
        """How many requests were answered (faults included)."""
        with self._lock:
            return len(self.exchanges)

    def answered_by_path(self) -> dict[str, int]:
        """How many requests each path answered."""
        counts: dict[str, int] = {}
        with self._lock:
            for exchange in self.exchanges:
                counts[exchange.path] = counts.get(exchange.path, 0) + 1
        return counts

    def exchange(self, request_id: str) -> Exchange:
        """The exchange whose answer carried *request_id*."""
        with self._lock:
            for exchange in self.exchanges:
                if exchange.request_id == request_id:
                    return exchange
        msg = f"no exchange sent request ID {request_id!r}"
        raise KeyError(msg)

    # -- answering (called from the handler's thread) --------------------------

    def _answer(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], Iterator[bytes] | bytes, Exchange]:
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        request = httpx.Request(
            method, f"http://127.0.0.1{path}", headers=dict(headers), content=body
        )
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        if fault is not None:
            return self._fault(path, payload, fault)
        response = self.llm.handle_request(request)
        sent = [(k, v) for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP]
        stream = response.headers.get("content-type", "").startswith("text/event-stream")
        exchange = Exchange(
            path=path,
            request=payload if isinstance(payload, dict) else None,
            status=response.status_code,
            request_id=response.headers.get("x-request-id", ""),
            stream=stream,
        )
        with self._lock:
            self.exchanges.append(exchange)
        if not stream:
            content = response.read()
            exchange.raw = content
            try:
                exchange.body = json.loads(content)
            except ValueError:
                exchange.body = None
            return response.status_code, sent, content, exchange
        return response.status_code, sent, _recorded(response, exchange), exchange

    def _fault(
        self, path: str, payload: Any, fault: _Fault
    ) -> tuple[int, list[tuple[str, str]], bytes, Exchange]:
        with self._lock:
            number = len(self.exchanges) + 1
            request_id = f"req_fault_{number:06d}"
            kind = "rate_limit_exceeded" if fault.status == 429 else None
            error_type = "server_error" if fault.status >= 500 else "invalid_request_error"
            body = {
                "error": {
                    "message": fault.message,
                    "type": "requests" if fault.status == 429 else error_type,
                    "param": None,
                    "code": kind,
                }
            }
            content = json.dumps(body).encode()
            exchange = Exchange(
                path=path,
                request=payload if isinstance(payload, dict) else None,
                status=fault.status,
                request_id=request_id,
                stream=False,
                body=body,
                raw=content,
            )
            self.exchanges.append(exchange)
        headers = [("content-type", "application/json"), ("x-request-id", request_id)]
        if fault.retry_after is not None:
            headers.append(("retry-after", fault.retry_after))
        return fault.status, headers, content, exchange


def _recorded(response: httpx.Response, exchange: Exchange) -> Iterator[bytes]:
    """Yield the stream's events as they are sent, keeping each parsed one."""
    for chunk in response.iter_raw():
        for line in chunk.split(b"\n"):
            if line.startswith(b"data: "):
                data = line[6:].decode()
                exchange.events.append(data if data == "[DONE]" else json.loads(data))
        exchange.raw += chunk
        yield chunk


class _Handler(BaseHTTPRequestHandler):
    """One HTTP/1.1 connection to the fake server (keep-alive, chunked streams)."""

    owner: FakeOpenAIServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet (the test's output is the test's)."""

    def do_GET(self) -> None:
        """Answer GETs (``/v1/models`` and the like) with 404, as an unknown path."""
        self._serve("GET")

    def do_POST(self) -> None:
        """Answer one API request."""
        self._serve("POST")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        status, headers, content, _ = self.owner._answer(
            method, self.path, dict(self.headers.items()), body
        )
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if isinstance(content, bytes):
            self.send_header("content-length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)
            self.wfile.flush()
            return
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for chunk in content:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
