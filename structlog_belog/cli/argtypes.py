"""Argument types of the ``belog`` command: each refuses a bad value with argparse's error."""

from __future__ import annotations

import argparse

__all__ = ["positive", "seconds"]


def seconds(text: str) -> float:
    """A number of seconds, 0 or more and finite (``nan`` and ``inf`` refused)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1e9:  # also refuses nan and inf
        msg = f"must be a number of seconds (0 or more), got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def positive(text: str) -> int:
    """A positive integer."""
    value = int(text)
    if value < 1:
        msg = f"must be a positive integer, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value
