"""Tests for Blueprint Revision Proposals and reflection."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import structlog_belog as belog
from structlog_belog.core.config import Config
from structlog_belog.memory.revision import KINDS, BlueprintRevision, RevisionItem
from structlog_belog.memory.store import BELogStore
from structlog_belog.memory.stores import open_store
from tests.memory.test_store import record


@pytest.fixture
def store(tmp_path: Path) -> BELogStore:
    """An empty SQLite store in tmp_path."""
    return open_store(tmp_path / "index.sqlite3")


def attempts(
    store: BELogStore, task: str, plan: Sequence[Mapping[str, Any]], *, start: int = 0
) -> list[str]:
    """Add one record per entry of *plan* (fields), one session each; return trace IDs."""
    traces = []
    for n, fields in enumerate(plan, start=start):
        rec = record(task, n, session_id=f"sess_{n}", **fields)
        store.add(rec)
        traces.append(rec["execution_trace_id"])
    return traces


def items_of(revision: BlueprintRevision, kind: str) -> list[RevisionItem]:
    """The items of one kind."""
    return [i for i in revision.items if i.kind == kind]


class TestGenerateBlueprintRevision:
    """Each rule proposes a revision citing the trace IDs it rests on."""

    def test_recurring_error_cites_its_traces(self, store: BELogStore) -> None:
        """An error seen in two runs is proposed with the trace IDs of both attempts."""
        traces = attempts(
            store,
            "Parse",
            [
                {"errors_encountered": ["TimeoutError: read timed out after 30 s"]},
                {"errors_encountered": []},
                {"errors_encountered": ["TimeoutError: read timed out after 31 s"]},
            ],
        )

        (item,) = items_of(
            belog.generate_blueprint_revision("bp_003", store, write=False), "recurring_error"
        )

        assert (traces[0], traces[2]) == item.evidence
        assert "Parse" == item.task_name
        assert "TimeoutError: read timed out after 30 s" in item.title

    def test_error_in_one_run_only_is_not_recurring(self, store: BELogStore) -> None:
        """The same error twice within one run is not a recurring error."""
        for second in (1, 2):
            store.add(record("Parse", second, errors_encountered=["KeyError: 'id'"]))

        revision = belog.generate_blueprint_revision("bp_003", store, write=False)

        assert [] == items_of(revision, "recurring_error")

    def test_time_regression(self, store: BELogStore) -> None:
        """A latest time of >= 1.5x the median of the earlier ones is a regression."""
        traces = attempts(store, "Render", [{"execution_time": t} for t in (1.0, 1.2, 0.8, 1.5)])
        attempts(store, "Steady", [{"execution_time": t} for t in (1.0, 1.2, 0.8, 1.4)], start=10)

        (item,) = items_of(
            belog.generate_blueprint_revision("bp_003", store, write=False), "time_regression"
        )

        assert "Render" == item.task_name
        assert (traces[3], *traces[:3]) == item.evidence
        assert "1.5x the median 1 s" in item.detail

    def test_falling_success_rate(self, store: BELogStore) -> None:
        """A task succeeding less in its recent half than before is flagged with the failures."""
        traces = attempts(store, "Upload", [{"success": s} for s in (True, True, True, False)])
        attempts(
            store, "Recovering", [{"success": s} for s in (False, False, True, True)], start=10
        )

        (item,) = items_of(
            belog.generate_blueprint_revision("bp_003", store, write=False), "falling_success_rate"
        )

        assert ("Upload", (traces[3],)) == (item.task_name, item.evidence)
        assert "100% of the first 2 attempts succeeded, 50% of the last 2" == item.detail

    def test_repeated_suggestion(self, store: BELogStore) -> None:
        """A suggestion made in two runs (case and spacing aside) is proposed once."""
        traces = attempts(
            store,
            "Generate",
            [
                {"improvement_suggestions": ["Cache the template analysis"]},
                {"improvement_suggestions": ["cache the  template analysis."]},
                {"improvement_suggestions": ["Use a smaller model"]},
            ],
        )

        (item,) = items_of(
            belog.generate_blueprint_revision("bp_003", store, write=False), "repeated_suggestion"
        )

        assert ("Cache the template analysis", tuple(traces[:2])) == (item.title, item.evidence)

    def test_cross_checks_and_risks(self, store: BELogStore) -> None:
        """Cross-checks and medium/high breakage risks become items with their traces."""
        traces = attempts(
            store,
            "Migrate",
            [
                {"cross_check_required": ["difficulty labels"]},
                {
                    "potential_breakage_risk": {"level": "high", "reasons": ["schema changed"]},
                    "cross_check_required": ["difficulty labels"],
                },
                {"potential_breakage_risk": {"level": "low", "reasons": ["cosmetic"]}},
            ],
        )

        revision = belog.generate_blueprint_revision("bp_003", store, write=False)

        (cross,) = items_of(revision, "cross_check")
        (risk,) = items_of(revision, "breakage_risk")
        assert tuple(traces[:2]) == cross.evidence
        assert ((traces[1],), "schema changed") == (risk.evidence, risk.detail)
        assert "high risk" in risk.title

    def test_other_blueprints_are_ignored(self, store: BELogStore) -> None:
        """Only the blueprint asked for is read."""
        attempts(store, "X", [{"blueprint_id": "bp_other", "errors_encountered": ["E"]}] * 2)

        revision = belog.generate_blueprint_revision("bp_003", store, write=False)

        assert (0, (), None) == (revision.records_considered, revision.items, revision.path)
        assert "No revision proposed" in revision.to_markdown()

    def test_proposer_adds_items(self, store: BELogStore) -> None:
        """A proposer sees the records and items and may add items in three shapes."""
        traces = attempts(store, "T", [{"errors_encountered": ["E1"]}] * 2)
        seen: list[tuple[int, int]] = []

        def proposer(records: Sequence[Mapping[str, Any]], items: Sequence[RevisionItem]) -> Any:
            seen.append((len(records), len(items)))
            return [
                "Split the task in two",
                {"title": "Retry E1", "evidence": [traces[0]], "task_name": "T"},
                RevisionItem("recurring_error", "From an item"),
            ]

        revision = belog.generate_blueprint_revision("bp_003", store, proposer, write=False)

        assert [(2, 1)] == seen
        proposed = items_of(revision, "proposed")
        assert ["Split the task in two", "Retry E1", "From an item"] == [i.title for i in proposed]
        assert (traces[0],) == proposed[1].evidence

    def test_failing_proposer_is_noted(self, store: BELogStore) -> None:
        """A proposer that raises or returns nonsense leaves a note, not an exception."""
        attempts(store, "T", [{}])

        def broken(*_: Any) -> Any:
            raise ConnectionError("model unreachable")

        revision = belog.generate_blueprint_revision("bp_003", store, broken, write=False)
        nonsense = belog.generate_blueprint_revision("bp_003", store, lambda *_: [42], write=False)

        assert ("proposer failed: ConnectionError: model unreachable",) == revision.notes
        assert "RevisionItem, a mapping with 'title' or a str" in nonsense.notes[0]

    def test_version_and_proposed_version(self, store: BELogStore) -> None:
        """The latest version is taken by version order, and the next one is proposed."""
        attempts(
            store,
            "T",
            [
                {"blueprint_version": "v1.9", "errors_encountered": ["E"]},
                {"blueprint_version": "v1.10", "errors_encountered": ["E"]},
                {"blueprint_version": "v1.2"},
            ],
        )

        revision = belog.generate_blueprint_revision("bp_003", store, write=False)

        assert ("v1.10", "v1.11") == (revision.blueprint_version, revision.proposed_version)

    def test_written_as_json_and_markdown(self, store: BELogStore, tmp_path: Path) -> None:
        """The proposal is written (0600) as JSON equal to to_dict() and as Markdown."""
        traces = attempts(store, "T", [{"errors_encountered": ["E"]}] * 2)

        revision = belog.generate_blueprint_revision("bp_003", store, out_dir=tmp_path / "rev")

        assert revision.path is not None
        assert tmp_path / "rev" == revision.path.parent
        assert revision.to_dict() == json.loads(revision.path.read_text())
        markdown = revision.path.with_suffix(".md").read_text()
        assert revision.to_markdown() == markdown
        assert f"`{traces[0]}`" in markdown
        assert "## Recurring errors" in markdown
        assert 0o600 == revision.path.stat().st_mode & 0o777

    def test_default_store_and_folder(self, belog_config: Config) -> None:
        """With no store, the log_dir's store is read and logs/revisions/ written (real tasks)."""
        traces = []
        for _ in range(2):
            with belog.session(
                "run", blueprint_id="bp_live", blueprint_version="v2", package=False
            ):
                with belog.task("Fetch") as t:
                    logging.getLogger("app").error("HTTP 503 from upstream")
                traces.append(t.trace_id)

        revision = belog.generate_blueprint_revision("bp_live")

        (item,) = items_of(revision, "recurring_error")
        assert tuple(traces) == item.evidence
        assert revision.path is not None
        assert belog_config.log_dir / "revisions" == revision.path.parent
        assert (2, 2) == (revision.records_considered, revision.sessions_considered)

    def test_markdown_lists_sections_in_kind_order(self, store: BELogStore) -> None:
        """Sections follow KINDS order whatever order the rules found them in."""
        attempts(
            store,
            "T",
            [
                {"errors_encountered": ["E"], "cross_check_required": ["c"], "execution_time": 1},
                {"errors_encountered": ["E"], "execution_time": 1},
                {"execution_time": 1},
                {"execution_time": 3},
            ],
        )

        markdown = belog.generate_blueprint_revision("bp_003", store, write=False).to_markdown()

        positions = [markdown.find(f"## {title}") for title in KINDS.values()]
        present = [p for p in positions if p >= 0]
        assert 3 == len(present)
        assert sorted(present) == present


