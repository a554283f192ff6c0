"""Threads: propagate, ThreadPoolExecutor, sole-session attribution, session_env."""

from __future__ import annotations

import contextvars
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
import structlog

import structlog_belog as belog
from structlog_belog.core import config as _config
from structlog_belog.core import context as _context
from tests.conftest import read_jsonl


def _records(run: belog.Run) -> list[dict[str, Any]]:
    assert run.directory is not None
    return read_jsonl(run.directory / "processing.jsonl")


def _global(config: _config.Config) -> list[dict[str, Any]]:
    path = config.log_dir / f"{config.app_name}.jsonl"
    return read_jsonl(path) if path.exists() else []


def _session_files(config: _config.Config) -> list[Path]:
    return sorted((config.log_dir / "sessions").glob("*/*"))


class TestPropagate:
    def test_thread_target_keeps_session_and_stage(self, belog_config: _config.Config) -> None:
        """A propagate()d thread target logs in the session and stage it was wrapped in."""

        def work() -> None:
            structlog.get_logger().info("from thread")
            logging.getLogger("lib").info("stdlib from thread")

        with belog.session("prop", package=False) as run, run.stage("fanout"):
            with belog.session("other", package=False):
                pass
            t = threading.Thread(target=belog.propagate(work))
            t.start()
            t.join()
        records = [r for r in _records(run) if r["event"].endswith("from thread")]

        assert [("from thread", "fanout"), ("stdlib from thread", "fanout")] == [
            (r["event"], r["stage"]) for r in records
        ]
        assert [False, False] == ["attributed" in r for r in records]

    def test_eight_threads_two_sessions(self, belog_config: _config.Config) -> None:
        """8 propagate()d threads, half per session, each write only to their session."""

        def work(marker: str) -> None:
            for i in range(100):
                structlog.get_logger().info("rec", marker=marker, i=i)
                logging.getLogger("lib").info("std", extra={"marker": marker})

        # Both sessions open at once, each in its own context.
        contexts = {name: contextvars.copy_context() for name in "AB"}
        runs = {
            name: ctx.run(belog.session(name, package=False).__enter__)
            for name, ctx in contexts.items()
        }
        threads = [
            threading.Thread(target=contexts[name].run(belog.propagate, work), args=(name,))
            for name in "AABBABAB"
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for name, ctx in contexts.items():
            ctx.run(runs[name].__exit__, None, None, None)
        a, b = runs["A"], runs["B"]
        markers = {
            name: [r["marker"] for r in _records(run) if "kind" not in r]
            for name, run in (("A", a), ("B", b))
        }

        assert {"A": ["A"] * 800, "B": ["B"] * 800} == markers

    def test_calls_do_not_share_context(self, belog_config: _config.Config) -> None:
        """bind() inside one propagated call does not leak into the next call."""
        seen: list[dict[str, Any]] = []

        def work(n: int) -> None:
            seen.append(dict(_context.current().fields))
            belog.bind(n=n)

        with belog.session("iso", package=False), belog.bound(base=0):
            wrapped = belog.propagate(work)
            wrapped(1)
            wrapped(2)

        assert [{"base": 0}, {"base": 0}] == seen

    def test_not_callable(self) -> None:
        """propagate() of a non-callable raises TypeError naming fn."""
        with pytest.raises(TypeError, match=r"^fn"):
            belog.propagate(3)  # type: ignore[arg-type]


class TestThreadPoolExecutor:
    def test_eight_threads_many_sessions_never_misroute(self, belog_config: _config.Config) -> None:
        """Records from 8 sessions each fanning out to a pool never land in another's file."""

        def leaf(marker: str, i: int) -> None:
            structlog.get_logger("leaf").info("leaf", marker=marker, i=i)
            logging.getLogger("lib.leaf").info("std leaf", extra={"marker": marker})

        def run_session(n: int) -> str:
            marker = f"s{n}"
            with belog.session(marker, package=False) as run, belog.bound(marker=marker):
                with belog.ThreadPoolExecutor(max_workers=4) as pool:
                    list(pool.map(leaf, [marker] * 50, range(50)))
                    for f in [pool.submit(leaf, marker, i) for i in range(50)]:
                        f.result()
                structlog.get_logger().info("done")
            return run.id

        with belog.ThreadPoolExecutor(max_workers=8) as outer:
            ids = list(outer.map(run_session, range(8)))
        expected = {sid: f"s{n}" for n, sid in enumerate(ids)}
        wrong = []
        counts = {}
        for path in _session_files(belog_config):
            sid = path.parent.name
            lines = read_jsonl(path)
            counts[expected[sid]] = sum(1 for r in lines if r["event"] in ("leaf", "std leaf"))
            for r in lines:
                misplaced = "kind" not in r and r["marker"] != expected[sid]
                if r["session_id"] != sid or misplaced:
                    wrong.append(r)

        assert [] == wrong
        assert {f"s{n}": 200 for n in range(8)} == counts
        assert sorted(f"{sid}/processing.jsonl" for sid in ids) == [
            f"{p.parent.name}/{p.name}" for p in _session_files(belog_config)
        ]
        assert [] == [r for r in _global(belog_config) if "kind" not in r]

    def test_outside_session_stays_global(self, belog_config: _config.Config) -> None:
        """Pool tasks submitted outside any session go to the global file."""
        with belog.ThreadPoolExecutor(max_workers=2) as pool:
            pool.submit(structlog.get_logger().info, "no session").result()

        assert [("no session", None)] == [
            (r["event"], r["session_id"]) for r in _global(belog_config)
        ]


class TestSoleSession:
    def test_plain_thread_attributed_to_sole_session(self, belog_config: _config.Config) -> None:
        """With one open session, a plain thread's record joins it, marked sole_session."""
        with belog.session("sole", package=False) as run:
            t = threading.Thread(target=lambda: logging.getLogger("lib").info("orphan"))
            t.start()
            t.join()
        (record,) = [r for r in _records(run) if r["event"] == "orphan"]

        assert (run.id, "sole_session") == (record["session_id"], record["attributed"])
        assert [] == [r for r in _global(belog_config) if r["event"] == "orphan"]

    def test_two_open_sessions_go_global(self, belog_config: _config.Config) -> None:
        """With two open sessions, a plain thread's record goes to the global file."""
        with belog.session("a", package=False) as a, belog.session("b", package=False) as b:
            t = threading.Thread(target=lambda: structlog.get_logger().info("orphan"))
            t.start()
            t.join()
        orphans = [r for r in _global(belog_config) if r["event"] == "orphan"]

        assert [(None, False)] == [(r["session_id"], "attributed" in r) for r in orphans]
        assert [] == [r for r in _records(a) + _records(b) if r["event"] == "orphan"]

    def test_no_open_session_goes_global(self, belog_config: _config.Config) -> None:
        """With no open session, a plain thread's record is global and unmarked."""
        t = threading.Thread(target=lambda: structlog.get_logger().info("alone"))
        t.start()
        t.join()

        assert [("alone", None, False)] == [
            (r["event"], r["session_id"], "attributed" in r) for r in _global(belog_config)
        ]


class TestSessionEnv:
    def test_inside_session(self, belog_config: _config.Config) -> None:
        """session_env() names the log folder, the session, its pid and title."""
        with belog.session("env", package=False) as run:
            env = belog.session_env()

        assert {
            "BELOG_DIR": str(belog_config.log_dir),
            "BELOG_PACKAGE_DIR": str(belog_config.package_dir),
            "BELOG_SESSION_ID": run.id,
            "BELOG_SESSION_PID": str(run.pid),
            "BELOG_SESSION_TITLE": "env",
        } == env

    def test_outside_session(self, belog_config: _config.Config) -> None:
        """Outside a session, session_env() passes only the folders on."""
        assert {
            "BELOG_DIR": str(belog_config.log_dir),
            "BELOG_PACKAGE_DIR": str(belog_config.package_dir),
        } == belog.session_env()
