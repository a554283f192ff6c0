"""Cost of the prompt audit: audited ÷ bare OpenAI calls, same process, same run.

Run: python benchmarks/bench_audit.py [--calls N] [--rounds R]

Both clients are the real ``openai`` SDK over an in-process httpx transport that
replays pre-rendered answers (recorded once from `FakeLLM`, so the transport
itself costs next to nothing and the ratio is not diluted by it). Both run
inside the same configured session writing real files; the only difference is
``instrument_openai`` on the audited client (which writes one llm_call record
per call to prompts.jsonl plus a reference line, and for streams asks for and
hides the usage chunk). Rounds alternate bare/audited; the best round of each
is kept (the least disturbed by the rest of the machine). Times are this
process's CPU time, so time spent descheduled on a busy machine does not count.
Targets: non-streamed ≤ 1.05, 200-chunk stream ≤ 1.10.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai

import structlog_belog as belog
from structlog_belog._fake_llm import FAKE_BASE_URL, FakeLLM

MESSAGES = [
    {"role": "system", "content": "You write supertasks for a learning app."},
    {"role": "user", "content": "Generate a beginner supertask from the Naval notes."},
]
TARGETS = {"non-streamed": 1.05, "stream (200 chunks)": 1.10}


def _recorded(body: dict[str, Any], output_tokens: int) -> tuple[dict[str, str], bytes]:
    """One answer from FakeLLM, as headers and body bytes to replay."""
    with httpx.Client(transport=FakeLLM(output_tokens=output_tokens)) as http:
        response = http.post(f"{FAKE_BASE_URL}/chat/completions", json=body)
        return dict(response.headers), response.read()


class Replay(httpx.BaseTransport):
    """Answers every chat request with a pre-rendered answer (stream or not, usage or not)."""

    def __init__(self, output_tokens: int) -> None:
        base = {"model": "gpt-4o-mini", "messages": MESSAGES}
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
        headers, content = self.answers[(bool(body.get("stream")), usage)]
        headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
        return httpx.Response(200, headers=headers, content=content, request=request)


def _client(transport: httpx.BaseTransport) -> openai.OpenAI:
    return openai.OpenAI(
        api_key="-".join(("bench", "placeholder")),
        base_url=FAKE_BASE_URL,
        http_client=httpx.Client(transport=transport),
        max_retries=0,
    )


def _time(fn: Callable[[], None], calls: int) -> float:
    gc.collect()
    t0 = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - t0) / calls * 1e6


def measure(calls: int, rounds: int) -> dict[str, tuple[float, float]]:
    """µs per call (bare, audited) for each scenario, best of *rounds* alternated rounds."""
    tmp = Path(tempfile.mkdtemp(prefix="bench_audit_"))
    belog.configure(log_dir=tmp / "logs", console=False, handle_signals=False)
    results: dict[str, tuple[float, float]] = {}
    with belog.session("bench_audit", package=False):
        for name, tokens, stream in (
            ("non-streamed", 20, False),
            ("stream (200 chunks)", 200, True),
        ):
            transport = Replay(tokens)
            bare = _client(transport)
            audited = belog.instrument_openai(_client(transport))

            def once(client: openai.OpenAI, stream: bool = stream) -> None:
                if stream:
                    for _ in client.chat.completions.create(
                        model="gpt-4o-mini", messages=MESSAGES, stream=True
                    ):
                        pass
                else:
                    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

            for client in (bare, audited):  # warm up imports, pools and caches
                for _ in range(20):
                    once(client)
            bare_times, audited_times = [], []
            for i in range(rounds):  # alternate which goes first, so drift hits both alike
                pair = ((bare, bare_times), (audited, audited_times))
                for client, times in pair if i % 2 == 0 else pair[::-1]:
                    times.append(_time(lambda c=client: once(c), calls))
            results[name] = (min(bare_times), min(audited_times))
    return results


def main() -> int:
    """Print the table of µs per call and audited/bare ratios; exit 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100, help="calls per round")
    parser.add_argument("--rounds", type=int, default=21, help="alternated rounds per client")
    args = parser.parse_args()
    results = measure(args.calls, args.rounds)
    print(
        f"python {platform.python_version()}, openai {openai.__version__}, "
        f"httpx {httpx.__version__}, {args.calls} calls x {args.rounds} rounds"
    )
    print(f"{'scenario':<22}{'bare µs':>10}{'audited µs':>12}{'ratio':>8}{'target':>8}")
    missed = False
    for name, (bare, audited) in results.items():
        ratio = audited / bare
        missed = missed or ratio > TARGETS[name]
        print(f"{name:<22}{bare:>10.1f}{audited:>12.1f}{ratio:>8.3f}{TARGETS[name]:>8.2f}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
