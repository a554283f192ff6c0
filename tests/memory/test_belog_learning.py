"""BELog that learns: measured fields, stable scores, derived suggestions and risk, next steps.

Every case runs the real record path with the real openai SDK against the
offline fake model (or an httpx.MockTransport), in a working directory of its
own so the file watcher sees only what the test writes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

import structlog_belog as belog
from structlog_belog.audit.fake_llm import FakeLLM, fake_openai_client
from structlog_belog.cli import main as cli_main
from structlog_belog.core.settings import Config
from structlog_belog.memory.stores import open_store

MESSAGES = [{"role": "user", "content": "Write one supertask."}]


@pytest.fixture
def workdir(belog_config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A configured log folder, and the test's own working directory (the watched root)."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def client(transport: httpx.BaseTransport | None = None, **fake: Any) -> openai.OpenAI:
    """An audited OpenAI client answered by *transport* (default: the fake model)."""
    return belog.instrument_openai(
        fake_openai_client(transport=transport or FakeLLM(**fake), max_retries=3)
    )


class Clock:
    """The task clock, advanced by hand: durations are scripted, never timed."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


_CLOCK: list[Clock] = []


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Replace the task clock (`memory.task._clock`) with a scripted one."""
    from structlog_belog.memory import task as _task

    fake = Clock()
    monkeypatch.setattr(_task, "_clock", fake)
    _CLOCK.append(fake)
    return fake


def attempt(
    name: str = "t", *, model: openai.OpenAI | None = None, sleep: float = 0.0, fail: str = ""
) -> dict[str, Any]:
    """One attempt of task *name* in its own session: an LLM call, *sleep*, maybe a failure.

    With the `clock` fixture, *sleep* advances the scripted task clock instead.
    """
    with (
        contextlib.suppress(RuntimeError),
        belog.session("s", package=False),
        belog.task(name) as t,
    ):
        if model is not None:
            model.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        if _CLOCK:
            _CLOCK[0].now += sleep
        else:
            time.sleep(sleep)
        if fail:
            raise RuntimeError(fail)
    assert t.record is not None
    return t.record


def suggestions_starting(record: dict[str, Any], prefix: str) -> list[str]:
    """The record's improvement suggestions that start with *prefix*."""
    return [s for s in record["improvement_suggestions"] if s.startswith(prefix)]


