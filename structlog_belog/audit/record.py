"""What goes into an ``llm_call`` record: pure functions from SDK objects to JSON.

Everything here reads the openai SDK's result objects (or plain dicts of the
same shape) by attribute name only, so the module imports nothing from
``openai`` and works for a user's own wrapper that returns dicts.

Field names mirror the OpenTelemetry GenAI semantic conventions where one
exists: ``input_tokens``/``output_tokens`` (``gen_ai.usage.*``),
``finish_reason`` (``gen_ai.response.finish_reasons``), ``response.id`` and
``response.model`` (``gen_ai.response.*``).
"""

from __future__ import annotations

import hashlib
import itertools
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

import orjson

from ..core.redact import Vetted

__all__ = [
    "API_CHAT",
    "API_EMBEDDINGS",
    "API_RESPONSES",
    "RAW_HEADER",
    "describe_error",
    "fields_of",
    "guess_api",
    "jsonable",
    "request_of",
    "result_of",
    "scrub_request",
    "scrub_response",
    "usage_of",
    "vet_error",
    "vet_request",
    "vet_response",
    "vet_usage",
]

API_CHAT: Final = "chat.completions"
API_RESPONSES: Final = "responses"
API_EMBEDDINGS: Final = "embeddings"

#: The header the SDK's ``with_raw_response``/``with_streaming_response`` add (lower case).
RAW_HEADER: Final = "x-stainless-raw-response"
#: Create-call arguments that configure the transport, not the model: not part of `request`.
_TRANSPORT_KWARGS: Final = frozenset(("extra_headers", "extra_query", "extra_body", "timeout"))
#: Arguments that may be one-shot iterators; the audit lists them once and passes the list on.
ITERABLE_KWARGS: Final = ("messages", "input", "tools")
_MAX_DEPTH: Final = 32


#: The SDK's placeholder types, read from an already imported ``openai`` (never imported here).
_sentinels: frozenset[type] = frozenset()


def _find_sentinels() -> None:
    global _sentinels  # noqa: PLW0603 - filled once, when the SDK is first seen
    openai = sys.modules.get("openai")
    if openai is not None:
        found = (getattr(openai, "NotGiven", None), getattr(openai, "Omit", None))
        _sentinels = frozenset(t for t in found if isinstance(t, type))


def is_given(value: Any) -> bool:
    """False for the SDK's ``omit``/``NOT_GIVEN`` placeholders, True otherwise."""
    return type(value) not in _sentinels


_MISSING: Final = object()


def field(obj: Any, name: str) -> Any:
    """Read *name* from an SDK object or from a dict of the same shape."""
    if type(obj) is dict:
        return obj.get(name)
    attributes = getattr(obj, "__dict__", None)
    if attributes is not None:
        # SDK models keep their fields in __dict__; asking pydantic for an absent
        # one would raise and catch an AttributeError, which is slow.
        value = attributes.get(name, _MISSING)
        if value is not _MISSING:
            return value
        if hasattr(type(obj), "__pydantic_fields__"):
            return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


_NO_FIELDS: Final[Mapping[str, Any]] = {}