class TestReflect:
    """`belog.reflect`: steps 1 to 3 of the loop, as prompt-ready text."""

    def test_no_attempts(self, store: BELogStore) -> None:
        """A task never run says so."""
        assert "No earlier attempt of task 'T' is recorded." == belog.reflect("T", store)

    def test_last_attempt_problems_and_suggestions(self, store: BELogStore) -> None:
        """The text names the last attempt, its outcome, its problems and recent suggestions."""
        traces = attempts(
            store,
            "T",
            [
                {"improvement_suggestions": ["use a schema"]},
                {
                    "success": False,
                    "efficiency_score": 0.0,
                    "execution_time": 2.5,
                    "errors_encountered": ["JSONDecodeError: line 1"],
                    "improvement_suggestions": ["lower the temperature"],
                    "cross_check_required": ["field names"],
                },
            ],
        )

        text = belog.reflect("T", store)

        assert text.splitlines() == [
            "Task 'T': 1 of the last 2 attempts succeeded.",
            f"Last attempt ({traces[1]}, 2025-01-18T17:30:01.000000Z, blueprint bp_003 v1.2):"
            " failed in 2.5 s, efficiency 0/100.",
            "Expected outcome: valid supertask JSON",
            "Problems in the last attempt:",
            "- JSONDecodeError: line 1",
            "Suggestions from recent attempts:",
            "- lower the temperature",
            "- use a schema",
            "Cross-checks requested:",
            "- field names",
        ]
