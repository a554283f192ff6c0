"""What `FakeLLM` answers: words, schema-shaped values, stream events and vectors.

Pure functions of the request (no state), so the same prompt always gets the
same answer. Split from `fake_llm` to keep each module to one idea.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import httpx

_VOCABULARY = (
    "audit",
    "blueprint",
    "context",
    "draft",
    "evidence",
    "focus",
    "goal",
    "habit",
    "insight",
    "journal",
    "knowledge",
    "lesson",
    "method",
    "note",
    "outcome",
    "pattern",
    "question",
    "review",
    "signal",
    "task",
    "update",
    "value",
    "wisdom",
    "yield",
)
_EMBEDDING_DIMENSIONS = {"text-embedding-3-large": 3072}
_DEFAULT_EMBEDDING_DIMENSIONS = 1536
_PIECE = re.compile(r"\s*\S+")


def _tokens(text: str) -> int:
    """Approximate a tokenizer: about four characters per token, at least one."""
    return max(1, math.ceil(len(text) / 4))


def _text_of(content: Any) -> str:
    """Flatten message content (a string or a list of parts) to text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = []
        for part in content:
            if isinstance(part, Mapping):
                parts.append(str(part.get("text") or part.get("output") or ""))
            else:
                parts.append(str(part))
        return " ".join(parts)
    return str(content)


class _Words:
    """A deterministic stream of vocabulary words seeded by a digest."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0

    def next(self) -> str:
        digest = hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
        self._counter += 1
        return _VOCABULARY[digest[0] % len(_VOCABULARY)]

    def sentence(self, count: int) -> str:
        words = [self.next() for _ in range(max(1, count))]
        words[0] = words[0].capitalize()
        return " ".join(words) + "."


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a local ``$ref`` and pick the first branch of ``anyOf``/``oneOf``/``allOf``."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, Mapping) else {}
        return target if isinstance(target, Mapping) else {}
    for key in ("anyOf", "oneOf", "allOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches and isinstance(branches[0], Mapping):
            return branches[0]
    return schema


_SCALARS: dict[str, Any] = {
    "integer": lambda words: len(words.next()),
    "number": lambda words: len(words.next()) / 2,
    "boolean": lambda _: True,
    "null": lambda _: None,
    "string": lambda words: words.sentence(3),
}


def _from_schema(schema: Any, words: _Words, root: Mapping[str, Any], depth: int = 0) -> Any:
    """Build a small value that satisfies a (strict, JSON-schema) *schema*."""
    if not isinstance(schema, Mapping) or depth > 8:
        return words.next()
    for _ in range(4):  # a $ref to an anyOf to a $ref ... is resolved a few levels deep
        schema = _resolve(schema, root)
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {name: _from_schema(sub, words, root, depth + 1) for name, sub in props.items()}
    if kind == "array":
        return [_from_schema(schema.get("items", {}), words, root, depth + 1)]
    return _SCALARS.get(str(kind), _SCALARS["string"])(words)


def _pieces(text: str, count: int) -> list[str]:
    """Split *text* into at most *count* stream deltas (each keeps its leading space)."""
    pieces = _PIECE.findall(text) or [text]
    if len(pieces) <= count:
        return pieces
    head = pieces[: count - 1]
    return [*head, "".join(pieces[count - 1 :])]


class _SyncBody(httpx.SyncByteStream):
    def __init__(self, events: list[bytes], delay: float) -> None:
        self._events = events
        self._delay = delay

    def __iter__(self) -> Iterator[bytes]:
        for event in self._events:
            if self._delay:
                time.sleep(self._delay)
            yield event


class _AsyncBody(httpx.AsyncByteStream):
    def __init__(self, events: list[bytes], delay: float) -> None:
        self._events = events
        self._delay = delay

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for event in self._events:
            if self._delay:
                await asyncio.sleep(self._delay)
            yield event


def _sse(data: Any, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def _response_events(response: dict[str, Any], pieces: list[str]) -> list[bytes]:
    """The server-sent events of a streamed /responses answer (ends with response.completed)."""
    sequence = iter(range(1_000_000))

    def event(kind: str, **fields: Any) -> bytes:
        return _sse({"type": kind, "sequence_number": next(sequence), **fields}, kind)

    pending = {**response, "status": "in_progress", "output": [], "usage": None}
    events = [
        event("response.created", response=pending),
        event("response.in_progress", response=pending),
    ]
    done_item = response["output"][0]
    where = {"item_id": done_item["id"], "output_index": 0}
    if done_item["type"] == "function_call":
        started = {**done_item, "arguments": "", "status": "in_progress"}
        events.append(event("response.output_item.added", output_index=0, item=started))
        events.extend(
            event("response.function_call_arguments.delta", delta=piece, **where)
            for piece in pieces
        )
        events.append(
            event(
                "response.function_call_arguments.done", arguments=done_item["arguments"], **where
            )
        )
    else:
        started = {**done_item, "status": "in_progress", "content": []}
        empty = {"type": "output_text", "text": "", "annotations": []}
        events.append(event("response.output_item.added", output_index=0, item=started))
        events.append(event("response.content_part.added", content_index=0, part=empty, **where))
        events.extend(
            event("response.output_text.delta", content_index=0, delta=p, logprobs=[], **where)
            for p in pieces
        )
        events.append(
            event(
                "response.output_text.done",
                content_index=0,
                text=done_item["content"][0]["text"],
                logprobs=[],
                **where,
            )
        )
        events.append(
            event(
                "response.content_part.done",
                content_index=0,
                part=done_item["content"][0],
                **where,
            )
        )
    events.append(event("response.output_item.done", output_index=0, item=done_item))
    events.append(event("response.completed", response=response))
    return events


def unit_vector(text: str, dimensions: int) -> list[float]:
    """A unit vector derived from *text* (similar texts are not close: it is a hash)."""
    seed = hashlib.sha256(text.encode()).digest()
    raw: list[float] = []
    block = 0
    while len(raw) < dimensions:
        digest = hashlib.sha256(seed + block.to_bytes(4, "big")).digest()
        raw.extend((b - 127.5) / 127.5 for b in digest)
        block += 1
    del raw[dimensions:]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [v / norm for v in raw]
