"""ValueTruncator (placeholder; built by the processors work)."""

from __future__ import annotations

from typing import Any


class ValueTruncator:
    """Cap long string values, keeping head and tail, length and hash."""

    def __init__(self, max_chars: int = 131_072) -> None:
        self.max_chars = max_chars

    def __call__(self, _: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        return event_dict