class _Getter:
    """`field` reads, shaped as ``.get`` (for objects that are neither dicts nor SDK models)."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def get(self, name: str) -> Any:
        return field(self.obj, name)


def fields_of(obj: Any) -> Mapping[str, Any] | _Getter:
    """The fields of an SDK object (or a dict of the same shape), to read with ``.get``.

    An SDK model keeps its fields in ``__dict__``: reading that dict costs a
    C call per field, where `field` costs a Python call.
    """
    kind = type(obj)
    if kind is dict:
        return obj  # type: ignore[no-any-return]
    if kind in _MODELS:
        return obj.__dict__  # type: ignore[no-any-return]
    if obj is None:
        return _NO_FIELDS
    if hasattr(kind, "__pydantic_fields__"):
        attributes = getattr(obj, "__dict__", None)
        if type(attributes) is dict:
            if len(_MODELS) < _MODELS_MAX:
                _MODELS.add(kind)
            return attributes
    return _Getter(obj)


#: SDK model classes seen, whose instances keep their fields in ``__dict__``.
_MODELS: set[type] = set()
_MODELS_MAX: Final = 256


def jsonable(value: Any, depth: int = 0) -> Any:  # noqa: PLR0911 - one return per kind reads best
    """Return a JSON-ready copy of *value* (SDK models dumped, classes named).

    A copy, so that a caller who changes its ``messages`` list after the call
    (an agent appending the answer) does not change what the audit recorded.
    """
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool:
        return value
    if kind is float:
        return value if value - value == 0.0 else _non_finite(value)
    if depth > _MAX_DEPTH:
        return repr(value)
    if kind is dict:
        # Messages are dicts of strings: those cost no call.
        return {
            k if type(k) is str else str(k): v if type(v) is str else jsonable(v, depth + 1)
            for k, v in value.items()
            if type(v) not in _sentinels
        }
    if kind is list:
        # Messages and embedding inputs: lists of strings, or of flat dicts of
        # strings, copied in C once their types say no value needs converting.
        kinds = set(map(type, value))
        if kinds <= _FLAT:
            return list(value)
        if kinds == _DICTS and _flat_dicts(value):
            return list(map(dict, value))
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, float):
        return jsonable(float(value), depth)
    if isinstance(value, str | int | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items() if is_given(v)}
    if isinstance(value, list | tuple):
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return jsonable(dump(mode="json", exclude_unset=True), depth + 1)
        except Exception:  # noqa: BLE001 - a model that cannot dump itself is named instead
            return repr(value)
    if isinstance(value, bytes | bytearray):
        return {"bytes": len(value)}
    if not _sentinels:  # asked before any request: look for the SDK's placeholders now
        _find_sentinels()
    if not is_given(value):
        return None
    return repr(value)


#: Value types `jsonable` returns as they are (floats are checked one by one).
_FLAT: Final = frozenset((str, int, bool, type(None)))
_DICTS: Final = frozenset((dict,))


def _flat_dicts(dicts: list[dict[Any, Any]]) -> bool:
    """Whether every dict has only string keys and `_FLAT` values."""
    return (
        set(map(type, itertools.chain.from_iterable(dicts))) <= _STR
        and set(map(type, itertools.chain.from_iterable(map(dict.values, dicts)))) <= _FLAT
    )


_STR: Final = frozenset((str,))


def _non_finite(value: float) -> str:
    """NaN and ±Infinity as the record path writes them (JSON has no such numbers)."""
    if value != value:  # noqa: PLR0124 - only NaN differs from itself
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def request_of(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The ``request`` part of a record: the create call's arguments, JSON-ready."""
    if not _sentinels:
        _find_sentinels()
    # Built as the Vetted it becomes once redacted: no copy when nothing changes.
    request: dict[str, Any] = Vetted()
    sentinels = _sentinels
    for key, value in kwargs.items():
        kind = type(value)
        if key in _TRANSPORT_KWARGS or kind in sentinels:
            continue
        request[key] = value if kind is str else jsonable(value)
    headers = kwargs.get("extra_headers")
    if headers and isinstance(headers, Mapping):
        # The header with_raw_response adds is the SDK's, not the caller's.
        headers = {k: v for k, v in headers.items() if str(k).lower() != RAW_HEADER}
    if headers:
        request["headers"] = jsonable(headers)
    extra = kwargs.get("extra_body")
    if extra:
        request["extra_body"] = jsonable(extra)
    return request


def guess_api(kwargs: Mapping[str, Any], result: Any = None) -> str:
    """Which API a call used, from its result type if known, else from its arguments."""
    if result is not None:
        kind = type(result).__name__
        if "Embedding" in kind:
            return API_EMBEDDINGS
        if kind.endswith("ChatCompletion"):
            return API_CHAT
        if kind.endswith("Response") and field(result, "object") == "response":
            return API_RESPONSES
    if "messages" in kwargs:
        return API_CHAT
    model = str(kwargs.get("model") or "")
    if "embedding" in model or "encoding_format" in kwargs or "dimensions" in kwargs:
        return API_EMBEDDINGS
    return API_RESPONSES


# -- vetting: each part of a record made safe to write, once -----------------

#: Redacts a JSON-ready value (the configured `SecretRedactor`'s ``redact_value``), or None.
Redact = Callable[[Any], Any] | None

#: Response fields that hold what the model wrote; the others are metadata.
_RESPONSE_CONTENT: Final = frozenset(("output_text", "refusal", "tool_calls", "choices"))


#: Metadata values written as they are.
_PLAIN_META: Final = frozenset((str, int, bool, type(None)))


def _meta(value: Any, redact: Redact) -> Any:
    """A metadata value (an ID, a name, a count) as it is written.

    Strings, ints and booleans read from the SDK's result or the server's
    headers are written as they are; anything else is made JSON-ready and
    redacted like content.
    """
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool:
        return value
    safe = jsonable(value)
    return safe if redact is None else redact(safe)


def _content(value: Any, redact: Redact) -> Any:
    """What the application or the model wrote: JSON-ready and redacted."""
    if value is None:
        return None
    safe = value if type(value) is str else jsonable(value)
    return safe if redact is None else redact(safe)


