"""The library's version, for records and packages (re-exported as ``__version__``)."""

from __future__ import annotations

from typing import Final

__all__ = ["VERSION"]

VERSION: Final = "0.1.0.dev0"
