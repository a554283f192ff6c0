"""Every HTTP attempt of an audited call, the SDK's own retries included.

`install` adds a request and a response hook to the httpx client inside an
``OpenAI``/``AsyncOpenAI`` client (httpx's public ``event_hooks``). The SDK
retries inside one create call by sending the request again through that same
client, so each attempt passes the hooks. The hooks find the audited call in
progress through `ACTIVE` (a context variable: the right call in every thread
and asyncio task) and append to its ``attempts``; outside an audited call they
do nothing.
"""

from __future__ import annotations

import time
from typing import Any, Final

from ._audit_call import ACTIVE, note_failure
from ._redact import Vetted

__all__ = ["install", "uninstall"]

#: Rate-limit response headers -> their names under the attempt's "ratelimit".
_LIMITS: Final = (
    (b"x-ratelimit-remaining-requests", "remaining_requests"),
    (b"x-ratelimit-remaining-tokens", "remaining_tokens"),
    (b"x-ratelimit-reset-requests", "reset_requests"),
    (b"x-ratelimit-reset-tokens", "reset_tokens"),
)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def _started(_: Any) -> None:
    call = ACTIVE.get()
    if call is not None:
        # Vetted: status, timings and the server's own IDs and counters, written as they are.
        call.attempts.append(
            Vetted(attempt=len(call.attempts) + 1, status_code=None, _t0=time.perf_counter())
        )


def _answered(response: Any) -> None:
    call = ACTIVE.get()
    if call is None or not call.attempts:
        return
    try:
        attempt = call.attempts[-1]
        started = attempt.pop("_t0", None)
        attempt["status_code"] = response.status_code
        attempt["duration_ms"] = (
            None if started is None else round((time.perf_counter() - started) * 1000, 3)
        )
        # httpx's per-name lookups scan and decode every header each time: index
        # the raw headers once, in C, and look up only the names wanted.
        headers = dict(response.headers.raw)
        names = b"".join(headers)
        if names != names.lower():  # HTTP/1.1 and HTTP/2 give lower case; a test transport may not
            headers = dict(zip(map(bytes.lower, headers), headers.values(), strict=True))
        get = headers.get
        attempt["request_id"] = _text(get(b"x-request-id"))
        processing = _text(get(b"openai-processing-ms"))
        attempt["processing_ms"] = (
            int(processing) if processing is not None and processing.isdigit() else processing
        )
        retry_after = get(b"retry-after-ms") or get(b"retry-after")
        if retry_after is not None:
            attempt["retry_after"] = retry_after.decode("latin-1")
        limits = {key: value.decode("latin-1") for name, key in _LIMITS if (value := get(name))}
        if limits:
            attempt["ratelimit"] = limits
    except Exception as exc:  # noqa: BLE001 - the audit never breaks the caller
        note_failure("recording an HTTP attempt", exc)


async def _started_async(request: Any) -> None:
    _started(request)


async def _answered_async(response: Any) -> None:
    _answered(response)


def install(client: Any) -> bool:
    """Add the attempt hooks to *client*'s httpx client (once); return True if added."""
    http: Any = getattr(client, "_client", None)
    hooks = getattr(http, "event_hooks", None)
    if not isinstance(hooks, dict):
        return False
    is_async = type(client).__name__.startswith("Async")
    on_request, on_response = (
        (_started_async, _answered_async) if is_async else (_started, _answered)
    )
    requests = list(hooks.get("request", []))
    responses = list(hooks.get("response", []))
    if on_request in requests:
        return False
    # Assigning (not appending) goes through httpx's event_hooks setter.
    http.event_hooks = {
        **hooks,
        "request": [*requests, on_request],
        "response": [on_response, *responses],
    }
    return True


def uninstall(client: Any) -> None:
    """Remove the attempt hooks from *client*'s httpx client, if present."""
    http: Any = getattr(client, "_client", None)
    hooks = getattr(http, "event_hooks", None)
    if not isinstance(hooks, dict):
        return
    ours = (_started, _answered, _started_async, _answered_async)
    http.event_hooks = {
        name: [hook for hook in hook_list if hook not in ours] for name, hook_list in hooks.items()
    }
