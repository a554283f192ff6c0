"""belog's per-call audit overhead beside its peers' (``bench_audit.py --peers``).

Each auditor runs in its own process (they all patch the ``openai`` SDK, and
several cannot be undone cleanly), over the same in-process replay transport
as the rest of ``bench_audit.py``: the real SDK, a pre-rendered answer, no
network. In its process, rounds of calls alternate with the auditor turned
off and on (each library's own uninstrument; Langfuse has none, so its
wrappers are swapped out and back), and the per-call overhead is the best
audited round minus the best bare round, in µs of this process's CPU time
(background export threads included: each audited round ends with the
auditor's flush, inside the timed region).

What each auditor does with a call, as configured here:

- belog: ``instrument_openai()`` (the whole SDK) inside a session; one
  ``llm_call`` record with content, usage, cost, attempts, written durably to
  prompts.jsonl plus a reference line in processing.jsonl.
- Logfire: ``logfire.configure(send_to_logfire=False, console=False)`` plus a
  batch span processor writing each span as a JSON line to a file;
  ``logfire.instrument_openai(client)``.
- OpenTelemetry openai-v2: ``OpenAIInstrumentor().instrument()`` with message
  content captured in the span (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``),
  an SDK ``TracerProvider`` with a batch span processor writing JSON lines to a file.
- OpenInference: ``OpenAIInstrumentor().instrument()`` (content captured by
  default), the same provider and file exporter.
- Langfuse: ``from langfuse.openai import openai`` with a ``Langfuse`` client
  whose ``span_exporter`` is that file exporter (no server is contacted).

Every process refuses any socket connection: nothing may be sent anywhere,
and the run fails if anything tried.

Install the peers in their own environment (they are not dependencies of
structlog-belog)::

    python3 -m venv .cache/peers/venv
    .cache/peers/venv/bin/pip install -e '.[peers]'
    .venv/bin/python benchmarks/bench_audit.py --peers
"""

from __future__ import annotations

import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

PEERS = ("belog", "logfire", "otel openai-v2", "openinference", "langfuse")
SCENARIOS = {"non-streamed": (20, False), "stream (200 chunks)": (200, True)}
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PYTHON = ROOT / ".cache" / "peers" / "venv" / "bin" / "python"

# -- in the worker process ------------------------------------------------------------

REFUSED: list[str] = []


def _no_network() -> None:
    """Refuse every socket connection in this process (the bench needs none)."""

    def refuse(self: socket.socket, address: Any) -> None:
        REFUSED.append(repr(address))
        msg = f"bench_audit --peers: connection to {address!r} refused"
        raise ConnectionRefusedError(msg)

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse  # type: ignore[assignment,method-assign]


class _JsonLines:
    """A span exporter writing one JSON line per span to a file (the peers' durable record)."""

    def __init__(self, path: Path) -> None:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        self.file = path.open("w", encoding="utf-8")
        self.exporter = ConsoleSpanExporter(
            out=self.file, formatter=lambda span: span.to_json(indent=None) + "\n"
        )


def _batch(exporter: Any) -> Any:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return BatchSpanProcessor(exporter)


Toggle = tuple[Callable[[], None], Callable[[], None], Callable[[], None]]
"""What a setup returns: turn the auditor on, turn it off, flush what it buffered."""


def _belog(tmp: Path, stack: ExitStack, clients: list[Any]) -> Toggle:
    import structlog_belog as belog

    belog.configure(log_dir=tmp / "logs", console=False, handle_signals=False)
    stack.enter_context(belog.session("bench_peers", package=False))
    try:
        belog.instrument_openai()
        belog.uninstrument_openai()
    except TypeError:  # a belog without the whole-SDK form: instrument each client
        return (
            lambda: [belog.instrument_openai(c) for c in clients] and None,
            lambda: [belog.uninstrument_openai(c) for c in clients] and None,
            lambda: None,
        )
    return belog.instrument_openai, belog.uninstrument_openai, lambda: None


def _logfire(tmp: Path, _: ExitStack, clients: list[Any]) -> Toggle:
    import logfire

    lines = _JsonLines(tmp / "spans.jsonl")
    logfire.configure(
        send_to_logfire=False,
        console=False,
        additional_span_processors=[_batch(lines.exporter)],
    )
    handles: list[Any] = []

    def on() -> None:
        for client in clients:  # its handle uninstruments when exited, once entered
            handle = logfire.instrument_openai(client)
            handle.__enter__()
            handles.append(handle)

    def off() -> None:
        while handles:
            handles.pop().__exit__(None, None, None)

    return on, off, logfire.force_flush


