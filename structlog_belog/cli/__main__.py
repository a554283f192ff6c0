"""``python -m structlog_belog.cli``: the ``belog`` command."""

import sys

from .app import main

sys.exit(main())
