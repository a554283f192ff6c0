"""render_jsonl: event dict -> one JSON line (placeholder; hardened by the processors work)."""

from __future__ import annotations

from typing import Any

import orjson

_OPTIONS = orjson.OPT_APPEND_NEWLINE


def _default(obj: Any) -> Any:
    return repr(obj)


def render_jsonl(_: Any, __: str, event_dict: dict[str, Any]) -> bytes:
    """Render *event_dict* as one UTF-8 JSON line ending in a newline."""
    return orjson.dumps(event_dict, default=_default, option=_OPTIONS)