def vet_request(request: dict[str, Any], redact: Redact) -> Vetted:
    """The ``request`` part (already JSON-ready, from `request_of`), redacted."""
    out = request if redact is None else redact(request)
    return out if type(out) is Vetted else Vetted(out)


def vet_response(response: Mapping[str, Any], redact: Redact) -> Vetted:
    """The ``response`` part: content redacted, metadata checked."""
    out = Vetted(response)
    for key, value in response.items():
        if value is None:
            continue
        if key in _RESPONSE_CONTENT:
            out[key] = _content(value, redact)
        elif type(value) not in _PLAIN_META:
            out[key] = _meta(value, redact)
    return out


def vet_usage(usage: Mapping[str, Any], redact: Redact) -> Vetted:
    """The ``usage`` part: counts, checked."""
    if set(map(type, usage.values())) <= _PLAIN_META:  # the SDK's ints and Nones
        return Vetted(usage)
    return Vetted({key: _meta(value, redact) for key, value in usage.items()})


def vet_error(error: Mapping[str, Any], redact: Redact) -> Vetted:
    """The ``error`` part: the message redacted (servers echo what they were sent)."""
    return Vetted(
        {
            key: _content(value, redact) if key == "message" else _meta(value, redact)
            for key, value in error.items()
        }
    )


# -- content scrubbing (capture_content=False) ----------------------------------


def fingerprint(value: Any) -> dict[str, Any]:
    """Length and SHA-256 of a piece of content, instead of the content."""
    text = value if isinstance(value, str) else orjson.dumps(value, default=repr).decode()
    data = text.encode("utf-8", "surrogatepass")
    return {"length": len(text), "sha256": hashlib.sha256(data).hexdigest()}


def _scrub_message(message: Any) -> Any:
    if not isinstance(message, Mapping):
        return fingerprint(message)
    kept = {k: v for k, v in message.items() if k in ("role", "type", "name", "tool_call_id")}
    for key in ("content", "output", "arguments", "tool_calls", "function_call"):
        if message.get(key) is not None:
            kept[key] = fingerprint(message[key])
    return kept


def scrub_request(request: dict[str, Any]) -> dict[str, Any]:
    """Replace prompt content with lengths and hashes, keeping roles and parameters."""
    scrubbed = dict(request)
    for key in ("messages", "input"):
        value = scrubbed.get(key)
        if isinstance(value, list):
            scrubbed[key] = [_scrub_message(item) for item in value]
        elif value is not None:
            scrubbed[key] = fingerprint(value)
    for key in ("instructions", "prediction"):
        if scrubbed.get(key) is not None:
            scrubbed[key] = fingerprint(scrubbed[key])
    return scrubbed


def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    """Replace output text and tool-call arguments with lengths and hashes."""
    scrubbed = dict(response)
    if scrubbed.get("output_text") is not None:
        scrubbed["output_text"] = fingerprint(scrubbed["output_text"])
    if scrubbed.get("refusal") is not None:
        scrubbed["refusal"] = fingerprint(scrubbed["refusal"])
    if scrubbed.get("tool_calls"):
        scrubbed["tool_calls"] = [
            {**call, "arguments": fingerprint(call.get("arguments") or "")}
            for call in scrubbed["tool_calls"]
        ]
    if scrubbed.get("choices"):
        scrubbed["choices"] = [scrub_response(choice) for choice in scrubbed["choices"]]
    return scrubbed


# -- results -------------------------------------------------------------------


def usage_of(usage: Any) -> dict[str, Any] | None:
    """Normalise a chat, responses or embeddings ``usage`` to the audit's names.

    Numbers are copied exactly as the server sent them; a count the server did
    not send is None.
    """
    if usage is None:
        return None
    u = fields_of(usage)
    input_tokens = u.get("input_tokens")
    if input_tokens is None:  # chat.completions and embeddings name them differently
        input_tokens = u.get("prompt_tokens")
        output_tokens = u.get("completion_tokens")
        input_details = u.get("prompt_tokens_details")
        output_details = u.get("completion_tokens_details")
    else:
        output_tokens = u.get("output_tokens")
        input_details = u.get("input_tokens_details")
        output_details = u.get("output_tokens_details")
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": u.get("total_tokens"),
        "cached_tokens": fields_of(input_details).get("cached_tokens"),
        "reasoning_tokens": fields_of(output_details).get("reasoning_tokens"),
    }


