"""SecretRedactor (placeholder; built by the processors work)."""

from __future__ import annotations

from typing import Any


class SecretRedactor:
    """Replace secrets in keys and values with a marker naming their kind."""

    def __call__(self, _: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        return event_dict
