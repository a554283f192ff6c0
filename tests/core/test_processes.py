"""Processes: forked shards, spawned children joining, kill -9, SIGTERM, exit flush."""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import signal
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog

import structlog_belog as belog
from structlog_belog.core import config as _config
from structlog_belog.core import context as _context
from structlog_belog.core import router as _router
from structlog_belog.package.verify import verify_package
from tests.conftest import read_jsonl


def _files(run: belog.Run) -> dict[str, list[dict[str, Any]]]:
    assert run.directory is not None
    return {p.name: read_jsonl(p) for p in sorted(run.directory.glob("*.jsonl"))}


@contextmanager
def _fork_allowed() -> Iterator[None]:
    # Python 3.12+ warns on fork() with threads alive (pytest's own, finished
    # flushers); the children here only log and exit.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _forked(target: Any, *args: Any) -> Any:
    """Run *target(*args)* in a multiprocessing 'fork' child to its end; return the process."""
    proc = multiprocessing.get_context("fork").Process(target=target, args=args)
    with _fork_allowed():
        proc.start()
    proc.join(60)
    return proc


def _mp_child(n: int) -> None:
    """Log *n* records from a multiprocessing child (module-level: picklable)."""
    for i in range(n):
        structlog.get_logger("child").info("mp child", i=i)
        logging.getLogger("lib.child").info("mp stdlib %d", i)


def _log_until_terminated(started: Any) -> None:
    """Log forever from a multiprocessing child; set *started* after the first record."""
    i = 0
    while True:
        structlog.get_logger("child").info("looping", i=i)
        if i == 0:
            started.set()
        i += 1


def _spawn_child(n: int) -> None:
    """A spawned child: configure() joins the session named in its environment."""
    belog.configure(console=False, handle_signals=False)
    _mp_child(n)


def _lose_records(n: int) -> None:
    """Log, lose *n* records to a file size limit, log again; then simply return.

    A multiprocessing 'fork' child (module-level: picklable). The limit is real
    (``RLIMIT_FSIZE``: every write to the shard fails with EFBIG) and lifted
    before the end, as a full disk that frees up again would be.
    """
    log = structlog.get_logger("child")
    log.info("before the limit")
    run = belog.current_session() or _context.REGISTRY.sole
    assert run is not None
    assert run.directory is not None
    shard = run.directory / f"processing.{os.getpid()}.jsonl"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (shard.stat().st_size, hard))
    try:
        for i in range(n):
            log.info("lost", i=i)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    log.info("after the limit")


