"""configure(): arguments, environment, idempotence, and what it leaves alone."""

from __future__ import annotations

import logging
import os
import pty
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import structlog

import structlog_belog as belog
from structlog_belog.audit.fake_llm import fake_openai_client
from structlog_belog.core import config as _config
from structlog_belog.core.state import emit
from structlog_belog.stdlib import SessionHandler
from tests.conftest import read_jsonl, run_python


def _session_handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, SessionHandler)]


class TestConfigure:
    def test_returns_active_config(self, tmp_path: Path) -> None:
        """configure() returns the Config that get_config() then reports."""
        config = belog.configure(log_dir=tmp_path / "logs", console=False, handle_signals=False)

        assert config is belog.get_config()
        assert (tmp_path / "logs").absolute() == config.log_dir
        assert "INFO" == config.level
        assert "record" == config.durability

    def test_twice_installs_one_handler(self, tmp_path: Path) -> None:
        """A second configure() replaces the handler instead of adding one."""
        belog.configure(log_dir=tmp_path / "a", console=False, handle_signals=False)
        belog.configure(log_dir=tmp_path / "b", console=False, handle_signals=False)

        assert 1 == len(_session_handlers())

    def test_twice_writes_each_record_once(self, tmp_path: Path) -> None:
        """After two configure() calls a record is written once, to the new log_dir."""
        belog.configure(log_dir=tmp_path / "logs", console=False, handle_signals=False)
        belog.configure(
            log_dir=tmp_path / "logs", console=False, handle_signals=False, app_name="app"
        )
        logging.getLogger("lib.twice").warning("stdlib once")
        structlog.get_logger("mine").info("structlog once")

        events = [r["event"] for r in read_jsonl(tmp_path / "logs" / "app.jsonl")]
        assert ["stdlib once", "structlog once"] == events

    def test_reconfigure_moves_cached_structlog_logger(self, tmp_path: Path) -> None:
        """A structlog logger cached under the first config writes to the second log_dir."""
        belog.configure(log_dir=tmp_path / "a", console=False, handle_signals=False, app_name="x")
        log = structlog.get_logger("cached")
        log.info("first")
        belog.configure(log_dir=tmp_path / "b", console=False, handle_signals=False, app_name="x")
        log.info("second")

        assert ["first"] == [r["event"] for r in read_jsonl(tmp_path / "a" / "x.jsonl")]
        assert ["second"] == [r["event"] for r in read_jsonl(tmp_path / "b" / "x.jsonl")]

    def test_cached_structlog_logger_follows_level(self, tmp_path: Path) -> None:
        """A structlog logger cached under one level obeys a later configure()'s level."""
        kwargs: dict[str, Any] = {
            "log_dir": tmp_path / "logs",
            "console": False,
            "handle_signals": False,
            "app_name": "app",
        }
        belog.configure(**kwargs)
        log = structlog.get_logger("cached")
        log.info("cached at info")
        belog.configure(level="WARNING", **kwargs)
        log.info("filtered at warning")
        log.bind(x=1).info("bound, filtered at warning")
        belog.configure(level="DEBUG", **kwargs)
        log.debug("written at debug")

        assert ["cached at info", "written at debug"] == [
            r["event"] for r in read_jsonl(tmp_path / "logs" / "app.jsonl")
        ]
        assert (True, 10) == (log.is_enabled_for(logging.DEBUG), log.get_effective_level())

    def test_structlog_logger_used_before_configure(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A module-level structlog logger used before configure() writes to the file after."""
        log = structlog.get_logger("early")
        log.info("before configure")
        capsys.readouterr()
        belog.configure(
            log_dir=tmp_path / "logs", console=False, handle_signals=False, app_name="app"
        )
        log.info("after configure")

        assert [("after configure", "early")] == [
            (r["event"], r["logger"]) for r in read_jsonl(tmp_path / "logs" / "app.jsonl")
        ]

    def test_keeps_app_handlers(self, tmp_path: Path) -> None:
        """The application's own root handler survives configure() and still gets records."""
        seen: list[str] = []

        class AppHandler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                seen.append(record.getMessage())

        app_handler = AppHandler()
        root = logging.getLogger()
        root.addHandler(app_handler)
        try:
            belog.configure(log_dir=tmp_path / "logs", console=False, handle_signals=False)
            belog.configure(log_dir=tmp_path / "logs", console=False, handle_signals=False)
            logging.getLogger("app.module").warning("to both")

            assert app_handler in root.handlers
            assert ["to both"] == seen
        finally:
            root.removeHandler(app_handler)

    def test_leaves_library_loggers_enabled(self, tmp_path: Path) -> None:
        """Loggers created before configure() stay enabled and keep their level."""
        early = logging.getLogger("somelib.early")
        early.setLevel(logging.WARNING)
        belog.configure(log_dir=tmp_path / "logs", console=False, handle_signals=False)

        assert False is early.disabled
        assert logging.WARNING == early.level

    def test_reset_removes_handler_and_restores_root_level(self, tmp_path: Path) -> None:
        """reset() removes the installed handler and restores the root level."""
        root = logging.getLogger()
        before = root.level
        belog.configure(
            log_dir=tmp_path / "logs", level="DEBUG", console=False, handle_signals=False
        )
        _config.reset()

        assert [] == _session_handlers()
        assert before == root.level
        assert None is belog.get_config()

    def test_capture_stdlib_false_installs_no_handler(self, tmp_path: Path) -> None:
        """capture_stdlib=False leaves the root logger without a SessionHandler."""
        belog.configure(
            log_dir=tmp_path / "logs", console=False, handle_signals=False, capture_stdlib=False
        )

        assert [] == _session_handlers()

    def test_reconfigure_without_capture_removes_handler(self, tmp_path: Path) -> None:
        """configure(capture_stdlib=False) after a capturing configure() removes its handler."""
        belog.configure(log_dir=tmp_path / "logs", console=False, handle_signals=False)
        belog.configure(
            log_dir=tmp_path / "logs", console=False, handle_signals=False, capture_stdlib=False
        )

        assert [] == _session_handlers()

    def test_level_filters_structlog_and_stdlib(self, tmp_path: Path) -> None:
        """Records below the configured level are written by neither path."""
        belog.configure(
            log_dir=tmp_path / "logs",
            level="WARNING",
            console=False,
            handle_signals=False,
            app_name="app",
        )
        structlog.get_logger().info("sl info")
        structlog.get_logger().warning("sl warning")
        logging.getLogger("lib").info("std info")
        logging.getLogger("lib").error("std error")

        events = [r["event"] for r in read_jsonl(tmp_path / "logs" / "app.jsonl")]
        assert ["sl warning", "std error"] == events

    def test_console_writes_pretty_lines_to_stderr(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """console=True prints records on stderr while the file stays JSONL."""
        belog.configure(
            log_dir=tmp_path / "logs", console=True, handle_signals=False, app_name="app"
        )
        structlog.get_logger().info("on the console", answer=42)

        err = capsys.readouterr().err
        assert "on the console" in err
        assert "answer" in err
        assert [{"answer": 42, "event": "on the console"}] == [
            {"answer": r["answer"], "event": r["event"]}
            for r in read_jsonl(tmp_path / "logs" / "app.jsonl")
        ]

    def test_console_shows_a_call_as_its_reference(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An llm_call record is one short console line (call, model, status); the prompt is not."""
        belog.configure(log_dir=tmp_path / "logs", console=True, handle_signals=False)
        client = belog.instrument_openai(fake_openai_client())
        with belog.session("console", package=False) as run:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "a long story prompt"}]
            )
        err = capsys.readouterr().err
        [record] = read_jsonl(run.directory / "prompts.jsonl")  # type: ignore[operator]
        [line] = [line for line in err.splitlines() if "llm_call" in line]
        assert record["call_id"] in line
        assert "ref=prompts" in line
        assert "a long story prompt" not in err
        assert "a long story prompt" == record["request"]["messages"][0]["content"]

    def test_console_on_by_default_on_a_tty(
        self, tmp_path: Path, subprocess_env: dict[str, str]
    ) -> None:
        """With stderr a terminal, configure() prints pretty lines there; the file stays JSONL."""
        script = (
            "import sys, structlog, structlog_belog as belog\n"
            "belog.configure(log_dir=sys.argv[1], app_name='app')\n"
            "structlog.get_logger().info('to the terminal', answer=42)\n"
        )
        leader, follower = pty.openpty()
        try:
            proc = subprocess.run(
                [sys.executable, "-c", script, str(tmp_path / "logs")],
                env=subprocess_env,
                stderr=follower,
                timeout=60,
                check=False,
            )
            os.close(follower)
            follower = -1
            out = b""
            while True:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # EIO: the terminal has no writer left
                    break
                if not chunk:
                    break
                out += chunk
        finally:
            os.close(leader)
            if follower != -1:
                os.close(follower)
        text = out.decode(errors="replace")

        assert 0 == proc.returncode
        pretty = "to the terminal" in text and "answer" in text
        assert (True, False) == (pretty, text.lstrip().startswith("{"))
        assert [("to the terminal", 42)] == [
            (r["event"], r["answer"]) for r in read_jsonl(tmp_path / "logs" / "app.jsonl")
        ]


class TestEnvironment:
    def test_belog_dir(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """BELOG_DIR is the default log_dir."""
        monkeypatch.setenv("BELOG_DIR", str(tmp_path / "from_env"))

        config = belog.configure(console=False, handle_signals=False)

        assert tmp_path / "from_env" == config.log_dir
        assert True is (tmp_path / "from_env").is_dir()

    def test_argument_beats_belog_dir(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An explicit log_dir wins over BELOG_DIR."""
        monkeypatch.setenv("BELOG_DIR", str(tmp_path / "from_env"))

        config = belog.configure(log_dir=tmp_path / "arg", console=False, handle_signals=False)

        assert tmp_path / "arg" == config.log_dir

    def test_belog_level(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """BELOG_LEVEL is the default level and lets debug records through."""
        monkeypatch.setenv("BELOG_LEVEL", "debug")

        config = belog.configure(
            log_dir=tmp_path / "logs", console=False, handle_signals=False, app_name="app"
        )
        logging.getLogger("lib.deep").debug("deep detail")

        assert "DEBUG" == config.level
        assert ["deep detail"] == [r["event"] for r in read_jsonl(tmp_path / "logs" / "app.jsonl")]

    def test_belog_package_dir(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """BELOG_PACKAGE_DIR is the default package_dir."""
        monkeypatch.setenv("BELOG_PACKAGE_DIR", str(tmp_path / "pkgs"))

        config = belog.configure(log_dir=tmp_path / "logs", console=False, handle_signals=False)

        assert tmp_path / "pkgs" == config.package_dir

    def test_bad_belog_level_names_the_variable(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A bad BELOG_LEVEL raises ValueError naming the environment variable."""
        monkeypatch.setenv("BELOG_LEVEL", "chatty")

        with pytest.raises(ValueError, match=r"^level \(from \$BELOG_LEVEL\) must be one of"):
            belog.configure(log_dir=tmp_path / "logs", console=False)

    def test_belog_dir_that_is_a_file_names_the_variable(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A BELOG_DIR that is a file raises NotADirectoryError naming the variable."""
        (tmp_path / "afile").write_text("x")
        monkeypatch.setenv("BELOG_DIR", str(tmp_path / "afile"))

        with pytest.raises(NotADirectoryError, match=r"^log_dir \(from \$BELOG_DIR\) must be"):
            belog.configure(console=False)


class TestArguments:
    @pytest.mark.parametrize(
        ("kwargs", "error", "name"),
        [
            ({"level": "LOUD"}, ValueError, "level"),
            ({"level": 7}, ValueError, "level"),
            ({"durability": "sometimes"}, ValueError, "durability"),
            ({"app_name": "a/b"}, ValueError, "app_name"),
            ({"app_name": ""}, ValueError, "app_name"),
            ({"prices": [1, 2]}, TypeError, "prices"),
            ({"log_dir": 42}, TypeError, "log_dir"),
            ({"package_dir": 4.2}, TypeError, "package_dir"),
            (
                {"summary_template": "/nonexistent/summary.md.j2"},
                FileNotFoundError,
                "summary_template",
            ),
        ],
    )
    def test_bad_argument_names_it(
        self, tmp_path: Path, kwargs: dict[str, object], error: type[Exception], name: str
    ) -> None:
        """A bad argument raises an error whose message names the argument."""
        kwargs = {"log_dir": tmp_path / "logs", "console": False, **kwargs}

        with pytest.raises(error) as info:
            belog.configure(**kwargs)  # type: ignore[arg-type]

        assert str(info.value).startswith(name)

    def test_log_dir_that_is_a_file(self, tmp_path: Path) -> None:
        """A log_dir that is a file raises NotADirectoryError naming log_dir."""
        afile = tmp_path / "afile"
        afile.write_text("x")

        with pytest.raises(NotADirectoryError) as info:
            belog.configure(log_dir=afile, console=False)

        assert str(info.value).startswith("log_dir")

    def test_bad_call_keeps_previous_config(self, tmp_path: Path) -> None:
        """A configure() that fails validation leaves the previous config active."""
        config = belog.configure(log_dir=tmp_path / "logs", console=False, handle_signals=False)

        with pytest.raises(ValueError, match="level"):
            belog.configure(log_dir=tmp_path / "other", level="LOUD")

        assert config is belog.get_config()

    @pytest.mark.parametrize(("given", "expected"), [("warn", "WARNING"), (10, "DEBUG")])
    def test_level_aliases(self, tmp_path: Path, given: str | int, expected: str) -> None:
        """Levels are accepted by lower-case name, WARN, and stdlib number."""
        config = belog.configure(
            log_dir=tmp_path / "logs", level=given, console=False, handle_signals=False
        )

        assert expected == config.level


class TestFileModes:
    def test_private_under_umask_zero(self, tmp_path: Path) -> None:
        """Under umask 000, log folders are created 0700 and log files 0600."""
        old = os.umask(0)
        try:
            belog.configure(
                log_dir=tmp_path / "logs", console=False, handle_signals=False, app_name="app"
            )
            structlog.get_logger().info("outside")
            with belog.session("modes", package=False) as run:
                structlog.get_logger().info("inside")
                emit("llm_call", kind="llm_call", call_id="c1")
                emit("belog", kind="belog", task_name="t")
        finally:
            os.umask(old)
        logs = tmp_path / "logs"
        assert run.directory is not None
        folders = [logs, logs / "sessions", run.directory]
        files = [logs / "app.jsonl"] + [
            run.directory / f"{stream}.jsonl" for stream in ("processing", "prompts", "belog")
        ]

        assert [0o700] * 3 == [stat.S_IMODE(p.stat().st_mode) for p in folders]
        assert [0o600] * 4 == [stat.S_IMODE(p.stat().st_mode) for p in files]


_FMT = "%(levelname)s %(name)s %(message)s"
_APP_LOGGING = {
    "basicConfig() after": "CONFIGURE\nlogging.basicConfig(stream=sys.stdout, format=FMT)",
    "basicConfig() before": "logging.basicConfig(stream=sys.stdout, format=FMT)\nCONFIGURE",
    "basicConfig(level=DEBUG) after": (
        "CONFIGURE\nlogging.basicConfig(stream=sys.stdout, format=FMT, level=logging.DEBUG)"
    ),
    "basicConfig(force=True) after": (
        "logging.basicConfig(stream=sys.stderr)\nCONFIGURE\n"
        "logging.basicConfig(stream=sys.stdout, format=FMT, force=True)"
    ),
    "level-less handler on a named logger": (
        "h = logging.StreamHandler(sys.stdout)\nh.setFormatter(logging.Formatter(FMT))\n"
        "logging.getLogger('app').addHandler(h)\nCONFIGURE"
    ),
    "handler under a logger with its own level": (
        "h = logging.StreamHandler(sys.stdout)\nh.setFormatter(logging.Formatter(FMT))\n"
        "logging.getLogger('app').setLevel(logging.INFO)\n"
        "logging.getLogger('app').addHandler(h)\nCONFIGURE"
    ),
    "root at NOTSET": (
        "logging.getLogger().setLevel(logging.NOTSET)\n"
        "logging.basicConfig(stream=sys.stdout, format=FMT)\nCONFIGURE"
    ),
}


class TestAppLogging:
    """configure() beside the application's own stdlib logging setup."""

    def _run(self, setup: str, log_dir: Path | None, env: dict[str, str]) -> str:
        configure = (
            "pass"
            if log_dir is None
            else f"belog.configure(log_dir={str(log_dir)!r}, console=False, app_name='app')"
        )
        script = "\n".join(
            [
                "import logging, sys",
                "import structlog_belog as belog",
                f"FMT = {_FMT!r}",
                setup.replace("CONFIGURE", configure),
                "logging.getLogger('app.lib').debug('details')",
                "logging.getLogger('app.lib').info('library chatter')",
                "logging.getLogger('app').warning('disk almost full')",
            ]
        )
        return run_python(script, env)

    @pytest.mark.parametrize("setup", list(_APP_LOGGING.values()), ids=list(_APP_LOGGING))
    def test_app_output_unchanged_and_records_captured(
        self, setup: str, tmp_path: Path, subprocess_env: dict[str, str]
    ) -> None:
        """The app's handlers print what they print without belog; belog writes INFO and up."""
        without = self._run(setup, None, subprocess_env)
        with_belog = self._run(setup, tmp_path / "logs", subprocess_env)
        events = [r["event"] for r in read_jsonl(tmp_path / "logs" / "app.jsonl")]

        assert "WARNING app disk almost full" in without
        assert without == with_belog
        assert ["library chatter", "disk almost full"] == events

    def test_basic_config_force_keeps_belog_handler(self, tmp_path: Path) -> None:
        """basicConfig(force=True) after configure() leaves belog's handler on the root."""
        belog.configure(log_dir=tmp_path / "logs", console=False, handle_signals=False)
        handler = _session_handlers()[0]
        root = logging.getLogger()
        before = list(root.handlers)
        with open(os.devnull, "w") as devnull:
            logging.basicConfig(stream=devnull, force=True)
            after = (_session_handlers(), root.level)
            for h in list(root.handlers):  # force=True took pytest's handlers off: put them back
                root.removeHandler(h)
            for h in before:
                root.addHandler(h)

        assert ([handler], logging.INFO) == after

    def test_reset_gives_back_levels_and_basic_config(self, tmp_path: Path) -> None:
        """reset() restores the root level, the app handlers' levels and logging.basicConfig."""
        root = logging.getLogger()
        original = logging.basicConfig
        mine, changed = logging.Handler(), logging.Handler()
        root.addHandler(mine)
        root.addHandler(changed)
        try:
            root.setLevel(logging.WARNING)
            belog.configure(log_dir=tmp_path / "logs", console=False, handle_signals=False)
            during = (root.level, mine.level, changed.level, logging.basicConfig is original)
            changed.setLevel(logging.ERROR)  # the app changes its mind: kept
            _config.reset()
            after = (root.level, mine.level, changed.level, logging.basicConfig is original)
        finally:
            root.removeHandler(mine)
            root.removeHandler(changed)

        assert (logging.INFO, logging.WARNING, logging.WARNING, False) == during
        assert (logging.WARNING, logging.NOTSET, logging.ERROR, True) == after

    def test_only_handlers_that_inherit_the_root_level_are_given_one(self, tmp_path: Path) -> None:
        """A handler under a logger with its own level is left alone; one under the root's, not."""
        root = logging.getLogger()
        root.setLevel(logging.WARNING)
        explicit, inheriting = logging.getLogger("t.explicit"), logging.getLogger("t.inherit.x")
        explicit.setLevel(logging.WARNING)
        under_explicit, under_root = logging.Handler(), logging.Handler()
        logging.getLogger("t.explicit.child").addHandler(under_explicit)
        inheriting.addHandler(under_root)
        try:
            belog.configure(log_dir=tmp_path / "logs", console=False, handle_signals=False)
            levels = (under_explicit.level, under_root.level)
        finally:
            logging.getLogger("t.explicit.child").removeHandler(under_explicit)
            inheriting.removeHandler(under_root)
            explicit.setLevel(logging.NOTSET)

        assert (logging.NOTSET, logging.WARNING) == levels

    def test_root_level_set_by_app_since_is_kept(self, tmp_path: Path) -> None:
        """A root level the app set after configure() survives reset()."""
        root = logging.getLogger()
        root.setLevel(logging.WARNING)
        belog.configure(log_dir=tmp_path / "logs", console=False, handle_signals=False)
        root.setLevel(logging.DEBUG)
        _config.reset()

        assert logging.DEBUG == root.level
        root.setLevel(logging.WARNING)

    def test_reconfigure_without_capture_gives_levels_back(self, tmp_path: Path) -> None:
        """configure(capture_stdlib=False) after configure() undoes its level change."""
        root = logging.getLogger()
        mine = logging.Handler()
        root.addHandler(mine)
        try:
            root.setLevel(logging.WARNING)
            belog.configure(log_dir=tmp_path / "logs", console=False, handle_signals=False)
            belog.configure(
                log_dir=tmp_path / "logs",
                console=False,
                handle_signals=False,
                capture_stdlib=False,
            )
            after = (root.level, mine.level, logging.basicConfig is _config._basic_config)
        finally:
            root.removeHandler(mine)

        assert (logging.WARNING, logging.NOTSET, False) == after

    def test_basic_config_without_belog_handler_passes_through(self, tmp_path: Path) -> None:
        """Called when belog's handler is gone, the wrapper is plain logging.basicConfig."""
        belog.configure(log_dir=tmp_path / "logs", console=False, handle_signals=False)
        wrapper = logging.basicConfig
        _config._STATE.handler = None
        root = logging.getLogger()
        before = list(root.handlers)
        with open(os.devnull, "w") as devnull:
            wrapper(stream=devnull, force=True)
            added = [h for h in root.handlers if h not in before]
            for h in list(root.handlers):
                root.removeHandler(h)
            for h in before:
                root.addHandler(h)

        assert wrapper is _config._basic_config
        assert [devnull] == [getattr(h, "stream", None) for h in added]


class TestWatchOption:
    """configure(watch=...) and $BELOG_WATCH: the roots BELog tasks watch."""

    def test_values(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """None/True: the working directory; False: none; a folder or folders: those."""
        monkeypatch.delenv("BELOG_WATCH", raising=False)
        logs = tmp_path / "logs"
        assert belog.configure(log_dir=logs, console=False).watch is None
        assert belog.configure(log_dir=logs, console=False, watch=True).watch is None
        assert () == belog.configure(log_dir=logs, console=False, watch=False).watch
        assert (tmp_path,) == belog.configure(log_dir=logs, console=False, watch=tmp_path).watch
        both = belog.configure(log_dir=logs, console=False, watch=[tmp_path, str(logs)]).watch
        assert (tmp_path, logs) == both

    def test_environment(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """$BELOG_WATCH=0 turns it off; a path list sets the roots; an argument wins."""
        logs = tmp_path / "logs"
        monkeypatch.setenv("BELOG_WATCH", "0")
        assert () == belog.configure(log_dir=logs, console=False).watch
        monkeypatch.setenv("BELOG_WATCH", os.pathsep.join([str(tmp_path), str(logs)]))
        assert (tmp_path, logs) == belog.configure(log_dir=logs, console=False).watch
        assert () == belog.configure(log_dir=logs, console=False, watch=False).watch

    def test_bad_value_names_the_argument(self) -> None:
        """A number is a TypeError naming watch."""
        with pytest.raises(TypeError, match="watch must be a bool, a folder or a list"):
            belog.configure(watch=[1, 2])  # type: ignore[list-item]
