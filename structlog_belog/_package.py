"""Finalizer and execution package (owned by the package issue; placeholder until it lands)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._session import Run


def finalize_run(run: Run) -> Path | None:
    """Build the run's package when the session ends; returns its path."""
    return None
