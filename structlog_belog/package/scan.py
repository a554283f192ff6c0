"""`scan_session`: the one streaming pass over a session folder, folded into a report.

Each stream's process shards are merged by timestamp, every record is parsed
once, handed to the optional sink (the package writer) and folded into a
`ReportBuilder`: the hot loop counts in C (Counter, map) per batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from itertools import compress, groupby, repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ..audit.stats import issue
from .reader import merged_batches, session_files
from .report import (
    _ERROR_LEVELS,
    _LIFECYCLE,
    ReportBuilder,
    SessionReport,
    Sink,
    _discard,
    _timestamp_of,
)

if TYPE_CHECKING:
    from .report_page import PageBuilder

__all__ = ["scan_session"]


def _scan_processing(
    directory: Path, builder: ReportBuilder, sink: Sink, page: PageBuilder | None
) -> None:
    """The hot loop over every record: per batch, the counting runs in C (Counter, map)."""
    by_level = builder.by_level
    by_stage = builder.by_stage
    stage_warnings = builder.stage_warnings
    special = builder.special
    errors = builder.errors
    if page is not None:
        fold_errors, page_errors = builder.errors, page.errors

        def errors(recs: list[dict[str, Any]]) -> None:
            fold_errors(recs)
            page_errors(recs)

    lifecycle = _LIFECYCLE
    is_error = _ERROR_LEVELS.__contains__
    # dict.get over repeat(key): no method lookup per record, half the cost of methodcaller.
    get = dict.get
    files = session_files(directory, "processing", builder.refused_files)
    first_ts: str | None = None
    last_ts = ""
    for raw, lines, records in merged_batches(files, builder.corrupt_line):
        if not records:
            continue
        sink("processing", raw or (b"".join(lines),), len(lines))
        levels = list(map(get, records, repeat("level")))
        batch = Counter(levels)
        by_level.update(batch)
        # Records of a stage come in runs: count runs, not records, in Python.
        runs = [
            (stage, len(list(run))) for stage, run in groupby(map(get, records, repeat("stage")))
        ]
        for stage, n in runs:
            by_stage[stage] += n
        for rec in [r for r in records if "kind" in r]:
            kind = rec["kind"]
            if kind in lifecycle:
                special(kind, rec)
        if batch["error"] or batch["critical"]:
            errors(list(compress(records, map(is_error, levels))))
        warnings = batch["warning"]
        if warnings:
            if len(runs) == 1:  # the common case: the whole batch is in one stage
                stage_warnings[runs[0][0]] += warnings
            else:
                stage_warnings.update(
                    map(get, compress(records, map("warning".__eq__, levels)), repeat("stage"))
                )
        if first_ts is None:
            first_ts = _timestamp_of(records[0])
        newest = _timestamp_of(records[-1])  # batches are in time order
        if isinstance(newest, str) and newest > last_ts:
            last_ts = newest
    builder.first_ts = first_ts if isinstance(first_ts, str) and first_ts else None
    builder.last_ts = last_ts or None


def scan_session(
    directory: Path,
    session_id: str | None = None,
    *,
    title: str | None = None,
    sink: Sink | None = None,
    output_sizes: Callable[[dict[str, list[str]]], dict[str, int]] | None = None,
    page: PageBuilder | None = None,
) -> SessionReport:
    """Read a session folder once and return its report.

    Args:
        directory: ``logs/sessions/<id>``.
        session_id: Defaults to the folder name.
        title: Overrides the title recorded in ``session_start``.
        sink: Called as ``sink(stream, pieces, count)`` with *count* whole lines
            (the byte buffers *pieces*, to be written in order; each line ends
            in a newline) in merged time order,
            stream by stream (``processing``, ``prompts``, ``belog``);
            llm_call lines carry the ``outputs`` they produced.
        output_sizes: Given the outputs (path → call IDs), returns the sizes of
            the output files that exist, for empty-output detection.
        page: Folds, in the same pass, what the run report page shows in
            detail (calls, error records, BELog tasks).
    """
    builder = ReportBuilder(session_id or directory.name, title)
    write: Sink = sink if sink is not None else _discard
    _scan_processing(directory, builder, write, page)

    dumps = orjson.dumps
    call_outputs = builder.call_outputs
    if page is not None:
        page.index_outputs(builder.outputs)  # complete: output records are in processing
    prompts = session_files(directory, "prompts", builder.refused_files)
    for _, __, records in merged_batches(prompts, builder.corrupt_line):
        for rec in records:
            builder.calls.add(rec)
            rec["outputs"] = call_outputs.get(str(rec.get("call_id")), [])
        if page is not None:
            page.fold_calls(records)
        if records:
            data = b"\n".join(map(dumps, records)) + b"\n"
            write("prompts", (data,), len(records))

    for raw, lines, records in merged_batches(
        session_files(directory, "belog", builder.refused_files), builder.corrupt_line
    ):
        for rec in records:
            builder.belog(rec)
            if page is not None:
                page.task(rec)
        if lines:
            write("belog", raw or (b"".join(lines),), len(lines))

    sizes = output_sizes(builder.outputs) if output_sizes is not None else {}
    report = builder.build(sizes)
    refused = builder.refused_files
    if refused:
        report.issues.append(
            issue(
                "refused_files",
                "error",
                f"{len(refused)} file(s) in the session folder are links or not regular "
                "files: never opened, their records are not in the package",
                len(refused),
                sorted(p.name for p in refused),
            )
        )
    return report
