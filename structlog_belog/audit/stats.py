"""LLM-call statistics of a session, folded one ``llm_call`` record at a time.

Tokens, cost and failures per model, retries and rate limits, truncated and
empty generations, and the calls slower than 3x the session's median — with
memory bounded by one float per call and a few short example lists.
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["CallStats", "Issue", "issue", "short_text"]

MAX_EXAMPLES: Final = 20  # IDs listed per issue
_SLOW_FACTOR: Final = 3.0
_TRUNCATED: Final = frozenset(("length", "max_output_tokens", "max_tokens"))

Issue = dict[str, Any]


def issue(kind: str, severity: str, message: str, count: int, examples: list[str]) -> Issue:
    """One entry of ``issues_detected``."""
    return {
        "kind": kind,
        "severity": severity,
        "message": message,
        "count": count,
        "examples": examples[:MAX_EXAMPLES],
    }


def _int(value: Any) -> int:
    return value if type(value) is int else 0


def _float(value: Any) -> float:
    return float(value) if type(value) in (int, float) else 0.0


def short_text(value: Any, limit: int = 300) -> str:
    """*value* as text of at most *limit* characters (content parts joined)."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = " ".join(
            str(p.get("text", "")) if isinstance(p, Mapping) else str(p) for p in value
        )
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def last_prompt(request: Any) -> str:
    """The last user message (or the input) of a request, shortened."""
    if not isinstance(request, Mapping):
        return ""
    messages = request.get("messages")
    if isinstance(messages, list):
        users = [m for m in messages if isinstance(m, Mapping) and m.get("role") == "user"]
        return short_text(users[-1].get("content")) if users else ""
    return short_text(request.get("input"))


