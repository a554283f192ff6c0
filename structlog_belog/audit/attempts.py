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

from .call import ACTIVE

__all__ = ["install", "uninstall"]

_perf_counter: Final = time.perf_counter

# The hooks run inside the SDK's call, so they only take the time (and keep
# the response): each attempt is described once, with the rest of the record
# (`audit.call.describe_attempts`).


def _started(_: Any) -> None:
    call = ACTIVE.get()
    if call is not None:
        call.attempts.append([_perf_counter()])


def _answered(response: Any) -> None:
    call = ACTIVE.get()
    if call is not None and call.attempts:
        attempt = call.attempts[-1]
        if len(attempt) == 1:  # one answer per attempt sent
            attempt += (_perf_counter(), response)


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
