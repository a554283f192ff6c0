"""The ``belog`` command: list, show, tail, summarise, package, verify and view sessions.

Owns the entry point (`app.main`), the session tree and call views (`view`), the
BELog store commands (`memory`) and the demo pipeline (`demo`). The top of the
layers: may import every other one, and nothing imports it but the facade.
``structlog_belog.cli.app.main`` is re-exported here for the ``belog`` script and
``python -m structlog_belog.cli``.
"""

from .app import main

__all__ = ["main"]
