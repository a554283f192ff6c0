"""Answers whose body the caller reads itself, recorded from the bytes it reads.

``with_raw_response`` (a stream), ``with_streaming_response`` and a bare
``client.post(..., cast_to=httpx.Response)`` hand the caller the HTTP response
with its body unread: the SDK parses nothing the audit could look at. So the
audit watches the response's reads: its ``iter_bytes``/``aiter_bytes`` (which
``read()``, ``iter_lines()``, ``json()``, ``parse()`` and the SDK's own
streams all go through) hand each decoded chunk on unchanged and keep a copy
for the record (server-sent events are parsed as they pass; a JSON body is
joined and parsed once, at its end), and its ``close``/``aclose`` record the
call at once as ``incomplete`` when the body was left before its end. A body
already read (``with_raw_response`` without a stream) is recorded at once.
The two methods are replaced on that one response object only.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

import orjson

from .call import Call, note_failure
from .record import result_of
from .stream import aggregator_for

__all__ = ["EventStream", "observe_body", "record_body"]

_DONE: Final = b"[DONE]"


class EventStream:
    """Server-sent events, fed as bytes arrive; each event's JSON goes to an aggregator."""

    __slots__ = ("aggregator", "buffer", "data", "done")

    def __init__(self, aggregator: Any) -> None:
        self.aggregator = aggregator
        self.buffer = b""
        self.data: list[bytes] = []
        #: Whether the ``[DONE]`` event arrived (a chat stream's end).
        self.done = False

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes of the stream in."""
        lines = (self.buffer + chunk).split(b"\n")
        self.buffer = lines.pop()
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]  # noqa: PLW2901 - CRLF line ends
            if not line:
                self._dispatch()
            elif line.startswith(b"data:"):
                value = line[5:]
                self.data.append(value[1:] if value.startswith(b" ") else value)

    def flush(self) -> None:
        """The stream ended: dispatch what is still buffered."""
        if self.buffer:
            self.feed(b"\n")
        self._dispatch()

    def _dispatch(self) -> None:
        if not self.data:
            return
        data = b"\n".join(self.data)
        self.data = []
        if data.startswith(_DONE):
            self.done = True
            return
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return  # not JSON: the SDK would fail on it too; nothing to record
        if type(event) is dict:
            self.aggregator.feed(event)

    @property
    def ended(self) -> bool:
        """Whether the answer arrived whole (``[DONE]`` or the final event)."""
        return self.done or bool(self.aggregator.finished)


def _is_event_stream(call: Call, http: Any) -> bool:
    content_type = http.headers.get("content-type") or ""
    return call.stream or content_type.startswith("text/event-stream")


def _finish_json(call: Call, content: bytes) -> None:
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        data = None
    if type(data) is dict:
        response, usage = result_of(call.api, data)
        call.finish("ok", response=response, usage=usage)
    else:
        call.finish("ok")


def record_body(call: Call, http: Any, content: bytes) -> None:
    """Record *call* from a body already read (the HTTP response *http*'s)."""
    if _is_event_stream(call, http):
        events = EventStream(aggregator_for(call, hide_usage=False))
        events.feed(content)
        events.flush()
        events.aggregator.finish("ok")
    else:
        _finish_json(call, content)


def _abandoned(call: Call, events: EventStream | None) -> None:
    """The response was collected unread or half read: the call is incomplete."""
    if events is not None:
        events.aggregator.finish("incomplete")
    else:
        call.finish("incomplete")


class _Observer:
    """Watches one HTTP response's reads and close, and records its call from them."""

    __slots__ = ("call", "events", "inside", "original_close", "original_iter", "parts")

    def __init__(self, call: Call, http: Any, *, async_: bool) -> None:
        self.call = call
        self.parts: list[bytes] = []
        #: True while the response's own iterator runs (it closes the response at its end).
        self.inside = False
        self.events: EventStream | None = None
        if _is_event_stream(call, http):
            self.events = EventStream(aggregator_for(call, hide_usage=False))
        if async_:
            self.original_iter = http.aiter_bytes
            self.original_close = http.aclose
            http.aiter_bytes = self.aiter_bytes
            http.aclose = self.aclose
        else:
            self.original_iter = http.iter_bytes
            self.original_close = http.close
            http.iter_bytes = self.iter_bytes
            http.close = self.close
        # Collected without being closed: recorded then (the callback holds no response).
        weakref.finalize(http, _abandoned, call, self.events)

    def _take(self, chunk: bytes) -> None:
        if self.call.done:
            return
        try:
            if self.events is not None:
                self.events.feed(chunk)
            else:
                self.parts.append(chunk)
        except Exception as exc:  # noqa: BLE001 - the audit never breaks the caller
            note_failure("reading a response body", exc)

    def _end(self, ended: bool, error: BaseException | None = None) -> None:
        """Write the record: the body read to its end (*ended*), left early, or failed."""
        call = self.call
        if call.done:
            return
        try:
            events = self.events
            if events is not None:
                if ended:
                    events.flush()
                status = "ok" if ended or events.ended else "incomplete"
                if error is not None:
                    status = "error" if isinstance(error, Exception) else "incomplete"
                events.aggregator.finish(status, error)
            elif error is not None:
                call.finish("error" if isinstance(error, Exception) else "incomplete", error=error)
            elif ended:
                _finish_json(call, b"".join(self.parts))
            else:
                call.finish("incomplete")
        except Exception as exc:  # noqa: BLE001 - the audit never breaks the caller
            note_failure("recording a response body", exc)

    def iter_bytes(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        """The response's own ``iter_bytes``, each chunk kept for the record."""
        return self._tee(self.original_iter(*args, **kwargs))

    def _tee(self, source: Iterator[bytes]) -> Iterator[bytes]:
        try:
            while True:
                self.inside = True
                try:
                    chunk = next(source)
                except StopIteration:
                    break
                finally:
                    self.inside = False
                self._take(chunk)
                yield chunk
        except GeneratorExit:
            close = getattr(source, "close", None)
            if close is not None:
                close()
            self._end(ended=False)
            raise
        except BaseException as exc:
            self._end(ended=False, error=exc)
            raise
        self._end(ended=True)

    def close(self) -> None:
        """The response's own ``close``; a body left before its end is recorded now."""
        try:
            self.original_close()
        finally:
            if not self.inside:
                self._end(ended=False)

    def aiter_bytes(self, *args: Any, **kwargs: Any) -> AsyncIterator[bytes]:
        """The response's own ``aiter_bytes``, each chunk kept for the record."""
        return self._atee(self.original_iter(*args, **kwargs))

    async def _atee(self, source: Any) -> AsyncIterator[bytes]:
        try:
            while True:
                self.inside = True
                try:
                    chunk = await source.__anext__()
                except StopAsyncIteration:
                    break
                finally:
                    self.inside = False
                self._take(chunk)
                yield chunk
        except GeneratorExit:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()
            self._end(ended=False)
            raise
        except BaseException as exc:
            self._end(ended=False, error=exc)
            raise
        self._end(ended=True)

    async def aclose(self) -> None:
        """The response's own ``aclose``; a body left before its end is recorded now."""
        try:
            await self.original_close()
        finally:
            if not self.inside:
                self._end(ended=False)


def observe_body(call: Call, http: Any, *, async_: bool) -> None:
    """Record *call* from the body of *http* as the caller reads it."""
    _Observer(call, http, async_=async_)
