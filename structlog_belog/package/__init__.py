"""The package: what happens when a run ends, and reading what it left.

Owns the finalizer (`packager`): the one streaming pass over a session's files
(`scan`) folded into a report (`report`, with `commands` for sessions that
span commands), the Markdown summary (`summary`, Jinja2 templates in
``structlog_belog/templates``), the run report page (`report_page`, checked by
`report_check`), ``metadata.json``, the compressed logs and ``SHA256SUMS``
(`members`), the package folder's name (`slug`);
reading sessions and packages (`reader`, `catalog`) and verifying them
(`verify`).

May import the audit and the core; registers its finalizer with the core's
hooks so that a session's end starts packaging.
"""
