"""The efficiency score of a BELog task: an attempt against the median of its past successes.

Four figures of an attempt are compared with the median of the same figures
over the task's past successful attempts: wall time, LLM tokens, LLM cost and
retried requests. Each ratio first loses a noise band (timing jitter and
token-count wobble are not efficiency), the logarithms are averaged with
weights into ``L``, and the score is ``100 / (1 + 0.25 * 2 ** (2.5 * L))``:
work like the median scores `AT_MEDIAN` (80), every figure twice the median
(beyond its band) about 41, half of it about 95; never exactly 0 or 100.
The formula, with worked numbers, is in docs/belog.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

__all__ = [
    "AT_MEDIAN",
    "BASELINE_SIZE",
    "WEIGHTS",
    "Baseline",
    "baseline",
    "call_metrics",
    "efficiency_score",
    "is_empty_answer",
    "percentile_score",
]

#: The score of an attempt like the median one (and of a task's first attempt).
AT_MEDIAN: Final = 80.0
#: How many past successful attempts (newest first) the median is taken over.
BASELINE_SIZE: Final = 20
#: Weight of each figure in the score.
WEIGHTS: Final = {"time": 0.6, "tokens": 0.15, "cost": 0.1, "retries": 0.15}
#: Relative noise band of each figure: a ratio within ``1 ± band`` counts as 1.
BANDS: Final = {"time": 0.25, "tokens": 0.10, "cost": 0.10, "retries": 0.0}
#: Past times this varied (median absolute deviation / median, times this
#: factor) widen the time band: a task whose own history jitters by 20% is not
#: judged on a 25% band. Needs this many past times; capped at MAX_TIME_BAND.
SPREAD_FACTOR: Final = 2.0
MIN_FOR_SPREAD: Final = 3
MAX_TIME_BAND: Final = 1.0
#: Differences of wall time below this many seconds are noise, whatever the ratio.
TIME_FLOOR_S: Final = 0.020
#: Steepness of the curve: every figure 2x (beyond its band) scores 41.4.
_STEEPNESS: Final = 2.5
_SCALE: Final = 100.0 / AT_MEDIAN - 1.0


def call_metrics(calls: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the LLM calls of a task add up to (the ``metrics`` of a BELog record).

    ``llm_calls``, ``tokens`` (total), ``cost_usd`` (None when no call had a
    price), ``retries`` (HTTP attempts beyond the first of each call),
    ``rate_limited`` (attempts answered 429), ``failed_calls`` and
    ``empty_responses`` (calls that succeeded with no text and no tool call).
    """
    tokens = retries = rate_limited = failed = empty = 0
    cost: float | None = None
    for call in calls:
        usage = call.get("usage")
        if isinstance(usage, Mapping) and isinstance(usage.get("total_tokens"), int):
            tokens += usage["total_tokens"]
        price = call.get("cost_usd")
        if isinstance(price, int | float):
            cost = (cost or 0.0) + float(price)
        attempts = call.get("attempts")
        if isinstance(attempts, list) and attempts:
            retries += len(attempts) - 1
            rate_limited += sum(
                1 for a in attempts if isinstance(a, Mapping) and a.get("status_code") == 429
            )
        if call.get("status") == "error":
            failed += 1
        elif is_empty_answer(call):
            empty += 1
    return {
        "llm_calls": len(calls),
        "tokens": tokens,
        "cost_usd": None if cost is None else round(cost, 8),
        "retries": retries,
        "rate_limited": rate_limited,
        "failed_calls": failed,
        "empty_responses": empty,
    }


def is_empty_answer(call: Mapping[str, Any]) -> bool:
    """Whether an LLM call record succeeded with no text and no tool call."""
    if call.get("api") == "embeddings" or call.get("status") != "ok":
        return False
    response = call.get("response")
    if not isinstance(response, Mapping):
        return False
    text = response.get("output_text")
    return (text is None or not str(text).strip()) and not response.get("tool_calls")


class Baseline(dict[str, float]):
    """Median figures of past successful attempts (keys ``time``, ``tokens``, ``cost``,
    ``retries``; a key is absent when no attempt had it), with how many attempts
    and the time band: `BANDS` ``time``, widened to twice the relative median
    absolute deviation of the past times (capped at 1) when they vary more."""

    attempts: int = 0
    time_band: float = 0.0


