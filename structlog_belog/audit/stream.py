"""Audited streams: the caller sees its chunks, the audit sees them too.

`AuditedStream` and `AuditedAsyncStream` wrap the SDK's ``Stream`` and
``AsyncStream`` (they are subclasses, so ``isinstance`` checks keep working):
iteration, ``next()``, ``close()`` and use as a context manager behave as the
wrapped stream does. Each chunk is fed to an aggregator that collects the
answer, tool calls and usage; the usage-only chunk the audit asked for is kept
from the caller. When the stream ends — exhausted, failed, closed early or
dropped — the call's one record is written.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import Any

from .call import Call, note_failure
from .record import (
    API_CHAT,
    field,
    fields_of,
    responses_response,
    tool_call_of,
    usage_of,
)
from .usage_cut import cut_usage

__all__ = ["AuditedAsyncStream", "AuditedStream", "ChatAggregator", "ResponsesAggregator"]


class _Fields:
    """Attribute access to what `fields_of` reads (a dict, or another shape); None if absent."""

    __slots__ = ("_fields",)

    def __init__(self, obj: Any) -> None:
        self._fields = fields_of(obj)

    def __getattr__(self, name: str) -> Any:
        return self._fields.get(name)


class ChatAggregator:
    """Collects a ``chat.completions`` stream: text, tool calls, finish reasons, usage."""

    __slots__ = ("_choices", "call", "hide_usage", "id", "model", "usage")

    def __init__(self, call: Call, *, hide_usage: bool) -> None:
        self.call = call
        self.hide_usage = hide_usage
        self.id: str | None = None
        self.model: str | None = None
        self.usage: Any = None
        # index -> [text parts, finish reason, {tool index: [id, name, argument parts]}]
        self._choices: dict[int, list[Any]] = {}

    def feed(self, chunk: Any) -> bool:
        """Take one chunk in; return False if the caller must not see it."""
        # Called for every chunk, so written flat. An SDK object's fields are read
        # as attributes (the cheapest way in); a dict, or an object without them,
        # is read through `_Fields` (fields_of), at each level.
        try:
            choices = chunk.choices
            usage = chunk.usage
        except AttributeError:
            return self.feed(_Fields(chunk))
        if self.id is None:
            self.id = getattr(chunk, "id", None)
            self.model = getattr(chunk, "model", None)
        if usage is not None:
            self.usage = usage
            if self.hide_usage and not choices:
                return False
        elif self.hide_usage:
            # Unasked-for include_usage puts "usage": null in every chunk; unmark it so
            # the chunk's to_dict()/model_dump(exclude_unset=True) match an unaudited run.
            fields_set = getattr(chunk, "__pydantic_fields_set__", None)
            if fields_set is not None:
                fields_set.discard("usage")
        if not choices:
            return True
        for choice in choices:
            try:
                index = choice.index or 0
                delta = choice.delta
                reason = choice.finish_reason
            except AttributeError:
                choice = _Fields(choice)  # noqa: PLW2901 - the same choice, read otherwise
                index, delta, reason = choice.index or 0, choice.delta, choice.finish_reason
            state = self._choices.get(index)
            if state is None:
                state = self._choices[index] = [[], None, {}]
            if delta is not None:
                try:
                    content = delta.content
                    calls = delta.tool_calls
                except AttributeError:
                    delta = _Fields(delta)
                    content, calls = delta.content, delta.tool_calls
                if content:
                    state[0].append(content)
                    if self.call.first_token is None:
                        self.call.mark_first_token()
                if calls:
                    self._feed_tool_calls(state[2], calls)
            if reason:
                state[1] = reason
        return True

    def _feed_tool_calls(self, slots: dict[int, list[Any]], calls: Any) -> None:
        """Take a delta's tool call parts in (*slots*: tool index -> [id, name, argument parts])."""
        self.call.mark_first_token()  # the first only: it keeps its first time
        for call in calls:
            t = fields_of(call)
            slot = slots.setdefault(t.get("index") or 0, [None, None, []])
            function = t.get("function")
            slot[0] = slot[0] or t.get("id")
            if function is not None:
                f = fields_of(function)
                slot[1] = slot[1] or f.get("name")
                arguments = f.get("arguments")
                if arguments:
                    slot[2].append(arguments)

    @property
    def finished(self) -> bool:
        """Whether every choice reported a finish reason (the answer arrived whole)."""
        return bool(self._choices) and all(s[1] for s in self._choices.values())

    @property
    def usage_pending(self) -> bool:
        """The answer is whole but its usage chunk, which follows, was not read yet."""
        return self.usage is None and self.finished

    def response(self) -> dict[str, Any]:
        """The ``response`` part of the record, from what arrived."""
        outputs = []
        for index in sorted(self._choices):
            parts, reason, calls = self._choices[index]
            tool_calls = [
                tool_call_of(
                    {"id": c[0], "type": "function", "name": c[1], "arguments": "".join(c[2])}
                )
                for _, c in sorted(calls.items())
            ]
            outputs.append(
                {
                    "index": index,
                    "output_text": "".join(parts) if parts else None,
                    "finish_reason": reason,
                    "tool_calls": tool_calls or None,
                }
            )
        response: dict[str, Any] = {"id": self.id, "model": self.model}
        if outputs:
            first = dict(outputs[0])
            del first["index"]
            response.update(first)
        else:
            response.update(output_text=None, finish_reason=None, tool_calls=None)
        if len(outputs) > 1:
            response["choices"] = outputs
        return response

    def finish(self, status: str, error: BaseException | None = None) -> None:
        """Write the record (never raises)."""
        try:
            if status == "incomplete" and self.finished:
                status = "ok"  # the caller stopped after the last chunk it cared about
            self.call.finish(
                status, response=self.response(), usage=usage_of(self.usage), error=error
            )
        except Exception as exc:  # noqa: BLE001 - the audit never breaks the caller
            note_failure("finishing a stream", exc)


