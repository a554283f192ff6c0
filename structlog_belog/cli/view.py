"""``belog view``: a session as a person reads it.

`session_tree` folds a session's records (``processing`` in time order, its
shards merged) into a tree: stages inside stages, the BELog tasks in them,
and in each the LLM calls, outputs, inputs, metrics, warnings and errors made
there; plain log records are counted, and past 50 entries in one stage or
task the rest are too (``--all`` lists everything). `call_view`
shows one LLM call whole: the prompt, the answer, usage, cost, every HTTP
attempt, the error, and the output files it produced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.rule import Rule
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from ..exceptions import CallNotFoundError

__all__ = ["call_view", "find_call", "session_tree", "shorten"]

_PROBLEMS: Final = frozenset(("warning", "error", "critical"))
_PROBLEM_STYLE: Final = {"warning": "yellow", "error": "bold red", "critical": "bold red"}
#: Kinds that only shape the tree (their facts go into a node's label).
_STRUCTURE: Final = frozenset(("session_start", "session_end", "stage_start", "stage_end", "belog"))
_TEXT_MAX: Final = 160
#: Entry lines (calls, outputs, warnings …) shown per stage or task without --all.
ENTRIES_PER_NODE: Final = 50


@dataclass(slots=True)
class _Node:
    """A stage or task of the tree: its label, and what happened in it."""

    label: Text
    tree: Tree
    logs: int = 0
    #: Entry lines added, and those left out past the limit.
    shown: int = 0
    hidden: int = 0

    @classmethod
    def under(cls, parent: Tree, label: Text) -> _Node:
        return cls(label, parent.add(label))


def shorten(value: Any, limit: int = _TEXT_MAX) -> str:
    """*value* on one line (JSON unless a string), cut to *limit* characters with ``…``."""
    text = value if isinstance(value, str) else orjson.dumps(value, default=repr).decode()
    text = text.replace("\n", "⏎")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _count(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"


def _seconds(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _tokens(usage: Any) -> str:
    if not isinstance(usage, Mapping) or usage.get("total_tokens") is None:
        return ""
    return f"{usage.get('total_tokens')} tokens"


def _cost(value: Any) -> str:
    return "" if not isinstance(value, int | float) else f"${value:.6f}".rstrip("0").rstrip(".")


def _attempt_statuses(call: Mapping[str, Any] | None) -> str:
    """``429 → 200`` when a call took more than one attempt or one failed."""
    attempts = None if call is None else call.get("attempts")
    if not isinstance(attempts, list) or not attempts:
        return ""
    codes = [
        str(a.get("status_code") or a.get("error") or "?")
        for a in attempts
        if isinstance(a, Mapping)
    ]
    if codes == ["200"]:
        return ""
    return "attempts " + " → ".join(codes)


def _call_line(ref: Mapping[str, Any], call: Mapping[str, Any] | None) -> Text:
    status = str(ref.get("status"))
    style = "green" if status == "ok" else "bold red" if status == "error" else "yellow"
    parts = [
        _seconds(ref["latency_ms"] / 1000)
        if isinstance(ref.get("latency_ms"), int | float)
        else "",
        _tokens(ref.get("usage")),
        _cost(ref.get("cost_usd")),
        _attempt_statuses(call),
    ]
    error = ref.get("error")
    if isinstance(error, Mapping):
        parts.append(f"{error.get('type')}: {shorten(error.get('message'), 80)}")
    text = Text.assemble(
        ("LLM ", "bold"),
        (str(ref.get("call_id")), "cyan"),
        f" {ref.get('model')} ",
        (status, style),
    )
    details = " · ".join(p for p in parts if p)
    if details:
        text.append(f" · {details}", "dim" if status == "ok" else "")
    return text


def _problem_line(rec: Mapping[str, Any]) -> Text:
    level = str(rec.get("level"))
    text = Text.assemble(
        (f"{level.upper()} ", _PROBLEM_STYLE.get(level, "")),
        (f"{rec.get('logger')}: ", "blue"),
        shorten(rec.get("event")),
    )
    exception = rec.get("exception")
    if isinstance(exception, str) and exception:
        text.append(f" · {shorten(exception.strip().splitlines()[-1], 100)}", "dim")
    return text


def _fact_line(rec: Mapping[str, Any]) -> Text | None:
    """The line for an input, output, metric or content record (None for other kinds)."""
    kind = rec.get("kind")
    if kind == "output":
        line = Text.assemble(("output ", "bold"), (str(rec.get("path")), "magenta"))
        calls = rec.get("call_ids")
        if isinstance(calls, list) and calls:
            line.append(" ← " + ", ".join(map(str, calls)), "cyan")
        return line
    if kind == "input":
        return Text.assemble(("input ", "bold"), (str(rec.get("path")), "magenta"))
    if kind == "metric":
        value = shorten(rec.get("value"))
        return Text.assemble(("metric ", "bold"), f"{rec.get('name')} = {value}")
    if kind == "content":
        return Text.assemble(
            ("content ", "bold"), (str(rec.get("path")), "magenta"), f" as {rec.get('as_name')}"
        )
    return None


def _plain_line(rec: Mapping[str, Any]) -> Text:
    return Text.assemble(
        (str(rec.get("timestamp", ""))[11:23] + " ", "dim"),
        (f"{rec.get('logger')}: ", "blue"),
        shorten(rec.get("event")),
    )


class _Builder:
    """Folds records, in time order, into the tree of one session."""

    def __init__(self, calls: Mapping[str, Mapping[str, Any]], *, all_records: bool) -> None:
        self.calls = calls
        self.all_records = all_records
        label = Text()
        self.root = _Node(label, Tree(label))
        #: Open stages by name: a record names its innermost stage.
        self.stages: dict[str, _Node] = {}
        self.tasks: dict[tuple[str | None, str], _Node] = {}
        self.start: Mapping[str, Any] | None = None
        self.end: Mapping[str, Any] | None = None
        self.records = 0
        self.problems = 0
        self.calls_made = 0
        self.tokens = 0

    def add(self, rec: Mapping[str, Any]) -> None:
        self.records += 1
        kind = rec.get("kind")
        if kind == "session_start":
            self.start = rec
        elif kind == "session_end":
            self.end = rec
        elif kind == "stage_start":
            self._open_stage(rec)
        elif kind == "stage_end":
            self._close_stage(rec)
        elif kind == "belog":
            self._task_done(rec)
        if kind in _STRUCTURE:
            return
        node = self._node_of(rec)
        line: Text | None
        if kind == "llm_call":
            self._count_call(rec)
            line = _call_line(rec, self.calls.get(str(rec.get("call_id"))))
        elif (fact := _fact_line(rec)) is not None:
            line = fact
        elif rec.get("level") in _PROBLEMS:
            self.problems += 1
            line = _problem_line(rec)
        elif self.all_records:
            line = _plain_line(rec)
        else:
            node.logs += 1
            return
        if self.all_records or node.shown < ENTRIES_PER_NODE:
            node.tree.add(line)
            node.shown += 1
        else:
            node.hidden += 1

    def _count_call(self, rec: Mapping[str, Any]) -> None:
        self.calls_made += 1
        usage = rec.get("usage")
        total = usage.get("total_tokens") if isinstance(usage, Mapping) else None
        if isinstance(total, int):
            self.tokens += total

    def _node_of(self, rec: Mapping[str, Any]) -> _Node:
        stage = rec.get("stage")
        parent = self._stage(stage, None) if isinstance(stage, str) else self.root
        task = rec.get("task")
        if not isinstance(task, str):
            return parent
        key = (stage if isinstance(stage, str) else None, task)
        node = self.tasks.get(key)
        if node is None:
            node = _Node.under(parent.tree, Text.assemble(("task ", "bold"), task))
            self.tasks[key] = node
        return node

    def _stage(self, name: str, parent_name: Any) -> _Node:
        """The open stage *name*; made under its parent when not seen yet.

        A record can name a stage whose start is not in the files read (a
        shard written after a crash, a folder cut by hand): it still gets one.
        """
        node = self.stages.get(name)
        if node is None:
            parent = self.stages.get(parent_name) if isinstance(parent_name, str) else None
            label = Text.assemble(("stage ", "bold"), (name, "bold blue"))
            node = self.stages[name] = _Node.under((parent or self.root).tree, label)
        return node

    def _open_stage(self, rec: Mapping[str, Any]) -> None:
        name = str(rec.get("stage"))
        self.stages.pop(name, None)  # a stage run again is a new node
        self._stage(name, rec.get("parent_stage"))

    def _close_stage(self, rec: Mapping[str, Any]) -> None:
        node = self.stages.get(str(rec.get("stage")))
        if node is None:
            return
        ok = rec.get("success")
        label = node.label
        label.append(f"  {_seconds(rec.get('duration_s'))} ", "dim")
        label.append("✓" if ok else "✗", "green" if ok else "bold red")
        if not ok and rec.get("error"):
            label.append(f" {shorten(rec.get('error'), 80)}", "red")

    def _task_done(self, rec: Mapping[str, Any]) -> None:
        name = rec.get("task") or rec.get("task_name")
        node = self._node_of({**rec, "task": str(name)})
        ok = rec.get("success")
        label = node.label
        label.append(f"  {_seconds(rec.get('execution_time'))} ", "dim")
        label.append("✓" if ok else "✗", "green" if ok else "bold red")
        score = rec.get("efficiency_score")
        if isinstance(score, int | float):
            label.append(f" efficiency {score:g}", "dim")

    def finish(self) -> Tree:
        for node in (self.root, *self.stages.values(), *self.tasks.values()):
            if node.hidden:
                more = _count(node.hidden, "more entry", "more entries")
                node.tree.add(Text(f"… {more} (--all shows them)", "yellow"))
            if node.logs:
                node.tree.add(Text(_count(node.logs, "log record"), "dim"))
        self.root.label.append_text(self._header())
        return self.root.tree

    def _header(self) -> Text:
        start = self.start or {}
        header = Text.assemble(
            (str(start.get("title") or "session"), "bold"),
            "  ",
            (str(start.get("session_id")), "cyan"),
        )
        if self.end is None:
            header.append("  not ended (running, or crashed)", "yellow")
        else:
            ok = self.end.get("success")
            header.append("  ok" if ok else "  failed", "green" if ok else "bold red")
            header.append(f"  {_seconds(self.end.get('duration_s'))}", "dim")
        counts = (
            _count(self.records, "record"),
            _count(self.calls_made, "LLM call"),
            _count(self.tokens, "token"),
        )
        header.append("  " + " · ".join(counts), "dim")
        if self.problems:
            problems = _count(self.problems, "warning or error", "warnings or errors")
            header.append(f" · {problems}", "yellow")
        return header


def session_tree(
    records: Iterable[Mapping[str, Any]],
    calls: Iterable[Mapping[str, Any]] = (),
    *,
    all_records: bool = False,
) -> Tree:
    """The tree of one session from its ``processing`` records (in time order).

    Args:
        records: The session's processing records, shards merged by time.
        calls: Its ``llm_call`` records (from ``prompts``), or at least their
            ``call_id`` and ``attempts``: each call's line then shows its
            HTTP attempts when there was more than one or one failed.
        all_records: List every plain log record instead of counting them,
            and every entry of a stage or task: without it, the first
            `ENTRIES_PER_NODE` are shown and the rest counted.
    """
    by_id = {str(c.get("call_id")): c for c in calls}
    builder = _Builder(by_id, all_records=all_records)
    for rec in records:
        builder.add(rec)
    return builder.finish()


def find_call(calls: Iterable[Mapping[str, Any]], call_id: str) -> Mapping[str, Any]:
    """The call whose ID is *call_id*, or starts with it; ``last`` is the last call.

    Raises:
        CallNotFoundError: No call matches, or a prefix matches more than one.
    """
    found: list[Mapping[str, Any]] = []
    last: Mapping[str, Any] | None = None
    for call in calls:
        last = call
        cid = str(call.get("call_id"))
        if cid == call_id:
            return call
        if cid.startswith(call_id):
            found.append(call)
    if call_id == "last" and last is not None:
        return last
    if len(found) == 1:
        return found[0]
    if not found:
        msg = f"no LLM call {call_id!r} in this session"
    else:
        shown = ", ".join(str(c.get("call_id")) for c in found[:5])
        more = ", …" if len(found) > 5 else ""
        msg = f"{len(found)} LLM calls start with {call_id!r} ({shown}{more}): give more of the ID"
    raise CallNotFoundError(msg, call_id)


def _ms_text(value: Any) -> str | None:
    return f"{value} ms" if isinstance(value, int | float) else None


def _kv_table(rows: Iterable[tuple[str, Any]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        if value is not None and value != "":
            table.add_row(key, escape(value if isinstance(value, str) else shorten(value, 400)))
    return table


_FINGERPRINT: Final = frozenset(("length", "sha256"))


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping) and content.keys() == _FINGERPRINT:  # capture_content=False
        return f"(not captured: {content['length']} chars, sha256 {str(content['sha256'])[:16]}…)"
    if isinstance(content, list):  # content parts: text parts as text, others as JSON
        return "\n".join(
            str(p["text"]) if isinstance(p, Mapping) and "text" in p else shorten(p, 400)
            for p in content
        )
    return orjson.dumps(content, default=repr, option=orjson.OPT_INDENT_2).decode()


def _request_part(request: Any) -> list[RenderableType]:
    if not isinstance(request, Mapping):
        return [Text(shorten(request), "dim")]
    shown: list[RenderableType] = []
    messages = request.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, Mapping):
                shown.append(Text(f"[{message.get('role')}]", "bold cyan"))
                if message.get("content") is not None:
                    shown.append(Text(_message_text(message["content"])))
                if message.get("tool_calls"):
                    shown.append(Text(shorten(message["tool_calls"], 400), "dim"))
            else:  # scrubbed (capture_content=False): length and SHA-256
                shown.append(Text(shorten(message, 400), "dim"))
    for key in ("instructions", "input"):
        if key in request:
            shown.append(Text(f"[{key}]", "bold cyan"))
            shown.append(Text(_message_text(request[key])))
    params = [(k, v) for k, v in request.items() if k not in ("messages", "instructions", "input")]
    if params:
        shown.append(_kv_table(params))
    return shown


def _response_part(response: Any) -> list[RenderableType]:
    if not isinstance(response, Mapping):
        return [Text("no response", "dim")]
    shown: list[RenderableType] = []
    text = response.get("output_text")
    if text is not None:
        shown.append(Text(_message_text(text)))
    shown.append(_kv_table((k, v) for k, v in response.items() if k != "output_text"))
    return shown


def _attempts_table(attempts: Any) -> Table | None:
    if not isinstance(attempts, list) or not attempts:
        return None
    table = Table("#", "status", "duration", "request ID", "server ms", "rate limit", box=None)
    for a in attempts:
        if not isinstance(a, Mapping):
            continue
        limits = a.get("ratelimit")
        table.add_row(
            str(a.get("attempt")),
            escape(str(a.get("status_code") or a.get("error") or "—")),
            "—" if a.get("duration_ms") is None else f"{a['duration_ms']:.1f} ms",
            escape(str(a.get("request_id") or "—")),
            escape(str(a.get("processing_ms") or "—")),
            escape(shorten(limits, 80)) if limits else "—",
        )
    return table


def call_view(call: Mapping[str, Any], outputs: Iterable[Mapping[str, Any]] = ()) -> Group:
    """One LLM call whole: what was asked, what came back, what it cost, what it made.

    Args:
        call: The full ``llm_call`` record (from ``prompts``).
        outputs: The session's ``output`` records: those naming this call are listed.
    """
    cid = call.get("call_id")
    usage = call.get("usage")
    tokens = (
        " · ".join(f"{k.removesuffix('_tokens')} {v}" for k, v in usage.items() if v is not None)
        if isinstance(usage, Mapping)
        else None
    )
    summary = _kv_table(
        (
            ("call", f"{cid}  {call.get('api')}  {call.get('model')}  {call.get('status')}"),
            ("when", str(call.get("timestamp", "")).replace("T", " ")),
            ("where", " / ".join(str(call[k]) for k in ("stage", "task") if call.get(k))),
            ("name", call.get("name")),
            ("latency", _ms_text(call.get("latency_ms"))),
            ("first token", _ms_text(call.get("time_to_first_token_ms"))),
            ("tokens", tokens),
            ("cost", _cost(call.get("cost_usd")) or "unknown"),
            ("stream", "yes" if call.get("stream") else None),
        )
    )
    parts: list[RenderableType] = [summary]
    attempts = _attempts_table(call.get("attempts"))
    if attempts is not None:
        parts += [Rule("attempts", align="left"), attempts]
    parts += [Rule("request", align="left"), *_request_part(call.get("request"))]
    parts += [Rule("response", align="left"), *_response_part(call.get("response"))]
    error = call.get("error")
    if isinstance(error, Mapping):
        parts += [Rule("error", align="left", style="red"), _kv_table(error.items())]
    made = [
        str(o.get("path"))
        for o in outputs
        if isinstance(o.get("call_ids"), list) and cid in o["call_ids"]
    ]
    if made:
        parts += [Rule("outputs", align="left"), Text("\n".join(made), "magenta")]
    return Group(*parts)