class TestFilesChanged:
    """files_changed is measured under the working directory, by default."""

    def test_written_files_and_outputs(self, workdir: Path) -> None:
        """Files created or modified in the task are listed; the log and package folders not."""
        belog.configure(log_dir=workdir / "logs", package_dir=workdir / "packages", console=False)
        (workdir / "old.txt").write_text("old")
        with belog.session("s", package=False) as run, run.task("t") as t:
            (workdir / "made.json").write_text("{}")
            (workdir / "old.txt").write_text("new")
            run.add_output(workdir / "made.json")
            logging.getLogger("app").info("wrote made.json")  # lands in logs/: not listed
        assert ["made.json", "old.txt"] == t.record["files_changed"]  # type: ignore[index]

    def test_follows_the_working_directory(
        self, workdir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """After a chdir the next task watches the new working directory."""
        other = workdir / "elsewhere"
        other.mkdir()
        monkeypatch.chdir(other)
        with belog.session("s", package=False), belog.task("t") as t:
            (other / "here.txt").write_text("x")
        assert ["here.txt"] == t.record["files_changed"]  # type: ignore[index]

    def test_watch_off(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """configure(watch=False): only declared outputs count."""
        monkeypatch.chdir(tmp_path)
        belog.configure(log_dir=tmp_path / "logs", console=False, watch=False)
        with belog.session("s", package=False) as run, run.task("t") as t:
            (tmp_path / "a.txt").write_text("x")
            (tmp_path / "b.txt").write_text("x")
            run.add_output(tmp_path / "b.txt")
        assert ["b.txt"] == t.record["files_changed"]  # type: ignore[index]

    def test_bad_watch(self) -> None:
        """A watch that is not folders is a TypeError naming the argument."""
        with pytest.raises(TypeError, match="watch must be"):
            belog.configure(watch=42)  # type: ignore[arg-type]


class TestDependencies:
    """dependencies_affected: models, hosts, services and files read."""

    def test_model_host_service_and_input(self, workdir: Path) -> None:
        """The call's model and host, a database a record names, a file added as input."""
        (workdir / "raw.md").write_text("# raw")
        model = client()
        with belog.session("s", package=False) as run, run.task("t") as t:
            run.add_input(workdir / "raw.md")
            model.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            logging.getLogger("app.db").info("saved", extra={"database": "supertasks"})
        assert [
            "openai:gpt-4o-mini",
            "http:fake-llm.invalid",
            "database:supertasks",
            "file:raw.md",
        ] == t.record["dependencies_affected"]  # type: ignore[index]


class TestEfficiencyScore:
    """The score is stable for identical work and low for slow work."""

    def test_twelve_identical_tasks_and_a_slow_one(self, workdir: Path, clock: Clock) -> None:
        """Twelve identical attempts (time jittering ±10%) score within 5 points; 4x slower < 50."""
        model = client()
        jitter = [0.0, 0.1, -0.1, 0.05, -0.05, 0.08, -0.02, 0.1, -0.1, 0.03, 0.0, -0.07]
        scores = [attempt(model=model, sleep=0.05 * (1 + j))["efficiency_score"] for j in jitter]
        slow = attempt(model=model, sleep=0.2)
        assert max(scores) - min(scores) <= 5, scores
        assert slow["efficiency_score"] < 50
        assert slow["success"] is True

    def test_failure_is_success_false(self, workdir: Path) -> None:
        """A failed attempt says success: false; its score stays in 0..100."""
        record = attempt(fail="index missing")
        assert record["success"] is False
        assert 0 <= record["efficiency_score"] <= 100


class TestDerivedSuggestions:
    """Each derived suggestion, from a real pipeline, naming its figure."""

    def test_rate_limits(self, workdir: Path) -> None:
        """Two 429 answers before success: a pacing suggestion counting them."""
        record = attempt(model=client(fail_first=2, fail_status=429))
        assert [
            "2 request(s) were rate-limited (HTTP 429) across 1 LLM call(s): pace the calls "
            "(a client-side limit, batching) or raise the quota"
        ] == suggestions_starting(record, "2 request(s)")

    def test_retries_after_server_errors(self, workdir: Path) -> None:
        """A 500 then success: a retry suggestion counting it."""
        record = attempt(model=client(fail_first=1, fail_status=500))
        assert 1 == len(suggestions_starting(record, "1 request(s) were retried after errors"))

    def test_slower_than_its_median(self, workdir: Path, clock: Clock) -> None:
        """Much slower than the median of its past successes: names both times."""
        for _ in range(3):
            attempt(sleep=0.01)
        record = attempt(sleep=0.3)
        (text,) = suggestions_starting(record, "It took")
        assert text.startswith("It took 0.3 s, 30.0x the median 0.01 s")
        assert "of its 3 past successful attempts: find what slowed it down" in text

    def test_token_and_cost_growth(self, workdir: Path) -> None:
        """Four times the output tokens: token and cost growth, with the figures."""
        for _ in range(3):
            attempt(model=client(output_tokens=10))
        record = attempt(model=client(output_tokens=60))
        (tokens,) = suggestions_starting(record, "It used")
        assert f"It used {record['metrics']['tokens']} tokens" in tokens
        assert 1 == len(suggestions_starting(record, "It cost $"))

    def test_repeated_error(self, workdir: Path) -> None:
        """The same error as the last attempt (numbers aside) is called out with its traces."""
        first = attempt(fail="index 3 missing")
        record = attempt(fail="index 4 missing")
        assert [
            f"the error 'RuntimeError: index 4 missing' also occurred in 1 of its last 1 "
            f"attempts ({first['execution_trace_id']}): fix its cause before retrying"
        ] == suggestions_starting(record, "the error")

    def test_empty_output_file(self, workdir: Path) -> None:
        """An output of 0 bytes is named."""
        with belog.session("s", package=False) as run, run.task("t") as t:
            (workdir / "out.json").write_text("")
            run.add_output(workdir / "out.json")
        assert ["output out.json is empty (0 bytes): check what the task wrote"] == (
            suggestions_starting(t.record, "output")  # type: ignore[arg-type]
        )

    def test_empty_model_answer(self, workdir: Path) -> None:
        """A model answer with no text (a real SDK call to a mock server) is named with its call."""

        def empty(request: httpx.Request) -> httpx.Response:
            return httpx.Response(
                200,
                json={
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "gpt-4o-mini",
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "length",
                            "message": {"role": "assistant", "content": ""},
                        }
                    ],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 0, "total_tokens": 5},
                },
            )

        record = attempt(model=client(httpx.MockTransport(empty)))
        (text,) = suggestions_starting(record, "1 LLM call(s) returned no text")
        assert record["metrics"]["empty_responses"] == 1
        assert "llm_" in text


