"""Step 4 of the execution loop: which task to run next, and how to change it.

`next_step(task_name)` reads the task's last attempts (and, for a success,
the blueprint's other records) and answers with a `NextStep`: fix and retry a
failing task, quoting its errors; continue with the task downstream of a
successful one; or repeat it with the changes its records suggest. An
optional *proposer* (for example an audited LLM call) receives the evidence
and its answer is recorded as a suggestion — in the ``next_step`` log record
and in the next attempt of the task made by this process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .evidence import ConnectionIndex

if TYPE_CHECKING:
    from .store import BELogStore

__all__ = ["NextStep", "Proposer", "next_step", "pending_suggestions", "redact_text"]

#: ``proposer(evidence) -> str | list[str] | None``; *evidence* is `NextStep.evidence_for`.
Proposer = Callable[[Mapping[str, Any]], "str | Iterable[str] | None"]

#: How many past attempts of the task are read.
LOOKBACK = 10

_PENDING: dict[str, list[str]] = {}
_PENDING_LOCK = threading.Lock()


def pending_suggestions(task_name: str) -> list[str]:
    """Take the proposer's suggestions waiting for the next attempt of *task_name*."""
    with _PENDING_LOCK:
        return _PENDING.pop(task_name, [])


_REDACTOR: list[Any] = []


def redact_text(text: str) -> str:
    """*text* with secrets redacted, as the record path writes it (unless ``redact=False``)."""
    from ..core.state import get_config

    config = get_config()
    if config is not None and not config.redact:
        return text
    try:
        if not _REDACTOR:
            from ..core.redact import SecretRedactor

            _REDACTOR.append(SecretRedactor())
        out = _REDACTOR[0](None, "info", {"event": text})
        return str(out.get("event", text))
    except Exception:  # noqa: BLE001 - a quote is never worth failing the answer
        return text


@dataclass(frozen=True, slots=True)
class NextStep:
    """The next step of the loop for a task.

    Attributes:
        task_name: The task to run next.
        action: ``run`` (never tried), ``fix`` (its last attempt failed),
            ``continue`` (go on with the task downstream), ``improve``
            (repeat it with the suggested changes) or ``done`` (nothing to change).
        reason: Why, in one sentence, with the figures.
        changes: How to change the task: errors to fix (quoted, redacted) and
            suggestions, each naming its evidence.
        checks: Cross-checks to make first.
        evidence: The execution trace IDs it rests on.
        after: The task whose records led here (for ``continue``).
    """

    task_name: str
    action: str
    reason: str
    changes: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    after: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "evidence", tuple(dict.fromkeys(self.evidence)))

    def to_dict(self) -> dict[str, Any]:
        """The step as JSON-ready data."""
        return {
            "task_name": self.task_name,
            "action": self.action,
            "reason": self.reason,
            "changes": list(self.changes),
            "checks": list(self.checks),
            "evidence": list(self.evidence),
            "after": self.after,
        }

    def to_text(self) -> str:
        """The step as a short text for a prompt or a terminal."""
        lines = [f"Next: {self.action} {self.task_name!r} — {self.reason}"]
        for heading, items in (("Change:", self.changes), ("Check first:", self.checks)):
            if items:
                lines += [heading, *(f"- {i}" for i in items)]
        if self.evidence:
            lines.append("Evidence: " + ", ".join(self.evidence))
        return "\n".join(lines)

    __str__ = to_text


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _after_failure(task_name: str, attempts: Sequence[Mapping[str, Any]]) -> NextStep:
    last = attempts[0]
    errors = [redact_text(e) for e in _strings(last.get("errors_encountered"))]
    failed = [a for a in attempts if a.get("success") is not True]
    quoted = "; ".join(repr(e) for e in errors) or "no error was recorded"
    return NextStep(
        task_name,
        "fix",
        f"its last attempt {last.get('execution_trace_id')} failed ({quoted}); "
        f"{len(failed)} of its last {len(attempts)} attempts failed",
        tuple(
            [f"fix the error {e!r}" for e in errors]
            + [redact_text(s) for s in _strings(last.get("improvement_suggestions"))]
        ),
        tuple(_strings(last.get("cross_check_required"))),
        tuple(str(a.get("execution_trace_id")) for a in failed),
    )


def _downstream(last: Mapping[str, Any], store: BELogStore) -> NextStep | None:
    blueprint = last.get("blueprint_id")
    if not isinstance(blueprint, str):
        return None
    records = store.get_blueprint_records(blueprint)
    index = ConnectionIndex()
    index.add_many(records)
    name = str(last.get("task_name"))
    readers = index.readers(_strings(last.get("files_changed")), name)
    trace = str(last.get("execution_trace_id"))
    if readers:
        path, use = readers[0]
        reason = f"{name!r} succeeded ({trace}) and {use.task!r} reads {path}, which it wrote"
        return _continue(use.task, name, reason, records, (trace, use.trace))
    # No file links it: the task that ran after it in its last run.
    run = [r for r in records if r.get("session_id") == last.get("session_id")]
    names = [str(r.get("task_name")) for r in run]
    if name in names:
        later = [n for n in names[len(names) - names[::-1].index(name) :] if n != name]
        if later:
            reason = f"{name!r} succeeded ({trace}) and {later[0]!r} followed it in its last run"
            return _continue(later[0], name, reason, records, (trace,))
    return None


