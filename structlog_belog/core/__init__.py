"""The core: a record's way from a log call to a line on disk.

Owns the one context variable (`context`), configuration (`config`,
`settings`, `state`), the record pipeline (`pipeline`, `handler` for stdlib
records, `reserved` for the fields only belog sets), the processors' engines
(`redact` with its rules `secret_rules` and its table of secret formats
`secret_shapes`, `vetted`, `truncate`, `render`), the per-session writers
(`router`, opening files through `safe_io`), the sanitiser for terminals
(`sanitize`), sessions and stages (`session`, `stage`, `session_id`,
`resume`, `producing`, `drops`), threads and processes (`threads`), signals
(`signals`) and the seams for tracers (`tracing`).

Imports nothing from the layers above (audit, package, memory, cli). Where a
session must start their work — packaging at its end, a BELog task — it calls
a hook they register (`hooks`).
"""