class TestRisk:
    """potential_breakage_risk and cross_check_required from evidence."""

    def pipeline(self, workdir: Path, *, fail_writer: bool = False) -> dict[str, Any]:
        """A writer then a reader of out.json; returns the writer's record."""
        with belog.session("s", blueprint_id="bp", package=False) as run:
            with contextlib.suppress(RuntimeError), run.stage("make"), run.task("write") as w:
                (workdir / "out.json").write_text("{}")
                run.add_output(workdir / "out.json")
                if fail_writer:
                    raise RuntimeError("disk full")
            with run.stage("check"), run.task("read"):
                run.add_input(workdir / "out.json")
        assert w.record is not None
        return w.record

    def test_unknown_then_downstream_reader(self, workdir: Path) -> None:
        """First run: unknown; next run: medium, the reader is the cross-check."""
        first = self.pipeline(workdir)
        second = self.pipeline(workdir)
        assert {"level": "unknown", "reasons": []} == first["potential_breakage_risk"]
        assert "medium" == second["potential_breakage_risk"]["level"]
        assert ["1 changed file(s) are read by 1 downstream task(s): 'read'"] == second[
            "potential_breakage_risk"
        ]["reasons"]
        assert ["task 'read' in stage 'check': reads out.json, which this task changed"] == second[
            "cross_check_required"
        ]
        assert [
            f"downstream: task 'read' in stage 'check' reads out.json "
            f"({open_store().get_past_attempts('read', 2)[1]['execution_trace_id']})"
        ] == second["pipeline_connections"]

    def test_failed_write_read_downstream_is_high(self, workdir: Path) -> None:
        """A failed attempt that changed a file a downstream task reads: high."""
        self.pipeline(workdir)
        record = self.pipeline(workdir, fail_writer=True)
        assert "high" == record["potential_breakage_risk"]["level"]
        assert (
            "this attempt failed: RuntimeError: disk full"
            in record["potential_breakage_risk"]["reasons"]
        )

    def test_past_failures(self, workdir: Path) -> None:
        """A task that failed before: low, naming how many and which."""
        failed = attempt(fail="boom")
        record = attempt()
        assert {
            "level": "low",
            "reasons": [f"1 of its last 1 attempts failed (latest {failed['execution_trace_id']})"],
        } == record["potential_breakage_risk"]

    def test_regression(self, workdir: Path, clock: Clock) -> None:
        """A much slower attempt: low, with the times."""
        for _ in range(3):
            attempt(sleep=0.01)
        risk = attempt(sleep=0.3)["potential_breakage_risk"]
        assert "low" == risk["level"]
        assert risk["reasons"][0].startswith("took 0.3 s, 30.0x the median 0.01 s")

    def test_assessed_clean_is_none(self, workdir: Path) -> None:
        """History without failure, reader or regression: none, saying what was checked."""
        attempt()
        risk = attempt()["potential_breakage_risk"]
        assert "none" == risk["level"]
        assert risk["reasons"][0].startswith("assessed: no downstream reader")


