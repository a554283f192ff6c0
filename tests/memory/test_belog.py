"""Tests for BELog tasks: the record, its measurements, scoring, and indexing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

import structlog_belog as belog
from structlog_belog.core import context as _context
from structlog_belog.core.config import Config
from structlog_belog.memory import changes as _changes
from structlog_belog.memory import recording as _recording
from structlog_belog.memory import scoring as _scoring
from structlog_belog.memory import task as _belog
from structlog_belog.memory.store import DEFAULT_FILENAME
from structlog_belog.memory.stores import open_store
from tests.conftest import read_jsonl

TEMPLATE_FIELDS = (
    "timestamp",
    "blueprint_id",
    "blueprint_version",
    "execution_context",
    "task_name",
    "expected_outcome",
    "execution_time",
    "files_changed",
    "dependencies_affected",
    "pipeline_connections",
    "errors_encountered",
    "success",
    "efficiency_score",
    "potential_breakage_risk",
    "cross_check_required",
    "execution_trace_id",
    "previous_attempts",
    "improvement_suggestions",
)

_STRINGS = {"type": "array", "items": {"type": "string"}}
_OPT_STRING = {"type": ["string", "null"]}

#: The types a BELog record's fields have (DESIGN §5), stricter than "present".
BELOG_SCHEMA = {
    "type": "object",
    "required": [*TEMPLATE_FIELDS, "session_id", "kind"],
    "properties": {
        "kind": {"const": "belog"},
        "timestamp": {
            "type": "string",
            "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$",
        },
        "blueprint_id": _OPT_STRING,
        "blueprint_version": _OPT_STRING,
        "execution_context": _OPT_STRING,
        "task_name": {"type": "string", "minLength": 1},
        "expected_outcome": _OPT_STRING,
        "execution_time": {"type": "number", "minimum": 0},
        "files_changed": _STRINGS,
        "dependencies_affected": _STRINGS,
        "pipeline_connections": _STRINGS,
        "errors_encountered": _STRINGS,
        "success": {"type": "boolean"},
        "efficiency_score": {"type": "number", "minimum": 0, "maximum": 100},
        "potential_breakage_risk": {
            "type": "object",
            "required": ["level", "reasons"],
            "properties": {
                "level": {"enum": list(_belog.RISK_LEVELS)},
                "reasons": _STRINGS,
            },
        },
        "cross_check_required": _STRINGS,
        "execution_trace_id": {
            "type": "string",
            "pattern": r"^belog_\d{8}T\d{6}Z_[0-9a-f]{12}$",
        },
        "previous_attempts": _STRINGS,
        "improvement_suggestions": _STRINGS,
        "session_id": _OPT_STRING,
    },
}


def belog_lines(run: belog.Run) -> list[dict[str, Any]]:
    """The BELog records in the run's belog.jsonl."""
    assert run.directory is not None
    return read_jsonl(run.directory / "belog.jsonl")


def fail(ok: bool) -> None:
    """Raise unless *ok* (a failed attempt)."""
    if not ok:
        raise RuntimeError("failed attempt")


class Clock:
    """A scripted perf_counter: each task's start and end come from `durations`."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.pending: list[float] = []

    def __call__(self) -> float:
        return self.now

    def run(self, seconds: float) -> None:
        """Advance the clock by *seconds* (called inside a task)."""
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Replace the task clock with one the test advances by hand."""
    fake = Clock()
    monkeypatch.setattr(_belog, "_clock", fake)
    return fake


@pytest.fixture
def failures() -> dict[str, int]:
    """Failure counters before the test (compare with `failure_counts()` after)."""
    return _belog.failure_counts()


