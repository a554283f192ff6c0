"""The run report page: ``execution_report.html``, one self-contained interactive file.

`PageBuilder` rides along the finalizer's single streaming pass: it is handed
every ``llm_call`` record, every error record and every BELog record as the
pass reads them, and keeps what the page shows — each call with its texts
capped (the length and SHA-256 of a capped text are kept) and shared texts
stored once. `render_page` then inlines the page's template, style and script
(``templates/execution_report.*``) and the data as JSON into one HTML file.

The page fetches nothing (a Content-Security-Policy of ``default-src 'none'``
lets only its own script and style run, by hash) and shows every value of the
run as text: the script builds the page with ``textContent``, never with
markup, and the JSON is escaped so that no ``</script>`` can end it early.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Final

import orjson

__all__ = ["PAGE_DATA_VERSION", "PageBuilder", "page_data", "page_pieces", "render_page"]

#: Version of the JSON the page embeds (``belog-data``); bumped when keys change.
#: 2: each call is an array of `CALL_FIELDS` (``call_fields``), no longer an object.
PAGE_DATA_VERSION: Final = 2
#: Calls the page lists; a session with more says how many were left out.
MAX_CALLS: Final = 20_000
#: The longest text (a message, an answer, a traceback) kept whole ...
MAX_TEXT: Final = 4_000
#: ... until the page holds this many characters of text; later texts keep less.
TEXT_BUDGET: Final = 6_000_000
SMALL_TEXT: Final = 300
#: Past about this many bytes of data the page lists no more calls (it stays under 20 MB).
PAGE_BUDGET: Final = 17_000_000
_CALL_BYTES: Final = 450  # the JSON of a call's row without its texts, about
MAX_ERROR_RECORDS: Final = 500
MAX_TASKS: Final = 1_000
#: Characters of recently capped texts remembered whole, to find a repeated one fast.
_RECENT_CHARS: Final = 1_000_000

_TEMPLATE_DIR: Final = "templates"
_MARKER: Final = re.compile(r"@@(CSP|STYLE|SCRIPT|DATA)@@")
# Inside a JSON string these become escapes, so the data cannot close its
# <script> element, open a comment, or end a line for a JavaScript parser.
_JSON_ESCAPES: Final = (
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    (b"&", b"\\u0026"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)
#: The fields of a call's row (an array), in order; the page reads them by these names.
CALL_FIELDS: Final = (
    "id", "t", "s", "k", "m", "a", "st", "l", "f", "sm", "c", "fr",
    "msg", "in", "p", "ans", "tc", "u", "e", "at", "o",
)  # fmt: skip
_USAGE_KEYS: Final = (
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cached_tokens",
    "reasoning_tokens",
)


_Fragment: Any = getattr(orjson, "Fragment", None)
_SHA256: Final = hashlib.sha256()  # never updated: each capped text hashes a copy


class CallRows:
    """The calls' rows, each already JSON, embedded as one JSON array (`page_data`)."""

    __slots__ = ("rows",)

    def __init__(self, rows: list[bytes]) -> None:
        self.rows = rows

    def __repr__(self) -> str:
        return f"CallRows(<{len(self.rows)} rows>)"


def _epoch(ts: Any) -> float | None:
    if not isinstance(ts, str):
        return None
    try:
        return datetime.fromisoformat(ts).timestamp()
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    kind = type(value)
    return float(value) if kind is float or kind is int else None


def _as_text(value: Any) -> str | None:
    """A message content, an answer or an input as one text (parts joined)."""
    if value is None or type(value) is str:
        return value
    if type(value) is list and all(type(p) is str or type(p) is dict for p in value):
        parts = []
        for part in value:
            if type(part) is str:
                parts.append(part)
            elif type(part.get("text")) is str:
                parts.append(part["text"])
            else:
                parts.append(f"[{part.get('type', 'part')}]")
        return "\n".join(parts)
    if type(value) is dict and "length" in value and "sha256" in value and len(value) <= 3:
        return f"[not captured: {value.get('length')} characters, sha256 {value.get('sha256')}]"
    return _json_text(value)


def _std_json(value: Any) -> bytes:
    import json

    return json.dumps(value, default=_std_default, ensure_ascii=False).encode(
        "utf-8", "surrogatepass"
    )