class TestRevisionQuotes:
    """generate_blueprint_revision quotes what failed."""

    def test_failing_attempt_is_quoted(self, workdir: Path) -> None:
        """After `RuntimeError: index missing` the proposal quotes it and names task and run."""
        with (
            contextlib.suppress(RuntimeError),
            belog.session("s", blueprint_id="bp", package=False) as run,
            run.task("Build index") as t,
        ):
            raise RuntimeError("index missing")
        revision = belog.generate_blueprint_revision("bp", write=False)
        (item,) = [i for i in revision.items if i.kind == "failed_attempt"]
        assert ("RuntimeError: index missing",) == item.errors
        assert ("Build index",) == item.failing_tasks
        assert (run.id,) == item.runs
        assert (t.trace_id,) == item.evidence
        assert "> RuntimeError: index missing" in revision.to_markdown()

    def test_secrets_in_errors_are_redacted(self, workdir: Path) -> None:
        """A key in an error message is not quoted back."""
        key = "sk-" + "proj-" + "x" * 40
        with (
            contextlib.suppress(RuntimeError),
            belog.session("s", blueprint_id="bp", package=False),
            belog.task("t"),
        ):
            raise RuntimeError(f"bad key {key}")
        text = json.dumps(belog.generate_blueprint_revision("bp", write=False).to_dict())
        assert key not in text
        assert "bad key" in text


class TestNextStep:
    """next_step: step 4 of the loop from the records."""

    def test_never_run(self, workdir: Path) -> None:
        """A task without records: run it."""
        step = belog.next_step("t")
        assert ("t", "run") == (step.task_name, step.action)

    def test_fix_after_failure(self, workdir: Path) -> None:
        """After a failure: fix it, quoting the error, citing the attempt."""
        failed = attempt(fail="index missing")
        step = belog.next_step("t")
        assert "fix" == step.action
        assert "fix the error 'RuntimeError: index missing'" == step.changes[0]
        assert (failed["execution_trace_id"],) == step.evidence
        assert "index missing" in step.to_text()

    def test_continue_downstream(self, workdir: Path) -> None:
        """After a success: continue with the task that reads what it wrote."""
        TestRisk().pipeline(workdir)
        step = belog.next_step("write")
        assert ("read", "continue", "write") == (step.task_name, step.action, step.after)
        assert "reads out.json" in step.reason

    def test_improve_or_done(self, workdir: Path) -> None:
        """A success with suggestions: improve it; without any: done."""
        with belog.session("s", package=False), belog.task("t") as t:
            t.suggest("batch the calls")
        step = belog.next_step("t")
        assert ("improve", ("batch the calls",)) == (step.action, step.changes)
        with belog.session("s", package=False), belog.task("u"):
            pass
        assert "done" == belog.next_step("u").action

    def test_continue_with_the_task_that_followed(self, workdir: Path) -> None:
        """No file links them: the task that ran next in its last run."""
        with belog.session("s", blueprint_id="bp", package=False):
            with belog.task("first"):
                pass
            with belog.task("second") as second:
                second.suggest("cache it")
        step = belog.next_step("first")
        assert ("second", "continue") == (step.task_name, step.action)
        assert "followed it in its last run" in step.reason
        assert ("cache it",) == step.changes

    def test_continue_with_a_failing_downstream_task(self, workdir: Path) -> None:
        """The downstream task failed last time: its error comes first in the changes."""
        with belog.session("s", blueprint_id="bp", package=False) as run:
            with run.task("write"):
                (workdir / "out.json").write_text("{}")
                run.add_output(workdir / "out.json")
            with contextlib.suppress(RuntimeError), run.task("read"):
                run.add_input(workdir / "out.json")
                raise RuntimeError("schema mismatch")
        step = belog.next_step("write")
        assert "read" == step.task_name
        assert step.changes[0].startswith("fix the error 'RuntimeError: schema mismatch'")

    def test_quotes_follow_the_redact_setting(self, workdir: Path, tmp_path: Path) -> None:
        """With redact=False the error is quoted as recorded."""
        from structlog_belog.memory.next_step import redact_text

        key = "sk-" + "proj-" + "y" * 40
        assert key not in redact_text(f"key {key}")
        belog.configure(log_dir=tmp_path / "logs2", console=False, redact=False)
        assert f"key {key}" == redact_text(f"key {key}")

    def test_proposer_answer_is_recorded_and_suggested(self, workdir: Path) -> None:
        """The proposer gets the evidence; its answer is a change, a record, and a suggestion."""
        attempt(fail="index missing")
        seen: list[Any] = []

        def proposer(evidence: Any) -> str:
            seen.append(evidence)
            return "rebuild the index first"

        with belog.session("loop", package=False) as run:
            step = belog.next_step("t", proposer=proposer)
        assert "proposer: rebuild the index first" == step.changes[-1]
        assert "t" == seen[0]["attempts"][0]["task_name"]
        lines = (run.directory / "processing.jsonl").read_text().splitlines()  # type: ignore[operator]
        (recorded,) = [json.loads(line) for line in lines if '"next_step"' in line]
        assert "proposer: rebuild the index first" == recorded["changes"][-1]
        assert ["proposer: rebuild the index first"] == suggestions_starting(attempt(), "proposer")

    def test_failing_proposer_is_noted(self, workdir: Path) -> None:
        """A proposer that raises leaves the measured answer, with a note."""
        attempt(fail="x")

        def proposer(_: Any) -> str:
            raise ValueError("model down")

        step = belog.next_step("t", proposer=proposer)
        assert "proposer failed: ValueError: model down" in step.reason

    def test_bad_arguments(self) -> None:
        """An empty task name or a non-callable proposer names the argument."""
        with pytest.raises(ValueError, match="task_name"):
            belog.next_step("")
        with pytest.raises(TypeError, match="proposer"):
            belog.next_step("t", proposer="llm")  # type: ignore[arg-type]

    def test_cli(
        self, workdir: Path, capsys: pytest.CaptureFixture[str], belog_config: Config
    ) -> None:
        """`belog next TASK --json` prints the step."""
        attempt(fail="index missing")
        assert 0 == cli_main(["next", "t", "--json", "--log-dir", str(belog_config.log_dir)])
        step = json.loads(capsys.readouterr().out)
        assert ("fix", "t") == (step["action"], step["task_name"])