def _provider(tmp: Path) -> Any:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    provider.add_span_processor(_batch(_JsonLines(tmp / "spans.jsonl").exporter))
    trace.set_tracer_provider(provider)
    return provider


def _otel_v2(tmp: Path, _: ExitStack, __: Any) -> Toggle:
    os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "SPAN_ONLY"
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    provider = _provider(tmp)
    instrumentor = OpenAIInstrumentor()
    return (
        lambda: instrumentor.instrument(tracer_provider=provider),
        instrumentor.uninstrument,
        provider.force_flush,
    )


def _openinference(tmp: Path, _: ExitStack, __: Any) -> Toggle:
    from openinference.instrumentation.openai import OpenAIInstrumentor

    provider = _provider(tmp)
    instrumentor = OpenAIInstrumentor()
    return (
        lambda: instrumentor.instrument(tracer_provider=provider),
        instrumentor.uninstrument,
        provider.force_flush,
    )


def _langfuse(tmp: Path, _: ExitStack, __: Any) -> Toggle:
    import openai

    originals = {
        (cls, name): cls.__dict__[name]
        for cls, name in ((openai.Stream, "__iter__"), (openai.AsyncStream, "__aiter__"))
    }
    from langfuse import Langfuse

    Langfuse(
        public_key="-".join(("pk", "lf", "bench")),
        secret_key="-".join(("sk", "lf", "bench")),
        host="http://127.0.0.1:9",
        span_exporter=_JsonLines(tmp / "spans.jsonl").exporter,
    )
    from langfuse import get_client
    from langfuse import openai as lf_openai

    # Langfuse wraps the SDK when langfuse.openai is imported and has no way back:
    # find its wrappers, to swap them for what they wrap (off) and back (on).
    wrapped: dict[tuple[Any, str], tuple[Any, Any]] = {}
    for resource in lf_openai.OPENAI_METHODS_V1:
        module = sys.modules.get(resource.module)
        if module is None:
            continue
        owner: Any = module
        *path, name = f"{resource.object}.{resource.method}".split(".")
        for part in path:
            owner = getattr(owner, part)
        wrapper = owner.__dict__.get(name)
        if wrapper is not None and hasattr(wrapper, "__wrapped__"):
            wrapped[(owner, name)] = (wrapper, wrapper.__wrapped__)
    for (cls, name), original in originals.items():
        wrapped[(cls, name)] = (cls.__dict__[name], original)

    def swap(index: int) -> Callable[[], None]:
        def apply() -> None:
            for (owner, name), pair in wrapped.items():
                setattr(owner, name, pair[index])

        return apply

    return swap(0), swap(1), get_client().flush


SETUPS: dict[str, Callable[[Path, ExitStack, Any], Toggle]] = {
    "belog": _belog,
    "logfire": _logfire,
    "otel openai-v2": _otel_v2,
    "openinference": _openinference,
    "langfuse": _langfuse,
}


def _versions() -> dict[str, str]:
    from importlib import metadata

    names = ("openai", "structlog-belog", "logfire", "opentelemetry-instrumentation-openai-v2",
             "openinference-instrumentation-openai", "langfuse")  # fmt: skip
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _written(tmp: Path) -> tuple[int, int]:
    """What the auditor wrote: lines (records or spans), and those holding the prompt's text."""
    lines = with_prompt = 0
    for path in tmp.rglob("*.jsonl"):
        if path.parent.name.startswith("sess_") and not path.name.startswith("prompts"):
            continue  # belog: count the llm_call records, not their reference lines
        with path.open(encoding="utf-8") as f:
            for line in f:
                lines += 1
                with_prompt += "Naval notes" in line
    return lines, with_prompt


def _timed(once: Callable[[], None], calls: int, flush: Callable[[], None] | None) -> float:
    """µs of process CPU time per call for *calls* calls (and the flush, if any)."""
    gc.collect()
    t0 = time.process_time()
    for _ in range(calls):
        once()
    if flush is not None:
        flush()
    return (time.process_time() - t0) / calls * 1e6


Scenario = tuple[str, bool, Callable[[], None]]
"""A scenario's name, whether it streams, and one call of it."""


