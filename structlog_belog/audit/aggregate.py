"""What a stream's chunks add up to: the answer, tool calls, finish reasons and usage.

`ChatAggregator` folds a ``chat.completions`` stream's chunks, as the SDK
parses them when the stream could be tapped (`ChatAggregator.tap`,
`data_tap`), else as chunk objects (`ChatAggregator.feed`).
`ResponsesAggregator` folds a ``responses`` stream's events. Their `finish`
writes the call's record from what arrived; `stream.AuditedStream` drives
them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .call import Call, note_failure
from .data_tap import HIDDEN, tap_data
from .record import (
    API_CHAT,
    field,
    fields_of,
    responses_response,
    tool_call_of,
    usage_of,
)

__all__ = ["Aggregator", "ChatAggregator", "ResponsesAggregator", "aggregator_for"]


def _unmark_usage(chunk: Any) -> None:
    """Unmark an unasked-for ``"usage": null`` (``to_dict()`` then matches an unaudited run)."""
    fields_set = getattr(chunk, "__pydantic_fields_set__", None)
    if fields_set is not None:
        fields_set.discard("usage")


class ChatAggregator:
    """Collects a ``chat.completions`` stream: text, tool calls, finish reasons, usage."""

    __slots__ = (
        "_choices",
        "call",
        "hide_usage",
        "id",
        "model",
        "screen",
        "tapped",
        "usage",
    )

    def __init__(self, call: Call, *, hide_usage: bool) -> None:
        self.call = call
        self.hide_usage = hide_usage
        #: Whether a chunk may carry a usage the caller did not ask for, to hide or unmark.
        #: The byte cut (`usage_cut`) clears it while what it hands on holds none.
        self.screen = hide_usage
        #: Whether the chunks are taken as the SDK parses them (`data_tap`), not fed.
        self.tapped = False
        self.id: str | None = None
        self.model: str | None = None
        self.usage: Any = None
        # index -> [text parts, finish reason, {tool index: [id, name, argument parts]}]
        self._choices: dict[int, list[Any]] = {}

    def feed(self, chunk: Any) -> bool:
        """Take one chunk in; return False if the caller must not see it."""
        # Called for every chunk, so written flat for the SDK's models. A pydantic
        # field read costs about three dict subscripts, so a choice's and a delta's
        # fields are read from their __dict__. Any other shape (a dict, a model
        # without the field) goes through fields_of (`_feed_fields`).
        try:
            try:
                choices = chunk.choices
            except AttributeError:
                return self._feed_fields(fields_of(chunk), chunk)
            if self.id is None:
                self.id = getattr(chunk, "id", None)
                self.model = getattr(chunk, "model", None)
            if self.screen or not self.hide_usage:
                usage = getattr(chunk, "usage", None)
                if usage is not None:
                    self.usage = usage
                    if self.hide_usage and not choices:
                        return False
                elif self.hide_usage:
                    _unmark_usage(chunk)
            if not choices:
                return True
            for choice in choices:
                try:
                    c = choice.__dict__
                    index, delta, reason = c["index"] or 0, c["delta"], c["finish_reason"]
                    d = delta.__dict__
                    content, calls = d["content"], d["tool_calls"]
                except (AttributeError, KeyError):
                    self._feed_choice(fields_of(choice))
                    continue
                self._add(index, content, calls, reason)
        except Exception as exc:  # noqa: BLE001 - the audit never breaks the caller
            note_failure("reading a stream chunk", exc)
        return True

    def _feed_fields(self, chunk: Any, original: Any) -> bool:
        """`feed` for a chunk of another shape (*chunk*: its fields, read with ``.get``)."""
        usage = chunk.get("usage")
        if self.hide_usage:
            if usage is None:
                _unmark_usage(original)
            elif not chunk.get("choices"):
                self.usage = usage
                return False
        self.take(chunk)
        return True

    def tap(self, inner: Any, base: type) -> None:
        """Take *inner*'s chunks as the SDK parses them, if it can be (`data_tap`)."""
        self.tapped = tap_data(inner, base, self._processor)
        if self.tapped:
            self.screen = False  # the processor takes the usage out before the SDK sees it

    def _processor(self, build: Callable[..., Any]) -> Callable[..., Any]:
        """A tapped stream's ``_process_response_data``: a chunk is taken, then *build* builds it.

        Called for every chunk, so the fold is written flat here, with subscripts
        for what the API sends in each chunk (one choice: its index, delta and
        finish reason). A chunk of any other shape is read with .get (`take`).
        """
        states, hide, call, take = self._choices, self.hide_usage, self.call, self.take

        def process_response_data(*, data: Any, cast_to: Any, response: Any) -> Any:
            if type(data) is dict:
                try:
                    if hide and "usage" in data:
                        # Asked for by the audit, not the caller, in a form the byte cut
                        # left: the chunk is built without it, a usage-only one not at all.
                        usage = data.pop("usage")
                        if usage is not None:
                            self.usage = usage
                            if not data.get("choices"):
                                return HIDDEN
                    try:
                        (choice,) = data["choices"]
                        index, delta = choice["index"] or 0, choice["delta"]
                        reason, content = choice["finish_reason"], delta.get("content")
                        # A membership test costs a third of a .get: most deltas hold no calls.
                        calls = delta["tool_calls"] if "tool_calls" in delta else None  # noqa: SIM401
                    except (KeyError, TypeError, AttributeError, ValueError):
                        take(data)
                    else:
                        if self.id is None:
                            self.id, self.model = data.get("id"), data.get("model")
                        if not hide and data.get("usage") is not None:
                            self.usage = data["usage"]  # the caller's own include_usage
                        # `_add`, inline: this runs once per chunk of every tapped stream.
                        try:
                            state = states[index]
                        except KeyError:
                            state = states[index] = [[], None, {}]
                        if content:
                            parts = state[0]
                            if not parts:  # the choice's first text
                                call.mark_first_token()
                            parts.append(content)
                        if calls:
                            self._feed_tool_calls(state[2], calls)
                        if reason:
                            state[1] = reason
                except Exception as exc:  # noqa: BLE001 - the audit never breaks the caller
                    note_failure("reading a stream chunk", exc)
            return build(data=data, cast_to=cast_to, response=response)

        return process_response_data

    def take(self, chunk: Any) -> None:
        """Fold one chunk's fields in (read with ``.get``; a dict's as they are)."""
        if self.id is None:
            self.id = chunk.get("id")
            self.model = chunk.get("model")
        usage = chunk.get("usage")
        if usage is not None:
            self.usage = usage
        for choice in chunk.get("choices") or ():
            self._feed_choice(choice if type(choice) is dict else fields_of(choice))

    def _feed_choice(self, choice: Any) -> None:
        """Take one choice in (*choice*: its fields, read with ``.get``)."""
        delta = choice.get("delta")
        if type(delta) is not dict:
            delta = fields_of(delta)
        self._add(
            choice.get("index") or 0,
            delta.get("content"),
            delta.get("tool_calls"),
            choice.get("finish_reason"),
        )

    def _add(self, index: int, content: Any, calls: Any, reason: Any) -> None:
        """Add one choice's delta to what arrived: its text, tool call parts, finish reason."""
        try:
            state = self._choices[index]
        except KeyError:
            state = self._choices[index] = [[], None, {}]
        if content:
            parts = state[0]
            if not parts:  # the choice's first text (the call's, unless a tool's came first)
                self.call.mark_first_token()
            parts.append(content)
        if calls:
            self._feed_tool_calls(state[2], calls)
        if reason:
            state[1] = reason

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
            if self.call.done:
                return  # already written (a dropped stream is finished again when collected)
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