def _continue(
    task: str,
    after: str,
    reason: str,
    records: Sequence[Mapping[str, Any]],
    evidence: tuple[str, ...],
) -> NextStep:
    own = [r for r in records if r.get("task_name") == task]
    changes: list[str] = []
    if own:
        latest = own[-1]
        changes = [redact_text(s) for s in _strings(latest.get("improvement_suggestions"))]
        if latest.get("success") is not True:
            changes = [
                f"fix the error {redact_text(e)!r} (its last attempt "
                f"{latest.get('execution_trace_id')} failed)"
                for e in _strings(latest.get("errors_encountered"))
            ] + changes
        evidence = (*evidence, str(latest.get("execution_trace_id")))
    return NextStep(task, "continue", reason, tuple(changes), (), evidence, after)


def _after_success(
    task_name: str, attempts: Sequence[Mapping[str, Any]], store: BELogStore
) -> NextStep:
    last = attempts[0]
    checks = tuple(_strings(last.get("cross_check_required")))
    step = _downstream(last, store)
    if step is not None:
        return NextStep(
            step.task_name,
            step.action,
            step.reason,
            step.changes,
            checks,
            step.evidence,
            step.after,
        )
    suggestions = [redact_text(s) for s in _strings(last.get("improvement_suggestions"))]
    trace = str(last.get("execution_trace_id"))
    score = last.get("efficiency_score")
    if suggestions:
        return NextStep(
            task_name,
            "improve",
            f"its last attempt {trace} succeeded (efficiency {score}/100) "
            f"with {len(suggestions)} suggestion(s) recorded",
            tuple(suggestions),
            checks,
            (trace,),
        )
    return NextStep(
        task_name,
        "done",
        f"its last attempt {trace} succeeded (efficiency {score}/100) and its records "
        "suggest no change",
        (),
        checks,
        (trace,),
    )


def next_step(
    task_name: str,
    *,
    proposer: Proposer | None = None,
    store: BELogStore | str | os.PathLike[str] | None = None,
    record: bool = True,
) -> NextStep:
    """Step 4 of the loop for *task_name*: the task to run next and how to change it.

    Args:
        task_name: The task whose records are read.
        proposer: Optional ``proposer(evidence)`` (for example an audited
            LLM call); it receives the attempts and the measured answer, and
            its answer (a string or strings) is added to ``changes``, written
            in the ``next_step`` record and suggested to the next attempt of
            the task in this process. A failing proposer is noted, not raised.
        store: A `BELogStore` or an `open_store` location (default: the
            store in ``log_dir``).
        record: Write the answer as a ``next_step`` log record (in the
            current session, if any).

    Raises:
        ValueError: *task_name* is empty.
        StoreError: the store cannot be read.
    """
    if not isinstance(task_name, str) or not task_name.strip():
        msg = f"task_name must be a non-empty string, got {task_name!r}"
        raise ValueError(msg)
    if proposer is not None and not callable(proposer):
        msg = f"proposer must be callable(evidence), got {proposer!r}"
        raise TypeError(msg)
    from .store import BELogStore
    from .stores import open_store

    opened = store if isinstance(store, BELogStore) else open_store(store)
    attempts = opened.get_past_attempts(task_name, LOOKBACK)
    if not attempts:
        step = NextStep(task_name, "run", "no attempt of it is recorded yet")
    elif attempts[0].get("success") is not True:
        step = _after_failure(task_name, attempts)
    else:
        step = _after_success(task_name, attempts, opened)
    if proposer is not None:
        step = _ask(proposer, step, attempts)
    if record:
        _record(step)
    return step


def _ask(proposer: Proposer, step: NextStep, attempts: Sequence[Mapping[str, Any]]) -> NextStep:
    evidence = {
        "task_name": step.task_name,
        "attempts": list(attempts),
        "next_step": step.to_dict(),
    }
    try:
        answer = proposer(evidence)
        texts = [answer] if isinstance(answer, str) else list(answer or ())
        proposed = [f"proposer: {redact_text(str(t))}" for t in texts if str(t).strip()]
    except Exception as exc:  # noqa: BLE001 - the measured answer stands on its own
        proposed = []
        note = f"proposer failed: {type(exc).__name__}: {exc}"
        return NextStep(
            step.task_name,
            step.action,
            f"{step.reason} ({note})",
            step.changes,
            step.checks,
            step.evidence,
            step.after,
        )
    if proposed:
        with _PENDING_LOCK:
            _PENDING.setdefault(step.task_name, []).extend(proposed)
    return NextStep(
        step.task_name,
        step.action,
        step.reason,
        (*step.changes, *proposed),
        step.checks,
        step.evidence,
        step.after,
    )


def _record(step: NextStep) -> None:
    from ..core.state import emit

    emit("next_step", logger="structlog_belog.belog", kind="next_step", **step.to_dict())
