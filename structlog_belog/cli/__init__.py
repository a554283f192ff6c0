"""The ``belog`` command: list, show, tail, summarise, package, verify and view sessions.

Owns the entry point (`app.main`, argument types in `argtypes`), the session
tree and call views (`view`), `belog report` (`report`), `belog start` and
`finish` (`sessions`), the BELog store commands (`memory`), the demo pipeline
(`demo`), and `terminal`, through which everything is printed. The top of the
layers: may import every other one, and nothing imports it but the facade.
``structlog_belog.cli.app.main`` is re-exported here for the ``belog`` script and
``python -m structlog_belog.cli``.
"""

from .app import main

__all__ = ["main"]