class TestTask:
    """`belog.task` / `run.task`: one record per task, with every template field."""

    def test_writes_every_template_field_typed(self, belog_config: Config) -> None:
        """The record has the 18 template fields and session_id, typed as the schema says."""
        with (
            belog.session(
                "naval",
                execution_context="Generate supertasks",
                blueprint_id="bp_003",
                blueprint_version="v1.2",
                package=False,
            ) as run,
            run.task("Generate beginner supertask", expected_outcome="valid JSON") as t,
        ):
            t.suggest("Cache the template analysis")

        (line,) = belog_lines(run)
        jsonschema.validate(line, BELOG_SCHEMA)
        assert set(TEMPLATE_FIELDS) | {"session_id"} <= set(line)
        assert run.id == line["session_id"]
        assert ("bp_003", "v1.2", "Generate supertasks") == (
            line["blueprint_id"],
            line["blueprint_version"],
            line["execution_context"],
        )
        assert "valid JSON" == line["expected_outcome"]
        assert ["Cache the template analysis"] == line["improvement_suggestions"]
        assert {k: v for k, v in t.record.items() if k != "timestamp"} == {  # type: ignore[union-attr]
            k: line[k]
            for k in t.record
            if k != "timestamp"  # type: ignore[union-attr]
        }

    def test_matches_shipped_schema(self, belog_config: Config) -> None:
        """A record validates against the shipped structlog_belog/schemas/belog.schema.json."""
        from importlib import resources

        schemas = resources.files("structlog_belog") / "schemas"
        with belog.session("s", package=False) as run, run.task("t"):
            pass
        line = belog_lines(run)[0]
        import json

        from referencing import Registry, Resource

        loaded = [json.loads(p.read_text()) for p in schemas.iterdir() if p.name.endswith(".json")]
        registry: Registry[Any] = Registry().with_resources(
            (s["$id"], Resource.from_contents(s)) for s in loaded if "$id" in s
        )
        schema = json.loads((schemas / "belog.schema.json").read_text())
        jsonschema.Draft202012Validator(schema, registry=registry).validate(line)

    def test_explicit_fields_override_session(self, belog_config: Config) -> None:
        """blueprint fields given to the task win over the session's."""
        with (
            belog.session("s", blueprint_id="bp_1", blueprint_version="v1", package=False),
            belog.task("t", blueprint_id="bp_2", execution_context="ctx") as t,
        ):
            pass

        assert ("bp_2", "v1", "ctx") == (
            t.record["blueprint_id"],  # type: ignore[index]
            t.record["blueprint_version"],  # type: ignore[index]
            t.record["execution_context"],  # type: ignore[index]
        )

    def test_records_inside_carry_task_name(self, belog_config: Config) -> None:
        """Records logged inside the task carry its name; the task is the context's observer."""
        with belog.session("s", package=False) as run, run.task("parse") as t:
            structlog.get_logger().info("inside")
            assert t is _context.current().task

        assert run.directory is not None
        lines = read_jsonl(run.directory / "processing.jsonl")
        assert ["parse"] == [r.get("task") for r in lines if r["event"] == "inside"]

    def test_exception_fails_the_task_and_propagates(self, belog_config: Config) -> None:
        """An exception marks the record failed (success: false), is recorded, and propagates."""
        with (
            pytest.raises(ValueError, match="boom"),
            belog.session("s", package=False) as run,
            run.task("t"),
        ):
            raise ValueError("boom")

        (line,) = belog_lines(run)
        assert (False, 80.0) == (line["success"], line["efficiency_score"])  # a first attempt
        assert ["ValueError: boom"] == line["errors_encountered"]

    def test_error_records_collected_once(self, belog_config: Config) -> None:
        """Error-level records from stdlib and structlog are collected, duplicates once."""
        with belog.session("s", package=False), belog.task("t") as t:
            for _ in range(3):
                logging.getLogger("app").error("disk full on %s", "/tmp")
            structlog.get_logger().error("bad row", error={"type": "KeyError", "message": "id"})
            logging.getLogger("app").warning("not an error")

        assert ["disk full on /tmp", "bad row: KeyError: id"] == t.record[  # type: ignore[index]
            "errors_encountered"
        ]
        assert t.record["success"] is True  # type: ignore[index]

    def test_logged_exception_keeps_last_traceback_line(self, belog_config: Config) -> None:
        """An error logged with a traceback is recorded with the exception's last line."""
        with belog.session("s", package=False), belog.task("t") as t:
            try:
                int("x")
            except ValueError:
                logging.getLogger("app").exception("parse failed")

        (error,) = t.record["errors_encountered"]  # type: ignore[index]
        assert error.startswith("parse failed (ValueError: invalid literal")

    def test_llm_calls_add_dependencies(self, belog_config: Config) -> None:
        """Audited calls inside the task add their models to dependencies_affected."""
        with (
            belog.session("s", package=False),
            belog.task("t", dependencies_affected=["work/template.md"]) as t,
        ):
            t.note_call({"call_id": "c1", "model": "gpt-4o", "api": "chat.completions"})
            t.note_call({"call_id": "c2", "model": "gpt-4o", "api": "chat.completions"})
            t.note_call({"call_id": "c3", "model": "text-embedding-3-small"})

        assert [
            "work/template.md",
            "openai:gpt-4o",
            "openai:text-embedding-3-small",
        ] == t.record["dependencies_affected"]  # type: ignore[index]

    def test_suggest_risk_cross_check_expect(self, belog_config: Config) -> None:
        """The task object's methods land in their fields; risk keeps the highest level."""
        with (
            belog.session("s", package=False),
            belog.task("t", pipeline_connections=["generation -> validation"]) as t,
        ):
            t.expect("10 supertasks")
            t.risk("high", "schema changed")
            t.risk("low", "slow model")
            t.cross_check("difficulty labels")
            t.cross_check("difficulty labels")
            t.suggest("batch the calls")
            t.changed("out/a.json")

        record = t.record
        assert record is not None
        assert "10 supertasks" == record["expected_outcome"]
        assert {"level": "high", "reasons": ["schema changed", "slow model"]} == record[
            "potential_breakage_risk"
        ]
        assert ["difficulty labels"] == record["cross_check_required"]
        assert ["batch the calls"] == record["improvement_suggestions"]
        assert ["out/a.json"] == record["files_changed"]
        assert ["generation -> validation"] == record["pipeline_connections"]

    def test_bad_arguments_name_the_culprit(self) -> None:
        """Unknown fields, bad risk levels, bad files_changed and names are refused clearly."""
        with pytest.raises(TypeError, match="'expected_outcom'"):
            belog.task("t", expected_outcom="x")
        with pytest.raises(ValueError, match="risk level must be one of"):
            belog.task("t", potential_breakage_risk="severe")
        with pytest.raises(ValueError, match="files_changed must be a list of paths or 'git'"):
            belog.task("t", files_changed="svn")
        with pytest.raises(ValueError, match="task name must be a non-empty string"):
            belog.task("  ")
        with pytest.raises(TypeError, match="scorer must be callable"):
            belog.task("t", scorer=3)
        with pytest.raises(ValueError, match="risk level"):
            belog.task("t").risk("extreme", "x")

    def test_concurrent_entry_of_one_task_is_refused(self, belog_config: Config) -> None:
        """One Task object cannot be open twice at once; reuse after exit is fine."""
        t = belog.task("t")
        with t, pytest.raises(RuntimeError, match="already running"), t:
            pass
        with t:
            pass
        assert t.record is not None

    def test_nested_tasks_keep_their_own_errors(self, belog_config: Config) -> None:
        """Errors inside an inner task belong to it, not to the outer task."""
        with belog.session("s", package=False) as run, run.task("outer") as outer:
            with run.task("inner") as inner:
                logging.getLogger("x").error("inner problem")
            logging.getLogger("x").error("outer problem")

        assert ["inner problem"] == inner.record["errors_encountered"]  # type: ignore[index]
        assert ["outer problem"] == outer.record["errors_encountered"]  # type: ignore[index]
        assert ["inner", "outer"] == [r["task_name"] for r in belog_lines(run)]

    def test_outside_a_session(self, belog_config: Config) -> None:
        """A task outside any session writes its record with session_id null and indexes it."""
        with belog.task("lonely") as t:
            pass

        assert t.record is not None
        assert t.record["session_id"] is None
        assert [t.record["execution_trace_id"]] == [
            r["execution_trace_id"] for r in open_store().get_past_attempts("lonely")
        ]

    def test_in_a_propagated_thread(self, belog_config: Config) -> None:
        """A task in a worker thread of the session is attributed to the session."""
        with belog.session("s", package=False) as run, belog.ThreadPoolExecutor(2) as pool:
            pool.submit(lambda: belog.task("threaded").__enter__().__exit__(None, None, None))

        assert ["threaded"] == [r["task_name"] for r in belog_lines(run)]


