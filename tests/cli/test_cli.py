"""The ``belog`` command, run through its entry point in a subprocess on real sessions."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.console import Console

from structlog_belog import read_package
from structlog_belog.cli import app as cli
from structlog_belog.exceptions import SessionNotFoundError
from structlog_belog.package import catalog as _catalog
from tests.session_files import SID, full_session, rec, session_dir, start, write

ENTRY = "import sys; from structlog_belog.cli import main; sys.exit(main())"


def belog(
    tmp_path: Path, env: dict[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``belog ARGS`` (the console script's entry point) with logs in tmp_path."""
    proc = subprocess.run(
        [sys.executable, "-c", ENTRY, "--log-dir", str(tmp_path / "logs"),
         "--package-dir", str(tmp_path / "packages"), *args],
        env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
    )  # fmt: skip
    if check:
        assert 0 == proc.returncode, proc.stdout + proc.stderr
    return proc


def run_child(tmp_path: Path, env: dict[str, str], body: str) -> subprocess.Popen[str]:
    """Start a Python child that configures belog into tmp_path/logs and runs *body*."""
    code = textwrap.dedent(
        f"""
        import logging, sys, time
        import structlog_belog as belog
        belog.configure(log_dir={str(tmp_path / "logs")!r},
                        package_dir={str(tmp_path / "packages")!r},
                        console=False, handle_signals=False)
        """
    ) + textwrap.dedent(body)  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )


def killed_session(tmp_path: Path, env: dict[str, str]) -> str:
    """A real session whose process was killed with SIGKILL; returns its ID."""
    body = """
        run = belog.session("doomed run").__enter__()
        with run.stage("work"):
            logging.getLogger("app").info("about to die")
            print(run.id, flush=True)
            time.sleep(60)
        """
    with run_child(tmp_path, env, body) as child:
        assert child.stdout is not None
        sid = child.stdout.readline().strip()
        child.send_signal(signal.SIGKILL)
    assert -signal.SIGKILL == child.returncode
    return sid