class TestLatestBlueprintVersion:
    """get_latest_blueprint_version and sessions without a version."""

    def test_top_level_and_session_default(self, workdir: Path) -> None:
        """The latest known version by people's order; a new session uses and records it."""
        for version in ("v1.2", "v1.10", "v1.9"):
            with (
                belog.session("s", blueprint_id="bp", blueprint_version=version, package=False),
                belog.task("t"),
            ):
                pass
        assert "v1.10" == belog.get_latest_blueprint_version("bp")
        assert belog.get_latest_blueprint_version("other") is None
        with belog.session("s", blueprint_id="bp", package=False) as run, belog.task("t") as t:
            pass
        assert "v1.10" == run.blueprint_version == t.record["blueprint_version"]  # type: ignore[index]
        start = json.loads((run.directory / "processing.jsonl").read_text().splitlines()[0])  # type: ignore[operator]
        assert ("v1.10", "latest_known") == (
            start["blueprint_version"],
            start["blueprint_version_source"],
        )

    def test_bad_blueprint_id(self) -> None:
        """An empty blueprint ID names the argument."""
        with pytest.raises(ValueError, match="blueprint_id"):
            belog.get_latest_blueprint_version("")


@pytest.fixture(autouse=True)
def _fresh_indexes() -> Iterator[None]:
    """Each test starts with no remembered file connections."""
    from structlog_belog.memory import measure, recording

    measure._INDEXES.clear()
    yield
    _CLOCK.clear()
    recording.close_store()
    measure._INDEXES.clear()
