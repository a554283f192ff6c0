"""``python -m structlog_belog.demo``: the same as ``belog demo``."""

from __future__ import annotations

import sys

from .cli import main as _cli_main

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run ``belog demo`` with *argv* (its options: ``--out``, ``--live``, ``--quiet``)."""
    return _cli_main(["demo", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