def _prepared(peer: str, stack: ExitStack, *, warm: int) -> tuple[Path, Toggle, list[Scenario]]:
    """*peer* set up (and off) in this process: its folder, toggle and warmed-up scenarios."""
    import bench_audit  # the sibling script: its replay transport and client

    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_peers_")))
    clients = {
        name: bench_audit._client(bench_audit.Replay(tokens))
        for name, (tokens, _) in SCENARIOS.items()
    }
    on, off, flush = SETUPS[peer](tmp, stack, list(clients.values()))
    scenarios: list[Scenario] = []
    for name, (_, stream) in SCENARIOS.items():

        def once(client: Any = clients[name], stream: bool = stream) -> None:
            bench_audit._once(client, stream, bench_audit.MESSAGES)

        for _ in range(warm):  # warm up both paths: imports, pools, caches
            once()
        on()
        for _ in range(warm):
            once()
        flush()
        off()
        scenarios.append((name, stream, once))
    return tmp, (on, off, flush), scenarios


def worker(peer: str, calls: int, rounds: int) -> dict[str, Any]:
    """Time *peer* off and on in this process; per scenario, the µs per call of each round."""
    _no_network()
    results: dict[str, Any] = {"peer": peer, "versions": _versions(), "scenarios": {}}
    with ExitStack() as stack:
        tmp, (on, off, flush), scenarios = _prepared(peer, stack, warm=20)
        for name, _, once in scenarios:
            times: dict[str, list[float]] = {"bare": [], "audited": []}
            order = ["bare", "audited"]
            for _ in range(rounds):
                for state in order:
                    if state == "bare":
                        times["bare"].append(_timed(once, calls, None))
                        continue
                    on()
                    times["audited"].append(_timed(once, calls, flush))
                    off()
                order.reverse()  # alternate which goes first, so drift hits both alike
            results["scenarios"][name] = times
        results["audited_calls"] = len(SCENARIOS) * (20 + rounds * calls)
        results["written"], results["with_prompt"] = _written(tmp)
    results["refused"] = list(REFUSED)
    return results


