"""OpenTelemetry for structlog-belog (optional extra ``otel``).

``structlog_belog.otel.instrument()`` makes every session, stage, BELog task
and audited LLM call an OpenTelemetry span — LLM calls with the GenAI
semantic-convention attributes — and puts ``trace_id``/``span_id`` on every
record written while a span is current, the app's own spans included.
``uninstrument()`` turns it off. See ``docs/otel.md``.

Requires ``opentelemetry-api`` (and an SDK to export spans):
``pip install 'structlog-belog[otel]'``.
"""

from __future__ import annotations

try:
    import opentelemetry.trace  # noqa: F401 - checks the extra is installed
except ModuleNotFoundError as exc:
    msg = "structlog_belog.otel requires opentelemetry: pip install 'structlog-belog[otel]'"
    raise ModuleNotFoundError(msg, name="opentelemetry") from exc

from ._otel import add_trace_ids, failure_count, instrument, is_instrumented, uninstrument

__all__ = ["add_trace_ids", "failure_count", "instrument", "is_instrumented", "uninstrument"]