class TestTaskDecorator:
    """`@belog.task(...)`: one record per call, sync and async."""

    def test_sync_decorator_one_record_per_call(self, belog_config: Config) -> None:
        """Each call of a decorated function is one attempt with its own trace ID."""

        @belog.task("double")
        def double(x: int) -> int:
            return 2 * x

        with belog.session("s", package=False) as run:
            assert [2, 4] == [double(1), double(2)]

        lines = belog_lines(run)
        assert 2 == len({r["execution_trace_id"] for r in lines})
        assert [lines[0]["execution_trace_id"]] == lines[1]["previous_attempts"]

    def test_bare_decorator_uses_qualname(self, belog_config: Config) -> None:
        """`@belog.task` without arguments names the task after the function."""

        @belog.task
        def step() -> str:
            return "done"

        with belog.session("s", package=False) as run:
            assert "done" == step()

        assert [step.__qualname__] == [r["task_name"] for r in belog_lines(run)]

    def test_async_decorator_and_async_with(self, belog_config: Config) -> None:
        """Async functions and `async with` record like their sync forms, failures included."""

        @belog.task("fetch")
        async def fetch(fail: bool) -> str:
            await asyncio.sleep(0)
            if fail:
                raise RuntimeError("timeout")
            return "ok"

        async def main() -> list[bool]:
            async with belog.session("s", package=False) as run:
                assert "ok" == await fetch(False)
                with pytest.raises(RuntimeError):
                    await fetch(True)
                async with run.task("fetch") as t:
                    await asyncio.sleep(0)
                assert t.record is not None
            return [r["success"] for r in belog_lines(run)]

        assert [True, False, True] == asyncio.run(main())

    def test_concurrent_async_calls_each_get_a_record(self, belog_config: Config) -> None:
        """Concurrent calls of one decorated coroutine do not share a task."""

        @belog.task("work")
        async def work(i: int) -> int:
            await asyncio.sleep(0.001 * (i % 3))
            return i

        async def main() -> belog.Run:
            async with belog.session("s", package=False) as run:
                await asyncio.gather(*(work(i) for i in range(8)))
            return run

        run = asyncio.run(main())
        assert 8 == len({r["execution_trace_id"] for r in belog_lines(run)})


