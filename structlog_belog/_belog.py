"""BELog tasks (owned by the BELog issue; placeholder until it lands)."""

from __future__ import annotations

from typing import Any


def task(name: str, **fields: Any) -> Any:
    """A BELog task: decorator and context manager writing one `belog` record."""
    raise NotImplementedError("BELog tasks land with the BELog issue")
