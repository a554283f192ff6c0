"""Blueprint Revision Proposals and reflection: what the BELogs say should change.

`generate_blueprint_revision` reads every BELog record of a blueprint and
proposes revisions, each resting on evidence that cites the execution trace
IDs it was drawn from: recurring errors, time regressions, falling success
rates, suggestions repeated across runs, cross-checks and breakage risks
flagged by tasks. `reflect` answers the first steps of the execution loop for
one task — what was done last, how it went, what went wrong and what to try —
as a short text an agent can put in its next prompt.
"""

from __future__ import annotations

import os
import re
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ..core.safe_io import replace_file
from .next_step import redact_text
from .scoring import TIME_FLOOR_S
from .store import BELogStore, default_log_dir
from .stores import open_store

__all__ = [
    "KINDS",
    "BlueprintRevision",
    "Proposer",
    "RevisionItem",
    "generate_blueprint_revision",
    "reflect",
]

#: An attempt is a time regression when it took this many times the median of the earlier ones.
REGRESSION_FACTOR = 1.5
#: A pattern is "recurring" when it shows up in at least this many runs.
MIN_RUNS = 2
#: A task's success rate is judged once it has this many attempts.
MIN_ATTEMPTS_FOR_RATE = 4

#: Item kinds, in the order a proposal lists them, with their section titles.
KINDS: Mapping[str, str] = {
    "failed_attempt": "Failing tasks",
    "recurring_error": "Recurring errors",
    "time_regression": "Time regressions",
    "falling_success_rate": "Falling success rates",
    "repeated_suggestion": "Suggestions repeated across runs",
    "cross_check": "Cross-checks requested",
    "breakage_risk": "Breakage risks flagged",
    "proposed": "Proposed by the proposer",
}