class ResponsesAggregator:
    """Collects a ``responses`` stream: text deltas, and the final response when it comes."""

    __slots__ = ("call", "final", "hide_usage", "id", "model", "parts")

    _FINAL = frozenset(("response.completed", "response.incomplete", "response.failed"))

    def __init__(self, call: Call, *, hide_usage: bool = False) -> None:
        self.call = call
        self.hide_usage = hide_usage
        self.id: str | None = None
        self.model: str | None = None
        self.parts: list[str] = []
        self.final: Any = None

    def feed(self, event: Any) -> bool:
        """Take one event in; always shown to the caller."""
        kind = field(event, "type")
        if kind == "response.output_text.delta":
            self.parts.append(field(event, "delta") or "")
            self.call.mark_first_token()
        elif kind == "response.function_call_arguments.delta":
            self.call.mark_first_token()
        elif kind == "response.created":
            response = field(event, "response")
            self.id = field(response, "id")
            self.model = field(response, "model")
        elif kind in self._FINAL:
            self.final = field(event, "response")
        return True

    @property
    def finished(self) -> bool:
        """Whether the final response event arrived."""
        return self.final is not None

    #: A Responses stream's usage comes with its final event: nothing to read after it.
    usage_pending = False

    def finish(self, status: str, error: BaseException | None = None) -> None:
        """Write the record (never raises)."""
        try:
            if self.final is not None:
                response = responses_response(self.final)
                usage = usage_of(field(self.final, "usage"))
                if status == "incomplete":
                    status = "ok"
                if response.get("status") == "failed" and status == "ok":
                    status = "error"
            else:
                response = {
                    "id": self.id,
                    "model": self.model,
                    "output_text": "".join(self.parts) if self.parts else None,
                    "finish_reason": None,
                    "tool_calls": None,
                }
                usage = None
            self.call.finish(status, response=response, usage=usage, error=error)
        except Exception as exc:  # noqa: BLE001 - the audit never breaks the caller
            note_failure("finishing a stream", exc)