class TestEfficiencyScore:
    """Scores across a timed sequence of attempts follow DESIGN §5 exactly."""

    def test_sequence_first_faster_slower_failed_ties(
        self, belog_config: Config, clock: Clock
    ) -> None:
        """first=80, like the median=80, faster>80, 4x slower<50, a failure success: false."""
        records = []
        plan: list[tuple[float, bool]] = [
            (1.0, True),
            (1.0, True),
            (0.5, True),
            (4.0, True),
            (0.1, False),
            (1.0, True),
        ]
        with belog.session("s", package=False):
            for seconds, ok in plan:
                with contextlib.suppress(RuntimeError), belog.task("t") as t:
                    clock.run(seconds)
                    fail(ok)
                assert t.record is not None
                records.append(t.record)
        scores = [r["efficiency_score"] for r in records]

        assert [80.0, 80.0] == scores[:2]
        assert 80.0 < scores[2] < 100.0
        assert scores[3] < 50.0
        assert [True, True, True, True, False, True] == [r["success"] for r in records]
        assert 80.0 == scores[5]  # the median of the successes is 1.0 s

    def test_previous_attempts_are_earlier_trace_ids(
        self, belog_config: Config, clock: Clock
    ) -> None:
        """previous_attempts lists the earlier attempts' real trace IDs, newest first."""
        traces = []
        with belog.session("s", package=False):
            for _ in range(3):
                with belog.task("t") as t:
                    clock.run(1.0)
                traces.append(t.trace_id)
            with belog.task("other") as other:
                pass

        assert t.record is not None
        assert traces[-2::-1] == t.record["previous_attempts"]
        assert [] == other.record["previous_attempts"]  # type: ignore[index]

    def test_history_limits_the_comparison(self, belog_config: Config, clock: Clock) -> None:
        """history=N scores against the N most recent attempts only."""
        with belog.session("s", package=False):
            for seconds in (4.0, 4.0, 4.0, 1.0, 1.0):
                with belog.task("t"):
                    clock.run(seconds)
            with belog.task("t", history=2) as short:
                clock.run(2.0)

        assert short.record is not None
        assert 2 == len(short.record["previous_attempts"])
        # Twice the median of the last two (1 s); against all five (median 4 s) it is faster.
        everything = open_store().get_past_attempts("t", 10)[1:]
        assert 5 == len(everything)
        against_all = _scoring.efficiency_score(short.record, everything)
        assert short.record["efficiency_score"] < 80.0 < against_all

    def test_custom_scorer(self, belog_config: Config, clock: Clock) -> None:
        """scorer= replaces the percentile score and sees the past attempts."""
        seen: list[int] = []

        def scorer(elapsed: float, success: bool, past: Any) -> float:
            seen.append(len(past))
            return 42.0 if success else 1.0

        with belog.session("s", package=False):
            for _ in range(2):
                with belog.task("t", scorer=scorer) as t:
                    clock.run(1.0)

        assert [0, 1] == seen
        assert 42.0 == t.record["efficiency_score"]  # type: ignore[index]

    def test_failing_scorer_falls_back(
        self, belog_config: Config, failures: dict[str, int], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A scorer that raises or answers out of range is counted; the default score is used."""
        with belog.session("s", package=False):
            with belog.task("t", scorer=lambda *_: 1 / 0) as a:
                pass
            with belog.task("t", scorer=lambda *_: 250.0) as b:
                pass

        assert 80.0 == a.record["efficiency_score"]  # type: ignore[index]
        assert 80.0 == b.record["efficiency_score"]  # type: ignore[index]
        assert failures["scorer"] + 2 == _belog.failure_counts()["scorer"]


class TestPercentileScore:
    """The earlier default scorer, kept for custom scorers, as a pure function."""

    def test_examples(self) -> None:
        """Failures 0, first 100, ties count half."""
        past = [{"execution_time": t, "success": True} for t in (1.0, 2.0, 3.0)]
        past.append({"execution_time": 0.1, "success": False})

        assert 0.0 == _belog.percentile_score(0.5, False, past)
        assert 100.0 == _belog.percentile_score(9.0, True, past[3:])
        assert 100.0 == _belog.percentile_score(0.5, True, past)
        assert 0.0 == _belog.percentile_score(4.0, True, past)
        assert 50.0 == _belog.percentile_score(2.0, True, past)
        assert round(100 * 2 / 3, 2) == _belog.percentile_score(1.5, True, past)

    @given(
        st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=30),
        st.floats(0, 100, allow_nan=False),
        st.floats(0, 100, allow_nan=False),
    )
    def test_bounded_and_monotonic(self, times: list[float], a: float, b: float) -> None:
        """Scores stay in 0..100 and a faster attempt never scores lower."""
        past = [{"execution_time": t, "success": True} for t in times]
        fast, slow = sorted((a, b))
        fast_score = _belog.percentile_score(fast, True, past)

        assert 0.0 <= fast_score <= 100.0
        assert fast_score >= _belog.percentile_score(slow, True, past)


class TestFilesChanged:
    """files_changed: explicit, measured from git, or from watched paths."""

    def test_watched_paths(self, belog_config: Config, tmp_path: Path) -> None:
        """Only the watched files whose content changed (or appeared) are listed."""
        work = tmp_path / "work"
        work.mkdir()
        (work / "same.txt").write_text("a")
        (work / "edit.txt").write_text("a")
        with belog.task("t", watch=[work, tmp_path / "single.txt"]) as t:
            (work / "edit.txt").write_text("b")
            (work / "new.txt").write_text("c")
            (tmp_path / "single.txt").write_text("d")

        assert (
            sorted([str(work / "edit.txt"), str(work / "new.txt"), str(tmp_path / "single.txt")])
            == t.record["files_changed"]
        )  # type: ignore[index]

    def test_git_working_tree(
        self, belog_config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """files_changed='git' lists what the working tree changed during the task only."""
        repo = tmp_path / "repo"
        repo.mkdir()

        def git(*args: str) -> None:
            subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)

        git("init", "-q")
        (repo / "tracked.txt").write_text("v1")
        (repo / "dirty_before.txt").write_text("v1")
        git("add", ".")
        git("-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "init")
        (repo / "dirty_before.txt").write_text("v2")
        monkeypatch.chdir(repo)

        with belog.task("t", files_changed="git") as t:
            (repo / "tracked.txt").write_text("v2")
            (repo / "sub").mkdir()
            (repo / "sub" / "new.txt").write_text("x")
            git("mv", "dirty_before.txt", "renamed.txt")

        assert ["dirty_before.txt", "renamed.txt", "sub/new.txt", "tracked.txt"] == t.record[  # type: ignore[index]
            "files_changed"
        ]

    def test_git_outside_a_repository_is_counted(
        self,
        belog_config: Config,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        failures: dict[str, int],
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Outside a git work tree the task still records, with no files, and counts it."""
        monkeypatch.chdir(tmp_path)
        with belog.task("t", files_changed="git") as t:
            pass

        assert [] == t.record["files_changed"]  # type: ignore[index]
        assert failures["files"] + 1 == _belog.failure_counts()["files"]


class TestIndexing:
    """Every record is indexed in the default store as it is written."""

    def test_record_is_in_the_default_store(self, belog_config: Config) -> None:
        """The default store in log_dir holds the record just written."""
        with belog.session("s", blueprint_id="bp", package=False), belog.task("t") as t:
            pass

        store = open_store()
        assert belog_config.log_dir / DEFAULT_FILENAME == Path(store.location)
        assert t.record == store.last_execution("bp")

    def test_explicit_store(self, belog_config: Config, tmp_path: Path) -> None:
        """store= indexes into (and scores against) another store."""
        other = open_store(tmp_path / "other.sqlite3")
        with belog.task("t", store=other) as t:
            pass

        assert [t.record] == other.get_past_attempts("t")
        assert [] == open_store().get_past_attempts("t")

    def test_broken_store_never_breaks_the_task(
        self,
        belog_config: Config,
        failures: dict[str, int],
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """With a corrupted index the record is still written; the failures are counted."""
        (belog_config.log_dir / DEFAULT_FILENAME).write_bytes(b"garbage" * 1000)

        with belog.session("s", package=False) as run, run.task("t"):
            pass

        assert ["t"] == [r["task_name"] for r in belog_lines(run)]
        counts = _belog.failure_counts()
        assert failures["index"] + 1 == counts["index"]
        # Two reads failed: the past attempts, and the files other tasks read and wrote.
        assert failures["history"] + 2 == counts["history"]

    def test_four_processes_lose_nothing(
        self, belog_config: Config, subprocess_env: dict[str, str]
    ) -> None:
        """Four processes writing BELogs into one session at once lose none (files and index)."""
        script = (
            "import structlog_belog as belog\n"
            "belog.configure(console=False, handle_signals=False)\n"
            "for i in range(50):\n"
            "    with belog.task('parallel', execution_context=str(i)):\n"
            "        pass\n"
        )
        with belog.session("s", package=False) as run:
            env = {**subprocess_env, **belog.session_env()}
            procs = [subprocess.Popen([sys.executable, "-c", script], env=env) for _ in range(4)]
            assert [0, 0, 0, 0] == [p.wait(timeout=120) for p in procs]

        assert run.directory is not None
        shards = sorted(run.directory.glob("belog.*.jsonl"))
        lines = [r for shard in shards for r in read_jsonl(shard)]
        assert (4, 200) == (len(shards), len(lines))
        assert {run.id} == {r["session_id"] for r in lines}
        store = open_store()
        assert 200 == len(store.get_past_attempts("parallel", limit=1000))
        assert 200 == store.reindex(belog_config.log_dir)


class TestNewTraceId:
    """Execution trace IDs: unique, in one stable, time-sortable format."""

    def test_format_and_uniqueness(self) -> None:
        """IDs match belog_YYYYmmddTHHMMSSZ_<12 hex> and do not repeat."""
        ids = {_belog.new_trace_id() for _ in range(1000)}

        assert 1000 == len(ids)
        assert all(re.fullmatch(r"belog_\d{8}T\d{6}Z_[0-9a-f]{12}", i) for i in ids)


class TestIndexedCopy:
    """The index holds what the log file holds, after the record processors."""

    def test_processors_apply_to_the_indexed_copy(
        self, belog_config: Config, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A processor of the chain (as SecretRedactor is) changes the file and the index alike."""
        from structlog_belog.core.config import ensure_pipeline

        def mask(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
            return {
                k: v.replace("hunter2", "[MASKED]") if isinstance(v, str) else v
                for k, v in event_dict.items()
            }

        pipeline = ensure_pipeline()
        monkeypatch.setattr(pipeline, "processors", (mask, *pipeline.processors))
        with belog.session("s", package=False) as run, run.task("t", expected_outcome="hunter2"):
            pass

        assert "[MASKED]" == belog_lines(run)[0]["expected_outcome"]
        assert "[MASKED]" == open_store().get_past_attempts("t")[0]["expected_outcome"]

    def test_audited_call_adds_its_model(self, belog_config: Config) -> None:
        """A real audited OpenAI call (offline fake model) inside a task lists its model."""
        from structlog_belog.audit.fake_llm import fake_openai_client

        client = belog.instrument_openai(fake_openai_client())
        with belog.session("s", package=False), belog.task("t") as t:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )

        assert ["openai:gpt-4o-mini", "http:fake-llm.invalid"] == t.record[  # type: ignore[index]
            "dependencies_affected"
        ]


class TestTaskEdges:
    """Less travelled paths of a task: they must still record, and never raise into the app."""

    def test_late_notes_and_repr(self, belog_config: Config) -> None:
        """Notes after the task ended are ignored; repr names the task and its trace."""
        with belog.task("t") as t:
            structlog.get_logger().error("plain", error="text detail")
        t.note_error({"event": "late"})
        t.note_call({"model": "late-model"})

        assert ["plain: text detail"] == t.record["errors_encountered"]  # type: ignore[index]
        assert [] == t.record["dependencies_affected"]  # type: ignore[index]
        assert f"Task('t', trace_id={t.trace_id!r})" == repr(t)

    def test_type_checks(self) -> None:
        """List fields must be lists; history a non-negative int."""
        with pytest.raises(TypeError, match="pipeline_connections must be a list of strings"):
            belog.task("t", pipeline_connections="a -> b")
        with pytest.raises(ValueError, match="history must be a non-negative int"):
            belog.task("t", history=-1)
        with pytest.raises(TypeError, match="blueprint_version must be a string or None"):
            belog.task("t", blueprint_version=1.2)
        with pytest.raises(TypeError, match="potential_breakage_risk must be a level"):
            belog.task("t", potential_breakage_risk=3)

    def test_risk_given_as_mapping(self, belog_config: Config) -> None:
        """A risk mapping gives the starting level and reasons; task.risk can raise it."""
        with belog.task("t", potential_breakage_risk={"level": "low"}) as t:
            t.risk("medium", "new parser")

        assert {"level": "medium", "reasons": ["new parser"]} == t.record[  # type: ignore[index]
            "potential_breakage_risk"
        ]

    def test_history_zero_reads_nothing(self, belog_config: Config) -> None:
        """history=0 scores as a first attempt (80) without reading the store."""
        with belog.task("t"):
            pass
        with belog.task("t", history=0) as t:
            pass

        assert ([], 80.0) == (t.record["previous_attempts"], t.record["efficiency_score"])  # type: ignore[index]

    def test_record_failure_is_counted(
        self,
        belog_config: Config,
        monkeypatch: pytest.MonkeyPatch,
        failures: dict[str, int],
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """If writing the record itself fails, the app's block is unaffected and it is counted."""

        def broken(*_: Any) -> None:
            raise OSError("disk gone")

        monkeypatch.setattr(_belog, "_write", broken)
        with belog.task("t"):
            pass

        assert failures["record"] + 1 == _belog.failure_counts()["record"]
        assert "BELog record failed (OSError: disk gone)" in capsys.readouterr().err

    def test_digest_of_a_folder(self, tmp_path: Path) -> None:
        """A folder in a snapshot has a marker digest, not an error."""
        assert "<dir>" == _changes._file_digest(tmp_path)
        assert "<missing>" == _changes._file_digest(tmp_path / "nope")

    def test_close_store_twice(self) -> None:
        """close_store is idempotent."""
        _belog.close_store()
        _belog.close_store()
        assert _recording._DEFAULT_STORE is None

    def test_secrets_are_redacted_in_file_and_index(self, belog_config: Config) -> None:
        """An API key in a task's fields reaches neither belog.jsonl nor the index file."""
        key = "sk-" + "proj-" + "A" * 40
        with belog.session("s", package=False) as run, run.task("t", expected_outcome=key) as t:
            t.suggest(f"rotate {key}")
        _belog.close_store()  # checkpoint the WAL so the file holds everything

        assert key not in (run.directory / "belog.jsonl").read_text()  # type: ignore[operator]
        assert key not in str(open_store().get_past_attempts("t"))
        assert key.encode() not in (belog_config.log_dir / DEFAULT_FILENAME).read_bytes()
