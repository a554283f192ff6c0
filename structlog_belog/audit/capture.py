"""Request-level capture: every OpenAI API request of an instrumented client.

Every resource method of the openai SDK — ``create``, ``parse``, the
``stream`` helpers, their ``beta`` twins, ``with_raw_response`` and
``with_streaming_response`` — and a bare ``client.post(...)`` end in one
method: the base client's ``request`` (``SyncAPIClient.request`` and
``AsyncAPIClient.request`` in ``openai._base_client``), which sends the HTTP
attempts (``_send_request``, once per attempt, retries included) and turns the
last answer into what the caller gets. `install` replaces those two methods on
the two base classes, once for the process, so clients that exist and clients
made later (inside litellm, LangChain, instructor, openai-agents) are all
covered; `uninstall` puts the SDK's own methods back.

A request is audited when it is a ``POST`` to ``chat/completions``,
``responses`` or ``embeddings`` and its client is instrumented: the whole
process (`instrument_process`) or that client (`instrument_client`). A request
made inside an audited call (`audit_llm` on top) is that call's, not a second
one. What the caller gets back is what the SDK returned, with two exceptions
that change nothing it can see: a stream is wrapped (`AuditedStream`, an
``openai.Stream`` subclass handing on the same chunks) and a body the caller
reads itself has its reads observed (`body`).
"""

from __future__ import annotations

import copy
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from .body import observe_body, record_body
from .call import ACTIVE, Call, Calling, note_failure
from .record import (
    API_CHAT,
    API_EMBEDDINGS,
    API_RESPONSES,
    RAW_HEADER,
    jsonable,
    request_of,
    result_of,
)
from .stream import AuditedAsyncStream, AuditedStream, aggregator_for

__all__ = [
    "Settings",
    "install",
    "instrument_client",
    "instrument_process",
    "is_instrumented",
    "uninstall",
    "uninstrument_client",
    "uninstrument_process",
]


@dataclass(frozen=True, slots=True)
class Settings:
    """How an instrumented client (or the whole process) records its calls."""

    capture_content: bool = True


#: The attribute, in an instrumented client's ``__dict__``, holding its `Settings`.
MARK: Final = "_belog_capture"
#: Client methods that return a new client (sharing the httpx client) to instrument too.
_COPIES: Final = ("copy", "with_options")
_COPY_MARK: Final = "__belog_instrumenting_copy__"
#: The request paths audited, by their last part(s), and the API each one is.
_ENDPOINTS: Final = (
    ("chat/completions", API_CHAT),
    ("responses", API_RESPONSES),
    ("embeddings", API_EMBEDDINGS),
)
#: The exact paths the SDK's resource methods use (looked up before any suffix test).
_PATHS: Final = {f"/{path}": api for path, api in _ENDPOINTS}
_HELPER_HEADER: Final = "x-stainless-helper-method"
#: Headers the SDK adds for its own bookkeeping: not the caller's, so not in the record.
_SDK_HEADER_PREFIXES: Final = ("x-stainless-", "____stainless")

_perf_counter: Final = time.perf_counter
_lock = threading.Lock()
#: The process-wide settings, or None when the process is not instrumented.
_process: Settings | None = None
#: Whether `configure()` (rather than the application) turned the process-wide audit on.
_by_config = False
#: Clients instrumented one by one (weakly: instrumenting never keeps a client alive).
_clients: weakref.WeakSet[Any] = weakref.WeakSet()
#: (class, method name) -> the SDK's own method, while installed.
_originals: dict[tuple[type, str], Any] = {}


def _settings_of(client: Any) -> Settings | None:
    """The settings a request of *client* is recorded with, or None (not instrumented)."""
    own = client.__dict__.get(MARK)
    return own if own is not None else _process


