"""structlog_belog.testing.capture_session: records of a block, in memory."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import structlog

import structlog_belog as belog
from structlog_belog.core import config as _config
from structlog_belog.core.state import emit
from structlog_belog.testing import capture_session
from tests.conftest import read_jsonl


class TestCaptureSession:
    def test_captures_structlog_and_stdlib(self, belog_config: _config.Config) -> None:
        """structlog and stdlib records of the block are captured with their session."""
        with capture_session() as cap, belog.session("cap", package=False) as run:
            structlog.get_logger("sl").info("from structlog", n=1)
            logging.getLogger("urllib3.pool").warning("from stdlib %s", "lib")

        assert [
            ("session_start", run.id),
            ("from structlog", run.id),
            ("from stdlib lib", run.id),
            ("session_end", run.id),
        ] == [(r["event"], r["session_id"]) for r in cap.records]
        assert ["session_start", "from structlog", "from stdlib lib", "session_end"] == cap.events()

    def test_logger_cached_before_capture(self, belog_config: _config.Config) -> None:
        """A structlog logger cached before the capture is captured too."""
        log = structlog.get_logger("cached")
        log.info("warm up")
        with capture_session() as cap:
            log.info("captured")

        assert ["captured"] == cap.events()

    def test_records_still_written(self, belog_config: _config.Config) -> None:
        """Captured records are also written to the files."""
        with capture_session() as cap:
            structlog.get_logger().info("both")

        assert [r["event"] for r in cap.records] == [
            r["event"] for r in read_jsonl(belog_config.log_dir / f"{belog_config.app_name}.jsonl")
        ]

    def test_stops_after_block(self, belog_config: _config.Config) -> None:
        """Records after the block are not captured."""
        with capture_session() as cap:
            structlog.get_logger().info("in")
        structlog.get_logger().info("out")

        assert ["in"] == cap.events()

    def test_nested_captures(self, belog_config: _config.Config) -> None:
        """Nested captures each see the records of their own block."""
        with capture_session() as outer:
            structlog.get_logger().info("one")
            with capture_session() as inner:
                structlog.get_logger().info("two")

        assert (["one", "two"], ["two"]) == (outer.events(), inner.events())

    def test_survives_reconfigure(self, tmp_path: Path) -> None:
        """A configure() inside the block keeps capturing."""
        belog.configure(log_dir=tmp_path / "a", console=False, handle_signals=False)
        with capture_session() as cap:
            structlog.get_logger().info("before")
            belog.configure(log_dir=tmp_path / "b", console=False, handle_signals=False)
            structlog.get_logger().info("after")

        assert ["before", "after"] == cap.events()

    def test_configures_when_needed(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """capture_session() before configure() configures with defaults."""
        monkeypatch.setenv("BELOG_DIR", str(tmp_path / "logs"))
        with capture_session() as cap:
            structlog.get_logger().info("auto")

        assert ["auto"] == cap.events()
        assert tmp_path / "logs" == belog.get_config().log_dir  # type: ignore[union-attr]

    def test_records_are_copies(self, belog_config: _config.Config) -> None:
        """Changing a logged value after the call does not change the captured record."""
        data = {"k": [1]}
        with capture_session() as cap:
            structlog.get_logger().info("copy", data=data)
        data["k"].append(2)

        assert {"k": [1]} == cap.records[0]["data"]

    def test_kinds(self, belog_config: _config.Config) -> None:
        """calls, belogs and of_kind select records by kind."""
        with capture_session() as cap, belog.session("kinds", package=False):
            emit("llm_call", kind="llm_call", call_id="c1")
            emit("belog", kind="belog", task_name="t")

        assert (["c1"], ["t"], ["session_start"]) == (
            [r["call_id"] for r in cap.calls],
            [r["task_name"] for r in cap.belogs],
            [r["event"] for r in cap.of_kind("session_start")],
        )
        assert "<Capture records=4>" == repr(cap)