class TestSessions:
    def test_json_statuses(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """`belog sessions --json` lists ok, failed and crashed sessions with counts."""
        full_session(tmp_path / "logs")
        body = """
            try:
                with belog.session("fails", package=False):
                    raise ValueError("x")
            except ValueError:
                pass
            """
        with run_child(tmp_path, subprocess_env, body) as child:
            pass
        assert 0 == child.returncode
        crashed = killed_session(tmp_path, subprocess_env)
        rows = orjson.loads(belog(tmp_path, subprocess_env, "sessions", "--json").stdout)
        by_title = {r["title"]: r for r in rows}
        assert "ok" == by_title["Naval supertask"]["status"]
        assert (15, 2, 60) == tuple(
            by_title["Naval supertask"][k] for k in ("records", "calls", "tokens")
        )
        assert "failed" == by_title["fails"]["status"]
        assert "crashed" == by_title["doomed run"]["status"]
        assert crashed == by_title["doomed run"]["session_id"]

    def test_table(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """The table shows each session's ID and status."""
        full_session(tmp_path / "logs")
        out = belog(tmp_path, subprocess_env, "sessions").stdout
        assert SID in out
        assert "ok" in out

    def test_none(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """An empty log folder says so."""
        assert "No sessions" in belog(tmp_path, subprocess_env, "sessions").stdout


class TestShow:
    @pytest.mark.parametrize(
        ("args", "events"),
        [
            (["--level", "warning"], ["parse failed", "parse failed", "worker warning"]),
            (["--stage", "preprocessing", "--kind", "input"], ["input"]),
            (["--logger", "work"], ["worker started", "worker warning"]),
            (["--grep", "BEGINNER"], ["output"]),
            (["--stream", "prompts"], ["llm_call", "llm_call"]),
        ],
    )
    def test_filters(
        self, tmp_path: Path, subprocess_env: dict[str, str], args: list[str], events: list[str]
    ) -> None:
        """Filters by level, stage, kind, logger, text and stream select the right records."""
        full_session(tmp_path / "logs")
        out = belog(tmp_path, subprocess_env, "show", SID, "--json", *args).stdout
        assert events == [orjson.loads(line)["event"] for line in out.splitlines()]

    def test_pretty_and_prefix(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """Without --json records print one per line; an ID prefix finds the session."""
        full_session(tmp_path / "logs")
        out = belog(tmp_path, subprocess_env, "show", SID[:12], "--limit", "2").stdout
        assert 2 == len(out.splitlines())
        assert "session_start" in out

    def test_package_source(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """show reads a package folder too."""
        full_session(tmp_path / "logs")
        path = orjson.loads(belog(tmp_path, subprocess_env, "package", SID, "--json").stdout)[
            "package"
        ]
        out = belog(tmp_path, subprocess_env, "show", path, "--json", "--kind", "metric").stdout
        assert ["metric"] == [orjson.loads(x)["event"] for x in out.splitlines()]

    def test_unknown_session(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """An unknown session is an error with exit status 1."""
        proc = belog(tmp_path, subprocess_env, "show", "sess_nope", check=False)
        assert 1 == proc.returncode
        assert "no session 'sess_nope'" in proc.stderr


class TestTail:
    def test_last_n(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """tail -n prints the last N records of the latest session."""
        full_session(tmp_path / "logs")
        out = belog(tmp_path, subprocess_env, "tail", "-n", "2", "--json").stdout
        assert ["metric", "session_end"] == [orjson.loads(x)["event"] for x in out.splitlines()]

    def test_follow(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """tail -f prints records as a live session writes them and stops at session_end."""
        body = """
            with belog.session("live", package=False) as run:
                print(run.id, flush=True)
                time.sleep(1.0)
                for i in range(5):
                    logging.getLogger("live").info("step %d", i)
                    time.sleep(0.2)
            """
        with run_child(tmp_path, subprocess_env, body) as child:
            assert child.stdout is not None
            sid = child.stdout.readline().strip()
            tail = belog(tmp_path, subprocess_env, "tail", "-f", sid, "--json", "--interval",
                         "0.05", "--timeout", "60")  # fmt: skip
        assert 0 == child.returncode
        events = [orjson.loads(x)["event"] for x in tail.stdout.splitlines()]
        assert [f"step {i}" for i in range(5)] == [e for e in events if e.startswith("step")]
        assert "session_end" == events[-1]


class TestSummary:
    def test_session_and_package(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """summary renders a session's summary, and prints a package's own."""
        full_session(tmp_path / "logs")
        text = belog(tmp_path, subprocess_env, "summary", SID, "--raw").stdout
        assert "## AI Model Usage" in text
        path = orjson.loads(belog(tmp_path, subprocess_env, "package", SID, "--json").stdout)[
            "package"
        ]
        assert read_package(path).summary == belog(tmp_path, subprocess_env, "summary", path).stdout
        meta = orjson.loads(belog(tmp_path, subprocess_env, "summary", path, "--json").stdout)
        assert SID == meta["session_id"]


class TestPackageAndVerify:
    def test_package_then_verify(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """package builds a package that verify accepts; a flipped byte makes verify fail."""
        full_session(tmp_path / "logs")
        out = orjson.loads(
            belog(tmp_path, subprocess_env, "package", SID, "--json", "--title", "T").stdout
        )
        package = Path(out["package"])
        assert package.name.startswith("t-")
        assert "OK" in belog(tmp_path, subprocess_env, "verify", str(package)).stdout
        summary = package / "logs" / "execution_summary.md"
        summary.write_text(summary.read_text() + "tampered\n")
        proc = belog(tmp_path, subprocess_env, "verify", str(package), "--json", check=False)
        assert 1 == proc.returncode
        assert ["execution_summary.md: checksum mismatch"] == orjson.loads(proc.stdout)["problems"]

    def test_verify_finds_truncated_member(
        self, tmp_path: Path, subprocess_env: dict[str, str]
    ) -> None:
        """A truncated .zst member is reported, not crashed on."""
        full_session(tmp_path / "logs")
        package = Path(
            orjson.loads(belog(tmp_path, subprocess_env, "package", SID, "--json").stdout)[
                "package"
            ]
        )
        member = package / "logs" / "processing.jsonl.zst"
        member.write_bytes(member.read_bytes()[:-20])
        proc = belog(tmp_path, subprocess_env, "verify", str(package), "--no-schemas", check=False)
        assert 1 == proc.returncode
        assert "processing.jsonl.zst: checksum mismatch" in proc.stdout
        assert "truncated zstd frame" in proc.stdout

    def test_plain_package(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """--no-compress writes plain members that verify as well."""
        full_session(tmp_path / "logs")
        out = orjson.loads(
            belog(tmp_path, subprocess_env, "package", SID, "--no-compress", "--json").stdout
        )
        assert (Path(out["package"]) / "logs" / "processing.jsonl").is_file()
        belog(tmp_path, subprocess_env, "verify", out["package"])


class TestRecover:
    def test_sigkilled_session(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """A session killed with SIGKILL is packaged by `belog recover`, once."""
        sid = killed_session(tmp_path, subprocess_env)
        full_session(tmp_path / "logs")  # a finished one, not to be recovered
        dry = orjson.loads(belog(tmp_path, subprocess_env, "recover", "--dry-run", "--json").stdout)
        assert [sid] == [r["session_id"] for r in dry]
        done = orjson.loads(belog(tmp_path, subprocess_env, "recover", "--json").stdout)
        assert [sid] == [r["session_id"] for r in done]
        pkg = read_package(done[0]["package"])
        assert (False, False) == (
            pkg.metadata["execution"]["ended"],
            pkg.metadata["execution"]["success"],
        )
        assert ["about to die"] == [r["event"] for r in pkg.records() if r.get("logger") == "app"]
        assert "did not end" in pkg.summary
        again = belog(tmp_path, subprocess_env, "recover").stdout
        assert "No crashed sessions" in again

    def test_pid_check(self, tmp_path: Path) -> None:
        """With a pid in session_start, a live process means running and a dead one crashed."""
        done = subprocess.run(["true"], check=True)
        assert 0 == done.returncode
        dead = subprocess.Popen(["true"])
        dead.wait()
        for pid, status in ((os.getpid(), "running"), (dead.pid, "crashed")):
            d = session_dir(tmp_path / str(pid))
            write(
                d / "processing.jsonl", [start(0, pid=pid, host=os.uname().nodename), rec(1, "x")]
            )
            assert status == _catalog.session_info(d).status


class TestOther:
    def test_help_lists_commands(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """`belog --help` lists every command."""
        out = belog(tmp_path, subprocess_env, "--help").stdout
        for command in (
            "sessions",
            "show",
            "tail",
            "view",
            "summary",
            "package",
            "recover",
            "verify",
            "demo",
        ):
            assert command in out

    def test_progress_on_terminal(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """On a terminal, packaging shows a progress bar on stderr."""
        full_session(tmp_path / "logs")
        err = io.StringIO()
        monkeypatch.setattr(cli, "_err", lambda: Console(file=err, force_terminal=True, width=100))
        args: list[Any] = ["--log-dir", str(tmp_path / "logs"),
                           "--package-dir", str(tmp_path / "p"), "package", SID]  # fmt: skip
        assert 0 == cli.main(args)
        assert "packaging" in err.getvalue() or err.getvalue() == "" or "\x1b" in err.getvalue()
        assert 1 == len(list((tmp_path / "p").iterdir()))

    def test_demo_offline(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """`belog demo` runs offline, prints the summary and the package path; it verifies."""
        pytest.importorskip(
            "structlog_belog.audit.fake_llm",
            reason="the audit's fake model is not in this checkout",
        )
        env = {k: v for k, v in subprocess_env.items() if k != "OPENAI_API_KEY"}
        env["HTTPS_PROXY"] = env["HTTP_PROXY"] = "http://127.0.0.1:9"  # any network use would fail
        proc = belog(tmp_path, env, "demo", "--out", str(tmp_path / "demo"))
        path = Path(proc.stdout.strip().splitlines()[-1].removeprefix("Package: "))
        assert path.is_dir()
        assert "## AI Model Usage" in proc.stdout
        meta = read_package(path).metadata
        assert 3 == meta["ai_usage"]["total_api_calls"]
        assert 1 <= meta["ai_usage"]["retries"]
        assert ["preprocessing", "generation", "validation"] == meta["execution"]["stages_executed"]
        assert "OK" in belog(tmp_path, env, "verify", str(path)).stdout


def _main(tmp_path: Path, *args: str) -> int:
    return cli.main(
        ["--log-dir", str(tmp_path / "logs"), "--package-dir", str(tmp_path / "packages"), *args]
    )


class TestMainInProcess:
    """The same commands through `cli.main`, in this process (for coverage and speed)."""

    def test_sessions_and_show(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """sessions lists, show filters, tail prints, all from one log folder."""
        full_session(tmp_path / "logs")
        assert 0 == _main(tmp_path, "sessions", "--limit", "1")
        assert SID in capsys.readouterr().out
        assert 0 == _main(tmp_path, "show", "last", "--level", "error", "--stage", "generation")
        out = capsys.readouterr().out
        assert 2 == out.count("parse failed")
        assert 0 == _main(tmp_path, "tail", "-n", "1", "-f", "--kind", "session_end")
        assert "session_end" in capsys.readouterr().out

    def test_summary_package_verify(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """summary of a session and a package, package, verify good and bad."""
        full_session(tmp_path / "logs")
        assert 0 == _main(tmp_path, "summary", SID[:10])
        assert "## Issues Detected" in capsys.readouterr().out
        assert 0 == _main(tmp_path, "summary", SID, "--json")
        assert SID == orjson.loads(capsys.readouterr().out)["session_id"]
        assert 0 == _main(tmp_path, "package", SID, "--zstd-level", "1")
        assert "Packaged" in capsys.readouterr().out
        (package,) = (tmp_path / "packages").iterdir()
        assert 0 == _main(tmp_path, "verify", str(package), "--no-schemas")
        assert "checksums OK" in capsys.readouterr().out
        (package / "logs" / "stray.txt").write_text("x")
        assert 1 == _main(tmp_path, "verify", str(package))
        assert "stray.txt: not listed in SHA256SUMS" in capsys.readouterr().out

    def test_recover_dry_run(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """recover lists crashed sessions (dead pid) and packages them."""
        dead = subprocess.Popen(["true"])
        dead.wait()
        d = session_dir(tmp_path / "logs")
        write(d / "processing.jsonl", [start(0, pid=dead.pid, host=os.uname().nodename)])
        assert 0 == _main(tmp_path, "recover", "--dry-run")
        assert f"would package {SID}" in capsys.readouterr().out
        assert 0 == _main(tmp_path, "recover", "--no-compress")
        assert "✓" in capsys.readouterr().out
        assert 0 == _main(tmp_path, "recover")
        assert "No crashed sessions" in capsys.readouterr().out

    def test_errors(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Unknown sessions and ambiguous prefixes are errors with status 1."""
        assert 1 == _main(tmp_path, "show", "last")
        assert "no session 'last'" in capsys.readouterr().err
        session_dir(tmp_path / "logs", "sess_a1")
        session_dir(tmp_path / "logs", "sess_a2")
        assert 1 == _main(tmp_path, "package", "sess_a")
        assert "2 sessions start with 'sess_a'" in capsys.readouterr().err
        assert 1 == _main(tmp_path, "verify", str(tmp_path))
        assert "SHA256SUMS: cannot be read" in capsys.readouterr().out


class TestFind:
    def test_forms(self, tmp_path: Path) -> None:
        """An exact ID, a unique prefix, 'last' and a folder path all resolve."""
        a = session_dir(tmp_path, "sess_2025-01-01_a")
        b = session_dir(tmp_path, "sess_2025-01-02_b")
        assert a == _catalog.find("sess_2025-01-01_a", tmp_path)
        assert b == _catalog.find("sess_2025-01-02", tmp_path)
        assert b == _catalog.find("last", tmp_path)
        assert a == _catalog.find(str(a), tmp_path)
        with pytest.raises(SessionNotFoundError):
            _catalog.find("sess_2025", tmp_path)


class TestRealSession:
    def test_package_verify_summary(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """On a session written by a real run: show, package, verify and summary agree."""
        body = """
            import structlog
            with belog.session("real run", package=False) as run:
                with run.stage("load"):
                    logging.getLogger("app.load").info("loaded %d rows", 3)
                with run.stage("check"):
                    structlog.get_logger("app.check").error("row_invalid", row=2)
                run.set_metric("rows", 3)
            print(run.id, flush=True)
            """
        with run_child(tmp_path, subprocess_env, body) as child:
            assert child.stdout is not None
            sid = child.stdout.read().strip()
        assert 0 == child.returncode
        shown = belog(tmp_path, subprocess_env, "show", sid, "--level", "error", "--json").stdout
        assert ["row_invalid"] == [orjson.loads(x)["event"] for x in shown.splitlines()]
        out = belog(tmp_path, subprocess_env, "package", sid, "--json").stdout
        package = orjson.loads(out)["package"]
        assert "OK" in belog(tmp_path, subprocess_env, "verify", package).stdout
        meta = orjson.loads(belog(tmp_path, subprocess_env, "summary", package, "--json").stdout)
        assert ["load", "check"] == meta["execution"]["stages_executed"]
        assert {"rows": 3} == meta["quality_metrics"]
        assert 1 == meta["records"]["by_level"]["error"]
        text = belog(tmp_path, subprocess_env, "summary", package).stdout
        assert "| 2 | `check` | ✅ |" in text


class TestFollowInProcess:
    def test_follow_until_end(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """tail -f picks up lines appended to the session and its new shards, then stops."""
        import threading
        import time

        from tests.session_files import end

        d = session_dir(tmp_path / "logs")
        write(d / "processing.jsonl", [start(0, pid=os.getpid(), host=os.uname().nodename)])

        def writer() -> None:
            time.sleep(0.3)
            write(d / "processing.jsonl", [rec(1, "first")])
            write(d / "processing.77.jsonl", [rec(2, "from shard")])
            with open(d / "processing.jsonl", "ab") as fh:  # a line written in two parts
                fh.write(orjson.dumps(rec(3, "split"))[:10])
                fh.flush()
                time.sleep(0.3)
                fh.write(orjson.dumps(rec(3, "split"))[10:] + b"\n")
            time.sleep(0.2)
            write(d / "processing.jsonl", [end(4)])

        thread = threading.Thread(target=writer)
        thread.start()
        status = _main(tmp_path, "tail", "-f", SID, "--json", "--interval", "0.05",
                       "--timeout", "60")  # fmt: skip
        thread.join()
        assert 0 == status
        events = [orjson.loads(x)["event"] for x in capsys.readouterr().out.splitlines()]
        assert ["session_start", "first", "from shard", "split", "session_end"] == events

    def test_follow_timeout(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """tail -f on a running session that never ends stops at --timeout."""
        d = session_dir(tmp_path / "logs")
        write(d / "processing.jsonl", [start(0, pid=os.getpid(), host=os.uname().nodename)])
        assert 0 == _main(tmp_path, "tail", "-f", "--timeout", "0.2", "--interval", "0.05")
        assert "session_start" in capsys.readouterr().out