def _std_default(value: Any) -> Any:
    if type(value) is CallRows:
        import json

        # json, not orjson: orjson reads an integer past 64 bits as a float.
        return [json.loads(row) for row in value.rows]
    return str(value)


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    except TypeError:
        return repr(value)


class PageBuilder:
    """Folds the records the page shows in detail; `page_data` makes its JSON.

    Memory and the page's size are bounded: at most `MAX_CALLS` calls (fewer
    if the page would pass `PAGE_BUDGET` bytes), `MAX_ERROR_RECORDS` error
    records and `MAX_TASKS` tasks, with texts capped at `MAX_TEXT` characters
    (`SMALL_TEXT` once `TEXT_BUDGET` characters are kept).
    """

    def __init__(self) -> None:
        self.texts: list[Any] = []
        self._text_ids: dict[Any, int] = {}
        self.kept_chars = 0
        #: Each listed call's row, as JSON (see `call`).
        self.calls: list[bytes] = []
        self.calls_total = 0
        self._output_index: dict[str, int] = {}
        self.error_records: list[dict[str, Any]] = []
        self.error_records_total = 0
        self.tasks: list[dict[str, Any]] = []
        self.tasks_total = 0
        self._last_params: tuple[dict[str, Any] | None, int | None] = (None, None)
        #: The latest long text capped of each length: (limit, text, index); see `text`.
        self._recent: dict[int, tuple[int, str, int]] = {}
        self._recent_chars = 0

    # -- texts ------------------------------------------------------------------

    def text(self, value: Any, limit: int = MAX_TEXT) -> int | None:
        """The index in the text table of *value* as text (capped), or None."""
        full = value if type(value) is str else _as_text(value)
        if full is None:
            return None
        n = len(full)
        # Kept whole: up to *limit* characters, and past the budget up to SMALL_TEXT.
        if n <= limit and (n <= SMALL_TEXT or self.kept_chars < TEXT_BUDGET):
            ids = self._text_ids
            index = ids.get(full)
            if index is None:
                index = ids[full] = len(self.texts)
                self.texts.append(full)
                self.kept_chars += n
            return index
        if limit > SMALL_TEXT and self.kept_chars >= TEXT_BUDGET:
            limit = SMALL_TEXT
        # A long text capped lately (a shared system prompt past the budget, say) is
        # found by its length and compared whole in C, not hashed again with SHA-256.
        recent = self._recent
        seen = recent.get(n)
        if seen is not None and seen[0] == limit and seen[1] == full:
            return seen[2]
        sha = _SHA256.copy()  # cheaper than a new hash object, with OpenSSL 3
        sha.update(full.encode("utf-8", "surrogatepass"))
        digest = sha.hexdigest()
        key = (digest, limit)
        ids = self._text_ids
        index = ids.get(key)
        if index is None:
            index = ids[key] = len(self.texts)
            self.texts.append({"p": full[:limit], "n": n, "h": digest})
            self.kept_chars += limit
        self._recent_chars += n
        if self._recent_chars > _RECENT_CHARS:  # the texts it holds stay few
            recent.clear()
            self._recent_chars = n
        recent[n] = (limit, full, index)
        return index

    # -- folds ------------------------------------------------------------------

    def index_outputs(self, paths: Iterable[str]) -> None:
        """The session's output paths, in the order of the report's ``outputs``.

        Given before the calls are folded: a call's row names its outputs by
        their position in that list.
        """
        self._output_index = {path: k for k, path in enumerate(paths)}

    def fold_calls(self, records: Iterable[dict[str, Any]]) -> None:
        """Fold a batch of ``llm_call`` records (each with the ``outputs`` it produced)."""
        call = self.call
        for rec in records:
            call(rec)

    def call(self, rec: dict[str, Any]) -> None:
        """Fold one ``llm_call`` record (with the ``outputs`` it produced).

        The call's row is serialised here, once: kept as bytes rather than as
        a dict of lists, ten thousand rows are not ten thousand containers for
        the garbage collector to walk again and again while the pass goes on.
        """
        self.calls_total += 1
        if (
            len(self.calls) >= MAX_CALLS
            or self.kept_chars + _CALL_BYTES * len(self.calls) > PAGE_BUDGET
        ):
            return
        text = self.text
        get = rec.get
        request = get("request")
        if type(request) is not dict:
            request = {}
        response = get("response")
        if type(response) is not dict:
            response = {}
        msg = None
        messages = request.get("messages")
        if type(messages) is list:
            msg = []
            for m in messages:
                # The common message (a role and a text) without a call to _message.
                if type(m) is dict and type(m.get("content")) is str and "tool_calls" not in m:
                    role = m.get("role")
                    msg.append([role if type(role) is str else str(role), text(m["content"])])
                else:
                    msg.append(self._message(m))
        given = request.get("input")
        given_text = None if given is None else text(given)
        params = request.copy()  # the request less its texts, in C
        for key in ("messages", "input", "model"):
            params.pop(key, None)
        if params and params != self._last_params[0]:
            # Calls of a pipeline mostly share their parameters: compared in C, shown once.
            self._last_params = (params, text(_json_text(params)))
        tool_calls = response.get("tool_calls")
        usage = get("usage")
        error = get("error")
        attempts = get("attempts")
        outputs = get("outputs")
        index = self._output_index
        # One array per call, in the order of CALL_FIELDS (the page names them again).
        # Numbers go through as they are: the page checks every value's type before use.
        row = [
            str(get("call_id")),
            get("timestamp"),
            get("stage"),
            get("task"),
            get("model") or request.get("model"),
            get("api"),
            str(get("status")),
            get("latency_ms"),
            get("time_to_first_token_ms"),
            get("stream") is True,
            get("cost_usd"),
            response.get("finish_reason"),
            msg,
            given_text,
            self._last_params[1] if params else None,
            text(response.get("output_text")),
            text(_json_text(tool_calls)) if tool_calls else None,
            list(map(usage.get, _USAGE_KEYS)) if type(usage) is dict else None,
            {
                "type": error.get("type"),
                "message": text(error.get("message")),
                "status_code": error.get("status_code"),
                "request_id": error.get("request_id"),
            }
            if type(error) is dict
            else None,
            [
                [
                    a.get("attempt"),
                    a.get("status_code", a.get("status")),
                    a.get("duration_ms"),
                    a.get("request_id"),
                    a.get("retry_after"),
                ]
                for a in attempts
                if type(a) is dict
            ]
            if type(attempts) is list
            else None,
            [index[p] for p in map(str, outputs) if p in index]
            if type(outputs) is list and outputs
            else None,
        ]
        try:
            self.calls.append(orjson.dumps(row))
        except TypeError:  # an integer past 64 bits, say: the standard library copes
            self.calls.append(_std_json(row))

    def _message(self, message: Any) -> list[Any]:
        if type(message) is not dict:
            return ["?", self.text(message)]
        content = message.get("content")
        body = content if type(content) is str else (_as_text(content) or "")
        if message.get("tool_calls"):
            body += ("\n" if body else "") + "tool calls: " + _json_text(message["tool_calls"])
        role = message.get("role")
        return [role if type(role) is str else str(role), self.text(body)]

    def errors(self, recs: Sequence[Mapping[str, Any]]) -> None:
        """Fold error-level records (the first `MAX_ERROR_RECORDS` keep their traceback)."""
        self.error_records_total += len(recs)
        room = MAX_ERROR_RECORDS - len(self.error_records)
        # Past the first few hundred, a batch's records are only counted: not one by one.
        for rec in recs[:room] if room > 0 else ():
            exc = rec.get("exception")
            event = rec.get("event")
            self.error_records.append(
                {
                    "t": rec.get("timestamp"),
                    "level": rec.get("level"),
                    "logger": rec.get("logger"),
                    "event": event if isinstance(event, str) else _as_text(event),
                    "stage": rec.get("stage"),
                    "task": rec.get("task"),
                    "exc": self.text(exc, 8 * MAX_TEXT) if exc else None,
                }
            )

    def task(self, rec: Mapping[str, Any]) -> None:
        """Fold one BELog record."""
        self.tasks_total += 1
        if len(self.tasks) >= MAX_TASKS:
            return
        errors = rec.get("errors_encountered")
        suggestions = rec.get("improvement_suggestions")
        self.tasks.append(
            {
                "name": str(rec.get("task_name") or rec.get("task")),
                "stage": rec.get("stage"),
                "end": rec.get("timestamp"),
                "duration": _number(rec.get("execution_time")),
                "success": rec.get("success") is True,
                "score": rec.get("efficiency_score"),
                "expected": rec.get("expected_outcome"),
                "errors": [self.text(e, 1000) for e in errors[:20]]
                if isinstance(errors, list)
                else [],
                "suggestions": [str(_as_text(s))[:1000] for s in suggestions[:20]]
                if isinstance(suggestions, list)
                else [],
                "trace": rec.get("execution_trace_id"),
            }
        )