def _run_child(script: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class TestFork:
    def test_os_fork_child_writes_own_shard(self, belog_config: _config.Config) -> None:
        """An os.fork child writes processing.<pid>.jsonl, never the parent's file or descriptor."""
        router = _config._STATE.pipeline.router  # type: ignore[union-attr]
        with belog.session("forked", package=False) as run:
            structlog.get_logger().info("parent before")
            parent_fds = list(router._fds.values())
            r, w = os.pipe()
            with _fork_allowed():
                pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                code = 1
                try:
                    os.close(r)
                    inherited = [fd for fd in parent_fds if fd in router._fds.values()]
                    os.write(w, b"clean" if not inherited and not router._fds else b"shared")
                    for i in range(50):
                        structlog.get_logger().info("child", i=i)
                        logging.getLogger("lib").info("child stdlib")
                    code = 0
                finally:
                    os._exit(code)
            os.close(w)
            with os.fdopen(r, "rb") as pipe:
                report = pipe.read()
            _, status = os.waitpid(pid, 0)
            structlog.get_logger().info("parent after")
        files = _files(run)
        shard = files[f"processing.{pid}.jsonl"]

        assert (0, b"clean") == (os.waitstatus_to_exitcode(status), report)
        assert sorted(["processing.jsonl", f"processing.{pid}.jsonl"]) == sorted(files)
        assert 100 == len(shard)
        assert {(run.id, pid)} == {(r["session_id"], r["pid"]) for r in shard}
        assert ["session_start", "parent before", "parent after", "session_end"] == [
            r["event"] for r in files["processing.jsonl"]
        ]

    def test_multiprocessing_fork_context(self, belog_config: _config.Config) -> None:
        """A multiprocessing 'fork' child's records reach its shard in the session folder."""
        with belog.session("mp-fork", package=False) as run:
            proc = _forked(_mp_child, 40)
        shard = _files(run)[f"processing.{proc.pid}.jsonl"]

        assert 0 == proc.exitcode
        assert [f"mp stdlib {i}" for i in range(40)] == [
            r["event"] for r in shard if r["logger"] == "lib.child"
        ]
        assert {(run.id, proc.pid)} == {(r["session_id"], r["pid"]) for r in shard}

    def test_multiprocessing_fork_buffered_flushes_at_exit(self, tmp_path: Path) -> None:
        """In buffered mode a multiprocessing 'fork' child's records are flushed when it exits."""
        belog.configure(
            log_dir=tmp_path / "logs", console=False, handle_signals=False, durability="buffered"
        )
        with belog.session("mp-buffered", package=False) as run:
            proc = _forked(_mp_child, 40)
        files = _files(run)
        shard = files.get(f"processing.{proc.pid}.jsonl", [])

        assert (0, 80) == (proc.exitcode, len(shard))
        # Lines the parent had buffered at the fork are written once, by the parent.
        assert ["session_start", "session_end"] == [r["event"] for r in files["processing.jsonl"]]


class TestSpawn:
    def test_multiprocessing_spawn_joins(
        self,
        belog_config: _config.Config,
        subprocess_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A multiprocessing 'spawn' child joins through session_env() and configure()."""
        ctx = multiprocessing.get_context("spawn")
        with belog.session("mp-spawn", package=False) as run:
            for key, value in belog.session_env().items():
                monkeypatch.setenv(key, value)
            monkeypatch.setenv("PYTHONPATH", subprocess_env["PYTHONPATH"])
            proc = ctx.Process(target=_spawn_child, args=(20,))
            proc.start()
            proc.join(60)
        shard = _files(run)[f"processing.{proc.pid}.jsonl"]

        assert 0 == proc.exitcode
        assert 40 == len(shard)
        assert {(run.id, proc.pid)} == {(r["session_id"], r["pid"]) for r in shard}

    def test_subprocess_joins(
        self, belog_config: _config.Config, subprocess_env: dict[str, str]
    ) -> None:
        """A subprocess given session_env() logs to its shard of the session, both paths."""
        script = """
            import logging, os, structlog, structlog_belog as belog
            belog.configure(console=False)
            structlog.get_logger("sub").info("from subprocess", pid_seen=os.getpid())
            logging.getLogger("lib.sub").warning("stdlib from subprocess")
            print(os.getpid())
        """
        with belog.session("sub", package=False) as run:
            proc = _run_child(script, {**subprocess_env, **belog.session_env()})
        child_pid = int(proc.stdout)
        shard = _files(run)[f"processing.{child_pid}.jsonl"]

        assert (0, "") == (proc.returncode, proc.stderr)
        assert [
            ("from subprocess", run.id, child_pid),
            ("stdlib from subprocess", run.id, child_pid),
        ] == [(r["event"], r["session_id"], r["pid"]) for r in shard]

    def test_subprocess_session_inside_joined_is_child(
        self, belog_config: _config.Config, subprocess_env: dict[str, str]
    ) -> None:
        """A session opened in a joined subprocess is linked to the parent's session."""
        script = """
            import structlog_belog as belog
            belog.configure(console=False)
            with belog.session("inner", package=False) as run:
                print(run.id)
        """
        with belog.session("outer", package=False) as outer:
            proc = _run_child(script, {**subprocess_env, **belog.session_env()})
        inner_id = proc.stdout.strip()
        start = read_jsonl(belog_config.log_dir / "sessions" / inner_id / "processing.jsonl")[0]

        assert (0, "session_start", outer.id) == (
            proc.returncode,
            start["event"],
            start["parent_session_id"],
        )


def _package_says(run: belog.Run) -> tuple[int, str, list[str]]:
    """metadata.json's records.dropped, the summary, the dropped_records issue's examples.

    The package must also verify: the ``drops`` records pass their schema.
    """
    assert run.package_path is not None
    assert [] == verify_package(run.package_path)
    logs = run.package_path / "logs"
    meta = orjson.loads((logs / "metadata.json").read_bytes())
    (dropped_issue,) = [i for i in meta["issues_detected"] if i["kind"] == "dropped_records"]
    summary = (logs / "execution_summary.md").read_text()
    return meta["records"]["dropped"], summary, dropped_issue["examples"]


class TestChildDrops:
    """Records a child process could not write reach the package's dropped count."""

    def test_multiprocessing_fork_child(self, belog_config: _config.Config) -> None:
        """A 'fork' child that loses 7 records (and ends with os._exit) reports them."""
        with belog.session("child-drops") as run:
            proc = _forked(_lose_records, 7)
        shard = _files(run)[f"processing.{proc.pid}.jsonl"]
        dropped, summary, examples = _package_says(run)

        assert 0 == proc.exitcode
        assert ["before the limit", "after the limit", "records_dropped"] == [
            r["event"] for r in shard
        ]
        assert ("drops", 7, proc.pid) == (
            shard[-1]["kind"],
            shard[-1]["records_dropped"],
            shard[-1]["pid"],
        )
        assert 7 == dropped
        assert "7 log record(s) could not be written and are missing" in summary
        assert ["the session's process: 0", f"process {proc.pid}: 7"] == examples

    @pytest.mark.parametrize("durability", ["record", "buffered"])
    def test_subprocess_joined_with_session_env(
        self, durability: str, belog_config: _config.Config, subprocess_env: dict[str, str]
    ) -> None:
        """A subprocess that joined the session loses 5 records: one drops record, counted once.

        It imports multiprocessing, so both exit paths (atexit and the
        multiprocessing finalizer) run the report: still one record.
        """
        script = """
            import multiprocessing, os, resource, sys, structlog, structlog_belog as belog
            from structlog_belog.core import config as _config
            from structlog_belog.core import context as _context
            belog.configure(console=False, durability=sys.argv[1])
            router = _config.ensure_pipeline().router
            log = structlog.get_logger("sub")
            log.info("before the limit")
            router.flush()
            run = _context.REGISTRY.joined
            shard = run.directory / f"processing.{os.getpid()}.jsonl"
            soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
            resource.setrlimit(resource.RLIMIT_FSIZE, (shard.stat().st_size, hard))
            for i in range(5):
                log.info("lost", i=i)
            router.flush()
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            log.info("after the limit")
            print(os.getpid())
        """
        with belog.session("sub-drops") as run:
            proc = _run_child(script, {**subprocess_env, **belog.session_env()}, durability)
        child_pid = int(proc.stdout)
        shard = _files(run)[f"processing.{child_pid}.jsonl"]
        dropped, summary, _ = _package_says(run)

        assert 0 == proc.returncode, proc.stderr
        assert 1 == proc.stderr.count("structlog-belog: could not write a log record")
        assert [("drops", 5)] == [
            (r["kind"], r["records_dropped"]) for r in shard if r.get("kind") == "drops"
        ]
        assert 5 == dropped
        assert "5 log record(s) could not be written and are missing" in summary

    def test_clean_child_writes_no_drops_record(self, belog_config: _config.Config) -> None:
        """A child that lost nothing adds no record and the package counts 0."""
        with belog.session("no-drops") as run:
            proc = _forked(_mp_child, 3)
        assert run.package_path is not None
        meta = orjson.loads((run.package_path / "logs" / "metadata.json").read_bytes())

        assert 0 == proc.exitcode
        assert [] == [
            r for r in _files(run)[f"processing.{proc.pid}.jsonl"] if r.get("kind") == "drops"
        ]
        assert 0 == meta["records"]["dropped"]

    def test_fork_starts_counting_from_zero(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A forked child does not inherit (and so never re-reports) the parent's drops."""
        router = _router.SessionRouter(tmp_path, "app")
        router._drop("s", OSError("full"), 3)
        r, w = os.pipe()
        with _fork_allowed():
            pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                os.write(w, b"%d %d" % (router.dropped("s"), router.take_unreported("s")))
            finally:
                os._exit(0)
        os.close(w)
        with os.fdopen(r, "rb") as pipe:
            child = pipe.read()
        os.waitpid(pid, 0)
        router.shutdown()
        capsys.readouterr()

        assert (b"0 0", 3, 3, 0) == (
            child,
            router.dropped("s"),
            router.take_unreported("s"),
            router.take_unreported("s"),
        )


class TestKill:
    @pytest.mark.slow
    def test_kill_9_loses_no_returned_record(
        self, tmp_path: Path, subprocess_env: dict[str, str]
    ) -> None:
        """kill -9 mid-run: every record whose call returned is on disk; no torn line."""
        script = """
            import logging, os, sys, structlog, structlog_belog as belog
            belog.configure(log_dir=sys.argv[1], console=False, handle_signals=False)
            w = int(sys.argv[2])
            log, std = structlog.get_logger("k"), logging.getLogger("lib.k")
            with belog.session("killed", package=False) as run:
                os.write(w, run.id.encode().ljust(64))
                for i in range(20_000):
                    if i % 2:
                        std.info("rec", extra={"seq": i, "pad": "x" * 200})
                    else:
                        log.info("rec", seq=i, pad="y" * 200)
                    os.write(w, i.to_bytes(8, "little"))
        """
        r, w = os.pipe()
        proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(script), str(tmp_path / "logs"), str(w)],
            env=subprocess_env,
            pass_fds=(w,),
        )
        os.close(w)
        reported: list[int] = []
        with os.fdopen(r, "rb") as pipe:
            sid = pipe.read(64).decode().strip()
            # Stop reading at 3000: the pipe then fills (8 KiB entries at most), so
            # the child is blocked or running well before its 20,000th record.
            while not reported or reported[-1] < 3000:
                entry = pipe.read(8)
                if len(entry) < 8:  # the child died early: fail below, don't spin
                    break
                reported.append(int.from_bytes(entry, "little"))
            proc.send_signal(signal.SIGKILL)
            proc.wait(60)
            rest = pipe.read()
        reported += [
            int.from_bytes(rest[i : i + 8], "little") for i in range(0, len(rest) // 8 * 8, 8)
        ]
        data = (tmp_path / "logs" / "sessions" / sid / "processing.jsonl").read_bytes()
        lines = data.split(b"\n")
        seqs = [
            r["seq"]
            for r in read_jsonl(tmp_path / "logs" / "sessions" / sid / "processing.jsonl")
            if "seq" in r
        ]
        last = reported[-1]

        assert -signal.SIGKILL == proc.returncode
        assert b"" == lines[-1]  # the file ends with a newline: no torn last line
        assert list(range(last + 1)) == seqs[: last + 1]
        assert len(seqs) in (last + 1, last + 2)
        assert last < 19_999


class TestSignals:
    def test_sigterm_ends_session_as_failed(
        self, tmp_path: Path, subprocess_env: dict[str, str]
    ) -> None:
        """SIGTERM mid-session writes session_end (success false) and exits by SIGTERM."""
        script = """
            import sys, time, structlog, structlog_belog as belog
            belog.configure(log_dir=sys.argv[1], console=False)
            with belog.session("term", package=False) as run:
                structlog.get_logger().info("working")
                print(run.id, flush=True)
                while True:
                    time.sleep(0.01)
        """
        proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(script), str(tmp_path / "logs")],
            env=subprocess_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        sid = proc.stdout.readline().strip()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        records = read_jsonl(tmp_path / "logs" / "sessions" / sid / "processing.jsonl")
        end = records[-1]

        assert -signal.SIGTERM == proc.returncode
        assert ("session_end", False, "terminated by SIGTERM") == (
            end["event"],
            end["success"],
            end["error"]["message"],
        )

    def test_terminated_fork_child_dies_by_sigterm(self, tmp_path: Path) -> None:
        """A forked child without its own session dies by SIGTERM, its shard intact."""
        belog.configure(log_dir=tmp_path / "logs", console=False, handle_signals=True)
        ctx = multiprocessing.get_context("fork")
        with belog.session("terminated", package=False) as run:
            started = ctx.Event()
            with _fork_allowed():
                proc = ctx.Process(target=_log_until_terminated, args=(started,))
                proc.start()
            started.wait(60)
            proc.terminate()
            proc.join(60)
        shard = _files(run)[f"processing.{proc.pid}.jsonl"]

        assert -signal.SIGTERM == proc.exitcode
        assert list(range(len(shard))) == [r["i"] for r in shard]


class TestExit:
    def test_buffered_records_flushed_at_exit(
        self, tmp_path: Path, subprocess_env: dict[str, str]
    ) -> None:
        """In buffered mode, records still in memory at a normal exit reach the file."""
        script = """
            import sys, structlog, structlog_belog as belog
            belog.configure(
                log_dir=sys.argv[1], console=False, durability="buffered", app_name="app"
            )
            for i in range(2000):
                structlog.get_logger().info("late", i=i)
        """
        proc = _run_child(script, subprocess_env, str(tmp_path / "logs"))

        assert (0, "") == (proc.returncode, proc.stderr)
        assert list(range(2000)) == [r["i"] for r in read_jsonl(tmp_path / "logs" / "app.jsonl")]

    def test_session_left_open_is_closed_at_exit(
        self, tmp_path: Path, subprocess_env: dict[str, str]
    ) -> None:
        """A session still open at interpreter exit gets a failed session_end."""
        script = """
            import sys, structlog_belog as belog
            belog.configure(log_dir=sys.argv[1], console=False)
            run = belog.session("left-open", package=False)
            run.__enter__()
            print(run.id)
        """
        proc = _run_child(script, subprocess_env, str(tmp_path / "logs"))
        records = read_jsonl(
            tmp_path / "logs" / "sessions" / proc.stdout.strip() / "processing.jsonl"
        )

        assert (0, "") == (proc.returncode, proc.stderr)
        assert ("session_end", False) == (records[-1]["event"], records[-1]["success"])


class TestExample:
    def test_pipeline_example_runs(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """examples/pipeline.py runs offline, logs its worker threads into its session."""
        from tests.conftest import REPO_ROOT

        proc = subprocess.run(
            [sys.executable, str(REPO_ROOT / "examples" / "pipeline.py")],
            env={**subprocess_env, "BELOG_DIR": str(tmp_path / "logs")},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        folder = Path(proc.stdout.splitlines()[0].removeprefix("session logs: "))
        records = read_jsonl(folder / "processing.jsonl")
        counted = [r for r in records if str(r["event"]).endswith("counted")]

        assert (0, "") == (proc.returncode, proc.stderr)
        assert tmp_path / "logs" / "sessions" == folder.parent
        assert {folder.name} == {r["session_id"] for r in records}
        assert [("count", False)] * 8 == [(r["stage"], "attributed" in r) for r in counted]
        assert list(range(8)) == sorted(int(r["chunk"]) for r in counted)
