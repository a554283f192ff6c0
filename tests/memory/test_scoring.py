"""Tests for the efficiency score and the LLM-call figures it compares."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from structlog_belog.memory import scoring as score

METRICS = {"llm_calls": 1, "tokens": 100, "cost_usd": 0.001, "retries": 0}


def attempt(seconds: float, *, success: bool = True, **metrics: Any) -> dict[str, Any]:
    """A past attempt record with *seconds* of wall time and the given metrics."""
    return {
        "execution_time": seconds,
        "success": success,
        "metrics": {**METRICS, **metrics},
        "execution_trace_id": f"belog_t{seconds}",
    }


class TestEfficiencyScore:
    """efficiency_score: against the median of past successful attempts."""

    def test_first_attempt_scores_the_median_score(self) -> None:
        """With nothing to compare against, an attempt scores AT_MEDIAN."""
        assert score.AT_MEDIAN == score.efficiency_score(attempt(1.0), [])

    def test_like_the_median_scores_at_median(self) -> None:
        """Identical figures score AT_MEDIAN; small jitter stays in the noise band."""
        past = [attempt(1.0)] * 11
        assert 80.0 == score.efficiency_score(attempt(1.0), past)
        assert 80.0 == score.efficiency_score(attempt(1.2, tokens=105), past)

    def test_four_times_slower_scores_below_50(self) -> None:
        """Four times the median's time, everything else equal, scores under 50."""
        past = [attempt(0.05)] * 11
        assert score.efficiency_score(attempt(0.2), past) < 50
        assert (
            score.efficiency_score(
                {"execution_time": 0.2}, [{"execution_time": 0.05, "success": True}]
            )
            < 50
        )

    def test_faster_and_cheaper_scores_higher(self) -> None:
        """Half the time and tokens scores above AT_MEDIAN, below 100."""
        past = [attempt(1.0)] * 5
        value = score.efficiency_score(attempt(0.5, tokens=50, cost_usd=0.0005), past)
        assert 80 < value < 100

    def test_retries_and_tokens_count(self) -> None:
        """Retries and token growth lower the score even at the same time."""
        past = [attempt(1.0)] * 5
        assert score.efficiency_score(attempt(1.0, retries=3), past) < 80
        assert score.efficiency_score(attempt(1.0, tokens=400, cost_usd=0.004), past) < 70

    def test_failed_attempts_are_not_the_baseline(self) -> None:
        """Only successful past attempts make the median."""
        past = [attempt(10.0, success=False)] * 5 + [attempt(1.0)]
        base = score.baseline(past)
        assert 1 == base.attempts
        assert 1.0 == base["time"]

    def test_timing_floor(self) -> None:
        """Differences under TIME_FLOOR_S are noise even when the ratio is large."""
        past = [{"execution_time": 0.001, "success": True}] * 3
        assert 80.0 == score.efficiency_score({"execution_time": 0.005}, past)

    @given(
        st.lists(st.floats(0.001, 100), min_size=1, max_size=20),
        st.floats(0.001, 100),
        st.floats(0.001, 100),
    )
    def test_bounded_and_monotonic(self, times: list[float], a: float, b: float) -> None:
        """Scores stay in 0..100, and a slower attempt never scores higher."""
        past = [{"execution_time": t, "success": True} for t in times]
        fast, slow = sorted((a, b))
        s_fast = score.efficiency_score({"execution_time": fast}, past)
        s_slow = score.efficiency_score({"execution_time": slow}, past)
        assert 0 <= s_slow <= s_fast <= 100


class TestCallMetrics:
    """call_metrics: what a task's LLM calls add up to."""

    def test_sums_and_counts(self) -> None:
        """Tokens, cost, retries, 429s, failures and empty answers are counted."""
        calls: list[dict[str, Any]] = [
            {
                "status": "ok",
                "usage": {"total_tokens": 30},
                "cost_usd": 0.5,
                "attempts": [{"status_code": 429}, {"status_code": 500}, {"status_code": 200}],
                "response": {"output_text": "hi"},
            },
            {"status": "ok", "usage": {"total_tokens": 5}, "response": {"output_text": " "}},
            {"status": "error", "attempts": [{"status_code": 500}]},
        ]
        expected = {
            "llm_calls": 3,
            "tokens": 35,
            "cost_usd": 0.5,
            "retries": 2,
            "rate_limited": 1,
            "failed_calls": 1,
            "empty_responses": 1,
        }
        assert expected == score.call_metrics(calls)

    def test_no_calls(self) -> None:
        """No call: zeros, and no cost rather than a cost of 0."""
        assert {
            "llm_calls": 0,
            "tokens": 0,
            "cost_usd": None,
            "retries": 0,
            "rate_limited": 0,
            "failed_calls": 0,
            "empty_responses": 0,
        } == score.call_metrics([])


class TestTimeBand:
    """The time band widens with the spread of the task's own past times."""

    def test_steady_history_keeps_the_default_band(self) -> None:
        """Past times within a few percent: the 25% band."""
        base = score.baseline([attempt(t) for t in (1.0, 1.02, 0.98, 1.01)])
        assert score.BANDS["time"] == base.time_band

    def test_jittery_history_widens_it(self) -> None:
        """Past times varying by ~30%: a 1.5x attempt is within the noise."""
        past = [attempt(t) for t in (1.0, 1.3, 0.7, 1.35, 0.65)]
        base = score.baseline(past)
        assert 0.6 <= base.time_band <= score.MAX_TIME_BAND
        assert 80.0 == score.efficiency_score(attempt(1.5), past)
        assert score.efficiency_score(attempt(4.0), past) < 80.0
