"""The efficiency score of a BELog task against its past attempts (DESIGN §5)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["percentile_score"]


def percentile_score(
    execution_time: float, success: bool, past_attempts: Sequence[Mapping[str, Any]]
) -> float:
    """The default efficiency score, 0 to 100 (DESIGN §5).

    A failed attempt scores 0 and the first successful attempt 100; otherwise
    the score is the percentile of *execution_time* among the execution times
    of the past successful attempts: faster than all scores 100, slower than
    all 0, and each tie counts half.
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