_NUMBER = re.compile(r"\b0x[0-9a-f]+\b|\b[0-9a-f]{8,}\b|\d+(?:\.\d+)?", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class RevisionItem:
    """One proposed revision and the BELog records it rests on.

    Attributes:
        kind: One of `KINDS`.
        title: The proposal in one line.
        detail: The numbers behind it.
        task_name: The task it concerns, or None for the whole blueprint.
        evidence: Execution trace IDs of the records it cites.
        runs: Session IDs of the runs those records came from.
        failing_tasks: The tasks among them whose attempts failed.
        errors: The errors those records quote (redacted as the logs are).
    """

    kind: str
    title: str
    detail: str = ""
    task_name: str | None = None
    evidence: tuple[str, ...] = ()
    runs: tuple[str, ...] = ()
    failing_tasks: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The item as JSON-ready data."""
        return {
            "kind": self.kind,
            "title": self.title,
            "detail": self.detail,
            "task_name": self.task_name,
            "evidence": list(self.evidence),
            "runs": list(self.runs),
            "failing_tasks": list(self.failing_tasks),
            "errors": list(self.errors),
        }


#: ``proposer(records, items)`` returns more items: `RevisionItem`, mappings with
#: ``title`` (and optionally ``detail``, ``task_name``, ``evidence``) or plain strings.
Proposer = Callable[
    [Sequence[Mapping[str, Any]], Sequence[RevisionItem]],
    Iterable[RevisionItem | Mapping[str, Any] | str],
]


@dataclass(frozen=True, slots=True)
class BlueprintRevision:
    """A Blueprint Revision Proposal: what to change in a blueprint, with evidence.

    Attributes:
        blueprint_id: The blueprint.
        blueprint_version: Its latest version in the BELogs.
        proposed_version: That version with its last number raised, or None.
        generated_at: ISO 8601 UTC time of the proposal.
        records_considered: How many BELog records were read.
        sessions_considered: How many distinct runs they came from.
        items: The proposals, in `KINDS` order.
        notes: Remarks on the proposal itself (for example a failing proposer).
        path: The JSON file it was written to, or None.
    """

    blueprint_id: str
    blueprint_version: str | None
    proposed_version: str | None
    generated_at: str
    records_considered: int
    sessions_considered: int
    items: tuple[RevisionItem, ...] = ()
    notes: tuple[str, ...] = ()
    path: Path | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The proposal as JSON-ready data."""
        return {
            "blueprint_id": self.blueprint_id,
            "blueprint_version": self.blueprint_version,
            "proposed_version": self.proposed_version,
            "generated_at": self.generated_at,
            "records_considered": self.records_considered,
            "sessions_considered": self.sessions_considered,
            "items": [item.to_dict() for item in self.items],
            "notes": list(self.notes),
        }

    def to_markdown(self) -> str:
        """The proposal as a Markdown document for people."""
        version = self.blueprint_version or "unversioned"
        lines = [
            f"# Blueprint Revision Proposal: {self.blueprint_id} {version}",
            "",
            f"- Generated: {self.generated_at}",
            f"- Evidence: {self.records_considered} BELog records "
            f"from {self.sessions_considered} runs",
        ]
        if self.proposed_version:
            lines.append(f"- Proposed next version: {self.proposed_version}")
        if not self.items:
            lines += ["", "No revision proposed: the BELogs show no recurring problem."]
        for kind, heading in KINDS.items():
            items = [i for i in self.items if i.kind == kind]
            if not items:
                continue
            lines += ["", f"## {heading}", ""]
            for item in items:
                task = f" (task *{item.task_name}*)" if item.task_name else ""
                lines.append(f"- **{item.title}**{task}")
                if item.detail:
                    lines.append(f"  {item.detail}")
                lines += [f"  > {error}" for error in item.errors]
                if item.failing_tasks:
                    lines.append("  Failing: " + ", ".join(f"*{t}*" for t in item.failing_tasks))
                if item.runs:
                    lines.append("  Runs: " + ", ".join(f"`{r}`" for r in item.runs))
                if item.evidence:
                    lines.append("  Evidence: " + ", ".join(f"`{t}`" for t in item.evidence))
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


# --- analysis ---------------------------------------------------------------------


def _count(n: int, noun: str, before: str) -> str:
    return f"{before} {n} {noun}{'' if n == 1 else 's'}"


def _run_of(record: Mapping[str, Any]) -> str:
    return str(record.get("session_id") or record.get("execution_trace_id"))


def _trace(record: Mapping[str, Any]) -> str:
    return str(record.get("execution_trace_id"))


def _texts(record: Mapping[str, Any], key: str) -> list[str]:
    value = record.get(key)
    if isinstance(value, list):
        return [str(v) for v in value if str(v).strip()]
    return []


def _normal(text: str, *, numbers: bool) -> str:
    text = _SPACE.sub(" ", text.strip()).casefold().rstrip(".")
    return _NUMBER.sub("#", text) if numbers else text


def _recurring(
    records: Sequence[Mapping[str, Any]], key: str, *, numbers: bool
) -> list[tuple[str, str | None, list[Mapping[str, Any]]]]:
    """Texts under *key* seen in at least `MIN_RUNS` runs: (example, task, records)."""
    groups: dict[str, tuple[str, list[Mapping[str, Any]]]] = {}
    for record in records:
        by_key = {_normal(text, numbers=numbers): text for text in reversed(_texts(record, key))}
        for norm, text in by_key.items():
            groups.setdefault(norm, (text, []))[1].append(record)
    found = []
    for example, members in groups.values():
        if len({_run_of(r) for r in members}) >= MIN_RUNS:
            tasks = {str(r.get("task_name")) for r in members}
            found.append((example, tasks.pop() if len(tasks) == 1 else None, members))
    return found


def _by_task(records: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    tasks: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        tasks.setdefault(str(record.get("task_name")), []).append(record)
    return tasks


def _errors(records: Sequence[Mapping[str, Any]]) -> list[RevisionItem]:
    items = []
    for text, task, members in _recurring(records, "errors_encountered", numbers=True):
        runs = len({_run_of(r) for r in members})
        items.append(
            RevisionItem(
                "recurring_error",
                f"Handle the recurring error: {text}",
                _count(len(members), "attempt", "seen in") + _count(runs, "run", " across"),
                task,
                tuple(_trace(r) for r in members),
            )
        )
    return items


def _regressions(tasks: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[RevisionItem]:
    items = []
    for name, attempts in tasks.items():
        timed = [
            a
            for a in attempts
            if a.get("success") is True and isinstance(a.get("execution_time"), int | float)
        ]
        if len(timed) < 3:
            continue
        *earlier, latest = timed
        median = statistics.median(float(a["execution_time"]) for a in earlier)
        took = float(latest["execution_time"])
        if median > 0 and took >= REGRESSION_FACTOR * median and took - median > TIME_FLOOR_S:
            items.append(
                RevisionItem(
                    "time_regression",
                    f"Find out why {name!r} slowed down",
                    f"latest successful attempt took {took:.3g} s, "
                    f"{took / median:.1f}x the median {median:.3g} s "
                    f"of {len(earlier)} earlier successful attempts",
                    name,
                    (_trace(latest), *(_trace(a) for a in earlier)),
                )
            )
    return items


def _success_rates(tasks: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[RevisionItem]:
    items = []
    for name, attempts in tasks.items():
        if len(attempts) < MIN_ATTEMPTS_FOR_RATE:
            continue
        half = len(attempts) // 2
        earlier, recent = attempts[:half], attempts[half:]

        def rate(group: Sequence[Mapping[str, Any]]) -> float:
            return sum(1 for a in group if a.get("success") is True) / len(group)

        before, after = rate(earlier), rate(recent)
        if after < before:
            failed = [a for a in recent if a.get("success") is not True]
            items.append(
                RevisionItem(
                    "falling_success_rate",
                    f"Stabilise {name!r}: its success rate is falling",
                    f"{before:.0%} of the first {len(earlier)} attempts succeeded, "
                    f"{after:.0%} of the last {len(recent)}",
                    name,
                    tuple(_trace(a) for a in failed),
                )
            )
    return items


def _suggestions(records: Sequence[Mapping[str, Any]]) -> list[RevisionItem]:
    items = []
    for text, task, members in _recurring(records, "improvement_suggestions", numbers=False):
        runs = len({_run_of(r) for r in members})
        items.append(
            RevisionItem(
                "repeated_suggestion",
                text,
                _count(runs, "run", "suggested in"),
                task,
                tuple(_trace(r) for r in members),
            )
        )
    return items


def _flags(records: Sequence[Mapping[str, Any]]) -> list[RevisionItem]:
    cross: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    risks: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        name = str(record.get("task_name"))
        for text in _texts(record, "cross_check_required"):
            cross.setdefault((name, text), []).append(record)
        risk = record.get("potential_breakage_risk")
        if isinstance(risk, Mapping) and risk.get("level") in {"medium", "high"}:
            risks.setdefault(name, []).append(record)
    items = [
        RevisionItem(
            "cross_check",
            f"Cross-check: {text}",
            _count(len(members), "attempt", "requested by"),
            name,
            tuple(_trace(r) for r in members),
        )
        for (name, text), members in cross.items()
    ]
    for name, members in risks.items():
        reasons = list(
            dict.fromkeys(
                str(reason)
                for r in members
                for reason in r["potential_breakage_risk"].get("reasons", [])
            )
        )
        levels = {r["potential_breakage_risk"]["level"] for r in members}
        level = "high" if "high" in levels else "medium"
        items.append(
            RevisionItem(
                "breakage_risk",
                f"Guard {name!r} against breakage ({level} risk)",
                "; ".join(reasons),
                name,
                tuple(_trace(r) for r in members),
            )
        )
    return items


def _cite(item: RevisionItem, by_trace: Mapping[str, Mapping[str, Any]]) -> RevisionItem:
    """*item* naming the runs, failing tasks and (redacted) errors of its evidence records."""
    cited = [by_trace[t] for t in item.evidence if t in by_trace]
    failed = [r for r in cited if r.get("success") is not True]
    errors = (redact_text(e) for r in cited for e in _texts(r, "errors_encountered"))
    return replace(
        item,
        runs=item.runs or tuple(dict.fromkeys(_run_of(r) for r in cited)),
        failing_tasks=item.failing_tasks
        or tuple(dict.fromkeys(str(r.get("task_name")) for r in failed)),
        errors=item.errors or tuple(dict.fromkeys(errors)),
    )


def _failures(tasks: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[RevisionItem]:
    """A task whose latest attempt failed, quoting what failed."""
    items = []
    for name, attempts in tasks.items():
        latest = attempts[-1]
        if latest.get("success") is True:
            continue
        errors = _texts(latest, "errors_encountered")
        failed = [a for a in attempts if a.get("success") is not True]
        quoted = "; ".join(repr(e) for e in errors) or "no error was recorded"
        items.append(
            RevisionItem(
                "failed_attempt",
                f"Fix {name!r}: its latest attempt failed",
                f"latest attempt {_trace(latest)} failed with {quoted}; "
                f"{len(failed)} of its {len(attempts)} attempts failed",
                name,
                (_trace(latest), *(_trace(a) for a in reversed(failed[:-1]))),
            )
        )
    return items


def _from_proposer(value: RevisionItem | Mapping[str, Any] | str) -> RevisionItem:
    if isinstance(value, RevisionItem):
        return replace(value, kind="proposed", evidence=tuple(value.evidence))
    if isinstance(value, str):
        return RevisionItem("proposed", value)
    if isinstance(value, Mapping) and isinstance(value.get("title"), str):
        return RevisionItem(
            "proposed",
            value["title"],
            str(value.get("detail") or ""),
            value.get("task_name"),
            tuple(str(t) for t in value.get("evidence") or ()),
        )
    msg = f"a proposer item must be a RevisionItem, a mapping with 'title' or a str, got {value!r}"
    raise TypeError(msg)


def _next_version(version: str | None) -> str | None:
    if not version:
        return None
    numbers = list(re.finditer(r"\d+", version))
    if not numbers:
        return None
    last = numbers[-1]
    return f"{version[: last.start()]}{int(last.group()) + 1}{version[last.end() :]}"


def _as_store(store: BELogStore | str | os.PathLike[str] | None) -> BELogStore:
    return store if isinstance(store, BELogStore) else open_store(store)


def generate_blueprint_revision(
    blueprint_id: str,
    store: BELogStore | str | os.PathLike[str] | None = None,
    proposer: Proposer | None = None,
    *,
    write: bool = True,
    out_dir: str | os.PathLike[str] | None = None,
) -> BlueprintRevision:
    """Propose revisions of *blueprint_id* from its BELog records.

    Args:
        blueprint_id: The blueprint whose records are read.
        store: A `BELogStore` or an `open_store` location (default the
            store in ``log_dir``).
        proposer: Optional ``proposer(records, items)`` (for example an
            audited LLM call) returning more items; its failure is noted in
            the proposal, not raised.
        write: Write ``<blueprint>_<time>.json`` and ``.md`` to *out_dir*.
        out_dir: Default ``<log_dir>/revisions``.

    Raises:
        StoreError: the store cannot be read.
    """
    records = _as_store(store).get_blueprint_records(blueprint_id)
    tasks = _by_task(records)
    items = [
        *_failures(tasks),
        *_errors(records),
        *_regressions(tasks),
        *_success_rates(tasks),
        *_suggestions(records),
        *_flags(records),
    ]
    notes: list[str] = []
    if proposer is not None:
        try:
            items += [_from_proposer(v) for v in proposer(records, tuple(items))]
        except Exception as exc:  # noqa: BLE001 - the measured proposals stand on their own
            notes.append(f"proposer failed: {type(exc).__name__}: {exc}")
    from .store import latest_version

    by_trace = {_trace(r): r for r in records}
    items = [_cite(item, by_trace) for item in items]
    version = latest_version({r.get("blueprint_version") for r in records})
    order = list(KINDS)
    revision = BlueprintRevision(
        blueprint_id=blueprint_id,
        blueprint_version=version,
        proposed_version=_next_version(version) if items else None,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        records_considered=len(records),
        sessions_considered=len({_run_of(r) for r in records}),
        items=tuple(sorted(items, key=lambda i: order.index(i.kind))),
        notes=tuple(notes),
    )
    if write:
        revision = _write(revision, Path(out_dir) if out_dir else default_log_dir() / "revisions")
    return revision


def _write(revision: BlueprintRevision, folder: Path) -> BlueprintRevision:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    slug = re.sub(r"[^\w.-]+", "_", revision.blueprint_id) or "blueprint"
    stamp = revision.generated_at.replace("-", "").replace(":", "").split(".")[0]
    base = folder / f"{slug}_{stamp}Z"
    path = base.with_suffix(".json")
    for target, data in (
        (path, orjson.dumps(revision.to_dict(), option=orjson.OPT_INDENT_2)),
        (base.with_suffix(".md"), revision.to_markdown().encode()),
    ):
        # A new file renamed into place: a link planted at the name is refused,
        # never written through.
        replace_file(target, data)
    return replace(revision, path=path)


# --- reflection ---------------------------------------------------------------------


def reflect(
    task_name: str, store: BELogStore | str | os.PathLike[str] | None = None, *, limit: int = 5
) -> str:
    """Steps 1 to 3 of the execution loop for *task_name*, as text for a prompt.

    What was done last, how it went (outcome, time, efficiency), and the
    problems and suggestions recorded by the last *limit* attempts.

    Raises:
        StoreError: the store cannot be read.
    """
    attempts = _as_store(store).get_past_attempts(task_name, limit)
    if not attempts:
        return f"No earlier attempt of task {task_name!r} is recorded."
    last = attempts[0]
    succeeded = sum(1 for a in attempts if a.get("success") is True)
    outcome = "succeeded" if last.get("success") is True else "failed"
    blueprint = " ".join(str(last[k]) for k in ("blueprint_id", "blueprint_version") if last.get(k))
    lines = [
        f"Task {task_name!r}: {succeeded} of the last {len(attempts)} attempts succeeded.",
        f"Last attempt ({last.get('execution_trace_id')}, {last.get('timestamp')}"
        + (f", blueprint {blueprint}" if blueprint else "")
        + f"): {outcome} in {float(last.get('execution_time') or 0):.3g} s, "
        f"efficiency {float(last.get('efficiency_score') or 0):.0f}/100.",
    ]
    if last.get("expected_outcome"):
        lines.append(f"Expected outcome: {last['expected_outcome']}")
    sections = (
        ("Problems in the last attempt:", _texts(last, "errors_encountered")),
        (
            "Suggestions from recent attempts:",
            list(dict.fromkeys(s for a in attempts for s in _texts(a, "improvement_suggestions"))),
        ),
        ("Cross-checks requested:", _texts(last, "cross_check_required")),
    )
    for heading, texts in sections:
        if texts:
            lines += [heading, *(f"- {t}" for t in texts)]
    return "\n".join(lines)
