"""FailureCounter: internal failures counted, the first reported once, never raised."""

from __future__ import annotations

import io
import sys
import threading

import pytest

from structlog_belog.core.failures import FailureCounter


def test_first_failure_reported_once_then_counted(capsys: pytest.CaptureFixture[str]) -> None:
    """The first failure is one stderr line naming part, place and error; the rest are counted."""
    counter = FailureCounter("the widget", "nothing was lost")
    counter.note("spinning", ValueError("bad spin"))
    counter.note("spinning", ValueError("again"))
    lines = capsys.readouterr().err.splitlines()
    assert [
        "structlog-belog: the widget failed in spinning (ValueError: bad spin); "
        "nothing was lost. Further failures are counted, not reported."
    ] == lines
    assert 2 == counter.count


def test_closed_stderr_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """With stderr closed, noting a failure still only counts it."""
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stderr", closed)
    counter = FailureCounter("the widget", "nothing was lost")
    counter.note("spinning", RuntimeError("x"))
    assert 1 == counter.count


def test_threads_count_every_failure(capsys: pytest.CaptureFixture[str]) -> None:
    """Failures noted from many threads at once are all counted, and reported once."""
    counter = FailureCounter("the widget", "nothing was lost")

    def fail() -> None:
        for _ in range(500):
            counter.note("spinning", OSError("disk"))

    threads = [threading.Thread(target=fail) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 4000 == counter.count
    assert 1 == len(capsys.readouterr().err.splitlines())