def count_worker(peer: str, calls: int, rounds: int) -> list[str]:
    """Run *peer* off and on, marking each segment for callgrind; the segments' labels.

    Run under ``valgrind --tool=callgrind --dump-before=sched_yield``: every
    ``os.sched_yield()`` here dumps the instructions counted since the last one,
    so dump *k* holds segment *k* of the returned list ("bare/SCENARIO",
    "audited/SCENARIO" with its flush, or "-" for the toggling between them).
    """
    _no_network()
    labels: list[str] = []

    def mark(label: str) -> None:  # ends the segment *label*
        labels.append(label)
        os.sched_yield()

    with ExitStack() as stack:
        _, (on, off, flush), scenarios = _prepared(peer, stack, warm=3)
        for name, stream, once in scenarios:
            n = max(1, calls // 20) if stream else calls  # a stream is ~20 calls' work
            for _ in range(rounds):
                gc.collect()
                mark("-")
                for _ in range(n):
                    once()
                mark(f"bare/{name}/{n}")
                on()
                gc.collect()
                mark("-")
                for _ in range(n):
                    once()
                flush()
                mark(f"audited/{name}/{n}")
                off()
        mark("-")
    return labels


def run_counts(peer: str, python: str, calls: int, rounds: int) -> dict[str, list[float]]:
    """`count_worker` for *peer* under callgrind; per scenario, instructions per call added."""
    with tempfile.TemporaryDirectory(prefix="bench_peers_cg_") as folder:
        out = Path(folder) / "cg.out"
        proc = subprocess.run(
            [
                *("valgrind", "--tool=callgrind", "--dump-before=sched_yield"),
                f"--callgrind-out-file={out}",
                *(python, str(Path(__file__).with_name("bench_audit.py"))),
                *("--peer-count", peer, "--calls", str(calls), "--rounds", str(rounds)),
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        if proc.returncode != 0:
            msg = f"{peer}: callgrind worker failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
            raise RuntimeError(msg)
        labels = json.loads(proc.stdout.strip().splitlines()[-1])
        totals = []
        for k in range(1, len(labels) + 1):
            text = out.with_name(f"{out.name}.{k}").read_text(encoding="latin-1")
            totals.append(int(next(ln for ln in text.splitlines() if ln.startswith("totals:"))[7:]))
    # Dump 1 is everything before the first mark (imports, setup, warm-up).
    found: dict[str, list[float]] = {}
    bare: dict[str, float] = {}
    for label, total in zip(labels[1:], totals[1:], strict=False):
        if label == "-":
            continue
        state, scenario, n = label.split("/")
        if state == "bare":
            bare[scenario] = total / int(n)
        else:
            found.setdefault(scenario, []).append(total / int(n) - bare[scenario])
    return found


def report_counts(python: str, calls: int, rounds: int) -> int:
    """Print each auditor's instructions added per call (callgrind); 0 if belog meets the goal."""
    rows = {peer: run_counts(peer, python, calls, rounds) for peer in PEERS}
    print(f"instructions added per call (callgrind, PYTHONHASHSEED=0), {rounds} rounds of")
    print(f"{calls} non-streamed calls and {max(1, calls // 20)} streams per state, each auditor")
    print("in its own process: each audited round (with its flush) minus the bare round before it")
    met = True
    for scenario in SCENARIOS:
        print(f"\n{scenario}")
        print(f"{'auditor':<16}{'rounds (k instructions)':>40}{'median':>10}")
        medians = {}
        for peer, found in rows.items():
            medians[peer] = statistics.median(found[scenario])
            shown = ", ".join(f"{v / 1e3:,.0f}" for v in found[scenario])
            print(f"{peer:<16}{shown:>40}{medians[peer] / 1e3:>10,.0f}")
        leanest = min((v, k) for k, v in medians.items() if k != "belog")
        share = medians["belog"] / leanest[0]
        met = met and share <= 0.5
        print(f"belog / leanest peer ({leanest[1]}): {share:.2f} (goal <= 0.50)")
    return 0 if met else 1


def run_worker(peer: str, python: str, calls: int, rounds: int) -> dict[str, Any]:
    """Run `worker` for *peer* in a new process of *python*; its results."""
    proc = subprocess.run(
        [
            *(python, str(Path(__file__).with_name("bench_audit.py"))),
            *("--peer-worker", peer, "--calls", str(calls), "--rounds", str(rounds)),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        msg = f"{peer}: worker failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
        raise RuntimeError(msg)
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def report(python: str, calls: int, rounds: int) -> int:
    """Run every peer, print the table; 0 if belog meets the goal (≤ half the leanest peer)."""
    rows = {peer: run_worker(peer, python, calls, rounds) for peer in PEERS}
    refused = {peer: r["refused"] for peer, r in rows.items() if r["refused"]}
    versions: dict[str, str] = {}
    for r in rows.values():
        versions.update(r["versions"])
    print(f"python {sys.version.split()[0]}; " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(
        f"{calls} calls x {rounds} rounds per state, each peer in its own process; "
        "µs of process CPU time per call: best round of each state, the median of the"
    )
    print("per-round differences (each audited round minus the bare round next to it), and")
    print("the median audited round minus the median bare round")
    print("written (records or spans) / audited calls, and how many hold the prompt's text:")
    for peer, r in rows.items():
        print(f"  {peer:<16}{r['written']:>7} / {r['audited_calls']}  {r['with_prompt']:>7}")
    met = True
    for scenario in SCENARIOS:
        print(f"\n{scenario}")
        print(f"{'auditor':<16}{'bare µs':>10}{'audited µs':>12}{'overhead µs':>13}"
              f"{'ratio':>8}{'paired overhead µs':>20}{'medians µs':>12}")  # fmt: skip
        best: dict[str, float] = {}
        paired: dict[str, float] = {}
        medians: dict[str, float] = {}
        for peer, r in rows.items():
            times = r["scenarios"][scenario]
            bare, audited = min(times["bare"]), min(times["audited"])
            best[peer] = audited - bare
            # Each audited round against the bare round run next to it: drift cancels.
            paired[peer] = statistics.median(
                a - b for a, b in zip(times["audited"], times["bare"], strict=True)
            )
            # The middle of each state: neither state's luckiest round decides.
            medians[peer] = statistics.median(times["audited"]) - statistics.median(times["bare"])
            print(f"{peer:<16}{bare:>10.1f}{audited:>12.1f}{best[peer]:>13.1f}"
                  f"{audited / bare:>8.3f}{paired[peer]:>20.1f}{medians[peer]:>12.1f}")  # fmt: skip
        for label, overheads in (("best rounds", best), ("paired", paired), ("medians", medians)):
            leanest = min((v, k) for k, v in overheads.items() if k != "belog")
            if leanest[0] <= 0:  # the machine's noise exceeded the peer's overhead
                met = False
                print(f"belog / leanest peer ({leanest[1]}), {label}: n/a (its overhead <= 0)")
                continue
            share = overheads["belog"] / leanest[0]
            met = met and share <= 0.5
            print(f"belog / leanest peer ({leanest[1]}), {label}: {share:.2f} (goal <= 0.50)")
    out = ROOT / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    saved = out / time.strftime("peers-%Y%m%d-%H%M%S.json")
    saved.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    print(f"\nevery round: {saved.relative_to(ROOT)}")
    if refused:
        print(f"\nFAILED: connections attempted: {refused}")
        return 2
    return 0 if met else 1
