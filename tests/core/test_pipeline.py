"""The record path: record fields, kinds routed to their streams, emit()."""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

import structlog_belog as belog
from structlog_belog.core import config as _config
from structlog_belog.core import context as _context
from structlog_belog.core import pipeline as _pipeline
from structlog_belog.core.pipeline import format_timestamp, normalize_level
from structlog_belog.core.state import emit
from structlog_belog.processors import add_session
from tests.conftest import read_jsonl

TIMESTAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


def _stream(run: belog.Run, stream: str) -> list[dict[str, Any]]:
    assert run.directory is not None
    return read_jsonl(run.directory / f"{stream}.jsonl")


def _plain(run: belog.Run) -> list[dict[str, Any]]:
    return [r for r in _stream(run, "processing") if "kind" not in r]


class _Observer:
    """A TaskObserver that remembers the error records it is told about."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.errors: list[str] = []

    def note_error(self, event_dict: Any) -> None:
        self.errors.append(event_dict["event"])

    def note_call(self, record: Any) -> None:
        """Unused here."""

    def note_record(self, event_dict: Any) -> None:
        """Unused here."""


class TestRecordFields:
    def test_structlog_record(self, belog_config: _config.Config) -> None:
        """A structlog record has timestamp, lower-case level, logger, event, session_id."""
        with belog.session("fields", package=False) as run:
            structlog.get_logger("app.mod").warning("something", rows=3)
        (record,) = _plain(run)

        assert ["timestamp", "level", "logger", "event", "session_id", "rows"] <= sorted(
            record, key=["timestamp", "level", "logger", "event", "session_id", "rows"].index
        )
        assert ("warning", "app.mod", "something", run.id, 3) == (
            record["level"],
            record["logger"],
            record["event"],
            record["session_id"],
            record["rows"],
        )
        assert record["timestamp"] == (
            m.group(0) if (m := TIMESTAMP_RE.fullmatch(record["timestamp"])) else None
        )
        assert "pid" not in record

    def test_structlog_positional_args(self, belog_config: _config.Config) -> None:
        """structlog %-style positional arguments are applied to the event."""
        with belog.session("args", package=False) as run:
            structlog.get_logger().info("loaded %d rows from %s", 3, "a.csv")

        assert ["loaded 3 rows from a.csv"] == [r["event"] for r in _plain(run)]

    def test_structlog_exception(self, belog_config: _config.Config) -> None:
        """log.exception() and exc_info=True write the traceback at level error."""
        with belog.session("exc", package=False) as run:
            try:
                1 / 0  # noqa: B018
            except ZeroDivisionError:
                structlog.get_logger().exception("boom")
                structlog.get_logger().warning("warned", exc_info=True)
        records = _plain(run)

        assert [("boom", "error"), ("warned", "warning")] == [
            (r["event"], r["level"]) for r in records
        ]
        assert ["ZeroDivisionError: division by zero"] * 2 == [
            r["exception"].splitlines()[-1] for r in records
        ]
        assert [False, False] == ["exc_info" in r for r in records]

    def test_exception_instance_as_exc_info(self, belog_config: _config.Config) -> None:
        """exc_info may be an exception instance."""
        with belog.session("exc-inst", package=False) as run:
            structlog.get_logger().error("failed", exc_info=ValueError("bad"))

        assert ["ValueError: bad"] == [r["exception"].splitlines()[-1] for r in _plain(run)]

    def test_task_name_and_errors(self, belog_config: _config.Config) -> None:
        """Records inside a task carry its name; error records are reported to it."""
        observer = _Observer("summarise")
        with belog.session("task", package=False) as run:
            token = _context.push(task=observer)
            try:
                structlog.get_logger().info("fine")
                structlog.get_logger().error("went wrong")
                structlog.get_logger().critical("worse")
            finally:
                _context.reset(token)

        assert ["summarise"] * 3 == [r["task"] for r in _plain(run)]
        assert ["went wrong", "worse"] == observer.errors


class TestKinds:
    def test_llm_call_goes_to_prompts_with_reference(self, belog_config: _config.Config) -> None:
        """kind=llm_call is written to prompts.jsonl, with a compact reference in processing."""
        with belog.session("llm", package=False) as run:
            emit(
                "llm_call",
                kind="llm_call",
                call_id="call_1",
                model="gpt-4",
                request={"messages": [{"role": "user", "content": "hi"}]},
                status="ok",
            )
        (full,) = _stream(run, "prompts")
        (ref,) = [r for r in _stream(run, "processing") if r.get("kind") == "llm_call"]

        assert ({"messages": [{"role": "user", "content": "hi"}]}, run.id) == (
            full["request"],
            full["session_id"],
        )
        assert ("prompts", "call_1", "gpt-4", "ok", False) == (
            ref["ref"],
            ref["call_id"],
            ref["model"],
            ref["status"],
            "request" in ref,
        )

    def test_belog_goes_to_belog_file(self, belog_config: _config.Config) -> None:
        """kind=belog is written to belog.jsonl, with a reference in processing."""
        with belog.session("belog", package=False) as run:
            emit("belog", kind="belog", task_name="t", success=True, files_changed=["a"])
        (full,) = _stream(run, "belog")
        (ref,) = [r for r in _stream(run, "processing") if r.get("kind") == "belog"]

        assert (["a"], "t") == (full["files_changed"], full["task_name"])
        assert ("belog", "t", True, False) == (
            ref["ref"],
            ref["task_name"],
            ref["success"],
            "files_changed" in ref,
        )

    @pytest.mark.parametrize("redact", [True, False])
    def test_long_record_rendered_again_only_when_cut(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redact: bool
    ) -> None:
        """A line over the cap is rendered a second time only when the truncator cut a value.

        With redaction on, the redactor has already cut long strings to the same
        cap, so the truncator has nothing left to cut.
        """
        belog.configure(log_dir=tmp_path, console=False, handle_signals=False, redact=redact)
        renders: list[int] = []
        real = _pipeline.render_jsonl

        def counting(logger: Any, name: str, event_dict: Any, *, finite: bool = False) -> bytes:
            line = real(logger, name, event_dict, finite=finite)
            renders.append(len(line))
            return line

        monkeypatch.setattr(_pipeline, "render_jsonl", counting)
        many = {f"field_{i}": "x" * 1000 for i in range(200)}  # ~200 KB, no value over 128 KB
        with belog.session("long", package=False) as run:
            renders.clear()
            structlog.get_logger("app").info("many", **many)
            many_renders = list(renders)
            renders.clear()
            structlog.get_logger("app").info("one", blob="y" * 200_000)
            one_renders = list(renders)
        many_line, one_line = _plain(run)

        assert 1 == len(many_renders)  # long, nothing to cut: written as first rendered
        assert many == {k: many_line[k] for k in many}
        assert (1 if redact else 2) == len(one_renders)
        assert one_renders[-1] <= 131_072 + 1000
        assert "...[truncated 200000 chars, sha256:" in one_line["blob"]

    def test_vetted_record_with_a_non_finite_context_field(
        self, belog_config: _config.Config
    ) -> None:
        """A vetted record skips the NaN search, except for what the context merged into it."""
        from structlog_belog.core.vetted import Vetted

        pipeline = _config._STATE.pipeline
        assert pipeline is not None
        with belog.session("nan", package=False) as run:
            record = {"event": "vetted", "kind": "custom_kind", "part": Vetted(n=1.5)}
            pipeline.process(dict(record), "info", 0.0, vetted=True)
            with belog.bound(ratio=float("nan"), big=float("inf")):
                pipeline.process(dict(record), "info", 0.0, vetted=True)
        plain, bound = [r for r in _stream(run, "processing") if r["event"] == "vetted"]
        assert ({"n": 1.5}, "ratio" in plain) == (plain["part"], False)
        assert ("NaN", "Infinity", {"n": 1.5}) == (bound["ratio"], bound["big"], bound["part"])

    def test_other_kinds_stay_in_processing(self, belog_config: _config.Config) -> None:
        """Kinds other than llm_call and belog only go to processing.jsonl."""
        with belog.session("kinds", package=False) as run:
            emit("custom", kind="custom_kind", x=1)
        assert run.directory is not None

        assert ["custom_kind"] == [
            r["kind"] for r in _stream(run, "processing") if r["event"] == "custom"
        ]
        assert ["processing.jsonl"] == sorted(p.name for p in run.directory.iterdir())


class TestEmit:
    def test_configures_on_first_use(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """emit() before configure() configures with defaults (BELOG_DIR) and writes."""
        monkeypatch.setenv("BELOG_DIR", str(tmp_path / "auto"))
        emit("auto", level="warning", logger="me", n=1)
        config = belog.get_config()
        assert config is not None

        assert [("auto", "warning", "me", 1)] == [
            (r["event"], r["level"], r["logger"], r["n"])
            for r in read_jsonl(tmp_path / "auto" / f"{config.app_name}.jsonl")
        ]

    def test_never_raises(self, belog_config: _config.Config) -> None:
        """emit() with a value orjson cannot take returns normally."""

        class Hostile:
            def __repr__(self) -> str:
                raise RuntimeError("no repr")

        assert None is emit("hostile", value=Hostile())


class TestHelpers:
    @pytest.mark.parametrize(
        ("given", "expected"),
        [("msg", "info"), ("WARN", "warning"), ("exception", "error"), ("fatal", "critical")],
    )
    def test_normalize_level(self, given: str, expected: str) -> None:
        """structlog method names and stdlib level names map to record levels."""
        assert expected == normalize_level(given)

    def test_format_timestamp(self) -> None:
        """Timestamps are UTC ISO 8601 with microseconds and Z."""
        assert "2025-01-18T17:30:00.250000Z" == format_timestamp(1737221400.25)
        assert "2025-01-18T17:30:01.000001Z" == format_timestamp(1737221401.000001)
        assert "2025-01-18T17:30:02.000000Z" == format_timestamp(1737221401.9999999)

    @given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
    def test_format_timestamp_matches_datetime(self, t: float) -> None:
        """format_timestamp agrees with datetime's UTC rendering to the microsecond."""
        expected = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

        assert expected == format_timestamp(t)


