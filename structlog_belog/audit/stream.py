"""Audited streams: the caller sees its chunks, the audit sees them too.

`AuditedStream` and `AuditedAsyncStream` wrap the SDK's ``Stream`` and
``AsyncStream`` (they are subclasses, so ``isinstance`` checks keep working):
iteration, ``next()``, ``close()`` and use as a context manager behave as the
wrapped stream does. Each chunk reaches an aggregator (`aggregate`) that
collects the answer, tool calls and usage: as the SDK parses it, for a chat
stream that could be tapped (`data_tap`), else as the chunk the caller gets.
The usage-only chunk the audit asked for is kept from the caller. When the
stream ends — exhausted, failed, closed early or dropped — the call's one
record is written.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import Any

from .aggregate import Aggregator, ChatAggregator, ResponsesAggregator, aggregator_for
from .data_tap import HIDDEN
from .usage_cut import cut_usage

__all__ = [
    "AuditedAsyncStream",
    "AuditedStream",
    "ChatAggregator",
    "ResponsesAggregator",
    "aggregator_for",
]


def _read_chat(inner: Any, aggregator: Aggregator, async_: bool) -> None:
    """How a chat stream is read: its bytes cut (`usage_cut`), tapped (`data_tap`) or fed."""
    if isinstance(aggregator, ChatAggregator):
        aggregator.tap(inner, _ASYNC_BASE if async_ else _SYNC_BASE)
        if aggregator.hide_usage:
            # A tapped stream's chunks need no screening: what the cut leaves, the tap takes.
            cut_usage(inner, aggregator, async_=async_, watch=not aggregator.tapped)


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
        _read_chat(inner, aggregator, async_=False)
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
        chunks = _chunks(self._inner, async_=False)
        try:
            if isinstance(aggregator, ChatAggregator) and aggregator.tapped:
                # Taken as the SDK parsed them: only a chunk to hide is left to do.
                for chunk in chunks:
                    if chunk is not HIDDEN:
                        yield chunk
            else:
                feed = aggregator.feed
                for chunk in chunks:
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
        tapped = isinstance(aggregator, ChatAggregator) and aggregator.tapped
        try:
            for chunk in self._inner:
                if not tapped:  # a tapped stream's chunks are taken as they are parsed
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
        _read_chat(inner, aggregator, async_=True)
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
        chunks = _chunks(self._inner, async_=True)
        try:
            if isinstance(aggregator, ChatAggregator) and aggregator.tapped:
                async for chunk in chunks:
                    if chunk is not HIDDEN:
                        yield chunk
            else:
                feed = aggregator.feed
                async for chunk in chunks:
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
        tapped = isinstance(aggregator, ChatAggregator) and aggregator.tapped
        try:
            async for chunk in self._inner:
                if not tapped:  # a tapped stream's chunks are taken as they are parsed
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
