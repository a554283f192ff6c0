"""examples/momentum_loop.py: the six-step loop offline, and a record with every field measured."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from structlog_belog.memory import scoring as _belog_score
from structlog_belog.memory.stores import open_store

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "momentum_loop.py"
GENERATE = "Generate beginner supertask"


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    """Run the example once (four iterations): its folder, printed record and text output."""
    import os
    import sys

    from tests.conftest import REPO_ROOT

    out = tmp_path_factory.mktemp("momentum")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BELOG_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    run = subprocess.run(
        [sys.executable, str(EXAMPLE), "--out", str(out), "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=240,
    )
    return out, json.loads(run.stdout), run.stderr


def session_records(out: Path, session_id: str, stream: str) -> list[dict[str, Any]]:
    """The records of one session's *stream* file."""
    path = out / "logs" / "sessions" / session_id / f"{stream}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


class TestMomentumLoopRecord:
    """Each field of the printed record checked against what the loop did."""

    def test_identity_fields(self, loop: tuple[Path, dict[str, Any], str]) -> None:
        """Blueprint, version (the revision's proposal, applied with the fix), context, task."""
        out, record, _ = loop
        assert "bp_supertask" == record["blueprint_id"]
        assert "v1.1" == record["blueprint_version"]
        assert "Generate supertasks from Naval content" == record["execution_context"]
        assert GENERATE == record["task_name"]
        assert "a supertask as JSON" == record["expected_outcome"]
        assert re.fullmatch(r"belog_\d{8}T\d{6}Z_[0-9a-f]{12}", record["execution_trace_id"])
        assert (out / "logs" / "sessions" / record["session_id"]).is_dir()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", record["timestamp"])

    def test_sessions_without_version_used_the_latest(
        self, loop: tuple[Path, dict[str, Any], str]
    ) -> None:
        """Iterations 1-2 gave no version: their sessions recorded the latest known one."""
        out, _, _ = loop
        starts = [
            json.loads(line)
            for line in (out / "logs" / "momentum_loop.jsonl").read_text().splitlines()
            if '"session_start"' in line
        ]
        assert [
            ("v1.0", None),
            ("v1.0", "latest_known"),
            ("v1.0", "latest_known"),
            ("v1.1", None),
        ] == [(s["blueprint_version"], s.get("blueprint_version_source")) for s in starts]

    def test_files_and_dependencies(self, loop: tuple[Path, dict[str, Any], str]) -> None:
        """It wrote the output file, read the template, called the model over HTTP."""
        out, record, _ = loop
        assert ["work/03_output/beginner.json"] == record["files_changed"]
        json.loads((out / "work" / "03_output" / "beginner.json").read_text())
        calls = session_records(out, record["session_id"], "prompts")
        generation_calls = [c for c in calls if c.get("task") == GENERATE]
        assert {"gpt-4o-mini"} == {c["model"] for c in generation_calls}
        assert [
            "openai:gpt-4o-mini",
            "http:fake-llm.invalid",
            "file:work/02_preprocessed/template.json",
        ] == record["dependencies_affected"]

    def test_connections_name_real_records(self, loop: tuple[Path, dict[str, Any], str]) -> None:
        """Upstream and downstream lines cite records of the tasks that wrote and read the files."""
        out, record, _ = loop
        store = open_store(out / "logs" / "belog_index.sqlite3")
        up, down = sorted(record["pipeline_connections"], reverse=True)
        assert up.startswith("upstream: task 'Prepare content' in stage 'preprocessing' wrote")
        assert down.startswith("downstream: task 'Validate supertask' in stage 'validation' reads")
        for line, task in ((up, "Prepare content"), (down, "Validate supertask")):
            trace = line.rsplit("(", 1)[1].rstrip(")")
            assert trace in {r["execution_trace_id"] for r in store.get_past_attempts(task, 10)}

    def test_errors_and_success(self, loop: tuple[Path, dict[str, Any], str]) -> None:
        """The error record logged inside the task is listed; the task still succeeded."""
        out, record, _ = loop
        logged = [
            f"{r['event']} ({r['exception'].strip().splitlines()[-1]})"
            for r in session_records(out, record["session_id"], "processing")
            if r.get("level") == "error" and r.get("task") == GENERATE
        ]
        assert 1 == len(logged)
        assert logged == record["errors_encountered"]
        assert record["success"] is True

    def test_score_recomputes_from_the_store(self, loop: tuple[Path, dict[str, Any], str]) -> None:
        """The score is the formula over the earlier attempts, lowered by the two retries."""
        out, record, _ = loop
        store = open_store(out / "logs" / "belog_index.sqlite3")
        past = store.get_past_attempts(GENERATE, 50)[1:]
        assert [p["execution_trace_id"] for p in past] == record["previous_attempts"]
        assert 3 == len(past)
        assert _belog_score.efficiency_score(record, past) == record["efficiency_score"]
        assert record["efficiency_score"] < _belog_score.AT_MEDIAN

    def test_risk_and_cross_checks(self, loop: tuple[Path, dict[str, Any], str]) -> None:
        """Medium risk because validation reads the file it changed; that is the cross-check."""
        _, record, _ = loop
        risk = record["potential_breakage_risk"]
        assert "medium" == risk["level"]
        assert (
            "1 changed file(s) are read by 1 downstream task(s): 'Validate supertask'"
            == risk["reasons"][0]
        )
        assert [
            "task 'Validate supertask' in stage 'validation': reads "
            "work/03_output/beginner.json, which this task changed"
        ] == record["cross_check_required"]

    def test_suggestions_name_their_figures(self, loop: tuple[Path, dict[str, Any], str]) -> None:
        """The caller's suggestion, the 429s (counted from the audit), the repeated error."""
        out, record, _ = loop
        calls = session_records(out, record["session_id"], "prompts")
        limited = sum(
            1
            for c in calls
            if c.get("task") == GENERATE
            for a in c.get("attempts") or []
            if a["status_code"] == 429
        )
        suggestions = record["improvement_suggestions"]
        assert "Ask for JSON (response_format) on the first call" == suggestions[0]
        assert any(
            s.startswith(f"{limited} request(s) were rate-limited (HTTP 429)") for s in suggestions
        )
        assert 2 == limited
        assert any(
            s.startswith("the error 'reply_not_json") and "also occurred in 3 of its last 3" in s
            for s in suggestions
        )
        assert {"llm_calls": 2, "rate_limited": 2, "retries": 2} == {
            k: record["metrics"][k] for k in ("llm_calls", "rate_limited", "retries")
        }

    def test_the_failure_was_quoted_and_fixed(self, loop: tuple[Path, dict[str, Any], str]) -> None:
        """The proposal after the failing validation quotes 'index missing'; the loop fixed it."""
        out, _, _ = loop
        proposals = sorted((out / "logs" / "revisions").glob("*.json"))
        after_failure = [json.loads(p.read_text()) for p in proposals]
        quoted = [
            item
            for proposal in after_failure
            for item in proposal["items"]
            if any("index missing" in e for e in item["errors"])
        ]
        assert quoted
        assert all(item["failing_tasks"] == ["Validate supertask"] for item in quoted)
        assert all(item["runs"] and item["evidence"] for item in quoted)
        store = open_store(out / "logs" / "belog_index.sqlite3")
        assert [True, False, True, True] == [
            r["success"] for r in store.get_past_attempts("Validate supertask", 10)
        ]