def _figures(record: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    time = record.get("execution_time")
    if isinstance(time, int | float) and not isinstance(time, bool):
        out["time"] = float(time)
    metrics = record.get("metrics")
    if isinstance(metrics, Mapping) and metrics.get("llm_calls"):
        for key, name in (("tokens", "tokens"), ("cost_usd", "cost"), ("retries", "retries")):
            value = metrics.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[name] = float(value)
    return out


def baseline(past_attempts: Sequence[Mapping[str, Any]]) -> Baseline:
    """The median figures of the newest `BASELINE_SIZE` successful *past_attempts*."""
    import statistics  # on first use: an application that only logs never scores

    successes = [a for a in past_attempts if a.get("success") is True][:BASELINE_SIZE]
    columns: dict[str, list[float]] = {}
    for attempt in successes:
        for name, value in _figures(attempt).items():
            columns.setdefault(name, []).append(value)
    result = Baseline({name: statistics.median(values) for name, values in columns.items()})
    result.attempts = len(successes)
    result.time_band = BANDS["time"]
    times = columns.get("time", [])
    median = result.get("time")
    if len(times) >= MIN_FOR_SPREAD and median:
        spread = statistics.median(abs(t - median) for t in times) / median
        result.time_band = min(MAX_TIME_BAND, max(BANDS["time"], SPREAD_FACTOR * spread))
    return result


def _ratio(name: str, value: float, median: float, band: float) -> float | None:
    if name == "retries":
        return (1.0 + value) / (1.0 + median)
    if name == "time" and abs(value - median) <= TIME_FLOOR_S:
        return 1.0
    if median <= 0:
        return None if value <= 0 else 2.0  # something from nothing: count it as double
    ratio = max(value, 1e-12) / median
    band = 1.0 + band
    if ratio > band:
        return ratio / band
    if ratio < 1.0 / band:
        return ratio * band
    return 1.0


def ratios(record: Mapping[str, Any], base: Baseline) -> dict[str, float]:
    """This attempt's figures over the baseline's, after the noise bands."""
    out = {}
    for name, value in _figures(record).items():
        if name in base:
            band = base.time_band if name == "time" else BANDS[name]
            ratio = _ratio(name, value, base[name], band)
            if ratio is not None:
                out[name] = ratio
    return out


def efficiency_score(
    record: Mapping[str, Any],
    past_attempts: Sequence[Mapping[str, Any]],
    base: Baseline | None = None,
) -> float:
    """The default efficiency score of *record* (0..100; see the module docstring).

    *record* needs ``execution_time`` and may have ``metrics`` (see
    `call_metrics`); *past_attempts* are the task's earlier records, newest
    first, failed ones included (only successful ones make the baseline). With
    no past success the attempt scores `AT_MEDIAN`. A failed attempt is scored
    the same way — ``success: false`` says it failed, the score how much it
    cost. *base* is ``baseline(past_attempts)`` when the caller has it already.
    """
    base = baseline(past_attempts) if base is None else base
    found = ratios(record, base)
    if not found:
        return AT_MEDIAN
    total = sum(WEIGHTS[name] for name in found)
    mean_log = sum(WEIGHTS[name] * math.log2(r) for name, r in found.items()) / total
    score = 100.0 / (1.0 + _SCALE * 2.0 ** (_STEEPNESS * mean_log))
    return float(round(min(100.0, max(0.0, score)), 2))


def percentile_score(
    execution_time: float, success: bool, past_attempts: Sequence[Mapping[str, Any]]
) -> float:
    """The efficiency score of earlier versions, kept for custom scorers: 0 to 100.

    The default score is now `efficiency_score` (docs/belog.md). Here a failed
    attempt scores 0 and the first successful attempt 100; otherwise the score
    is the percentile of *execution_time* among the execution times of the
    past successful attempts: faster than all scores 100, slower than all 0,
    and each tie counts half.
    """
    if not success:
        return 0.0
    times = [
        float(a["execution_time"])
        for a in past_attempts
        if a.get("success") is True and isinstance(a.get("execution_time"), int | float)
    ]
    if not times:
        return 100.0
    slower = sum(1 for t in times if t > execution_time)
    ties = sum(1 for t in times if t == execution_time)
    return round(100.0 * (slower + 0.5 * ties) / len(times), 2)
