"""What the audit's ``include_usage`` adds to a chat stream, cut from its bytes unparsed.

The audit asks a chat stream for its usage (``stream_options.include_usage``)
when the caller did not; the server then ends every chunk with ``"usage":
null`` and sends one more, usage-only, event. `UsageCutter` takes both out of
the response's bytes on their way to the SDK's event decoder, so the SDK
never parses them and the caller never sees them; `stream.ChatAggregator`
receives the usage. Anything in another form is left to the SDK, and the
aggregator unmarks and hides it after the SDK parsed it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson

__all__ = ["UsageCutter", "cut_usage"]

#: How the OpenAI API ends each event's data when include_usage is on: a null usage.
_NULL_USAGE = b',"usage":null}\n'
#: What marks the usage-only event that ends such a stream (checked whole before it goes).
_NO_CHOICES = b'"choices":[]'
#: A usage member in any form (in a JSON string, a quote is escaped: no false match).
_USAGE_KEY = b'"usage"'


class UsageCutter:
    """Cuts what the audit's include_usage adds to a chat stream from its bytes, unparsed.

    The caller never asked for it; the SDK would parse it (about 0.9 M
    instructions per 200-chunk stream) for `ChatAggregator.feed` to unmark
    and hide it again. The response's bytes are cut instead, on their way to
    the SDK's event decoder, a C call or two per network read:

    - a ``"usage": null`` that ends a ``data:`` line (the top-level object's
      last member) goes;
    - the usage-only event (a single ``data:`` line between blank lines whose
      JSON has no choices and a usage object, parsed here with orjson) goes,
      its usage kept for the record.

    Lines split across reads are joined first. Anything in another form is
    left to the SDK: the cutter then sets the aggregator's ``screen``, and
    `feed` unmarks or hides the chunks it reads from then on. While nothing
    was left, `feed` reads no usage at all.
    """

    __slots__ = ("aggregator", "left", "pending", "tail", "watch")

    def __init__(self, aggregator: Any, *, watch: bool = True) -> None:
        self.aggregator = aggregator
        self.watch = watch  # whether to tell the aggregator a usage was left (its `screen`)
        self.pending = b""  # a line not whole yet
        self.tail = b"\n\n"  # the last two bytes handed on (the start is an event boundary)
        self.left = False  # whether a "usage" key was handed on (a form not cut)

    def cut(self, part: bytes) -> bytes:
        """What to hand on of one read (whole lines only).

        A read may be the whole body: nothing here copies or scans it more
        than the one ``replace`` must (the usage-only event is looked for
        from the end, where it is).
        """
        if self.pending:
            part = self.pending + part
            self.pending = b""
        end = part.rfind(b"\n") + 1
        if end < len(part):
            part, self.pending = part[:end], part[end:]
        if not part:
            return part
        out = part.replace(_NULL_USAGE, b"}\n")
        found = out.rfind(_NO_CHOICES)
        if found >= 0:
            out = self._usage_event(out, found)
        if len(out) >= 2:
            self.tail = out[-2:]
        elif out:
            self.tail = self.tail[-1:] + out
        # The chunks made of these bytes come next: `feed` screens them for a
        # usage only if one was handed on, in this read or an earlier one.
        if self.watch:
            self.left = self.left or _USAGE_KEY in out
            self.aggregator.screen = self.left
        return out

    def _usage_event(self, out: bytes, found: int) -> bytes:
        """*out* without the usage-only event around *found*, if that is what it is."""
        start = out.rfind(b"\n", 0, found) + 1
        end = out.find(b"\n", found)
        before = out[max(0, start - 2) : start]
        if len(before) < 2:
            before = (self.tail + before)[-2:]
        if before != b"\n\n" or not out.startswith(b"data:", start):
            return out
        if end + 1 == len(out):  # its closing blank line is still to come: wait for it
            self.pending = out[start:] + self.pending
            return out[:start]
        if out[end + 1 : end + 2] != b"\n":
            return out
        try:
            event = orjson.loads(out[start + 5 : end])
        except orjson.JSONDecodeError:
            return out
        usage = event.get("usage") if type(event) is dict and not event.get("choices") else None
        if type(usage) is not dict:
            return out
        self.aggregator.usage = usage
        return out[:start] + out[end + 2 :]

    def flush(self) -> bytes:
        """What is left at the end of the response."""
        rest, self.pending = self.pending, b""
        if self.watch and _USAGE_KEY in rest:
            self.left = self.aggregator.screen = True
        return rest


def cut_usage(inner: Any, aggregator: Any, *, async_: bool, watch: bool = True) -> None:
    """Route the bytes of *inner*'s response (an SDK stream's) through a `UsageCutter`.

    *aggregator* receives the usage (its ``usage`` attribute). Nothing is
    done to a stream without an httpx response, or one already cut.
    """
    response = getattr(inner, "response", None)
    name = "aiter_bytes" if async_ else "iter_bytes"
    original = getattr(response, name, None)
    own = getattr(response, "__dict__", None)
    if not callable(original) or type(own) is not dict or name in own:
        return  # not an httpx response, or already cut
    cutter = UsageCutter(aggregator, watch=watch)

    def iter_bytes(*args: Any, **kwargs: Any) -> Iterator[bytes]:
        for part in original(*args, **kwargs):
            out = cutter.cut(part)
            if out:
                yield out
        rest = cutter.flush()
        if rest:
            yield rest

    async def aiter_bytes(*args: Any, **kwargs: Any) -> AsyncIterator[bytes]:
        async for part in original(*args, **kwargs):
            out = cutter.cut(part)
            if out:
                yield out
        rest = cutter.flush()
        if rest:
            yield rest

    setattr(response, name, aiter_bytes if async_ else iter_bytes)
