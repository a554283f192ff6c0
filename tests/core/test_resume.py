"""One session across several commands: resume, finish, crash and rerun, concurrent commands."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

import structlog_belog as belog
from structlog_belog.exceptions import SessionFinishedError, SessionNotFoundError

ENTRY = "import sys; from structlog_belog.cli import main; sys.exit(main())"

STEP = """
import logging, sys, time
import structlog_belog as belog

stage, mode = sys.argv[1], sys.argv[2]
belog.configure(console=False, handle_signals=False)
with belog.session("naval supertask", finish=mode == "finish") as run:
    with run.stage(stage):
        logging.getLogger("pipeline").info("step %s", stage)
        with run.task(f"{stage} task", expected_outcome="done"):
            time.sleep(0.02)
        if mode == "fail":
            raise RuntimeError(f"{stage} broke")
        if mode == "hang":
            print("hanging", flush=True)
            time.sleep(600)
print(run.id, run.package_path)
"""


@pytest.fixture
def env(tmp_path: Path, subprocess_env: dict[str, str]) -> dict[str, str]:
    """Child environment with logs and packages under tmp_path."""
    return {
        **subprocess_env,
        "BELOG_DIR": str(tmp_path / "logs"),
        "BELOG_PACKAGE_DIR": str(tmp_path / "packages"),
    }


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the ``belog`` command's entry point."""
    proc = subprocess.run(
        [sys.executable, "-c", ENTRY, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check:
        assert 0 == proc.returncode, proc.stdout + proc.stderr
    return proc


def start(env: dict[str, str], *args: str) -> dict[str, str]:
    """``belog start`` and the environment its output exports."""
    out = cli(env, "start", "naval supertask", *args).stdout
    found = re.fullmatch(r"export BELOG_SESSION_ID=(sess_[\w-]+)\n", out)
    assert found is not None, out
    return {**env, "BELOG_SESSION_ID": found.group(1)}


def step(env: dict[str, str], stage: str, mode: str = "ok") -> subprocess.CompletedProcess[str]:
    """One command of the pipeline: ``python -c STEP stage mode``."""
    return subprocess.run(
        [sys.executable, "-c", STEP, stage, mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def packages(tmp_path: Path) -> list[Path]:
    """Every package folder built under tmp_path/packages."""
    root = tmp_path / "packages"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


def records(package: Path, name: str = "processing.jsonl.zst") -> list[dict[str, Any]]:
    """The records of one compressed log of a package, read with the `zstd` program."""
    if shutil.which("zstd") is None:
        pytest.skip("the `zstd` program is missing")
    raw = subprocess.run(
        ["zstd", "-dc", str(package / "logs" / name)], capture_output=True, check=True
    ).stdout
    return [orjson.loads(line) for line in raw.splitlines()]


def metadata(package: Path) -> dict[str, Any]:
    """The package's metadata.json."""
    found: dict[str, Any] = json.loads((package / "logs" / "metadata.json").read_text())
    return found


class TestStartCommand:
    """``belog start`` opens a session for later commands."""

    def test_prints_an_export_a_shell_can_eval(self, env: dict[str, str]) -> None:
        """`eval "$(belog start ...)"` sets BELOG_SESSION_ID to an open session."""
        script = f'eval "$({sys.executable} -c "{ENTRY}" start demo)" && echo "$BELOG_SESSION_ID"'
        out = subprocess.run(
            ["bash", "-c", script], env=env, capture_output=True, text=True, check=True
        ).stdout

        assert re.fullmatch(r"sess_[\w-]+\n", out)
        assert (Path(env["BELOG_DIR"]) / "sessions" / out.strip()).is_dir()

    def test_blueprint_goes_to_the_tasks(self, tmp_path: Path, env: dict[str, str]) -> None:
        """--blueprint and --blueprint-version are inherited by every command's tasks."""
        joined = start(env, "--blueprint", "bp_003", "--blueprint-version", "v1.2")
        assert 0 == step(joined, "generate", "finish").returncode

        (package,) = packages(tmp_path)
        (task,) = records(package, "belog.jsonl.zst")
        assert ("bp_003", "v1.2") == (task["blueprint_id"], task["blueprint_version"])
        assert joined["BELOG_SESSION_ID"] == task["session_id"]


class TestPipeline:
    """Three commands joined by BELOG_SESSION_ID make one run and one package."""

    def test_three_commands_one_package(self, tmp_path: Path, env: dict[str, str]) -> None:
        """preprocess, generate, package: one package, three stages with durations and commands."""
        joined = start(env)
        for stage, mode in (("preprocess", "ok"), ("generate", "ok"), ("package", "finish")):
            done = step(joined, stage, mode)
            assert 0 == done.returncode, done.stderr

        (package,) = packages(tmp_path)
        meta = metadata(package)
        stages = meta["execution"]["stages"]
        assert ["preprocess", "generate", "package"] == meta["execution"]["stages_executed"]
        assert all(isinstance(st["duration_seconds"], float) for st in stages)
        assert ["-c preprocess ok", "-c generate ok", "-c package finish"] == [
            st["command"] for st in stages
        ]
        assert 3 == len({st["pid"] for st in stages})
        assert meta["execution"]["success"] is True
        assert meta["execution"]["duration_seconds"] >= sum(st["duration_seconds"] for st in stages)
        logged = records(package)
        stamps = [r["timestamp"] for r in logged]
        assert sorted(stamps) == stamps
        kinds = [r.get("kind") for r in logged]
        assert (1, 1) == (kinds.count("session_start"), kinds.count("session_end"))
        assert ("session_start", "session_end") == (kinds[0], kinds[-1])
        assert 3 == len(records(package, "belog.jsonl.zst"))
        summary = (package / "logs" / "execution_summary.md").read_text()
        for command in ("-c preprocess ok", "-c generate ok", "-c package finish"):
            assert command in summary
        assert 4 == len(meta["execution"]["commands"])  # belog start, then the three
        verified = cli(env, "verify", str(package), "--json")
        assert json.loads(verified.stdout)["ok"] is True

    def test_crash_rerun_finish(self, tmp_path: Path, env: dict[str, str]) -> None:
        """A failed middle command leaves it open; a rerun and `belog finish` make one package."""
        joined = start(env)
        sid = joined["BELOG_SESSION_ID"]
        assert 0 == step(joined, "preprocess").returncode
        failed = step(joined, "generate", "fail")
        assert 1 == failed.returncode
        assert "generate broke" in failed.stderr
        assert [] == packages(tmp_path)
        assert 0 == step(joined, "generate").returncode
        cli(env, "finish", sid)

        (package,) = packages(tmp_path)
        meta = metadata(package)
        assert ["preprocess", "generate", "generate"] == meta["execution"]["stages_executed"]
        assert [True, False, True] == [st["success"] for st in meta["execution"]["stages"]]
        assert meta["execution"]["success"] is True
        assert any("generate broke" in i["message"] for i in meta["issues_detected"])
        kinds = [r.get("kind") for r in records(package)]
        assert 1 == kinds.count("session_end")

    def test_killed_command_then_recover_and_resume(
        self, tmp_path: Path, env: dict[str, str]
    ) -> None:
        """A SIGKILLed command leaves it open: recover packages it, a rerun resumes it."""
        joined = start(env)
        sid = joined["BELOG_SESSION_ID"]
        with subprocess.Popen(
            [sys.executable, "-c", STEP, "generate", "hang"],
            env=joined,
            stdout=subprocess.PIPE,
            text=True,
        ) as hung:
            assert hung.stdout is not None
            assert "hanging\n" == hung.stdout.readline()
            hung.send_signal(signal.SIGKILL)
            hung.wait(timeout=30)

        recovered = cli(env, "recover", "--json")
        assert [sid] == [r["session_id"] for r in json.loads(recovered.stdout)]
        (package,) = packages(tmp_path)
        assert metadata(package)["execution"]["end_time"] is not None
        assert 0 == step(joined, "generate", "finish").returncode
        meta = metadata(packages(tmp_path)[-1])
        assert ["generate", "generate"] == meta["execution"]["stages_executed"]
        assert meta["execution"]["success"] is True

    def test_two_commands_at_once(self, tmp_path: Path, env: dict[str, str]) -> None:
        """Two commands in one session at once write their own shards; the package has both."""
        joined = start(env)
        sid = joined["BELOG_SESSION_ID"]
        body = (
            "import sys, logging, structlog_belog as belog\n"
            "belog.configure(console=False, handle_signals=False)\n"
            "with belog.session('x') as run, run.stage(sys.argv[1]):\n"
            "    for i in range(300):\n"
            "        logging.getLogger('w').info('line %d of %s', i, sys.argv[1])\n"
        )
        procs = [
            subprocess.Popen([sys.executable, "-c", body, name], env=joined)
            for name in ("left", "right")
        ]
        for proc in procs:
            assert 0 == proc.wait(timeout=120)
        shards = sorted(p.name for p in (tmp_path / "logs" / "sessions" / sid).glob("processing*"))
        cli(env, "finish", sid)

        assert 2 <= len(shards)
        (package,) = packages(tmp_path)
        lines = [r for r in records(package) if r.get("logger") == "w"]
        assert 600 == len(lines)
        assert {"left", "right"} == {r["stage"] for r in lines}


class TestResumeInProcess:
    """`session(resume=...)`, `finish=` and `run.finish()` in one interpreter."""

    def test_resume_then_finish(self, tmp_path: Path, belog_config: Any) -> None:
        """An open session resumed later in the same process ends once, with both stages."""
        with belog.session("two parts", finish=False) as first, first.stage("one"):
            pass
        assert first.package_path is None
        with belog.session("ignored", resume=first.id) as again, again.stage("two"):
            again.finish()

        assert first.id == again.id
        assert again.package_path is not None
        meta = metadata(again.package_path)
        assert ["one", "two"] == meta["execution"]["stages_executed"]

    def test_finish_after_the_block(self, belog_config: Any) -> None:
        """run.finish() after the block ended finishes and packages the session."""
        with belog.session("later", finish=False) as run:
            pass
        run.finish()

        assert run.package_path is not None
        assert metadata(run.package_path)["execution"]["success"] is True

    def test_environment_resumes(self, belog_config: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        """With BELOG_SESSION_ID set (as `belog start` exports), session() resumes that session."""
        with belog.session("from env", finish=False) as run:
            pass
        monkeypatch.setenv("BELOG_SESSION_ID", run.id)
        with belog.session("whatever", finish=True) as again:
            pass

        assert run.id == again.id

    def test_unknown_id_is_an_error(self, belog_config: Any) -> None:
        """Resuming an ID with no session is SessionNotFoundError naming the ID."""
        with pytest.raises(SessionNotFoundError, match="sess_nope") as info:
            belog.session("x", resume="sess_nope").__enter__()
        assert "sess_nope" == info.value.session_id

    def test_finished_session_is_an_error(self, belog_config: Any) -> None:
        """Resuming a finished session is SessionFinishedError naming the ID."""
        with belog.session("done", package=False) as run:
            pass

        with pytest.raises(SessionFinishedError, match=run.id) as info:
            belog.session("x", resume=run.id).__enter__()
        assert run.id == info.value.session_id

    def test_resume_must_be_a_session_id(self, belog_config: Any) -> None:
        """resume= takes a session ID string."""
        with pytest.raises(TypeError, match="resume"):
            belog.session("x", resume=42)  # type: ignore[arg-type]


def test_records_between_commands_stay_in_the_session(tmp_path: Path, env: dict[str, str]) -> None:
    """No record of a later command lands after session_end or outside the session's time."""
    joined = start(env)
    for stage, mode in (("one", "ok"), ("two", "finish")):
        assert 0 == step(joined, stage, mode).returncode
        time.sleep(0.01)

    (package,) = packages(tmp_path)
    meta = metadata(package)
    logged = records(package)
    assert all(meta["execution"]["start_time"] <= r["timestamp"] for r in logged)
    assert all(r["timestamp"] <= meta["execution"]["end_time"] for r in logged)


class TestFinishAndStatus:
    """Finishing once, finishing as failed, and what the catalog says in between."""

    def test_finish_as_failed(self, belog_config: Any) -> None:
        """finish_session(failed=True) (`belog finish --failed`) records the run as failed."""
        from structlog_belog.core.session import finish_session

        with belog.session("to fail", finish=False) as run:
            pass
        finished = finish_session(run.id, failed=True)

        assert finished.package_path is not None
        assert metadata(finished.package_path)["execution"]["success"] is False

    def test_second_finish_is_an_error(self, belog_config: Any) -> None:
        """A session finished by one command cannot be resumed by another."""
        with belog.session("once", finish=False) as run:
            pass
        run.finish()

        with pytest.raises(SessionFinishedError, match=run.id):
            belog.session("x", resume=run.id).__enter__()

    def test_two_finishers_one_end(self, belog_config: Any, capsys: Any) -> None:
        """Two commands finishing at once: one writes session_end, the other a pause."""
        with belog.session("race", finish=False) as run:
            pass
        first = belog.session("x", resume=run.id, finish=True, package=False)
        second = belog.session("x", resume=run.id, finish=True, package=False)
        first.__enter__()
        second.__enter__()
        second.__exit__(None, None, None)  # innermost first: contexts restore in order
        first.__exit__(None, None, None)

        assert "finished by another command" in capsys.readouterr().err
        kinds = [
            r.get("kind")
            for path in sorted((belog_config.log_dir / "sessions" / run.id).glob("processing*"))
            for r in map(orjson.loads, path.read_bytes().splitlines())
        ]
        assert (1, 1) == (kinds.count("session_end"), kinds.count("session_pause") - 1)

    def test_catalog_status(self, belog_config: Any) -> None:
        """`open` between commands, `running` inside one, `crashed` when one died inside."""
        from structlog_belog.package import catalog

        def status(sid: str) -> str:
            return catalog.session_info(belog_config.log_dir / "sessions" / sid).status

        with belog.session("states", finish=False) as run:
            assert "running" == status(run.id)
        assert "open" == status(run.id)
        code = "import os; print(os.getpid())"
        dead = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        (belog_config.log_dir / "sessions" / run.id / f"active.{dead}").touch()
        assert "crashed" == status(run.id)
        with belog.session("x", resume=run.id):
            pass
        assert "open" == status(run.id)  # resuming forgot the dead command's marker

    def test_unreadable_state_is_an_error(self, belog_config: Any) -> None:
        """A damaged session.json makes resuming fail with the session named."""
        with belog.session("damaged", finish=False) as run:
            pass
        (belog_config.log_dir / "sessions" / run.id / "session.json").write_text("{not json")

        with pytest.raises(SessionNotFoundError, match="unreadable") as info:
            belog.session("x", resume=run.id).__enter__()
        assert run.id == info.value.session_id

    def test_crashed_ordinary_session_resumes(self, belog_config: Any) -> None:
        """An ordinary session whose process died (no session_end) can be resumed and finished."""
        run = belog.session("died", package=False, blueprint_id="bp_9")
        run.__enter__()
        belog_config_sessions = belog_config.log_dir / "sessions" / run.id
        from structlog_belog.core import context as _context

        _context.REGISTRY.remove(run)  # as if its process had gone
        _context.reset(run._token)  # type: ignore[arg-type]
        with belog.session("x", resume=run.id, finish=True) as again, again.task("t"):
            pass

        assert again.package_path is not None
        meta = metadata(again.package_path)
        assert ("died", "bp_9") == (meta["title"], meta["blueprint_id"])
        assert (belog_config_sessions / "session.finished").exists()

    def test_cli_json(self, tmp_path: Path, env: dict[str, str]) -> None:
        """`belog start --json` and `belog finish --json` print the ID and the package."""
        sid = json.loads(cli(env, "start", "t", "--json").stdout)["session_id"]
        out = json.loads(cli(env, "finish", sid, "--json").stdout)

        assert sid == out["session_id"]
        assert [Path(out["package"])] == packages(tmp_path)
