"""The prompt audit: one ``llm_call`` record for every OpenAI call.

`audit_llm` decorates a create call (or a wrapper of the same shape);
`instrument_openai` wraps the create methods of one client and also lists
every HTTP attempt. Both write through the same record path as every log
record, into the current session's ``prompts.jsonl``. The audit never changes
what the caller gets back: the same result, the same chunks, the same
exception object.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar, overload

from ..core import context as _context
from ..core import tracing as _tracing
from ..core.render import as_written
from .call import ACTIVE, Call, last_outside_session, note_failure
from .record import (
    API_CHAT,
    API_EMBEDDINGS,
    API_RESPONSES,
    ITERABLE_KWARGS,
    RAW_HEADER,
    guess_api,
    is_given,
    request_of,
    result_of,
)

__all__ = ["audit_llm", "instrument_openai", "last_call", "uninstrument_openai"]

F = TypeVar("F", bound=Callable[..., Any])

_APIS: Final = (API_CHAT, API_RESPONSES, API_EMBEDDINGS)
#: (resource path on the client, method, API) for every method `instrument_openai` wraps.
_METHODS: Final = (
    (("chat", "completions"), "create", API_CHAT),
    (("chat", "completions"), "parse", API_CHAT),
    (("responses",), "create", API_RESPONSES),
    (("responses",), "parse", API_RESPONSES),
    (("embeddings",), "create", API_EMBEDDINGS),
)
_MARK: Final = "__belog_audited__"
_PLAIN: Final = frozenset((list, tuple, str, dict))
#: Client methods that return a new client (sharing the httpx client) to instrument too.
_COPIES: Final = ("copy", "with_options")


@dataclass(frozen=True, slots=True)
class _Options:
    name: str | None
    capture_content: bool
    api: str | None
    #: Whether the wrapped function accepts ``stream_options`` (so usage may be asked for).
    stream_options_ok: bool


def _accepts_stream_options(fn: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.kind is p.VAR_KEYWORD or (p.name == "stream_options" and p.kind is not p.POSITIONAL_ONLY)
        for p in parameters
    )


def _raw_mode(headers: Any) -> str | None:
    """How the SDK was asked to return the response, from ``extra_headers``.

    ``"true"``: ``with_raw_response`` (the body is read; ``parse()`` gives the
    result); ``"stream"``/``"raw"``: ``with_streaming_response`` and kin (the
    body is the caller's to read); None: a plain call.
    """
    if not isinstance(headers, Mapping):
        return None
    for key, value in headers.items():
        if str(key).lower() == RAW_HEADER:
            return str(value).lower()
    return None


def _begin(options: _Options, kwargs: dict[str, Any]) -> tuple[Call | None, dict[str, Any], bool]:
    """Start a call: (the call or None, the kwargs to send, whether to hide the usage chunk)."""
    send = kwargs
    try:
        for key in ITERABLE_KWARGS:
            value = send.get(key)
            # A one-shot iterator is listed once, and the list is what the SDK gets.
            if (
                value is not None
                and type(value) not in _PLAIN
                and isinstance(value, Iterable)
                and not isinstance(value, str | bytes | list | tuple | Mapping)
            ):
                send = {**send, key: list(value)}
        stream = send.get("stream") is True
        raw = _raw_mode(send["extra_headers"]) if "extra_headers" in send else None
        if raw is not None and (raw != "true" or stream):
            # The body (or the stream) is the caller's to read: not audited.
            return None, send, False
        api = options.api or guess_api(send)
        request = request_of(send)
        hide = False
        if stream and api == API_CHAT and options.stream_options_ok:
            stream_options = send.get("stream_options")
            if stream_options is None or not is_given(stream_options):
                send = {**send, "stream_options": {"include_usage": True}}
                hide = True
            elif isinstance(stream_options, Mapping) and "include_usage" not in stream_options:
                send = {**send, "stream_options": {**stream_options, "include_usage": True}}
                hide = True
        call = Call(
            api=api,
            name=options.name,
            request=request,
            capture_content=options.capture_content,
            stream=stream,
        )
        call.raw = raw is not None
    except Exception as exc:  # noqa: BLE001 - the audit never breaks the caller
        note_failure("starting a call record", exc)
        return None, send, False
    return call, send, hide


def _complete(options: _Options, call: Call, hide: bool, result: Any) -> Any:
    """Record a returned result, or wrap a stream; return what the caller gets."""
    try:
        if call.stream:
            # Imported here: the stream classes subclass openai's, and importing
            # structlog_belog must not import openai.
            from .stream import AuditedAsyncStream, AuditedStream, aggregator_for

            if hasattr(result, "__aiter__"):
                return AuditedAsyncStream(result, aggregator_for(call, hide_usage=hide))
            if hasattr(result, "__next__"):
                return AuditedStream(result, aggregator_for(call, hide_usage=hide))
        # with_raw_response: the result is what parse() gives; the SDK keeps it,
        # so the caller's own parse() returns the same object.
        parsed = result.parse() if call.raw else result
        if options.api is None:
            call.api = guess_api(call.request, parsed)
        response, usage = result_of(call.api, parsed)
        call.finish("ok", response=response, usage=usage)
    except Exception as exc:  # noqa: BLE001 - the audit never breaks the caller
        note_failure("recording a result", exc)
    return result


def _fail(call: Call, exc: BaseException) -> None:
    call.finish("error" if isinstance(exc, Exception) else "incomplete", error=exc)


class _Calling:
    """The SDK's work on *call*: the call is ACTIVE (its attempts are listed) and
    its span, with a tracer, current (HTTP spans nest in it); an exception is
    recorded as the call's error and goes on unchanged."""

    __slots__ = ("call", "span", "token")

    def __init__(self, call: Call) -> None:
        self.call = call

    def __enter__(self) -> None:
        self.token = ACTIVE.set(self.call)
        self.span = _tracing.start_call(self.call)

    def __exit__(self, _: object, exc: BaseException | None, __: object) -> None:
        try:
            if exc is not None:
                _fail(self.call, exc)
        finally:
            if self.span is not None:
                self.span.end(None)
            ACTIVE.reset(self.token)


async def _awaited(options: _Options, call: Call, hide: bool, pending: Awaitable[Any]) -> Any:
    with _Calling(call):
        result = await pending
    return _complete(options, call, hide, result)


def _wrap_sync(fn: Callable[..., Any], options: _Options) -> Callable[..., Any]:
    @functools.wraps(fn)
    def audited(*args: Any, **kwargs: Any) -> Any:
        if ACTIVE.get() is not None:  # an audited call already records this one
            return fn(*args, **kwargs)
        call, send, hide = _begin(options, kwargs)
        if call is None:
            return fn(*args, **send)
        with _Calling(call):
            result = fn(*args, **send)
        if inspect.isawaitable(result) and not hasattr(result, "__aiter__"):
            # An async create reached through a plain function: audit when awaited.
            return _awaited(options, call, hide, result)
        return _complete(options, call, hide, result)

    return audited


def _wrap_async(fn: Callable[..., Awaitable[Any]], options: _Options) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def audited(*args: Any, **kwargs: Any) -> Any:
        if ACTIVE.get() is not None:  # an audited call already records this one
            return await fn(*args, **kwargs)
        call, send, hide = _begin(options, kwargs)
        if call is None:
            return await fn(*args, **send)
        return await _awaited(options, call, hide, fn(*args, **send))

    return audited


def _wrap(
    fn: Callable[..., Any], options: _Options, *, async_: bool | None = None
) -> Callable[..., Any]:
    is_async = inspect.iscoroutinefunction(fn) if async_ is None else async_
    wrapped = _wrap_async(fn, options) if is_async else _wrap_sync(fn, options)
    setattr(wrapped, _MARK, True)
    return wrapped


@overload
def audit_llm(fn: F, /) -> F: ...


@overload
def audit_llm(
    *, name: str | None = None, capture_content: bool = True, api: str | None = None
) -> Callable[[F], F]: ...


def audit_llm(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    capture_content: bool = True,
    api: str | None = None,
) -> Any:
    """Audit every call of *fn*: one ``llm_call`` record per call.

    *fn* takes the keyword arguments of an OpenAI create call and returns what
    the SDK returns: ``client.chat.completions.create``, ``client.responses.create``,
    ``client.embeddings.create``, their ``parse`` forms and ``AsyncOpenAI``
    versions, or your own wrapper of that shape. Streams (``stream=True``) are
    returned wrapped: the same chunks, recorded when the stream ends. Exceptions
    are recorded and re-raised unchanged.

    Use bare (``@audit_llm``) or with options (``@audit_llm(name="summarise")``).

    Args:
        fn: The function to audit.
        name: A name for the call in the records (default: *fn*'s qualified name).
        capture_content: Record prompts and answers (the default). ``False``
            records only each message's length and SHA-256.
        api: ``"chat.completions"``, ``"responses"`` or ``"embeddings"``; by
            default guessed from the arguments and the result.

    Raises:
        TypeError: If *fn* is not callable or *capture_content* is not a bool.
        ValueError: If *api* is not one of the three APIs.
    """
    if not isinstance(capture_content, bool):
        msg = f"capture_content must be a bool, got {capture_content!r}"
        raise TypeError(msg)
    if api is not None and api not in _APIS:
        msg = f"api must be one of {_APIS!r} or None, got {api!r}"
        raise ValueError(msg)

    def decorate(target: F) -> F:
        if not callable(target):
            msg = f"audit_llm decorates a callable, got {target!r}"
            raise TypeError(msg)
        options = _Options(
            name=name if name is not None else getattr(target, "__qualname__", None),
            capture_content=capture_content,
            api=api,
            stream_options_ok=_accepts_stream_options(target),
        )
        return _wrap(target, options)  # type: ignore[return-value]

    if fn is None:
        return decorate
    return decorate(fn)


def _resource(client: Any, path: tuple[str, ...]) -> Any:
    target = client
    for part in path:
        target = getattr(target, part, None)
        if target is None:
            return None
    return target


def instrument_openai(client: Any, *, capture_content: bool = True) -> Any:
    """Audit every create call made through *client*, and each HTTP attempt of it.

    Wraps ``chat.completions.create``/``parse``, ``responses.create``/``parse``
    and ``embeddings.create`` on this one ``openai.OpenAI`` or ``AsyncOpenAI``
    client (other clients are untouched), and adds httpx event hooks that list
    every attempt — the SDK's retries included — in the call's ``attempts``.
    Instrumenting a client twice changes nothing. Returns *client*.

    Args:
        client: An ``openai.OpenAI`` or ``openai.AsyncOpenAI`` client.
        capture_content: As for `audit_llm`.

    Raises:
        TypeError: If *client* has none of those methods.
    """
    from .attempts import install

    if not isinstance(capture_content, bool):
        msg = f"capture_content must be a bool, got {capture_content!r}"
        raise TypeError(msg)
    is_async = type(client).__name__.startswith("Async")
    found = False
    for path, method_name, api in _METHODS:
        resource = _resource(client, path)
        method = getattr(resource, method_name, None) if resource is not None else None
        if method is None:
            continue
        found = True
        if getattr(method, _MARK, False):
            continue
        options = _Options(
            name=".".join((*path, method_name)),
            capture_content=capture_content,
            api=api,
            stream_options_ok=True,
        )
        setattr(resource, method_name, _wrap(method, options, async_=is_async))
    if not found:
        msg = f"instrument_openai expects an openai.OpenAI or AsyncOpenAI client, got {client!r}"
        raise TypeError(msg)
    install(client)
    for method_name in _COPIES:
        copy = getattr(client, method_name, None)
        if copy is not None and not getattr(copy, _MARK, False):
            setattr(client, method_name, _instrumenting_copy(copy, capture_content))
    return client


def _instrumenting_copy(copy: Callable[..., Any], capture_content: bool) -> Callable[..., Any]:
    """``client.with_options(...)`` returns a new client: instrument it like its parent."""

    @functools.wraps(copy)
    def instrumented_copy(*args: Any, **kwargs: Any) -> Any:
        return instrument_openai(copy(*args, **kwargs), capture_content=capture_content)

    setattr(instrumented_copy, _MARK, True)
    return instrumented_copy


def uninstrument_openai(client: Any) -> Any:
    """Undo `instrument_openai` on *client* (a client never instrumented is left as is)."""
    from .attempts import uninstall

    for path, method_name, _ in _METHODS:
        resource = _resource(client, path)
        if resource is None:
            continue
        method = vars(resource).get(method_name)
        if method is not None and getattr(method, _MARK, False):
            delattr(resource, method_name)
    for method_name in _COPIES:
        if getattr(vars(client).get(method_name), _MARK, False):
            delattr(client, method_name)
    uninstall(client)
    return client


def last_call() -> Mapping[str, Any] | None:
    """Return the most recent ``llm_call`` record of the current context, or None.

    Inside a session: the innermost of task, stage and session that made a
    call. Outside any session: the last call made outside sessions. The
    record is a new plain dict each time, as it was written (read back from
    its JSON): changing it changes nothing else, and logging it has it
    scanned for secrets like any other value.
    """
    run = _context.current_session()
    if run is None:
        record = last_outside_session()
        return None if record is None else as_written(record)
    get = getattr(run, "last_call", None)
    return get() if callable(get) else None