def _api_of(options: Any) -> str | None:
    """The API a request goes to, or None when it is not one the audit records."""
    method = options.method
    if method != "post" and method.lower() != "post":
        return None
    url = options.url
    if type(url) is not str:
        url = str(url)
    api = _PATHS.get(url)
    if api is not None:
        return api
    path = url.split("?", 1)[0].rstrip("/")
    for suffix, api in _ENDPOINTS:
        if path == suffix or path.endswith("/" + suffix):
            return api
    return None


def _headers(options: Any) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """(the caller's own headers, the raw-response mode, the SDK helper's name)."""
    given = options.headers
    if not given or not isinstance(given, Mapping):
        return None, None, None
    own: dict[str, Any] = {}
    raw = helper = None
    for key, value in given.items():
        name = str(key).lower()
        if name == RAW_HEADER:
            raw = str(value).lower()
        elif name == _HELPER_HEADER:
            helper = str(value)
        elif not name.startswith(_SDK_HEADER_PREFIXES):
            own[key] = value
    return own or None, raw, helper


def _given(value: Any) -> bool:
    return value is not None and not type(value).__name__.startswith(("NotGiven", "Omit"))


def _is_http_response_type(cast_to: Any) -> bool:
    """Whether the SDK returns the HTTP response itself (``cast_to=httpx.Response``)."""
    return isinstance(cast_to, type) and cast_to.__module__.partition(".")[0] in ("httpx", "httpx2")


def _begin(
    settings: Settings, api: str, options: Any, stream: bool, cast_to: Any
) -> tuple[Call, Any, bool] | None:
    """Start recording a request: (the call, the options to send, whether to hide usage)."""
    try:
        body = options.json_data
        if type(body) is not dict:
            body = dict(body) if isinstance(body, Mapping) else {}
        request = request_of(body)
        headers, raw, helper = _headers(options)
        if headers:
            request["headers"] = jsonable(headers)
        extra = options.extra_json
        if extra:
            request["extra_body"] = jsonable(extra)
        stream = stream or body.get("stream") is True
        if helper is not None:
            name = helper
        elif api != API_EMBEDDINGS and _given(options.post_parser):
            name = f"{api}.parse"
        else:
            name = f"{api}.create"
        send = options
        hide = False
        if stream and api == API_CHAT and raw is None and not _is_http_response_type(cast_to):
            # Ask for the usage chunk (and keep it from the caller) unless asked already;
            # only where the caller gets the SDK's stream, from which the audit can hide it.
            asked = body.get("stream_options")
            if not isinstance(asked, Mapping) or "include_usage" not in asked:
                send = copy.copy(options)
                shown = dict(asked) if isinstance(asked, Mapping) else {}
                send.json_data = {**body, "stream_options": {**shown, "include_usage": True}}
                hide = True
        call = Call(
            api=api,
            name=name,
            request=request,
            capture_content=settings.capture_content,
            stream=stream,
        )
        call.raw = raw is not None
    except Exception as exc:  # noqa: BLE001 - the audit never breaks the caller
        note_failure("starting a call record", exc)
        return None
    return call, send, hide


def _complete(call: Call, hide: bool, result: Any, async_: bool) -> Any:
    """Record a returned result, or arrange to record it once read; return *result*."""
    try:
        if isinstance(result, _MODELS):  # the common case: the SDK parsed the answer
            response, usage = result_of(call.api, result)
            call.finish("ok", response=response, usage=usage)
            return result
        if isinstance(result, _STREAMS):
            aggregator = aggregator_for(call, hide_usage=hide)
            if async_:
                return AuditedAsyncStream(result, aggregator)
            return AuditedStream(result, aggregator)
        http = getattr(result, "http_response", None) if isinstance(result, _WRAPPERS) else None
        if http is None and hasattr(result, "iter_bytes") and hasattr(result, "status_code"):
            http = result  # cast_to=httpx.Response: the SDK's raw answer itself
        if http is not None:
            try:
                content = http.content
            except Exception:  # noqa: BLE001 - not read yet: the caller reads it
                observe_body(call, http, async_=async_)
            else:
                record_body(call, http, content)
            return result
        response, usage = result_of(call.api, result)
        call.finish("ok", response=response, usage=usage)
    except Exception as exc:  # noqa: BLE001 - the audit never breaks the caller
        note_failure("recording a result", exc)
    return result


