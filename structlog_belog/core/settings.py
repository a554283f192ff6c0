"""`Config`: the settings `configure()` validated, as one frozen value."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Config"]


@dataclass(frozen=True, slots=True)
class Config:
    """The active configuration, as returned by `configure()`."""

    log_dir: Path
    level: str
    console: bool
    redact: bool
    capture_stdlib: bool
    app_name: str
    durability: str
    package_dir: Path
    compress: bool
    prices: Mapping[str, Any] | None
    summary_template: Path | None
    handle_signals: bool
    #: Whether `configure()` instrumented the openai SDK for the process.
    instrument_openai: bool = False
    #: Where sessions index their BELog records (``BELOG_STORE``); None: ``log_dir``'s SQLite.
    store: str | None = None
    #: Folders whose changed files BELog tasks record: None means the working
    #: directory (see `configure`'s *watch*), ``()`` means none.
    watch: tuple[Path, ...] | None = None

    @property
    def level_no(self) -> int:
        """The stdlib number of `level`."""
        return logging.getLevelName(self.level)  # type: ignore[no-any-return]