Aggregator = ChatAggregator | ResponsesAggregator


def aggregator_for(call: Call, *, hide_usage: bool) -> Aggregator:
    """The aggregator for the call's API."""
    if call.api == API_CHAT:
        return ChatAggregator(call, hide_usage=hide_usage)
    return ResponsesAggregator(call)


def _cut_usage(inner: Any, aggregator: Aggregator, async_: bool) -> None:
    """Cut what the audit's include_usage adds from *inner*'s bytes (`usage_cut`), if it asked."""
    if isinstance(aggregator, ChatAggregator) and aggregator.hide_usage:
        cut_usage(inner, aggregator, async_=async_)


def _chunks(inner: Any, *, async_: bool) -> Any:
    """What to iterate for *inner*'s chunks.

    The SDK's ``Stream.__iter__`` (``__aiter__``) only re-yields what its
    ``_iterator`` yields: the audit reads that generator itself, one
    generator step less per chunk than the caller's own loop would take.
    Anything else (a subclass that iterates otherwise, a wrapper's
    generator) is iterated as it is.
    """
    base = _ASYNC_BASE if async_ else _SYNC_BASE
    own = getattr(inner, "__dict__", None)
    if base is not object and type(own) is dict and isinstance(inner, base):
        method = "__aiter__" if async_ else "__iter__"
        source = own.get("_iterator")
        kind = AsyncGenerator if async_ else Generator
        if getattr(type(inner), method) is getattr(base, method) and isinstance(source, kind):
            return source
    return inner


def _abandoned(aggregator: Aggregator) -> None:
    aggregator.finish("incomplete")


def _stream_base(async_: bool) -> type:
    try:
        import openai
    except ImportError:  # pragma: no cover - a user wrapper without the SDK installed
        return object
    return openai.AsyncStream if async_ else openai.Stream


#: The SDK's ``Stream`` and ``AsyncStream`` (``object`` without the SDK).
_SYNC_BASE: Any = _stream_base(async_=False)
_ASYNC_BASE: Any = _stream_base(async_=True)


