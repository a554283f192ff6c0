"""The core: a record's way from a log call to a line on disk.

Owns the one context variable (`context`), configuration (`config`,
`settings`, `state`), the record pipeline (`pipeline`, `handler` for stdlib
records), the processors' engines (`redact` with its rule table
`secret_rules`, `truncate`, `render`), the per-session writers (`router`),
sessions and stages (`session`, `session_id`), threads and processes
(`threads`), signals (`signals`) and the seams for tracers (`tracing`).

Imports nothing from the layers above (audit, package, memory, cli). Where a
session must start their work — packaging at its end, a BELog task — it calls
a hook they register (`hooks`).
"""