# -- the data the page embeds ------------------------------------------------------


def _offsets(t0: float | None, start: Any, end: Any) -> tuple[float | None, float | None]:
    if t0 is None:
        return None, None
    a, b = _epoch(start), _epoch(end)
    return (
        None if a is None else round(a - t0, 6),
        None if b is None else round(b - t0, 6),
    )


def _timeline(
    stages: list[dict[str, Any]], tasks: list[dict[str, Any]], t0: float | None
) -> list[dict[str, Any]]:
    """Rows of the timeline: each stage, then what ran inside it, depth first.

    A stage's parent is the latest earlier stage of that name, and a task's
    stage the latest stage of its name that started before it, so nesting
    follows time even when names repeat, and can never loop.
    """
    nodes: list[dict[str, Any]] = []
    last_by_name: dict[str, int] = {}
    parent_of: list[int | None] = []
    for st in stages:
        x0, x1 = _offsets(t0, st.get("start_time"), st.get("end_time"))
        parent = st.get("parent")
        parent_of.append(last_by_name.get(str(parent)) if parent is not None else None)
        last_by_name[str(st.get("name"))] = len(nodes)
        nodes.append(
            {
                "kind": "stage",
                "name": str(st.get("name")),
                "x0": x0,
                "x1": x1,
                "dur": st.get("duration_seconds"),
                "failed": st.get("success") is False,
                "open": st.get("end_time") is None,
                "stage": str(st.get("name")),
            }
        )
    children: dict[int | None, list[tuple[float, int, dict[str, Any]]]] = {}
    for i, (node, parent) in enumerate(zip(nodes, parent_of, strict=True)):
        children.setdefault(parent, []).append((node["x0"] or 0.0, i, node))
    by_name: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        by_name.setdefault(node["name"], []).append(i)
    for k, task in enumerate(tasks):
        _, x1 = _offsets(t0, None, task.get("end"))
        duration = task.get("duration") or 0.0
        x0 = None if x1 is None else round(x1 - duration, 6)
        home: int | None = None
        for i in by_name.get(str(task.get("stage")), ()):
            if home is None or x0 is None or (nodes[i]["x0"] or 0.0) <= x0 + 1e-3:
                home = i
        row = {
            "kind": "task",
            "name": task["name"],
            "x0": x0,
            "x1": x1,
            "dur": task.get("duration"),
            "failed": task.get("success") is False,
            "open": False,
            "stage": task.get("stage"),
        }
        children.setdefault(home, []).append((x0 or 0.0, len(nodes) + k, row))
    rows: list[dict[str, Any]] = []

    def visit(parent: int | None, depth: int) -> None:
        for _, key, node in sorted(children.get(parent, ()), key=lambda c: (c[0], c[1])):
            rows.append({**node, "depth": depth})
            if node["kind"] == "stage":
                visit(key, depth + 1)

    visit(None, 0)
    return rows