class AuditedStream(_SYNC_BASE):  # type: ignore[misc]
    """A sync SDK stream whose chunks are audited as the caller reads them."""

    def __init__(self, inner: Any, aggregator: Aggregator) -> None:
        # Deliberately not calling Stream.__init__: this object delegates to *inner*.
        self._inner = inner
        self._aggregator = aggregator
        self.response = getattr(inner, "response", None)
        _cut_usage(inner, aggregator, async_=False)
        self._iterator: Generator[Any, None, None] = self._audited()
        self._closing = False
        weakref.finalize(self, _abandoned, aggregator)
        if callable(getattr(self.response, "close", None)):
            self._watch_response(self.response)

    def _watch_response(self, response: Any) -> None:
        """Record the call as soon as its HTTP response is closed before the stream ends.

        The SDK's helpers (``chat.completions.stream``, ``responses.stream``)
        close the response, not the stream they read, when the caller leaves
        their ``with`` block early or calls their ``close()``: the record is
        written then, not when the abandoned stream is collected. Replaced on
        this one response object; a close from inside the stream's own
        iteration (its end) is left to the stream.
        """
        original = response.close
        # Weakly: the response must not keep a dropped stream from being collected.
        ref = weakref.ref(self)

        def close() -> None:
            stream = ref()
            if stream is None or stream._closing or getattr(stream._iterator, "gi_running", False):
                original()
                return
            stream._closing = True  # the drain below may reach the end, which closes it
            try:
                if not stream._aggregator.call.done:
                    stream._drain()
                original()
            finally:
                stream._aggregator.finish("incomplete")

        response.close = close

    def __repr__(self) -> str:
        return f"AuditedStream({self._inner!r})"

    def _audited(self) -> Generator[Any, None, None]:
        aggregator = self._aggregator
        feed = aggregator.feed
        try:
            for chunk in _chunks(self._inner, async_=False):
                if feed(chunk):
                    yield chunk
        except GeneratorExit:
            self._drain()
            aggregator.finish("incomplete")
            raise
        except Exception as exc:
            aggregator.finish("error", exc)
            raise
        except BaseException as exc:
            aggregator.finish("incomplete", exc)
            raise
        aggregator.finish("ok")

    def _drain(self) -> None:
        """After the last content chunk, read the usage chunk the audit asked for."""
        aggregator = self._aggregator
        if not aggregator.usage_pending:
            return
        try:
            for chunk in self._inner:
                aggregator.feed(chunk)
        except Exception:  # noqa: BLE001, S110 - the usage is a bonus; its absence is recorded
            pass

    def __next__(self) -> Any:
        return self._iterator.__next__()

    def __iter__(self) -> Iterator[Any]:
        return self._iterator

    def __enter__(self) -> AuditedStream:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the stream; a stream closed before its end is recorded as incomplete."""
        try:
            self._iterator.close()
        finally:
            close = getattr(self._inner, "close", None)
            if close is not None:
                close()
            self._aggregator.finish("incomplete")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_inner"], name)


class AuditedAsyncStream(_ASYNC_BASE):  # type: ignore[misc]
    """An async SDK stream whose chunks are audited as the caller reads them."""

    def __init__(self, inner: Any, aggregator: Aggregator) -> None:
        # Deliberately not calling AsyncStream.__init__: this object delegates to *inner*.
        self._inner = inner
        self._aggregator = aggregator
        self.response = getattr(inner, "response", None)
        _cut_usage(inner, aggregator, async_=True)
        self._iterator: AsyncGenerator[Any, None] = self._audited()
        self._closing = False
        weakref.finalize(self, _abandoned, aggregator)
        if callable(getattr(self.response, "aclose", None)):
            self._watch_response(self.response)

    def _watch_response(self, response: Any) -> None:
        """As `AuditedStream._watch_response`, for the response's ``aclose``."""
        original = response.aclose
        ref = weakref.ref(self)

        async def aclose() -> None:
            stream = ref()
            if stream is None or stream._closing or getattr(stream._iterator, "ag_running", False):
                await original()
                return
            stream._closing = True
            try:
                if not stream._aggregator.call.done:
                    await stream._drain()
                await original()
            finally:
                stream._aggregator.finish("incomplete")

        response.aclose = aclose

    def __repr__(self) -> str:
        return f"AuditedAsyncStream({self._inner!r})"

    async def _audited(self) -> AsyncGenerator[Any, None]:
        aggregator = self._aggregator
        feed = aggregator.feed
        try:
            async for chunk in _chunks(self._inner, async_=True):
                if feed(chunk):
                    yield chunk
        except GeneratorExit:
            aggregator.finish("incomplete")
            raise
        except Exception as exc:
            aggregator.finish("error", exc)
            raise
        except BaseException as exc:
            aggregator.finish("incomplete", exc)
            raise
        aggregator.finish("ok")

    async def _drain(self) -> None:
        aggregator = self._aggregator
        if not aggregator.usage_pending:
            return
        try:
            async for chunk in self._inner:
                aggregator.feed(chunk)
        except Exception:  # noqa: BLE001, S110 - the usage is a bonus; its absence is recorded
            pass

    async def __anext__(self) -> Any:
        return await self._iterator.__anext__()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterator

    async def __aenter__(self) -> AuditedAsyncStream:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the stream; a stream closed before its end is recorded as incomplete."""
        try:
            if not self._aggregator.call.done:
                await self._drain()
            await self._iterator.aclose()
        finally:
            # The SDK's AsyncStream has close(); a plain async generator has aclose().
            close = getattr(self._inner, "close", None) or getattr(self._inner, "aclose", None)
            if close is not None:
                await close()
            self._aggregator.finish("incomplete")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_inner"], name)
