"""`belog last|attempts|revise|reindex` (owned by the BELog issue; placeholder until it lands)."""

from __future__ import annotations

import argparse


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the BELog memory commands on the `belog` CLI."""