def _median(values: array[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


class _Examples:
    """A count and the first few IDs of something that happened."""

    __slots__ = ("count", "ids")

    def __init__(self) -> None:
        self.count = 0
        self.ids: list[str] = []

    def add(self, call_id: str) -> None:
        self.count += 1
        if len(self.ids) < MAX_EXAMPLES:
            self.ids.append(call_id)


class CallStats:
    """Folds full ``llm_call`` records (``prompts.jsonl``) into the session's AI usage."""

    def __init__(self, wanted_prompts: Mapping[str, Any]) -> None:
        #: Calls whose prompt the summary shows (those linked to outputs).
        self.wanted_prompts = wanted_prompts
        self.calls = 0
        self.failed = 0
        self.by_model: dict[str, dict[str, Any]] = {}
        self.tokens = dict.fromkeys(("input", "output", "total", "cached", "reasoning"), 0)
        self.cost = 0.0
        self.retries = 0
        self.rate_limited = _Examples()
        self.truncated = _Examples()
        self.empty = _Examples()
        self.latencies = array("d")
        self.slowest: list[tuple[float, str]] = []  # min-heap of the slowest calls
        self.error_types: dict[str, int] = {}
        self.prompts: dict[str, dict[str, Any]] = {}

    def _model(self, name: str) -> dict[str, Any]:
        m = self.by_model.get(name)
        if m is None:
            m = self.by_model[name] = {
                "calls": 0,
                "failed_calls": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "total_tokens": 0,
                "cost_usd": 0.0,
                "latency_ms_total": 0.0,
            }
        return m

    def add(self, rec: dict[str, Any]) -> None:
        """Fold one ``llm_call`` record."""
        self.calls += 1
        call_id = str(rec.get("call_id"))
        request = rec.get("request")
        model = rec.get("model") or (request.get("model") if isinstance(request, dict) else None)
        m = self._model(str(model or "unknown"))
        m["calls"] += 1
        self._usage(rec.get("usage"), m)
        cost = _float(rec.get("cost_usd"))
        self.cost += cost
        m["cost_usd"] += cost
        latency = rec.get("latency_ms")
        if isinstance(latency, int | float) and not isinstance(latency, bool):
            self._latency(float(latency), call_id, m)
        status = rec.get("status")
        error = rec.get("error")
        if status == "error":
            self.failed += 1
            m["failed_calls"] += 1
            etype = str(error.get("type")) if isinstance(error, dict) else "error"
            self.error_types[etype] = self.error_types.get(etype, 0) + 1
        self._attempts(rec.get("attempts"), error, call_id)
        response = rec.get("response")
        self._response(response if isinstance(response, dict) else {}, rec, status, call_id)
        if call_id in self.wanted_prompts:
            self.prompts[call_id] = {
                "model": model,
                "status": status,
                "stage": rec.get("stage"),
                "task": rec.get("task"),
                "prompt": last_prompt(request),
            }

    def _usage(self, usage: Any, m: dict[str, Any]) -> None:
        if not isinstance(usage, dict):
            return
        inp, out = _int(usage.get("input_tokens")), _int(usage.get("output_tokens"))
        total = _int(usage.get("total_tokens")) or inp + out
        tokens = self.tokens
        tokens["input"] += inp
        tokens["output"] += out
        tokens["total"] += total
        tokens["cached"] += _int(usage.get("cached_tokens"))
        tokens["reasoning"] += _int(usage.get("reasoning_tokens"))
        m["input_tokens"] += inp
        m["output_tokens"] += out
        m["total_tokens"] += total

    def _latency(self, latency: float, call_id: str, m: dict[str, Any]) -> None:
        m["latency_ms_total"] += latency
        self.latencies.append(latency)
        entry = (latency, call_id)
        if len(self.slowest) < MAX_EXAMPLES:
            heapq.heappush(self.slowest, entry)
        elif entry > self.slowest[0]:
            heapq.heapreplace(self.slowest, entry)

    def _attempts(self, attempts: Any, error: Any, call_id: str) -> None:
        statuses: list[Any] = []
        if isinstance(attempts, list):
            self.retries += max(0, len(attempts) - 1)
            statuses = [
                a.get("status_code", a.get("status")) for a in attempts if isinstance(a, dict)
            ]
        if isinstance(error, dict):
            statuses.append(error.get("status_code"))
        if 429 in statuses:
            self.rate_limited.add(call_id)

    def _response(
        self, response: dict[str, Any], rec: dict[str, Any], status: Any, call_id: str
    ) -> None:
        if response.get("finish_reason") in _TRUNCATED or status == "incomplete":
            self.truncated.add(call_id)
        elif status == "ok" and rec.get("api") != "embeddings":
            text = response.get("output_text")
            if isinstance(text, dict):  # content not captured: a length and a hash
                text = text.get("length")
            if not text and not response.get("tool_calls"):
                self.empty.add(call_id)

    def usage(self) -> dict[str, Any]:
        """The ``ai_usage`` numbers (without the most-used model)."""
        by_model = {}
        for name, m in sorted(self.by_model.items()):
            row = dict(m)
            latency_total = row.pop("latency_ms_total")
            row["cost_usd"] = round(row["cost_usd"], 6)
            row["mean_latency_ms"] = round(latency_total / row["calls"], 3)
            by_model[name] = row
        calls = self.calls
        return {
            "total_api_calls": calls,
            "failed_calls": self.failed,
            "success_rate": round((calls - self.failed) / calls, 4) if calls else None,
            "total_tokens": self.tokens["total"],
            "input_tokens": self.tokens["input"],
            "output_tokens": self.tokens["output"],
            "cached_tokens": self.tokens["cached"],
            "reasoning_tokens": self.tokens["reasoning"],
            "cost_usd": round(self.cost, 6),
            "retries": self.retries,
            "error_types": dict(sorted(self.error_types.items())),
            "by_model": by_model,
        }

    def issues(self) -> list[Issue]:
        """Failed, rate-limited, retried, truncated, empty and slow calls."""
        found = []
        if self.failed:
            kinds = ", ".join(f"{k} x{n}" for k, n in sorted(self.error_types.items()))
            found.append(
                issue(
                    "llm_errors",
                    "error",
                    f"{self.failed} LLM call(s) failed ({kinds})",
                    self.failed,
                    [],
                )
            )
        if self.rate_limited.count:
            n = self.rate_limited.count
            found.append(
                issue(
                    "rate_limited",
                    "warning",
                    f"{n} LLM call(s) hit a rate limit (HTTP 429)",
                    n,
                    self.rate_limited.ids,
                )
            )
        if self.retries:
            word = "retry" if self.retries == 1 else "retries"
            found.append(
                issue(
                    "retries",
                    "info",
                    f"{self.retries} HTTP {word} across LLM calls",
                    self.retries,
                    [],
                )
            )
        if self.truncated.count:
            n = self.truncated.count
            found.append(
                issue(
                    "truncated_generation",
                    "warning",
                    f"{n} generation(s) stopped at the token limit (finish_reason 'length')",
                    n,
                    self.truncated.ids,
                )
            )
        if self.empty.count:
            n = self.empty.count
            found.append(
                issue(
                    "empty_output",
                    "warning",
                    f"{n} LLM call(s) returned no text",
                    n,
                    self.empty.ids,
                )
            )
        slow = self._slow()
        if slow is not None:
            found.append(slow)
        return found

    def _slow(self) -> Issue | None:
        if len(self.latencies) < 3:
            return None
        median = _median(self.latencies)
        limit = _SLOW_FACTOR * median
        count = sum(1 for x in self.latencies if x > limit)
        if not count or median <= 0:
            return None
        examples = [cid for lat, cid in sorted(self.slowest, reverse=True) if lat > limit]
        return issue(
            "slow_calls",
            "warning",
            f"{count} LLM call(s) slower than {_SLOW_FACTOR:g}x the session's median "
            f"({median:.0f} ms)",
            count,
            examples,
        )