def tool_call_of(call: Any) -> dict[str, Any]:
    """A chat tool call as ``{id, type, name, arguments}``."""
    c = fields_of(call)
    function = c.get("function")
    named = c if function is None else fields_of(function)
    return {
        "id": c.get("id"),
        "type": c.get("type") or "function",
        "name": named.get("name"),
        "arguments": named.get("arguments"),
    }


def _chat_choice(choice: Any) -> dict[str, Any]:
    c = fields_of(choice)
    message = fields_of(c.get("message"))
    calls = message.get("tool_calls")
    out: dict[str, Any] = {
        "output_text": message.get("content"),
        "finish_reason": c.get("finish_reason"),
        "tool_calls": [tool_call_of(call) for call in calls] if calls else None,
    }
    refusal = message.get("refusal")
    if refusal:
        out["refusal"] = refusal
    return out


def _chat_fields(r: Mapping[str, Any] | _Getter) -> dict[str, Any]:
    choices = r.get("choices") or []
    response: dict[str, Any] = {"id": r.get("id"), "model": r.get("model")}
    first = _chat_choice(choices[0]) if choices else {"output_text": None, "finish_reason": None}
    response.update(first)
    if len(choices) > 1:
        response["choices"] = [
            {"index": fields_of(c).get("index"), **_chat_choice(c)} for c in choices
        ]
    fingerprint_ = r.get("system_fingerprint")
    if fingerprint_:
        response["system_fingerprint"] = fingerprint_
    return response


def _responses_output(output: Any) -> Iterator[tuple[str, Any]]:
    for item in output or ():
        i = fields_of(item)
        kind = i.get("type")
        if kind == "message":
            for part in i.get("content") or ():
                p = fields_of(part)
                part_kind = p.get("type")
                if part_kind == "output_text":
                    yield "text", p.get("text")
                elif part_kind == "refusal":
                    yield "refusal", p.get("refusal")
        elif kind == "function_call":
            yield (
                "tool",
                {
                    "id": i.get("call_id"),
                    "type": "function",
                    "name": i.get("name"),
                    "arguments": i.get("arguments"),
                },
            )
        elif kind is not None:
            yield "other", kind


def responses_response(result: Any) -> dict[str, Any]:
    """The ``response`` part of a record for a Responses API result."""
    return _responses_fields(fields_of(result))


def _responses_fields(r: Mapping[str, Any] | _Getter) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    others: list[str] = []
    refusal = None
    for kind, value in _responses_output(r.get("output")):
        if kind == "text":
            texts.append(value or "")
        elif kind == "tool":
            calls.append(value)
        elif kind == "refusal":
            refusal = value
        else:
            others.append(value)
    status = r.get("status")
    incomplete = r.get("incomplete_details")
    if status == "incomplete":
        finish = fields_of(incomplete).get("reason") if incomplete is not None else "incomplete"
    elif status in ("failed", "cancelled"):
        finish = status
    else:
        finish = "tool_calls" if calls else "stop"
    response: dict[str, Any] = {
        "id": r.get("id"),
        "model": r.get("model"),
        "status": status,
        "output_text": "".join(texts) if texts else None,
        "finish_reason": finish,
        "tool_calls": calls or None,
    }
    if refusal:
        response["refusal"] = refusal
    if others:
        response["output_types"] = others
    return response


def _embeddings_fields(r: Mapping[str, Any] | _Getter) -> dict[str, Any]:
    data = r.get("data") or []
    first = fields_of(data[0]).get("embedding") if data else None
    if isinstance(first, list | tuple):
        dimensions: int | None = len(first)
    elif isinstance(first, str):
        dimensions = _base64_floats(first)
    else:
        dimensions = None
    return {"model": r.get("model"), "embeddings": len(data), "dimensions": dimensions}


def _base64_floats(text: str) -> int | None:
    """How many float32 a base64 vector holds (the SDK's default encoding), from its length."""
    stripped = text.rstrip("=")
    size = len(stripped) * 3 // 4
    return size // 4 if size % 4 == 0 else None


def result_of(api: str, result: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The ``response`` and ``usage`` parts of a record for a finished (non-streamed) call."""
    fields = fields_of(result)
    usage = usage_of(fields.get("usage"))
    if api == API_CHAT:
        return _chat_fields(fields), usage
    if api == API_EMBEDDINGS:
        return _embeddings_fields(fields), usage
    return _responses_fields(fields), usage


def describe_error(exc: BaseException) -> dict[str, Any]:
    """The ``error`` part of a record: type, message, HTTP status and request ID."""
    error: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": str(exc),
        "status_code": getattr(exc, "status_code", None),
        "request_id": getattr(exc, "request_id", None),
    }
    code = getattr(exc, "code", None)
    if code is not None:
        error["code"] = code
    return error