class TestAddSession:
    @pytest.fixture
    def chain(self) -> Iterator[io.BytesIO]:
        """A hand-made structlog chain using add_session, writing JSON lines to memory."""
        out = io.BytesIO()
        structlog.configure(
            processors=[
                add_session,
                structlog.processors.add_log_level,
                structlog.processors.JSONRenderer(serializer=orjson.dumps),
            ],
            logger_factory=structlog.BytesLoggerFactory(out),
        )
        try:
            yield out
        finally:
            structlog.reset_defaults()

    @staticmethod
    def _lines(out: io.BytesIO) -> list[dict[str, Any]]:
        return [json.loads(line) for line in out.getvalue().splitlines()]

    def test_in_hand_made_chain(
        self, chain: io.BytesIO, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """add_session adds session, stage and bound fields; session() keeps the app's chain."""
        monkeypatch.setenv("BELOG_DIR", str(tmp_path / "logs"))
        log = structlog.get_logger()
        log.info("before")
        with (
            belog.session("hand", package=False) as run,
            run.stage("s1"),
            belog.bound(user="ana"),
        ):
            log.info("inside")

        assert [
            {"event": "before", "level": "info", "session_id": None},
            {
                "event": "inside",
                "level": "info",
                "session_id": run.id,
                "stage": "s1",
                "user": "ana",
            },
        ] == self._lines(chain)

    def test_sole_session_attribution(
        self, chain: io.BytesIO, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """add_session attributes a context-less record to the sole open session, marked."""
        monkeypatch.setenv("BELOG_DIR", str(tmp_path / "logs"))
        with belog.session("sole", package=False) as run:
            t = threading.Thread(target=lambda: structlog.get_logger().info("orphan"))
            t.start()
            t.join()

        assert [
            {"event": "orphan", "level": "info", "session_id": run.id, "attributed": "sole_session"}
        ] == self._lines(chain)

    def test_reset_leaves_app_chain(
        self, chain: io.BytesIO, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Undoing an implicit configure() leaves the app's structlog setup as it was."""
        monkeypatch.setenv("BELOG_DIR", str(tmp_path / "logs"))
        emit("configures implicitly")
        _config.reset()
        structlog.get_logger().info("still mine")

        assert ["still mine"] == [r["event"] for r in self._lines(chain)]