def page_data(report: Any, page: PageBuilder) -> dict[str, Any]:
    """The JSON document the page embeds, from a `SessionReport` and its `PageBuilder`."""
    s = report.session
    t0 = _epoch(report.start_time)
    status = ("success" if report.success else "failed") if report.ended else "not_ended"
    outputs = report.outputs
    ai = dict(report.ai_usage)
    models = ai.get("by_model") or {}
    ai["model"] = max(models, key=lambda m: models[m]["calls"]) if models else None
    return {
        "v": PAGE_DATA_VERSION,
        "generated_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "session": {
            "id": report.session_id,
            "title": report.title,
            "status": status,
            "ended": report.ended,
            "success": report.success,
            "start": report.start_time,
            "end": report.end_time,
            "duration": report.duration_seconds,
            "exception": page.text(report.exception, 8 * MAX_TEXT) if report.exception else None,
            "execution_context": s.get("execution_context"),
            "blueprint_id": s.get("blueprint_id"),
            "blueprint_version": s.get("blueprint_version"),
            "parent": s.get("parent_session_id"),
            "host": s.get("host"),
            "python": s.get("python"),
            "belog_version": s.get("belog_version"),
        },
        "records": report.records,
        "ai": ai,
        "stages": [
            {
                "name": st.get("name"),
                "parent": st.get("parent"),
                "duration": st.get("duration_seconds"),
                "success": st.get("success"),
                "records": st.get("records"),
                "errors": st.get("errors"),
                "warnings": st.get("warnings"),
            }
            for st in report.stages
        ],
        "timeline": _timeline(report.stages, page.tasks, t0),
        "tasks": page.tasks,
        "call_fields": CALL_FIELDS,
        "calls": CallRows(page.calls),
        "outputs": [{"path": o["path"], "calls": o["call_ids"]} for o in outputs],
        "inputs": report.inputs,
        "contents": report.contents,
        "errors": report.errors,
        "error_records": page.error_records,
        "metrics": report.metrics,
        "issues": report.issues,
        "texts": page.texts,
        "limits": {
            "calls_total": page.calls_total,
            "error_records_total": page.error_records_total,
            "tasks_total": page.tasks_total,
            "max_text": MAX_TEXT,
        },
    }


