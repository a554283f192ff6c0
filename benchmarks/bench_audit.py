"""Cost of the prompt audit: audited ÷ bare OpenAI calls, same process, same run.

Run: python benchmarks/bench_audit.py [--calls N] [--rounds R]
     python benchmarks/bench_audit.py --peers   (belog beside its peers: see _peers.py)

Both clients are the real ``openai`` SDK over an in-process httpx transport that
replays pre-rendered answers (recorded once from `FakeLLM`, so the transport
itself costs next to nothing and the ratio is not diluted by it). Both run
inside the same configured session writing real files; the only difference is
``instrument_openai`` on the audited client (which writes one llm_call record
per call to prompts.jsonl plus a reference line, and for streams asks for and
hides the usage chunk). Rounds alternate bare/audited; the best round of each
is kept (the least disturbed by the rest of the machine). Times are this
process's CPU time, so time spent descheduled on a busy machine does not count.
Targets: non-streamed ≤ 1.05, 200-chunk stream ≤ 1.10. Two more scenarios
have no target: the same non-streamed call with a 10 KB system prompt shows
what longer prompts add, and one whose 2.9 KB answer is new every call (the
other scenarios replay the same answer, which the redactor then knows clean)
shows what scanning a real model's answers adds.

``--floor`` also times, in the same run, the least any durable audit can do
per non-streamed call: a hand-written wrapper with the same two httpx hooks
that reads the result, checks its strings against a set of known-clean ones,
renders a record of the same shape with one ``orjson.dumps`` and writes it and
a reference line with two ``os.write`` calls (no context, no timestamp
formatting, no price lookup, no session bookkeeping). It is a yardstick for
the target, not something the library could ship.

``--unwritten`` times a third yardstick: the real audit (``instrument_openai``)
with its record built but not written (the audit's record sink replaced by a
no-op for those calls). It shows what the audit costs before its record
reaches the record path.

``--tight`` times a fourth: the audit's work for this one kind of call (sync
chat, strings known clean) written as a single function over belog's own
parts — context, redaction lookups, timestamp, call ID, usage, attempts,
price, the record and its reference through the real router, the session's
bookkeeping — without the general path's fallbacks. It is where a dedicated
fast path for the common call would land.
"""

from __future__ import annotations

import argparse
import contextvars
import functools
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson

import structlog_belog as belog
from structlog_belog.audit.fake_llm import FAKE_BASE_URL, FakeLLM

MESSAGES = [
    {"role": "system", "content": "You write supertasks for a learning app."},
    {"role": "user", "content": "Generate a beginner supertask from the Naval notes."},
]
#: A 10 KB system prompt, the same in every call (as an application's would be).
LONG_MESSAGES = [
    {"role": "system", "content": " ".join(["Answer from the notes given; cite them."] * 250)},
    MESSAGES[1],
]
TARGETS = {"non-streamed": 1.05, "stream (200 chunks)": 1.10}
#: A scenario whose 2.9 KB answer is new every call: what redaction costs when
#: no answer is known clean yet (the other scenarios repeat theirs).
_NEW_ANSWERS = "new 2.9 KB answers"


def _recorded(body: dict[str, Any], output_tokens: int) -> tuple[dict[str, str], bytes]:
    """One answer from FakeLLM, as headers and body bytes to replay."""
    with httpx.Client(transport=FakeLLM(output_tokens=output_tokens)) as http:
        response = http.post(f"{FAKE_BASE_URL}/chat/completions", json=body)
        return dict(response.headers), response.read()


class Replay(httpx.BaseTransport):
    """Answers every chat request with a pre-rendered answer (stream or not, usage or not).

    With *unique*, each non-streamed answer's text starts with a new number,
    so no answer is ever seen twice (as with a real model).
    """

    def __init__(self, output_tokens: int, *, unique: bool = False) -> None:
        base = {"model": "gpt-4o-mini", "messages": MESSAGES}
        self.unique = unique
        self.count = 0
        self.answers = {
            (False, False): _recorded(base, output_tokens),
            (True, False): _recorded({**base, "stream": True}, output_tokens),
            (True, True): _recorded(
                {**base, "stream": True, "stream_options": {"include_usage": True}},
                output_tokens,
            ),
        }

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Replay the answer matching the request's stream and include_usage flags."""
        body = json.loads(request.read())
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        stream = bool(body.get("stream"))
        headers, content = self.answers[(stream, usage)]
        headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
        if self.unique and not stream:
            self.count += 1
            content = content.replace(b'"content":"', b'"content":"%d ' % self.count, 1)
        return httpx.Response(200, headers=headers, content=content, request=request)


