"""SessionRouter: per-session files, failures counted not raised, buffered mode."""

from __future__ import annotations

import asyncio
import contextvars
import errno
import logging
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

import structlog_belog as belog
from structlog_belog.core import config as _config
from structlog_belog.core import router as _router
from structlog_belog.core.router import SessionRouter
from tests.conftest import read_jsonl

WARNING = "structlog-belog: could not write a log record"


def _records(run: belog.Run) -> list[dict[str, Any]]:
    assert run.directory is not None
    return read_jsonl(run.directory / "processing.jsonl")


def _global(config: _config.Config) -> list[dict[str, Any]]:
    path = config.log_dir / f"{config.app_name}.jsonl"
    return read_jsonl(path) if path.exists() else []


class _OsProxy(ModuleType):
    """The `os` module with a replaceable `write`, installed as the router's `os`."""

    def __init__(self, write: Any) -> None:
        super().__init__("os")
        self.write = write

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def _fail_write_of(marker: bytes) -> Any:
    """An os.write that fails with ENOSPC for lines containing *marker*."""

    def write(fd: int, data: Any) -> int:
        if marker in bytes(data):
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)

    return write


class TestRouting:
    def test_twenty_async_sessions_never_misroute(self, belog_config: _config.Config) -> None:
        """Records of 20 concurrent asyncio sessions each land only in their own file."""

        async def one(n: int) -> str:
            marker = f"a{n}"
            async with belog.session(marker, package=False) as run:
                for i in range(25):
                    structlog.get_logger("async").info("step", marker=marker, i=i)
                    await asyncio.sleep(0)
                    logging.getLogger("lib.async").info("std", extra={"marker": marker})
                    async with run.stage(f"st{i % 3}"):
                        await asyncio.sleep(0)
                        structlog.get_logger().info("staged", marker=marker)
            return run.id

        async def main() -> list[str]:
            return list(await asyncio.gather(*(one(n) for n in range(20))))

        ids = asyncio.run(main())
        expected = {sid: f"a{n}" for n, sid in enumerate(ids)}
        wrong: list[dict[str, Any]] = []
        counts: dict[str, int] = {}
        files = sorted((belog_config.log_dir / "sessions").glob("*/*"))
        for path in files:
            sid, marker = path.parent.name, expected[path.parent.name]
            lines = read_jsonl(path)
            counts[marker] = sum(1 for r in lines if "kind" not in r)
            wrong += [r for r in lines if r["session_id"] != sid]
            wrong += [r for r in lines if "kind" not in r and r["marker"] != marker]

        assert 20 == len(set(ids))
        assert sorted(f"{sid}/processing.jsonl" for sid in ids) == [
            f"{p.parent.name}/{p.name}" for p in files
        ]
        assert {f"a{n}": 75 for n in range(20)} == counts
        assert [] == wrong
        assert [] == [r for r in _global(belog_config) if "kind" not in r]

    def test_global_file_outside_sessions(self, belog_config: _config.Config) -> None:
        """Records outside any session go to <log_dir>/<app_name>.jsonl with session_id null."""
        structlog.get_logger("x").info("outside")

        assert [("outside", None, "x")] == [
            (r["event"], r["session_id"], r["logger"]) for r in _global(belog_config)
        ]

    def test_descriptor_cache_is_bounded(self, tmp_path: Path) -> None:
        """With max_open=2, writing to 6 sessions keeps at most 2 descriptors and every line."""
        router = SessionRouter(tmp_path, "app", max_open=2)
        try:
            for i in range(30):
                router.write(f"s{i % 6}", "processing", False, b'{"i":%d}\n' % i)
                assert len(router._fds) <= 2
        finally:
            router.shutdown()

        assert [[i for i in range(30) if i % 6 == n] for n in range(6)] == [
            [r["i"] for r in read_jsonl(tmp_path / "sessions" / f"s{n}" / "processing.jsonl")]
            for n in range(6)
        ]

    def test_short_writes_are_finished(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A write that returns short is completed, so the line is whole."""

        def short_write(fd: int, data: Any) -> int:
            return os.write(fd, bytes(data)[:3])

        router = SessionRouter(tmp_path, "app")
        monkeypatch.setattr(_router, "os", _OsProxy(short_write))
        try:
            router.write(None, "processing", False, b'{"event":"a long enough line"}\n')
        finally:
            monkeypatch.undo()
            router.shutdown()

        assert [{"event": "a long enough line"}] == read_jsonl(tmp_path / "app.jsonl")

    def test_bad_arguments(self, tmp_path: Path) -> None:
        """SessionRouter rejects an unknown durability and a max_open below 2, naming them."""
        with pytest.raises(ValueError, match=r"^durability"):
            SessionRouter(tmp_path, "app", durability="maybe")
        with pytest.raises(ValueError, match=r"^max_open"):
            SessionRouter(tmp_path, "app", max_open=1)


def _log_structlog(seq: int) -> None:
    structlog.get_logger("prop").info("rec", seq=seq)


def _log_stdlib(seq: int) -> None:
    logging.getLogger("lib.prop").info("rec", extra={"seq": seq})


class TestRoutingProperty:
    @settings(max_examples=30, deadline=None)
    @given(
        st.lists(
            st.tuples(st.integers(0, 4), st.sampled_from([_log_structlog, _log_stdlib])),
            max_size=60,
        )
    )
    def test_no_record_misrouted(self, ops: list[tuple[int, Any]]) -> None:
        """Any interleaving of records over 4 open sessions and none routes each to its file."""
        with tempfile.TemporaryDirectory() as tmp:
            config = belog.configure(
                log_dir=Path(tmp), console=False, handle_signals=False, app_name="app"
            )
            try:
                contexts = [contextvars.copy_context() for _ in range(4)]
                runs = [
                    ctx.run(belog.session(f"p{n}", package=False).__enter__)
                    for n, ctx in enumerate(contexts)
                ]
                for seq, (target, log) in enumerate(ops):
                    if target == 4:
                        log(seq)
                    else:
                        contexts[target].run(log, seq)
                for ctx, run in zip(contexts, runs, strict=True):
                    ctx.run(run.__exit__, None, None, None)
                actual = [
                    [
                        r["seq"]
                        for r in read_jsonl(
                            config.log_dir / "sessions" / run.id / "processing.jsonl"
                        )
                        if "seq" in r
                    ]
                    for run in runs
                ] + [[r["seq"] for r in _global(config) if "seq" in r]]
            finally:
                _config.reset()

        assert [[i for i, (t, _) in enumerate(ops) if t == n] for n in range(5)] == actual


class TestFailures:
    def test_dev_full_never_raises_and_is_counted(
        self, belog_config: _config.Config, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A session file on /dev/full drops records silently, counted in session_end."""
        run = belog.session("full", package=False)
        folder = belog_config.log_dir / "sessions" / run.id
        folder.mkdir(parents=True)
        (folder / "processing.jsonl").symlink_to("/dev/full")
        with run:
            for i in range(5):
                structlog.get_logger().info("lost", i=i)
                logging.getLogger("lib").warning("lost too")
        (end,) = [r for r in _global(belog_config) if r.get("kind") == "session_end"]
        router = _config._STATE.pipeline.router  # type: ignore[union-attr]

        # session_start and the 10 records before session_end; session_end itself after.
        assert 11 == end["records_dropped"]
        assert 12 == router.dropped(run.id)
        assert 1 == capsys.readouterr().err.count(WARNING)

    def test_failing_write_never_raises_and_is_counted(
        self,
        belog_config: _config.Config,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """os.write failing with ENOSPC for some records drops exactly those, counted."""
        monkeypatch.setattr(_router, "os", _OsProxy(_fail_write_of(b'"doomed"')))
        with belog.session("enospc", package=False) as run:
            for i in range(4):
                structlog.get_logger().info("doomed", i=i)
                structlog.get_logger().info("kept", i=i)
        monkeypatch.undo()
        records = _records(run)

        assert ["session_start"] + ["kept"] * 4 + ["session_end"] == [r["event"] for r in records]
        assert 4 == records[-1]["records_dropped"]
        assert 1 == capsys.readouterr().err.count(WARNING)

    def test_closed_descriptor_reopened(
        self, belog_config: _config.Config, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A descriptor closed behind the router's back is reopened: no record lost, no warning."""
        with belog.session("closed", package=False) as run:
            structlog.get_logger().info("first")
            router = _config._STATE.pipeline.router  # type: ignore[union-attr]
            for fd in list(router._fds.values()):
                os.close(fd)
            structlog.get_logger().info("second")
            logging.getLogger("lib").warning("third")
        records = _records(run)

        assert ["session_start", "first", "second", "third", "session_end"] == [
            r["event"] for r in records
        ]
        assert (0, 0) == (records[-1]["records_dropped"], router.drops.total)
        assert "" == capsys.readouterr().err

    def test_closed_descriptor_retried_once(
        self,
        belog_config: _config.Config,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """When the reopened file fails too, the record is dropped and counted once, one retry.

        The reopened name is now a link to ``/dev/full``: the router refuses it
        (it follows no link), which is the failure of the retry here.
        """
        opened: list[str] = []
        real_open = _router.open_file_beneath

        def counting_open(root: Any, path: Any, *args: Any, **kwargs: Any) -> int:
            opened.append(os.fspath(path))
            return real_open(root, path, *args, **kwargs)

        with belog.session("closed-then-full", package=False) as run:
            assert run.directory is not None
            path = run.directory / "processing.jsonl"
            structlog.get_logger().info("first")
            router = _config._STATE.pipeline.router  # type: ignore[union-attr]
            os.close(router._fds[(run.id, "processing", False)])
            path.rename(path.with_name("kept.jsonl"))
            path.symlink_to("/dev/full")  # planted where the file was
            monkeypatch.setattr(_router, "open_file_beneath", counting_open)
            structlog.get_logger().info("second")
            monkeypatch.undo()
            path.unlink()
            path.with_name("kept.jsonl").rename(path)
            structlog.get_logger().info("third")
        records = _records(run)
        err = capsys.readouterr().err

        assert [str(path)] == opened
        assert ["session_start", "first", "third", "session_end"] == [r["event"] for r in records]
        assert 1 == records[-1]["records_dropped"]
        assert (1, 1) == (err.count(WARNING), err.count("refused, it is a symbolic link"))

    def test_closed_descriptor_reopened_buffered(self, tmp_path: Path) -> None:
        """In buffered mode a batch whose descriptor was closed is written after a reopen."""
        router = SessionRouter(tmp_path, "app", durability="buffered", flush_interval=60)
        try:
            router.write("s", "processing", False, b'{"event":"first"}\n')
            router.flush()
            os.close(router._fds[("s", "processing", False)])
            router.write("s", "processing", False, b'{"event":"second"}\n')
            router.flush()
        finally:
            router.shutdown()

        assert ([{"event": "first"}, {"event": "second"}], 0) == (
            read_jsonl(tmp_path / "sessions" / "s" / "processing.jsonl"),
            router.drops.total,
        )

    def test_unserializable_value_never_raises(self, belog_config: _config.Config) -> None:
        """A value whose repr raises is written or counted as dropped, never raised."""

        class Hostile:
            def __repr__(self) -> str:
                raise RuntimeError("no repr")

        with belog.session("hostile", package=False) as run:
            structlog.get_logger().info("hostile", value=Hostile())
            structlog.get_logger().info("after")
        records = _records(run)
        written = [r["event"] for r in records]

        assert ["session_start", "after", "session_end"] == [e for e in written if e != "hostile"]
        assert (0 if "hostile" in written else 1) == records[-1]["records_dropped"]


class TestBuffered:
    def test_records_land_at_session_end(self, tmp_path: Path) -> None:
        """In buffered mode every record of 4 threads is on disk after the session, in order."""
        belog.configure(
            log_dir=tmp_path / "logs", console=False, handle_signals=False, durability="buffered"
        )

        def work(t: int) -> None:
            for i in range(500):
                structlog.get_logger().info("buffered", t=t, i=i)

        with belog.session("buf", package=False) as run:
            threads = [threading.Thread(target=belog.propagate(work), args=(t,)) for t in range(4)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
        records = [r for r in _records(run) if r["event"] == "buffered"]

        assert [list(range(500))] * 4 == [
            [r["i"] for r in records if r["t"] == t] for t in range(4)
        ]
        assert "session_end" == _records(run)[-1]["event"]

    def test_flush_writes_global_records(self, tmp_path: Path) -> None:
        """In buffered mode, records outside sessions are on disk after flush()."""
        config = belog.configure(
            log_dir=tmp_path / "logs",
            console=False,
            handle_signals=False,
            durability="buffered",
            app_name="app",
        )
        for i in range(100):
            logging.getLogger("lib").info("g%d", i)
        _config._STATE.pipeline.router.flush()  # type: ignore[union-attr]

        assert [f"g{i}" for i in range(100)] == [r["event"] for r in _global(config)]

    def test_close_waits_for_a_batch_being_written(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """close() during the flusher's write waits for it instead of closing under it."""
        entered, release = threading.Event(), threading.Event()

        def slow_write(fd: int, data: Any) -> int:
            entered.set()
            release.wait(10)
            return os.write(fd, data)

        router = SessionRouter(tmp_path, "app", durability="buffered", flush_interval=60)
        monkeypatch.setattr(_router, "os", _OsProxy(slow_write))
        router.write(None, "processing", False, b'{"event":"in flight"}\n')
        router._wake.set()  # the flusher takes the batch and blocks in write
        entered.wait(10)
        closer = threading.Thread(target=router.close)
        closer.start()
        closer.join(0.2)  # bounded wait: with the bug, close() is done by now
        release.set()
        closer.join(10)
        router.shutdown()
        monkeypatch.undo()

        assert (0, [{"event": "in flight"}]) == (
            router.drops.total,
            read_jsonl(tmp_path / "app.jsonl"),
        )

    def test_memory_cap_drops_and_counts(self, tmp_path: Path) -> None:
        """Past buffer_bytes, buffered records are dropped and counted per session."""
        router = SessionRouter(tmp_path, "app", durability="buffered", buffer_bytes=100)
        try:
            line = b'{"event":"%d-padding-padding"}\n'
            for i in range(10):
                router.write("s", "processing", False, line % i)
            router.flush()
            kept = read_jsonl(tmp_path / "sessions" / "s" / "processing.jsonl")
        finally:
            router.shutdown()

        assert 10 == len(kept) + router.dropped("s")
        assert len(kept) > 0
        assert router.dropped("s") > 0


class TestReentrancy:
    """A write that starts while this thread is already writing must not deadlock.

    Run in a child process with a timeout, so a deadlock fails the test instead
    of hanging the suite.
    """

    def _run(
        self, script: str, log_dir: Path, env: dict[str, str]
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script), str(log_dir)],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def test_signal_handler_logging_during_write(
        self, tmp_path: Path, subprocess_env: dict[str, str]
    ) -> None:
        """A signal handler that logs while the router is mid-write does not deadlock."""
        script = """
            import os, signal, sys, structlog, structlog_belog as belog
            from structlog_belog.core import router as _router
            belog.configure(log_dir=sys.argv[1], console=False, app_name="app")
            signal.signal(signal.SIGUSR1, lambda *_: structlog.get_logger().info("from handler"))
            fired = []

            class Os:
                def __getattr__(self, name):
                    return getattr(os, name)

                def write(self, fd, data):
                    if not fired:
                        fired.append(1)
                        signal.raise_signal(signal.SIGUSR1)  # handler runs right here
                    return os.write(fd, data)

            _router.os = Os()
            structlog.get_logger().info("interrupted")
            print("finished")
        """
        proc = self._run(script, tmp_path / "logs", subprocess_env)

        assert (0, "finished\n", "") == (proc.returncode, proc.stdout, proc.stderr)
        assert ["from handler", "interrupted"] == [
            r["event"] for r in read_jsonl(tmp_path / "logs" / "app.jsonl")
        ]

    def test_stderr_routed_into_logging(
        self, tmp_path: Path, subprocess_env: dict[str, str]
    ) -> None:
        """The drop warning written to a stderr that logs (as Celery does) does not deadlock."""
        script = """
            import logging, os, sys, structlog, structlog_belog as belog
            belog.configure(log_dir=sys.argv[1], console=False, app_name="app")

            class LoggerWriter:
                def write(self, text):
                    if text.strip():
                        logging.getLogger("stderr").error(text.strip())

                def flush(self):
                    pass

            run = belog.session("full", package=False)
            folder = os.path.join(sys.argv[1], "sessions", run.id)
            os.makedirs(folder)
            os.symlink("/dev/full", os.path.join(folder, "processing.jsonl"))
            sys.stderr = LoggerWriter()
            with run:
                structlog.get_logger().info("lost")
            print("finished")
        """
        proc = self._run(script, tmp_path / "logs", subprocess_env)
        end = read_jsonl(tmp_path / "logs" / "app.jsonl")[-1]

        assert (0, "finished\n") == (proc.returncode, proc.stdout)
        # session_start, "lost", and the warning itself, logged through stderr.
        assert ("session_end", 3) == (end["event"], end["records_dropped"])
