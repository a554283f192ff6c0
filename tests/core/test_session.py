"""Sessions: lifecycle records, stages, nesting, inputs/outputs/content/metrics."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest
import structlog

import structlog_belog as belog
from structlog_belog.core import config as _config
from structlog_belog.core import drops as _drops
from structlog_belog.core import session_id as _session_id
from tests.conftest import read_jsonl

SESSION_ID_RE = re.compile(r"sess_\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}_[0-9a-f]{8}")


def _records(run: belog.Run) -> list[dict[str, Any]]:
    assert run.directory is not None
    return read_jsonl(run.directory / "processing.jsonl")


def _kind(run: belog.Run, kind: str) -> list[dict[str, Any]]:
    return [r for r in _records(run) if r.get("kind") == kind]


def _global(config: _config.Config) -> list[dict[str, Any]]:
    return read_jsonl(config.log_dir / f"{config.app_name}.jsonl")


class TestNewSessionId:
    def test_format(self) -> None:
        """new_session_id() is sess_YYYY-mm-dd_HH-MM-SS_<8 hex>."""
        sid = belog.new_session_id()

        assert sid == (m.group(0) if (m := SESSION_ID_RE.fullmatch(sid)) else None)

    def test_unique(self) -> None:
        """A thousand IDs made in the same process are all different."""
        assert 1000 == len({belog.new_session_id() for _ in range(1000)})

    def test_a_repeated_random_part_is_drawn_again(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """When the random part repeats within a second, another is drawn: no two IDs alike."""
        drawn = iter(["0000abcd", "0000abcd", "0000abcd", "0000abce"])
        monkeypatch.setattr(_session_id.secrets, "token_hex", lambda _: next(drawn))
        monkeypatch.setattr(_session_id, "_issued", _session_id._IssuedIds())
        first, second = belog.new_session_id(), belog.new_session_id()
        if first[:-9] == second[:-9]:  # the same second: the repeat was drawn again
            assert ("0000abcd", "0000abce") == (first[-8:], second[-8:])
        else:  # the second changed between the two: the repeat is allowed
            assert ("0000abcd", "0000abcd") == (first[-8:], second[-8:])


class TestSession:
    def test_lifecycle_records(self, belog_config: _config.Config) -> None:
        """session_start and session_end go to the session file and the global file."""
        with belog.session(
            "naval",
            execution_context="ctx",
            blueprint_id="bp_003",
            blueprint_version="v1.2",
            package=False,
            owner="ana",
        ) as run:
            structlog.get_logger("app").info("work")
        records = _records(run)
        start, work, end = records

        assert ["session_start", "work", "session_end"] == [r["event"] for r in records]
        assert {
            "kind": "session_start",
            "title": "naval",
            "execution_context": "ctx",
            "blueprint_id": "bp_003",
            "blueprint_version": "v1.2",
            "parent_session_id": None,
            "owner": "ana",
            "session_id": run.id,
        } == {
            k: start[k]
            for k in (
                "kind",
                "title",
                "execution_context",
                "blueprint_id",
                "blueprint_version",
                "parent_session_id",
                "owner",
                "session_id",
            )
        }
        assert {"host", "python", "belog_version"} <= set(start)
        assert os.getpid() == start["pid"]
        assert (True, None, 0, "info") == (
            end["success"],
            end["exception"],
            end["records_dropped"],
            end["level"],
        )
        assert isinstance(end["duration_s"], float)
        assert run.id == work["session_id"]
        assert [("session_start", run.id), ("session_end", run.id)] == [
            (r["kind"], r["session_id"]) for r in _global(belog_config)
        ]

    def test_raising_block_records_exception(self, belog_config: _config.Config) -> None:
        """A block that raises ends the session with success false and the traceback."""
        run = belog.session("fails", package=False)
        with pytest.raises(ValueError, match="bad input"), run:
            raise ValueError("bad input")
        (end,) = _kind(run, "session_end")

        assert (False, "error", {"type": "ValueError", "message": "bad input"}) == (
            end["success"],
            end["level"],
            end["error"],
        )
        assert "ValueError: bad input" == end["exception"].splitlines()[-1]
        assert False is run.success

    def test_context_restored_after_exit(self, belog_config: _config.Config) -> None:
        """current_session() is the run inside the block and None after it."""
        with belog.session("ctx", package=False) as run:
            inside = belog.current_session()

        assert (run, None) == (inside, belog.current_session())

    def test_cannot_enter_twice(self, belog_config: _config.Config) -> None:
        """Entering the same Run twice raises RuntimeError."""
        run = belog.session("once", package=False)
        with run:
            pass

        with pytest.raises(RuntimeError, match="already entered"), run:
            pass

    def test_nested_session_has_parent(self, belog_config: _config.Config) -> None:
        """A session inside another records parent_session_id and its own file."""
        with belog.session("outer", package=False) as outer:
            with belog.session("inner", package=False) as inner:
                structlog.get_logger().info("in inner")
            structlog.get_logger().info("in outer")

        (inner_start,) = _kind(inner, "session_start")
        assert (outer.id, outer.id) == (inner.parent_id, inner_start["parent_session_id"])
        assert ["session_start", "in inner", "session_end"] == [r["event"] for r in _records(inner)]
        assert ["session_start", "in outer", "session_end"] == [r["event"] for r in _records(outer)]

    def test_async_with(self, belog_config: _config.Config) -> None:
        """`async with belog.session(...)` binds the session across awaits."""

        async def main() -> belog.Run:
            async with belog.session("async", package=False) as run:
                await asyncio.sleep(0)
                structlog.get_logger().info("after await")
                async with run.stage("astage"):
                    await asyncio.sleep(0)
                    logging.getLogger("lib").info("in async stage")
            return run

        run = asyncio.run(main())
        records = _records(run)

        assert [
            ("session_start", None),
            ("after await", None),
            ("stage_start", "astage"),
            ("in async stage", "astage"),
            ("stage_end", "astage"),
            ("session_end", None),
        ] == [(r["event"], r.get("stage")) for r in records]
        assert {run.id} == {r["session_id"] for r in records}

    def test_async_with_raising(self, belog_config: _config.Config) -> None:
        """An exception in `async with` is recorded in session_end and propagates."""

        async def main(run: belog.Run) -> None:
            async with run:
                raise RuntimeError("async failure")

        run = belog.session("async-fail", package=False)
        with pytest.raises(RuntimeError, match="async failure"):
            asyncio.run(main(run))

        (end,) = _kind(run, "session_end")
        assert (False, "RuntimeError") == (end["success"], end["error"]["type"])

    def test_packaging_failure_is_reported_not_raised(
        self,
        belog_config: _config.Config,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """A failing finalizer leaves the session closed and says how to retry, never raising."""
        from structlog_belog.core import hooks as _hooks

        def broken(run: belog.Run) -> None:
            raise OSError("disk gone")

        monkeypatch.setattr(_hooks, "_finalize_run", broken)
        with belog.session("pkg-fails") as run:
            pass

        assert (True, None) == (run.success, run.package_path)
        assert f"run `belog package {run.id}` to retry" in capsys.readouterr().err
        assert "session_end" == _records(run)[-1]["event"]

    def test_repr(self, belog_config: _config.Config) -> None:
        """Run and Stage reprs name the session."""
        run = belog.session("shown", package=False)

        assert f"<Run {run.id!r} title='shown' success=None>" == repr(run)
        assert f"<Stage 'st' of {run.id!r}>" == repr(run.stage("st"))

    @pytest.mark.parametrize(
        ("kwargs", "error", "name"),
        [
            ({"title": ""}, ValueError, "title"),
            ({"title": 3}, ValueError, "title"),
            ({"title": "t", "execution_context": 1}, TypeError, "execution_context"),
            ({"title": "t", "blueprint_id": 1}, TypeError, "blueprint_id"),
            ({"title": "t", "blueprint_version": 1.2}, TypeError, "blueprint_version"),
            ({"title": "t", "package_dir": ""}, TypeError, "package_dir"),
        ],
    )
    def test_bad_argument_names_it(
        self, kwargs: dict[str, Any], error: type[Exception], name: str
    ) -> None:
        """A bad session() argument raises an error whose message names it."""
        with pytest.raises(error) as info:
            belog.session(**kwargs)

        assert str(info.value).startswith(name)


class TestStage:
    def test_nested_stages(self, belog_config: _config.Config) -> None:
        """Stages nest: records carry the innermost stage, stage_end names the parent."""
        with belog.session("stages", package=False) as run, run.stage("outer"):
            structlog.get_logger().info("a")
            with run.stage("inner"):
                logging.getLogger("lib").info("b")
            structlog.get_logger().info("c")
        records = [
            r for r in _records(run) if r.get("kind") not in ("session_start", "session_end")
        ]

        assert [
            ("stage_start", "outer", None),
            ("a", "outer", None),
            ("stage_start", "inner", "outer"),
            ("b", "inner", None),
            ("stage_end", "inner", "outer"),
            ("c", "outer", None),
            ("stage_end", "outer", None),
        ] == [(r["event"], r["stage"], r.get("parent_stage")) for r in records]

    def test_stage_end_success_and_duration(self, belog_config: _config.Config) -> None:
        """stage_end has success true and a float duration_s for a clean stage."""
        with belog.session("ok-stage", package=False) as run, run.stage("fine"):
            pass
        (end,) = _kind(run, "stage_end")

        assert (True, None, "info") == (end["success"], end["error"], end["level"])
        assert isinstance(end["duration_s"], float)

    def test_failing_stage(self, belog_config: _config.Config) -> None:
        """A stage whose block raises ends with success false and the error."""
        with belog.session("bad-stage", package=False) as run:
            with pytest.raises(OSError, match="disk"), run.stage("broken"):
                raise OSError("disk")
            structlog.get_logger().info("after")
        (end,) = _kind(run, "stage_end")
        after = next(r for r in _records(run) if r["event"] == "after")

        assert (False, "error", {"type": "OSError", "message": "disk"}) == (
            end["success"],
            end["level"],
            end["error"],
        )
        assert "stage" not in after

    def test_bad_name(self, belog_config: _config.Config) -> None:
        """An empty stage name raises ValueError naming `name`."""
        with belog.session("s", package=False) as run, pytest.raises(ValueError, match=r"^name"):
            run.stage("")


class TestRecords:
    def test_add_input(self, belog_config: _config.Config, tmp_path: Path) -> None:
        """add_input records the path with size and sha256 of a file."""
        src = tmp_path / "content.md"
        src.write_bytes(b"hello")
        with belog.session("inputs", package=False) as run:
            run.add_input(src)
            run.add_input(tmp_path / "missing.md")
        found, missing = _kind(run, "input")

        assert (str(src), 5) == (found["path"], found["size"])
        assert "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" == found["sha256"]
        assert (str(tmp_path / "missing.md"), False) == (missing["path"], "sha256" in missing)

    def test_add_output_produced_by(self, belog_config: _config.Config, tmp_path: Path) -> None:
        """add_output links explicit call IDs, and the pending calls of the context."""
        out = tmp_path / "out.json"
        out.write_text("{}")
        with belog.session("outputs", package=False) as run:
            explicit = run.add_output(out, produced_by="call_1")
            several = run.add_output(out, produced_by=["call_2", "call_3"])
            with run.stage("gen"):
                run.note_call({"call_id": "call_4"})
                implicit = run.add_output(out)
                nothing = run.add_output(out)

        assert (["call_1"], ["call_2", "call_3"], ["call_4"], []) == (
            explicit,
            several,
            implicit,
            nothing,
        )
        assert [["call_1"], ["call_2", "call_3"], ["call_4"], []] == [
            r["call_ids"] for r in _kind(run, "output")
        ]
        assert {"gen"} == {r["stage"] for r in _kind(run, "output")[2:]}

    def test_last_call_is_innermost(self, belog_config: _config.Config) -> None:
        """last_call() is the latest call of the current stage, else of the session."""
        with belog.session("calls", package=False) as run:
            run.note_call({"call_id": "c1"})
            with run.stage("a"):
                in_stage_before = run.last_call()
                run.note_call({"call_id": "c2"})
                in_stage_after = run.last_call()
            at_session = run.last_call()

        assert (
            {"call_id": "c1"},
            {"call_id": "c2"},
            {"call_id": "c2"},
        ) == (in_stage_before, in_stage_after, at_session)

    def test_add_content(self, belog_config: _config.Config, tmp_path: Path) -> None:
        """add_content records the absolute path and the name in the package."""
        folder = tmp_path / "03_output"
        folder.mkdir()
        with belog.session("content", package=False) as run:
            run.add_content(folder)
            run.add_content(folder, as_name="renamed")

        assert [(str(folder), "03_output"), (str(folder), "renamed")] == [
            (r["path"], r["as_name"]) for r in _kind(run, "content")
        ]

    def test_set_metric(self, belog_config: _config.Config) -> None:
        """set_metric records name and value."""
        with belog.session("metrics", package=False) as run:
            run.set_metric("schema_compliance", 1.0)
            run.set_metric("label", "good")
            run.set_metric("none", None)

        assert [("schema_compliance", 1.0), ("label", "good"), ("none", None)] == [
            (r["name"], r["value"]) for r in _kind(run, "metric")
        ]

    @pytest.mark.parametrize(
        ("call", "error", "name"),
        [
            (lambda run, _: run.add_input(None), TypeError, "path"),
            (lambda run, _: run.add_input(""), TypeError, "path"),
            (lambda run, _: run.add_output(3), TypeError, "path"),
            (lambda run, tmp: run.add_output(tmp, produced_by=[1]), TypeError, "produced_by"),
            (lambda run, tmp: run.add_content(tmp / "nope"), FileNotFoundError, "path"),
            (lambda run, tmp: run.add_content(tmp, as_name="a/b"), ValueError, "as_name"),
            (lambda run, tmp: run.add_content(tmp, as_name=".."), ValueError, "as_name"),
            (lambda run, _: run.set_metric("", 1), ValueError, "name"),
            (lambda run, _: run.set_metric("m", [1]), TypeError, "value"),
        ],
    )
    def test_bad_argument_names_it(
        self,
        belog_config: _config.Config,
        tmp_path: Path,
        call: Any,
        error: type[Exception],
        name: str,
    ) -> None:
        """A bad argument to add_*/set_metric raises an error naming it and writes nothing."""
        with belog.session("bad-args", package=False) as run, pytest.raises(error) as info:
            call(run, tmp_path)

        assert str(info.value).startswith(name)
        assert ["session_start", "session_end"] == [r["event"] for r in _records(run)]


class TestDropsReport:
    """What a process tells the sessions it joined, at exit, about records it lost."""

    def test_joined_session_gets_one_drops_record_owned_gets_none(
        self, belog_config: _config.Config, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Only unreported drops of a joined session are written; the own session's go to end."""
        from structlog_belog.core import context as _context
        from structlog_belog.core.session import Run

        router = _config._STATE.pipeline.router  # type: ignore[union-attr]
        parent_pid = os.getpid() + 1_000_000  # the joined session belongs to another process
        joined = Run.joined("sess_joined", {"BELOG_SESSION_PID": str(parent_pid)}, belog_config)
        _context.REGISTRY.joined = joined
        with belog.session("own", package=False) as own:
            router._drop(own.id, OSError("full"), 2)
            _drops.report_drops()  # nothing lost for the joined session yet
            router._drop(joined.id, OSError("full"), 3)
            _drops.report_drops()
            _drops.report_drops()  # a second exit path: nothing new to say
        capsys.readouterr()
        shard = (
            belog_config.log_dir / "sessions" / "sess_joined" / f"processing.{os.getpid()}.jsonl"
        )
        drops = [r for r in read_jsonl(shard) if r.get("kind") == "drops"]
        own_files = own.directory.glob("*.jsonl")  # type: ignore[union-attr]

        assert [(3, os.getpid(), "warning")] == [
            (r["records_dropped"], r["pid"], r["level"]) for r in drops
        ]
        assert [] == [r for p in own_files for r in read_jsonl(p) if r.get("kind") == "drops"]
        assert 2 == _records(own)[-1]["records_dropped"]

    def test_nothing_dropped_nothing_written(self, belog_config: _config.Config) -> None:
        """With no drops in the process, the exit report writes nothing and configures nothing."""

        _drops.report_drops()
        _config.reset()
        _drops.report_drops()

        assert None is _config._STATE.pipeline
        assert [] == list(belog_config.log_dir.rglob("sessions/*/*.jsonl"))
