"""The stdlib bridge: SessionHandler, JsonFormatter, and third-party loggers."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from pathlib import Path

import pytest

import structlog_belog as belog
from structlog_belog.core import config as _config
from structlog_belog.stdlib import JsonFormatter, SessionHandler
from tests.conftest import read_jsonl

EARLY = logging.getLogger("thirdparty.created_at_import")


def _records(run: belog.Run) -> list[dict[str, object]]:
    assert run.directory is not None
    return read_jsonl(run.directory / "processing.jsonl")


def _plain(run: belog.Run) -> list[dict[str, object]]:
    """The records of a run that are not lifecycle records."""
    return [r for r in _records(run) if "kind" not in r]


class TestSessionHandler:
    @pytest.mark.usefixtures("belog_config")
    def test_third_party_loggers_get_session_id(self) -> None:
        """Library-named loggers, one created before configure(), carry the session ID."""
        with belog.session("thirdparty", package=False) as run:
            logging.getLogger("urllib3.connectionpool").info("Starting new HTTPS connection")
            logging.getLogger("httpx").warning("retrying")
            EARLY.error("early logger")
            logging.getLogger().info("root itself")

        assert [
            ("urllib3.connectionpool", "info", "Starting new HTTPS connection", run.id),
            ("httpx", "warning", "retrying", run.id),
            ("thirdparty.created_at_import", "error", "early logger", run.id),
            ("root", "info", "root itself", run.id),
        ] == [(r["logger"], r["level"], r["event"], r["session_id"]) for r in _plain(run)]

    @pytest.mark.usefixtures("belog_config")
    def test_percent_args_are_applied(self) -> None:
        """%-style arguments are merged into the message."""
        with belog.session("args", package=False) as run:
            logging.getLogger("lib").info("parsed %s in %d ms", "content.md", 12)

        assert ["parsed content.md in 12 ms"] == [r["event"] for r in _plain(run)]

    @pytest.mark.usefixtures("belog_config")
    def test_extra_fields_become_record_fields(self) -> None:
        """extra= fields are top-level fields of the record; LogRecord internals are not."""
        with belog.session("extra", package=False) as run:
            logging.getLogger("lib").info("with extra", extra={"user": "ana", "rows": 3})

        (record,) = _plain(run)
        assert ("ana", 3) == (record["user"], record["rows"])
        assert set() == {"args", "msg", "levelno", "lineno", "thread", "funcName"} & set(record)

    @pytest.mark.usefixtures("belog_config")
    def test_extra_cannot_replace_message(self) -> None:
        """An extra= named `event` does not replace the logged message."""
        with belog.session("extra-event", package=False) as run:
            logging.getLogger("lib").info("user logged in", extra={"event": "login", "n": 1})

        assert [("user logged in", 1)] == [(r["event"], r["n"]) for r in _plain(run)]

    @pytest.mark.usefixtures("belog_config")
    def test_unformattable_message_is_kept(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A message whose %-formatting raises is written with its parts, not lost."""

        class NoStr:
            def __str__(self) -> str:
                raise RuntimeError("no str")

            def __repr__(self) -> str:
                raise RuntimeError("no repr")

        # Not through the root: pytest's own capture handler fails a test on a bad format.
        lib = logging.getLogger("lib.badfmt")
        handler = SessionHandler()
        lib.addHandler(handler)
        lib.propagate = False
        try:
            with belog.session("badfmt", package=False) as run:
                lib.warning("%d items", "many")
                lib.warning("value %s", NoStr())
        finally:
            lib.removeHandler(handler)
            lib.propagate = True

        assert [
            "'%d items' % ('many',) (could not format: TypeError)",
            "'value %s' % (<unrepresentable NoStr>,) (could not format: RuntimeError)",
        ] == [r["event"] for r in _plain(run)]
        assert "" == capsys.readouterr().err

    @pytest.mark.usefixtures("belog_config")
    def test_exc_info_is_formatted_traceback(self) -> None:
        """logger.exception() writes the formatted traceback in `exception`."""
        with belog.session("exc", package=False) as run:
            try:
                {}["missing-key"]
            except KeyError:
                logging.getLogger("lib").exception("lookup failed")

        (record,) = _plain(run)
        exception = str(record["exception"])
        assert ("error", "lookup failed") == (record["level"], record["event"])
        assert exception.startswith("Traceback (most recent call last):")
        assert "KeyError: 'missing-key'" == exception.splitlines()[-1]

    @pytest.mark.usefixtures("belog_config")
    def test_stack_info(self) -> None:
        """stack_info=True keeps the stack in `stack`."""
        with belog.session("stack", package=False) as run:
            logging.getLogger("lib").warning("where", stack_info=True)

        (record,) = _plain(run)
        assert str(record["stack"]).startswith("Stack (most recent call last):")

    @pytest.mark.usefixtures("belog_config")
    def test_timestamp_is_record_creation_time(self) -> None:
        """The timestamp is the LogRecord's creation time, ISO 8601 UTC with µs and Z."""
        with belog.session("ts", package=False) as run:
            logging.getLogger("lib").info("when")

        (record,) = _plain(run)
        ts = str(record["timestamp"])
        assert (27, "Z", "T") == (len(ts), ts[-1], ts[10])

    @pytest.mark.usefixtures("belog_config")
    def test_unserializable_extra_is_written(self) -> None:
        """An extra= value JSON cannot encode is written via repr, never raised."""

        class Opaque:
            def __repr__(self) -> str:
                return "<Opaque>"

        with belog.session("opaque", package=False) as run:
            logging.getLogger("lib").info("odd value", extra={"thing": Opaque()})

        (record,) = _plain(run)
        assert "<Opaque>" == record["thing"]

    def test_dict_config_after_configure(self, belog_config: _config.Config) -> None:
        """dictConfig with SessionHandler on the root writes each record once."""
        logging.config.dictConfig(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {"belog": {"class": "structlog_belog.stdlib.SessionHandler"}},
                "root": {"handlers": ["belog"], "level": "INFO"},
            }
        )
        with belog.session("dictconfig", package=False) as run:
            logging.getLogger("lib.dc").info("via dictConfig")

        assert [("via dictConfig", run.id)] == [(r["event"], r["session_id"]) for r in _plain(run)]

    def test_dict_config_without_configure(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A dictConfig'd SessionHandler configures defaults on first use, one line per record."""
        monkeypatch.setenv("BELOG_DIR", str(tmp_path / "logs"))
        logging.config.dictConfig(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {
                    "belog": {"class": "structlog_belog.stdlib.SessionHandler", "level": "INFO"}
                },
                "root": {"handlers": ["belog"], "level": "INFO"},
            }
        )
        try:
            logging.getLogger("lib.dc").warning("first record")
            logging.getLogger("lib.dc").warning("second record")
            config = belog.get_config()
            assert config is not None
            events = [r["event"] for r in read_jsonl(config.log_dir / f"{config.app_name}.jsonl")]

            assert ["first record", "second record"] == events
            assert 1 == sum(isinstance(h, SessionHandler) for h in logging.getLogger().handlers)
        finally:
            for h in list(logging.getLogger().handlers):
                if isinstance(h, SessionHandler):
                    logging.getLogger().removeHandler(h)

    def test_handler_filter_applies(self, tmp_path: Path) -> None:
        """Filters on a SessionHandler are honoured."""
        belog.configure(
            log_dir=tmp_path / "logs", console=False, handle_signals=False, capture_stdlib=False
        )
        handler = SessionHandler()
        handler.addFilter(lambda r: "keep" in r.getMessage())
        lib = logging.getLogger("lib.filtered")
        lib.addHandler(handler)
        lib.setLevel(logging.INFO)
        try:
            with belog.session("filtered", package=False) as run:
                lib.info("keep me")
                lib.info("drop me")
        finally:
            lib.removeHandler(handler)
            lib.setLevel(logging.NOTSET)

        assert ["keep me"] == [r["event"] for r in _plain(run)]


