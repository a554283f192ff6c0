"""Filling a BELog record from evidence: the glue between a task and the derivations.

`complete` takes the record a task has measured (time, success, errors,
files) and what it observed (LLM calls, records naming hosts and services,
inputs and outputs), reads the task's past attempts and the files other
tasks read and wrote, and fills in ``metrics``, ``dependencies_affected``,
``pipeline_connections``, ``potential_breakage_risk``,
``cross_check_required``, ``improvement_suggestions`` and
``efficiency_score``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .evidence import (
    ConnectionIndex,
    Observed,
    assess_risk,
    connections,
    derive_suggestions,
    regressions,
)
from .next_step import pending_suggestions
from .scoring import baseline, call_metrics, efficiency_score
from .watch import FileWatcher, display_path, shared_watcher

if TYPE_CHECKING:
    from .store import BELogStore

__all__ = ["RISK_ORDER", "complete", "connection_index", "file_watcher", "remember"]

#: Risk levels, lowest first; ``unknown`` means nothing was assessed.
RISK_ORDER = ("unknown", "none", "low", "medium", "high")

_INDEXES: dict[tuple[int, str], ConnectionIndex] = {}
#: The watcher of the last configuration asked for (a configure() makes a new Config).
_LAST: list[tuple[tuple[int, object, str | None], FileWatcher]] = []
_INDEX_LOCK = threading.Lock()


def file_watcher() -> FileWatcher | None:
    """The process's watcher of the configured roots, or None when watching is off."""
    from ..core.state import ensure_pipeline

    config = ensure_pipeline().config
    if config.watch == ():
        return None
    # The default root is the working directory of the moment: a chdir moves it.
    key = (os.getpid(), config, os.getcwd() if config.watch is None else None)
    last = _LAST[0] if _LAST else None
    if last is not None and last[0][0] == key[0] and last[0][1] is config and last[0][2] == key[2]:
        return last[1]
    watcher = shared_watcher(config.watch, (config.log_dir, config.package_dir))
    _LAST[:] = [(key, watcher)]
    return watcher


def connection_index(store: BELogStore, blueprint_id: str | None) -> ConnectionIndex:
    """Who read and wrote which files, per store: this process's records and the blueprint's."""
    key = (os.getpid(), store.location)
    with _INDEX_LOCK:
        index = _INDEXES.get(key)
        if index is None:
            index = _INDEXES[key] = ConnectionIndex()
        load = blueprint_id is not None and blueprint_id not in index.loaded
        if load:
            index.loaded.add(str(blueprint_id))
    if load:
        index.add_many(store.get_blueprint_records(str(blueprint_id)))
    return index


def remember(store: BELogStore, record: Mapping[str, Any]) -> None:
    """Add a written record to the store's connection index."""
    connection_index(store, None).add(record)


def complete(
    record: dict[str, Any],
    *,
    observed: Observed,
    past: Sequence[Mapping[str, Any]],
    index: ConnectionIndex | None,
    given_level: str,
    given_reasons: Sequence[str],
    given_checks: Sequence[str],
    given_suggestions: Sequence[str],
    scored: float | None,
) -> None:
    """Fill the derived fields of *record* in place (see the module docstring).

    *scored* is a custom scorer's score, or None for `efficiency_score`.
    """
    record["metrics"] = call_metrics(observed.calls)
    cwd = os.getcwd()
    record["dependencies_affected"] = list(
        dict.fromkeys(
            [
                *record["dependencies_affected"],
                *observed.dependencies(lambda p: display_path(p, cwd)),
            ]
        )
    )
    name = record["task_name"]
    files = record["files_changed"]
    reads = [d[5:] for d in record["dependencies_affected"] if d.startswith("file:")]
    downstream = index.readers(files, name) if index is not None else []
    upstream = index.writers(reads, name) if index is not None else []
    record["pipeline_connections"] = list(
        dict.fromkeys([*record["pipeline_connections"], *connections(downstream, upstream)])
    )
    base = baseline(past)
    record["efficiency_score"] = efficiency_score(record, past, base) if scored is None else scored
    growth = regressions(record, past, base)
    level, reasons, checks = assess_risk(
        success=record["success"],
        errors=record["errors_encountered"],
        files_changed=files,
        downstream=downstream,
        past=past,
        regressions=growth,
    )
    if RISK_ORDER.index(given_level) > RISK_ORDER.index("none"):
        # The caller assessed it: a clean bill from the evidence adds nothing.
        reasons = [r for r in reasons if not r.startswith("assessed:")]
    if RISK_ORDER.index(given_level) > RISK_ORDER.index(level):
        level = given_level
    record["potential_breakage_risk"] = {
        "level": level,
        "reasons": list(dict.fromkeys([*given_reasons, *reasons])),
    }
    record["cross_check_required"] = list(dict.fromkeys([*given_checks, *checks]))
    record["improvement_suggestions"] = list(
        dict.fromkeys(
            [
                *given_suggestions,
                *pending_suggestions(name),
                *derive_suggestions(record, past, observed, growth),
            ]
        )
    )
