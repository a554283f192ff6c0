"""``belog report`` on finished, running and crashed sessions and on packages, and the
Markdown summary shown rendered on a terminal and raw when piped."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import orjson

from structlog_belog.package.report_check import report_problems
from tests.cli.test_cli import ENTRY, belog, killed_session, run_child
from tests.session_files import SID, full_session


def _data(page: Path) -> dict[str, object]:
    """The JSON the page embeds."""
    text = page.read_text("utf-8")
    start = text.index('<script type="application/json" id="belog-data">') + 48
    data = orjson.loads(text[start : text.index("</script>", start)])
    assert isinstance(data, dict)
    return data


def _status(page: Path) -> object:
    session = _data(page)["session"]
    assert isinstance(session, dict)
    return session["status"]


class TestReportCommand:
    def test_finished_session(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """`belog report ID -o FILE` writes a page that passes verify's checks."""
        full_session(tmp_path / "logs")
        proc = belog(tmp_path, subprocess_env, "report", SID, "-o", "out.html")
        page = tmp_path / "out.html"
        assert str(page) in proc.stdout
        assert [] == report_problems(page, SID)
        assert "success" == _status(page)

    def test_default_file_name(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """Without -o the page is ``<session ID>.report.html`` in the working folder."""
        full_session(tmp_path / "logs")
        out = belog(tmp_path, subprocess_env, "report", SID, "--json").stdout
        page = tmp_path / f"{SID}.report.html"
        assert {"report": str(page), "session_id": SID} == orjson.loads(out)
        assert [] == report_problems(page, SID)

    def test_crashed_session(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """A session whose process was SIGKILLed gets a page that says it did not end."""
        sid = killed_session(tmp_path, subprocess_env)
        belog(tmp_path, subprocess_env, "report", sid, "-o", "crashed.html")
        assert "not_ended" == _status(tmp_path / "crashed.html")

    def test_running_session(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """A session still running is reported as far as it got, and keeps running."""
        body = """
            with belog.session("still going") as run, run.stage("work"):
                logging.getLogger("app").info("halfway")
                print(run.id, flush=True)
                time.sleep(30)
            """
        with run_child(tmp_path, subprocess_env, body) as child:
            assert child.stdout is not None
            sid = child.stdout.readline().strip()
            belog(tmp_path, subprocess_env, "report", sid, "-o", "running.html")
            assert child.poll() is None
            child.kill()
        data = _data(tmp_path / "running.html")
        assert "not_ended" == _status(tmp_path / "running.html")
        assert [["stage", "work"]] == [
            [row["kind"], row["name"]]
            for row in data["timeline"]  # type: ignore[attr-defined]
        ]

    def test_package_and_old_package(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """A package's page is copied; a package made before pages existed gets one built."""
        full_session(tmp_path / "logs")
        proc = belog(tmp_path, subprocess_env, "package", SID, "--json")
        package = Path(orjson.loads(proc.stdout)["package"])
        member = package / "logs" / "execution_report.html"
        belog(tmp_path, subprocess_env, "report", str(package), "-o", "copy.html")
        assert member.read_bytes() == (tmp_path / "copy.html").read_bytes()
        member.unlink()
        belog(tmp_path, subprocess_env, "report", str(package), "-o", "rebuilt.html")
        assert [] == report_problems(tmp_path / "rebuilt.html", SID)

    def test_open(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """--open hands the page's file:// URL to the user's browser ($BROWSER)."""
        full_session(tmp_path / "logs")
        opener = tmp_path / "opener.sh"
        opener.write_text(f'#!/bin/sh\necho "$1" > {tmp_path / "opened.txt"}\n', "utf-8")
        opener.chmod(0o700)
        env = {**subprocess_env, "BROWSER": str(opener)}
        belog(tmp_path, env, "report", SID, "-o", "o.html", "--open")
        opened = tmp_path / "opened.txt"
        for _ in range(100):  # webbrowser starts $BROWSER without waiting for it
            if opened.exists() and opened.read_text().strip():
                break
            time.sleep(0.1)
        assert (tmp_path / "o.html").as_uri() == opened.read_text().strip()

    def test_unknown_session(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """An unknown session is a clear error, exit status 1."""
        (tmp_path / "logs").mkdir()
        proc = belog(tmp_path, subprocess_env, "report", "sess_nope", check=False)
        assert 1 == proc.returncode
        assert "sess_nope" in proc.stderr


def _on_terminal(tmp_path: Path, env: dict[str, str], *args: str) -> str:
    """What ``belog ARGS`` prints on a (pseudo-)terminal 100 columns wide."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", ENTRY, "--log-dir", str(tmp_path / "logs"),
         "--package-dir", str(tmp_path / "packages"), *args],
        env={**env, "COLUMNS": "100", "TERM": "xterm"}, stdin=subprocess.DEVNULL,
        stdout=follower, stderr=follower, cwd=tmp_path,
    )  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert 0 == proc.wait(timeout=60)
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode("utf-8", "replace"))


class TestSummaryOnTerminal:
    def test_rendered_on_a_terminal_raw_when_piped(
        self, tmp_path: Path, subprocess_env: dict[str, str]
    ) -> None:
        """A terminal gets the summary rendered (no Markdown syntax); a pipe gets Markdown."""
        full_session(tmp_path / "logs")
        shown = _on_terminal(tmp_path, subprocess_env, "summary", SID)
        assert SID in shown
        assert "|---|" not in shown
        assert f"`{SID}`" not in shown
        piped = belog(tmp_path, subprocess_env, "summary", SID).stdout
        assert f"| Session ID | `{SID}` |" in piped
        raw = _on_terminal(tmp_path, subprocess_env, "summary", SID, "--raw")
        assert f"`{SID}`" in raw

    def test_demo_raw_and_rendered(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """`belog demo` renders its summary on a terminal; --raw prints the Markdown."""
        shown = _on_terminal(tmp_path, subprocess_env, "demo", "--out", "d1")
        raw = _on_terminal(tmp_path, subprocess_env, "demo", "--out", "d2", "--raw")
        assert "Execution Summary" in shown
        assert "|---|" not in shown
        assert "|---|" in raw
        assert re.search(r"`sess_[0-9_-]+_[0-9a-f]{8}`", raw)
