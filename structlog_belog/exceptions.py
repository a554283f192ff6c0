"""Exceptions raised by structlog-belog's public API."""

from __future__ import annotations

__all__ = ["BelogError"]


class BelogError(Exception):
    """Base class of structlog-belog's own errors."""
