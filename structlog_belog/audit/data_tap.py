"""An SDK stream's chunks read as the SDK parsed them: plain dicts, before its models.

Reading a field of an SDK chunk (a pydantic model) costs about three dict
subscripts, and a chat stream's audit reads half a dozen per chunk. The
SDK's ``Stream`` parses each event's JSON into a dict and hands it to its
client's ``_process_response_data``, which builds the chunk. `tap_data`
gives one stream a stand-in client whose ``_process_response_data`` shows
the dict to the audit first (which may take out a usage the caller did not
ask for), then builds the chunk as the real one does: the caller gets the
objects it would get unaudited.

Only a stream the SDK has not started reading is tapped (its ``__stream__``
generator reads the client when it starts); any other is read chunk by chunk
(`stream.ChatAggregator.feed`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["HIDDEN", "TappedClient", "tap_data"]

Build = Callable[..., Any]
"""The SDK client's ``_process_response_data``: builds a chunk from its parsed data."""
Wrap = Callable[[Build], Build]
"""Given *build*, the stand-in that sees each parsed chunk first (it never raises)."""


class _Hidden:
    """What a tapped stream yields for a chunk not built (the stream's reader skips it)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<chunk hidden by the audit>"


#: What a tapped stream's stand-in returns, and the stream yields, for a chunk not built.
HIDDEN = _Hidden()


class TappedClient:
    """One stream's view of its SDK client: the same, but for its ``_process_response_data``."""

    __slots__ = ("_client", "_process_response_data")

    def __init__(self, client: Any, wrap: Wrap) -> None:
        self._client = client
        self._process_response_data = wrap(client._process_response_data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def __repr__(self) -> str:
        return repr(self._client)


def _unstarted(generator: Any, code: Any) -> bool:
    """Whether *generator* (sync or async) runs *code* and has not started."""
    frame = getattr(generator, "gi_frame", None) or getattr(generator, "ag_frame", None)
    running = getattr(generator, "gi_running", None) or getattr(generator, "ag_running", None)
    if frame is None or running or code is None or frame.f_code is not code:
        return False
    # A created generator's frame stands on its def line; a started one elsewhere.
    return bool(frame.f_lineno == code.co_firstlineno)


def tap_data(inner: Any, base: type, wrap: Wrap) -> bool:
    """Give *inner* a stand-in ``_process_response_data``, ``wrap(build)``; whether it could be.

    *inner* must be an SDK stream (*base*: ``openai.Stream`` or
    ``openai.AsyncStream``) that iterates as the SDK's own does and has not
    started. The stand-in then sees every chunk the SDK parses (its dict),
    once, in order, before the SDK builds it; it builds it with *build*, or
    returns `HIDDEN`, which the stream yields in its place.
    """
    own = getattr(inner, "__dict__", None)
    if base is object or type(own) is not dict or not isinstance(inner, base):
        return False
    stream = getattr(base, "__stream__", None)
    client = own.get("_client")
    if (
        stream is None
        or getattr(type(inner), "__stream__", None) is not stream
        or not callable(getattr(client, "_process_response_data", None))
        or isinstance(client, TappedClient)
        or not _unstarted(own.get("_iterator"), getattr(stream, "__code__", None))
    ):
        return False
    own["_client"] = TappedClient(client, wrap)
    return True