# -- the HTML ---------------------------------------------------------------------


def _resource(name: str) -> str:
    return (resources.files("structlog_belog") / _TEMPLATE_DIR / name).read_text("utf-8")


def _csp_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


@functools.lru_cache(maxsize=1)
def _parts() -> tuple[str, str, str, str]:
    """The template, style and script, read once, and the policy that admits them."""
    html = _resource("execution_report.html")
    style = _resource("execution_report.css")
    script = _resource("execution_report.js")
    for name, source, end in (("css", style, "</style"), ("js", script, "</script")):
        if end in source.lower():  # pragma: no cover - guards our own files
            msg = f"execution_report.{name} must not contain {end!r}"
            raise ValueError(msg)
    csp = (
        f"default-src 'none'; script-src {_csp_hash(script)}; style-src {_csp_hash(style)}; "
        "base-uri 'none'; form-action 'none'"
    )
    return html, style, script, csp


def _orjson_default(value: Any) -> Any:
    if type(value) is CallRows:
        rows = value.rows
        if _Fragment is not None:
            return _Fragment(b"[" + b",".join(rows) + b"]")
        return [orjson.loads(row) for row in rows]  # pragma: no cover - orjson < 3.9.8
    raise TypeError


def _json_for_script(data: Any) -> bytes:
    try:
        raw = orjson.dumps(data, default=_orjson_default, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # an integer past 64 bits, say: the standard library copes
        raw = _std_json(data)
    # One byte is a scan at memchr speed, three bytes a slower one: U+2028 and
    # U+2029 are looked for only in a page that has their first byte at all.
    has_e2 = b"\xe2" in raw
    for old, new in _JSON_ESCAPES:
        if (len(old) == 1 or has_e2) and old in raw:
            raw = raw.replace(old, new)
    return raw


@functools.lru_cache(maxsize=1)
def _frame() -> tuple[bytes, bytes]:
    """The page before and after its data, as UTF-8."""
    html, style, script, csp = _parts()
    values = {"CSP": csp, "STYLE": style, "SCRIPT": script, "DATA": "\0"}
    # One pass over the template: inserted text is never searched for markers.
    head, tail = _MARKER.sub(lambda m: values[m.group(1)], html).split("\0")
    return head.encode("utf-8"), tail.encode("utf-8")


def page_pieces(data: Mapping[str, Any]) -> tuple[bytes, bytes, bytes]:
    """The page as three byte strings to write one after the other (no 20 MB join)."""
    head, tail = _frame()
    return head, _json_for_script(data), tail


def render_page(data: Mapping[str, Any]) -> bytes:
    """The page as UTF-8 HTML, with *data* (see `page_data`) embedded as JSON."""
    return b"".join(page_pieces(data))