def _client(transport: httpx.BaseTransport) -> openai.OpenAI:
    return openai.OpenAI(
        api_key="-".join(("bench", "placeholder")),
        base_url=FAKE_BASE_URL,
        http_client=httpx.Client(transport=transport),
        max_retries=0,
    )


class Floor:
    """The least a durable audit can do per call (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        self.prompts = os.open(folder / "floor_prompts.jsonl", flags, 0o600)
        self.processing = os.open(folder / "floor_processing.jsonl", flags, 0o600)
        self.active: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
            "floor", default=None
        )
        self.clean: set[str] = {m["content"] for m in MESSAGES}
        self.count = 0

    def instrument(self, client: openai.OpenAI) -> openai.OpenAI:
        """Wrap *client*'s chat create and add the two hooks."""
        create = client.chat.completions.create
        client.chat.completions.create = functools.wraps(create)(  # type: ignore[method-assign]
            lambda **kwargs: self.call(create, kwargs)
        )
        client._client.event_hooks = {"request": [self.sent], "response": [self.answered]}
        return client

    def sent(self, _: Any) -> None:
        attempts = self.active.get()
        if attempts is not None:
            attempts.append(time.perf_counter())

    def answered(self, response: Any) -> None:
        attempts = self.active.get()
        if attempts is not None:
            attempts.append((time.perf_counter(), response))

    def call(self, create: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        attempts: list[Any] = []
        token = self.active.set(attempts)
        started = time.perf_counter()
        try:
            result = create(**kwargs)
        finally:
            self.active.reset(token)
        ended = time.perf_counter()
        fields = result.__dict__
        choice = fields["choices"][0].__dict__
        text = choice["message"].__dict__["content"]
        usage = fields["usage"].__dict__
        sent, (answered, response) = attempts
        headers = dict(response.headers.raw)
        if not self.clean.issuperset([text, kwargs["model"]]):
            self.clean.update((text, kwargs["model"]))  # stands in for a scan
        self.count += 1
        record = {
            "timestamp": "2026-11-22T00:00:00.000000Z",
            "level": "info",
            "logger": "floor",
            "event": "llm_call",
            "kind": "llm_call",
            "call_id": f"llm_{self.count:08x}",
            "name": "chat.completions.create",
            "provider": "openai",
            "api": "chat.completions",
            "model": kwargs["model"],
            "request": {"model": kwargs["model"], "messages": kwargs["messages"]},
            "response": {
                "id": fields["id"],
                "model": fields["model"],
                "output_text": text,
                "finish_reason": choice["finish_reason"],
                "tool_calls": None,
            },
            "usage": {
                "input_tokens": usage["prompt_tokens"],
                "output_tokens": usage["completion_tokens"],
                "total_tokens": usage["total_tokens"],
            },
            "latency_ms": round((ended - started) * 1e6) / 1000,
            "stream": False,
            "status": "ok",
            "error": None,
            "attempts": [
                {
                    "attempt": 1,
                    "status_code": response.status_code,
                    "duration_ms": round((answered - sent) * 1e6) / 1000,
                    "request_id": headers.get(b"x-request-id", b"").decode("latin-1"),
                }
            ],
            "cost_usd": None,
            "session_id": "floor",
        }
        os.write(self.prompts, orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        reference = {key: record[key] for key in ("timestamp", "event", "call_id", "session_id")}
        os.write(self.processing, orjson.dumps(reference, option=orjson.OPT_APPEND_NEWLINE))
        return result


class Tight:
    """What a dedicated single-function path for this call would cost (see the docstring).

    It does the work the audit does for a plain sync chat call whose strings
    are known clean — context, redaction lookups, timestamp, call ID, usage,
    attempts, price, the record and its reference through the real router,
    the session's bookkeeping — in one function, without the general path's
    fallbacks (other APIs, streams, errors, odd types, hooks for tests).
    """

    def __init__(self) -> None:
        from structlog_belog.core import config as _config

        pipeline = _config.ensure_pipeline()
        assert pipeline.redactor is not None
        assert pipeline.router is not None
        self.redactor = pipeline.redactor
        self.router = pipeline.router

    def instrument(self, client: openai.OpenAI) -> openai.OpenAI:
        """Wrap *client*'s chat create; belog's capture times the attempts."""
        from structlog_belog.audit import capture

        create = client.chat.completions.create
        client.chat.completions.create = functools.wraps(create)(  # type: ignore[method-assign]
            lambda **kwargs: self.call(create, kwargs)
        )
        capture.instrument_client(client)  # under ACTIVE: only its attempts are listed
        return client

    def call(self, create: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        from structlog_belog.audit.call import ACTIVE, _cost, _ids, describe_attempts
        from structlog_belog.core import context as _context
        from structlog_belog.core import pipeline as _pipeline
        from structlog_belog.core.redact import Vetted

        if ACTIVE.get() is not None:
            return create(**kwargs)
        call = _Attempts()
        ctx = _context.current()
        started = time.perf_counter()
        token = ACTIVE.set(call)  # type: ignore[arg-type]
        try:
            result = create(**kwargs)
        finally:
            ACTIVE.reset(token)
        ended = time.perf_counter()
        clean, redact = self.redactor._clean, self.redactor.redact_value
        model, messages = kwargs["model"], kwargs["messages"]
        for message in messages:
            if message["content"] not in clean:
                redact(message["content"])
        fields = result.__dict__
        choice = fields["choices"][0].__dict__
        message_fields = choice["message"].__dict__
        text = message_fields["content"]
        if text not in clean:
            text = redact(text)
        counts = fields["usage"].__dict__
        usage = Vetted(
            input_tokens=counts["prompt_tokens"],
            output_tokens=counts["completion_tokens"],
            total_tokens=counts["total_tokens"],
            cached_tokens=0,
            reasoning_tokens=0,
        )
        session = ctx.session
        record = {
            "timestamp": _pipeline.format_timestamp(time.time()),
            "level": "info",
            "logger": "structlog_belog.audit",
            "event": "llm_call",
            "kind": "llm_call",
            "call_id": f"{_ids.prefix}{next(_ids.counter):08x}",
            "name": "chat.completions.create",
            "provider": "openai",
            "api": "chat.completions",
            "model": model,
            "request": {"model": model, "messages": [dict(m) for m in messages]},
            "response": {
                "id": fields["id"],
                "model": fields["model"],
                "output_text": text,
                "finish_reason": choice["finish_reason"],
                "tool_calls": None,
                "system_fingerprint": fields.get("system_fingerprint"),
            },
            "usage": usage,
            "latency_ms": round((ended - started) * 1e6) / 1000,
            "stream": False,
            "status": "ok",
            "error": None,
            "attempts": describe_attempts(call.attempts, None),
            "cost_usd": _cost(model, usage),
            "session_id": session.id,
        }
        record.update(ctx.record_fields)
        line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        self.router.write(session.id, "prompts", False, line)
        reference = _pipeline.reference(record, "prompts")
        self.router.write(
            session.id,
            "processing",
            False,
            orjson.dumps(reference, option=orjson.OPT_APPEND_NEWLINE),
        )
        session.note_call(record)
        return result


class _Attempts:
    """What belog's attempt hooks need of a call: its list of attempts."""

    __slots__ = ("attempts",)

    def __init__(self) -> None:
        self.attempts: list[list[Any]] = []


def unwritten(client: openai.OpenAI) -> openai.OpenAI:
    """Instrument *client*; its calls build their records but do not write them."""
    from structlog_belog.audit import call as _audit_call

    belog.instrument_openai(client)
    create = client.chat.completions.create

    def call(**kwargs: Any) -> Any:
        sink = _audit_call.sink
        _audit_call.sink = _discard
        try:
            return create(**kwargs)
        finally:
            _audit_call.sink = sink

    client.chat.completions.create = functools.wraps(create)(call)  # type: ignore[method-assign]
    return client


def _discard(_: dict[str, Any], __: str) -> None:
    """A record sink that writes nothing."""


def _time(fn: Callable[[], None], calls: int) -> float:
    gc.collect()
    t0 = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - t0) / calls * 1e6


def _once(client: openai.OpenAI, stream: bool, messages: list[dict[str, str]]) -> None:
    if stream:
        for _ in client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, stream=True
        ):
            pass
    else:
        client.chat.completions.create(model="gpt-4o-mini", messages=messages)


def measure(
    calls: int, rounds: int, floor: bool, unwritten_too: bool = False, tight: bool = False
) -> dict[str, tuple[float, float, float]]:
    """Per scenario: µs per call bare and audited (best round of each), and the
    median of the rounds' audited/bare ratios (each against the bare round next to it)."""
    tmp = Path(tempfile.mkdtemp(prefix="bench_audit_"))
    belog.configure(log_dir=tmp / "logs", console=False, handle_signals=False)
    results: dict[str, tuple[float, float, float]] = {}
    with belog.session("bench_audit", package=False):
        for name, tokens, stream, messages in (
            ("non-streamed", 20, False, MESSAGES),
            ("10 KB system prompt", 20, False, LONG_MESSAGES),
            (_NEW_ANSWERS, 400, False, MESSAGES),
            ("stream (200 chunks)", 200, True, MESSAGES),
        ):
            transport = Replay(tokens, unique=name == _NEW_ANSWERS)
            clients = {"bare": _client(transport)}
            clients[name] = belog.instrument_openai(_client(transport))
            if floor and name == "non-streamed":
                clients["floor (non-streamed)"] = Floor(tmp).instrument(_client(transport))
            if unwritten_too and name == "non-streamed":
                clients["audit, not written"] = unwritten(_client(transport))
            if tight and name == "non-streamed":
                clients["tight (non-streamed)"] = Tight().instrument(_client(transport))
            once = functools.partial(_once, stream=stream, messages=messages)
            for client in clients.values():  # warm up imports, pools and caches
                for _ in range(20):
                    once(client)
            times: dict[str, list[float]] = {label: [] for label in clients}
            order = list(clients.items())
            for _ in range(rounds):  # rotate which goes first, so drift hits all alike
                for label, client in order:
                    times[label].append(_time(functools.partial(once, client), calls))
                order = order[1:] + order[:1]
            bare = times.pop("bare")
            for label, audited in times.items():
                paired = statistics.median(a / b for a, b in zip(audited, bare, strict=True))
                results[label] = (min(bare), min(audited), paired)
    return results


def main() -> int:
    """Print the table of µs per call and audited/bare ratios; exit 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100, help="calls per round")
    parser.add_argument(
        "--rounds", type=int, default=None, help="alternated rounds per client (21; 11 for --peers)"
    )
    parser.add_argument(
        "--floor", action="store_true", help="also time the least a durable audit can do"
    )
    parser.add_argument(
        "--unwritten",
        action="store_true",
        help="also time the audit with its record built but not written",
    )
    parser.add_argument(
        "--tight",
        action="store_true",
        help="also time a single-function audit of this one call (a fast path's cost)",
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help="belog beside Logfire, OTel openai-v2, OpenInference and Langfuse (see _peers.py)",
    )
    parser.add_argument(
        "--python",
        default=None,
        help="interpreter with the peers installed (default .cache/peers/venv/bin/python)",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="with --peers: count instructions under callgrind instead of timing (needs valgrind)",
    )
    parser.add_argument("--peer-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--peer-count", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_count is not None:
        import _peers

        print(json.dumps(_peers.count_worker(args.peer_count, args.calls, args.rounds or 2)))
        return 0
    if args.peers and args.instructions:
        import _peers

        python = args.python or str(_peers.DEFAULT_PYTHON)
        return _peers.report_counts(python, args.calls, args.rounds or 2)
    if args.peer_worker is not None or args.peers:
        import _peers

        rounds = 11 if args.rounds is None else args.rounds
        if args.peer_worker is not None:
            print(json.dumps(_peers.worker(args.peer_worker, args.calls, rounds)))
            return 0
        return _peers.report(args.python or str(_peers.DEFAULT_PYTHON), args.calls, rounds)
    args.rounds = 21 if args.rounds is None else args.rounds
    results = measure(args.calls, args.rounds, args.floor, args.unwritten, args.tight)
    print(
        f"python {platform.python_version()}, openai {openai.__version__}, "
        f"httpx {httpx.__version__}, {args.calls} calls x {args.rounds} rounds"
    )
    print(
        f"{'scenario':<22}{'bare µs':>10}{'audited µs':>12}{'ratio':>8}{'paired':>8}{'target':>8}"
    )
    missed = False
    for name, (bare, audited, paired) in results.items():
        ratio = audited / bare
        target = TARGETS.get(name)
        missed = missed or (target is not None and ratio > target)
        shown = "-" if target is None else f"{target:.2f}"
        print(f"{name:<22}{bare:>10.1f}{audited:>12.1f}{ratio:>8.3f}{paired:>8.3f}{shown:>8}")
    print("ratio: best audited round / best bare round; paired: median of per-round ratios")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