def _sync_request(original: Any) -> Any:
    def request(self: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
        settings = self.__dict__.get(MARK) or _process
        if settings is None or ACTIVE.get() is not None:
            return original(self, cast_to, options, *args, **kwargs)
        api = _api_of(options)
        begun = (
            None
            if api is None
            else _begin(settings, api, options, kwargs.get("stream") is True, cast_to)
        )
        if begun is None:
            return original(self, cast_to, options, *args, **kwargs)
        call, send, hide = begun
        with Calling(call):
            result = original(self, cast_to, send, *args, **kwargs)
        return _complete(call, hide, result, async_=False)

    request.__wrapped__ = original  # type: ignore[attr-defined]
    return request


def _async_request(original: Any) -> Any:
    async def request(self: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
        settings = self.__dict__.get(MARK) or _process
        if settings is None or ACTIVE.get() is not None:
            return await original(self, cast_to, options, *args, **kwargs)
        api = _api_of(options)
        begun = (
            None
            if api is None
            else _begin(settings, api, options, kwargs.get("stream") is True, cast_to)
        )
        if begun is None:
            return await original(self, cast_to, options, *args, **kwargs)
        call, send, hide = begun
        with Calling(call):
            result = await original(self, cast_to, send, *args, **kwargs)
        return _complete(call, hide, result, async_=True)

    request.__wrapped__ = original  # type: ignore[attr-defined]
    return request


def _sync_send(original: Any) -> Any:
    """Each HTTP attempt of the audited call in progress: when sent, when answered, the answer.

    Only for instrumented clients: `audit_llm` alone lists no attempts (null).
    """

    def _send_request(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        call = ACTIVE.get()
        if call is None or (MARK not in self.__dict__ and _process is None):
            return original(self, request, *args, **kwargs)
        attempt: list[Any] = [_perf_counter()]
        call.attempts.append(attempt)
        response = original(self, request, *args, **kwargs)
        attempt += (_perf_counter(), response)
        return response

    _send_request.__wrapped__ = original  # type: ignore[attr-defined]
    return _send_request


def _async_send(original: Any) -> Any:
    async def _send_request(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        call = ACTIVE.get()
        if call is None or (MARK not in self.__dict__ and _process is None):
            return await original(self, request, *args, **kwargs)
        attempt: list[Any] = [_perf_counter()]
        call.attempts.append(attempt)
        response = await original(self, request, *args, **kwargs)
        attempt += (_perf_counter(), response)
        return response

    _send_request.__wrapped__ = original  # type: ignore[attr-defined]
    return _send_request


def _sdk() -> Any:
    try:
        from openai import _base_client
    except ImportError as exc:
        msg = "instrument_openai requires openai: pip install 'structlog-belog[openai]'"
        raise ModuleNotFoundError(msg, name="openai") from exc
    return _base_client


def install() -> None:
    """Put the audit's ``request`` and ``_send_request`` on the SDK's base clients (once)."""
    global _MODELS, _STREAMS, _WRAPPERS  # noqa: PLW0603 - the SDK's classes, read once
    base = _sdk()
    from openai import AsyncStream, BaseModel, Stream
    from openai._legacy_response import LegacyAPIResponse
    from openai._response import BaseAPIResponse

    with _lock:
        _MODELS = (BaseModel,)
        _STREAMS = (Stream, AsyncStream)
        _WRAPPERS = (BaseAPIResponse, LegacyAPIResponse)
        for cls, wrap_request, wrap_send in (
            (base.SyncAPIClient, _sync_request, _sync_send),
            (base.AsyncAPIClient, _async_request, _async_send),
        ):
            if (cls, "request") in _originals:
                continue
            original = cls.__dict__["request"]
            _originals[cls, "request"] = original
            cls.request = wrap_request(original)
            # An SDK without _send_request still has its calls recorded, with no attempts.
            send = cls.__dict__.get("_send_request")
            if send is not None:
                _originals[cls, "_send_request"] = send
                cls._send_request = wrap_send(send)


def uninstall() -> None:
    """Give the SDK back its own methods (nothing recorded from then on)."""
    with _lock:
        for (cls, name), original in list(_originals.items()):
            setattr(cls, name, original)
            del _originals[cls, name]


def is_installed() -> bool:
    """Whether the audit's methods are on the SDK's base clients."""
    return bool(_originals)


def instrument_process(*, capture_content: bool = True) -> None:
    """Record every request of every client of the process, existing and future."""
    global _process, _by_config  # noqa: PLW0603 - one setting for the process
    install()
    _process = Settings(capture_content=capture_content)
    _by_config = False  # the application's own call: configure() leaves it alone


def uninstrument_process() -> None:
    """Stop recording the process's clients (clients instrumented one by one go on)."""
    global _process, _by_config  # noqa: PLW0603 - one setting for the process
    _process = None
    _by_config = False
    _maybe_uninstall()


def configure_process(on: bool) -> None:
    """`configure(instrument_openai=...)`: on, or off again if configure() turned it on."""
    global _by_config  # noqa: PLW0603 - one setting for the process
    if on:
        if _process is None:
            instrument_process()
            _by_config = True
    elif _by_config:
        uninstrument_process()


def _is_client(client: Any) -> bool:
    base = _sdk()
    return isinstance(client, base.SyncAPIClient | base.AsyncAPIClient)


def instrument_client(client: Any, *, capture_content: bool = True) -> Any:
    """Record every request of *client* (and of the copies it makes); return *client*."""
    if not _is_client(client):
        msg = f"instrument_openai expects an openai.OpenAI or AsyncOpenAI client, got {client!r}"
        raise TypeError(msg)
    install()
    client.__dict__[MARK] = Settings(capture_content=capture_content)
    _clients.add(client)
    for method_name in _COPIES:
        copy_ = getattr(client, method_name, None)
        if copy_ is not None and not getattr(copy_, _COPY_MARK, False):
            setattr(client, method_name, _instrumenting_copy(copy_, capture_content))
    return client


def _instrumenting_copy(copy_: Any, capture_content: bool) -> Any:
    """``client.with_options(...)`` returns a new client: instrument it like its parent."""

    def instrumented_copy(*args: Any, **kwargs: Any) -> Any:
        return instrument_client(copy_(*args, **kwargs), capture_content=capture_content)

    instrumented_copy.__wrapped__ = copy_  # type: ignore[attr-defined]
    instrumented_copy.__doc__ = getattr(copy_, "__doc__", None)
    setattr(instrumented_copy, _COPY_MARK, True)
    return instrumented_copy


def uninstrument_client(client: Any) -> Any:
    """Stop recording *client*'s own requests (the process-wide setting still applies)."""
    attributes = getattr(client, "__dict__", {})
    attributes.pop(MARK, None)
    for method_name in _COPIES:
        if getattr(attributes.get(method_name), _COPY_MARK, False):
            del attributes[method_name]
    _clients.discard(client)
    _maybe_uninstall()
    return client


def _maybe_uninstall() -> None:
    if _process is None and not len(_clients):
        uninstall()


def is_instrumented(client: Any = None) -> bool:
    """Whether *client*'s requests (or, with None, every client's) are recorded."""
    if not _originals:
        return False
    if client is None:
        return _process is not None
    return _settings_of(client) is not None


_MODELS: tuple[type, ...] = ()
_STREAMS: tuple[type, ...] = ()
_WRAPPERS: tuple[type, ...] = ()