class TestJsonFormatter:
    @pytest.mark.usefixtures("belog_config")
    def test_adds_session_fields_on_app_handler(self) -> None:
        """An app-owned handler with JsonFormatter gets session_id, stage and bound fields."""
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter("%(levelname)s %(name)s %(message)s"))
        lib = logging.getLogger("app.own")
        lib.addHandler(handler)
        try:
            with (
                belog.session("jsonfmt", package=False) as run,
                run.stage("prep"),
                belog.bound(request_id="r-1"),
            ):
                lib.warning("formatted %s", "here", extra={"n": 1})
        finally:
            lib.removeHandler(handler)
        (line,) = stream.getvalue().splitlines()
        data = json.loads(line)

        assert {
            "levelname": "WARNING",
            "name": "app.own",
            "message": "formatted here",
            "n": 1,
            "session_id": run.id,
            "stage": "prep",
            "request_id": "r-1",
        } == {k: v for k, v in data.items() if k != "timestamp"}
        assert str(data["timestamp"]).endswith("Z")

    @pytest.mark.usefixtures("belog_config")
    def test_outside_session_session_id_is_null(self) -> None:
        """Outside any session the formatter writes session_id null."""
        formatter = JsonFormatter()
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "plain", None, None)

        assert None is json.loads(formatter.format(record))["session_id"]
