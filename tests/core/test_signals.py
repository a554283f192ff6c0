"""The SIGTERM handler and exit hooks, called in-process with the fatal parts stubbed.

The end-to-end behaviour (a real SIGTERM killing a real child) is pinned in
test_processes.py; those children die by the signal, so their coverage data
is lost. Here each function runs in the test process, with `_die` / `os.kill`
replaced by recorders and the module's globals restored afterwards.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import structlog_belog as belog
from structlog_belog.core import config as _config
from structlog_belog.core import context as _context
from structlog_belog.core import signals as _signals
from tests.conftest import read_jsonl


@pytest.fixture(autouse=True)
def _restore_signals() -> Iterator[None]:
    """Keep the module's globals and the real SIGTERM handler as they were."""
    received = list(_signals._received)
    installed = dict(_signals._installed)
    hooked = list(_signals._hooked_thread_shutdown)
    handler = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, handler)
    _signals._received[:] = received
    _signals._installed.clear()
    _signals._installed.update(installed)
    _signals._hooked_thread_shutdown[:] = hooked


@pytest.fixture
def died(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The signals `_flush_and_die` / `_die` were asked to die by (they only record)."""
    calls: list[int] = []
    monkeypatch.setattr(_signals, "_die", calls.append)
    monkeypatch.setattr(_signals, "_flush_and_die", calls.append)
    return calls


@pytest.fixture
def closed(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """The reasons `close_open_sessions` was called with (it only records)."""
    reasons: list[BaseException] = []
    monkeypatch.setattr(_signals, "close_open_sessions", reasons.append)
    return reasons


def _open_run(monkeypatch: pytest.MonkeyPatch, pid: int | None = None) -> Any:
    """A run registered as open in this process (not entered, nothing written)."""
    run = belog.session("open", package=False)
    if pid is not None:
        run.pid = pid
    _context.REGISTRY.add(run)
    monkeypatch.setattr(run, "_end", lambda exc: _context.REGISTRY.remove(run))
    return run


class TestOnSignal:
    def test_raises_in_the_main_thread_when_a_session_is_open(
        self, belog_config: _config.Config, died: list[int]
    ) -> None:
        """With a session of this process open, SIGTERM raises SessionInterrupted there."""
        with pytest.raises(_signals.SessionInterrupted) as info, belog.session("s") as run:
            _signals._on_signal(signal.SIGTERM, None)
        assert "terminated by SIGTERM" == str(info.value)
        assert [signal.SIGTERM] == _signals._received
        assert [] == died
        assert False is run.success
        end = read_jsonl(run.directory / "processing.jsonl")[-1]  # type: ignore[operator]
        assert ("session_end", "SessionInterrupted") == (end["event"], end["error"]["type"])  # type: ignore[index]

    def test_dies_at_once_with_no_session_open(self, died: list[int]) -> None:
        """With nothing to finalize, the handler takes the default action at once."""
        _signals._on_signal(signal.SIGTERM, None)
        assert [signal.SIGTERM] == died
        assert [] == _signals._received

    def test_ignores_sessions_of_another_process(
        self, monkeypatch: pytest.MonkeyPatch, died: list[int]
    ) -> None:
        """A session inherited from the parent (another pid) is not this process's to finalize."""
        _open_run(monkeypatch, pid=os.getpid() + 1)
        _signals._on_signal(signal.SIGTERM, None)
        assert [signal.SIGTERM] == died

    def test_second_signal_dies_at_once(
        self, monkeypatch: pytest.MonkeyPatch, died: list[int]
    ) -> None:
        """A signal arriving while the first is being handled takes the default action."""
        _open_run(monkeypatch)
        _signals._received.append(signal.SIGTERM)
        _signals._on_signal(signal.SIGTERM, None)
        assert [signal.SIGTERM] == died


class TestDie:
    def test_restores_the_default_action_and_kills_itself(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`_die` resets the handler to SIG_DFL, then sends the signal to its own pid."""
        kills: list[tuple[int, int]] = []
        monkeypatch.setattr(_signals.os, "kill", lambda pid, sig: kills.append((pid, sig)))
        signal.signal(signal.SIGTERM, _signals._on_signal)
        _signals._die(signal.SIGTERM)
        assert [(os.getpid(), signal.SIGTERM)] == kills
        assert signal.SIG_DFL == signal.getsignal(signal.SIGTERM)

    def test_flush_and_die_flushes_first(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """`_flush_and_die` flushes the router's buffers, then dies by the signal."""
        from structlog_belog.core import router as _router

        calls: list[object] = []
        monkeypatch.setattr(_router, "_flush_all_at_exit", lambda: calls.append("flush"))
        monkeypatch.setattr(_signals, "_die", calls.append)
        _signals._flush_and_die(signal.SIGTERM)
        assert ["flush", signal.SIGTERM] == calls


class TestInstallSignalHandlers:
    def test_installs_over_the_default_and_uninstall_restores(self) -> None:
        """SIGTERM at its default gets our handler; uninstalling puts SIG_DFL back."""
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _signals._installed.clear()
        _signals.install_signal_handlers()
        _signals.install_signal_handlers()  # idempotent
        assert _signals._on_signal == signal.getsignal(signal.SIGTERM)
        assert {signal.SIGTERM: signal.SIG_DFL} == _signals._installed
        _signals.uninstall_signal_handlers()
        assert signal.SIG_DFL == signal.getsignal(signal.SIGTERM)
        assert {} == _signals._installed

    def test_leaves_the_applications_handler_alone(self) -> None:
        """A handler the application installed itself is kept."""

        def mine(_: int, __: object) -> None:
            """The application's own handler."""

        signal.signal(signal.SIGTERM, mine)
        _signals._installed.clear()
        _signals.install_signal_handlers()
        assert mine == signal.getsignal(signal.SIGTERM)
        assert {} == _signals._installed

    def test_uninstall_keeps_a_handler_installed_after_ours(self) -> None:
        """If someone replaced our handler since, uninstall leaves theirs and forgets ours."""

        def later(_: int, __: object) -> None:
            """Installed after ours."""

        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _signals._installed.clear()
        _signals.install_signal_handlers()
        signal.signal(signal.SIGTERM, later)
        _signals.uninstall_signal_handlers()
        assert later == signal.getsignal(signal.SIGTERM)
        assert {} == _signals._installed

    def test_does_nothing_outside_the_main_thread(self) -> None:
        """Signal handlers can only be set from the main thread: both calls are no-ops there."""
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _signals._installed.clear()
        errors: list[BaseException] = []

        def body() -> None:
            try:
                _signals.install_signal_handlers()
                _signals.uninstall_signal_handlers()
            except BaseException as e:
                errors.append(e)

        t = threading.Thread(target=body)
        t.start()
        t.join()
        assert ([], signal.SIG_DFL, {}) == (
            errors,
            signal.getsignal(signal.SIGTERM),
            _signals._installed,
        )

    def test_hooks_thread_shutdown_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The pre-join hook is registered with threading once, however often we install."""
        hooks: list[object] = []
        monkeypatch.setattr(threading, "_register_atexit", hooks.append, raising=False)
        _signals._hooked_thread_shutdown.clear()
        _signals.install_signal_handlers()
        _signals.install_signal_handlers()
        assert [_signals._before_joining_threads] == hooks

    def test_survives_a_late_install_and_a_missing_hook(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """At interpreter shutdown, or on Pythons without the hook, only atexit is used."""

        def refuse(_: object) -> None:
            raise RuntimeError("can't register atexit after shutdown")

        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _signals._installed.clear()
        _signals._hooked_thread_shutdown.clear()
        monkeypatch.setattr(threading, "_register_atexit", refuse, raising=False)
        _signals.install_signal_handlers()
        assert [] == _signals._hooked_thread_shutdown
        monkeypatch.delattr(threading, "_register_atexit", raising=False)
        _signals.install_signal_handlers()
        assert ([], _signals._on_signal) == (
            _signals._hooked_thread_shutdown,
            signal.getsignal(signal.SIGTERM),
        )


class TestBeforeJoiningThreads:
    def test_no_signal_no_action(self, closed: list[BaseException], died: list[int]) -> None:
        """On a normal exit the hook does nothing."""
        _signals._before_joining_threads()
        assert ([], []) == (closed, died)

    def test_no_other_thread_leaves_it_to_atexit(
        self, closed: list[BaseException], died: list[int]
    ) -> None:
        """After a signal, with no other live non-daemon thread, atexit finishes the job."""
        _signals._received.append(signal.SIGTERM)
        _signals._before_joining_threads()
        assert ([], []) == (closed, died)

    def test_a_running_worker_does_not_hold_the_exit(
        self, closed: list[BaseException], died: list[int]
    ) -> None:
        """After a signal, a live non-daemon thread gets its sessions closed and we die."""
        _signals._received.append(signal.SIGTERM)
        stop = threading.Event()
        worker = threading.Thread(target=stop.wait, daemon=False)
        worker.start()
        try:
            _signals._before_joining_threads()
        finally:
            stop.set()
            worker.join()
        assert ["terminated by SIGTERM"] == [str(r) for r in closed]
        assert [signal.SIGTERM] == died


class TestCloseOpenSessions:
    def test_ends_this_processs_sessions_as_failed(self, belog_config: _config.Config) -> None:
        """Each open session of this process is ended with *reason* as its error."""
        run = belog.session("left open", package=False).__enter__()
        _signals.close_open_sessions(SystemExit("bye"))
        assert (False, []) == (run.success, _context.REGISTRY.open_sessions())
        end = read_jsonl(run.directory / "processing.jsonl")[-1]  # type: ignore[operator]
        assert {"type": "SystemExit", "message": "bye"} == end["error"]

    def test_skips_foreign_sessions_and_survives_errors(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Another process's run is left alone; a run whose end fails does not stop the rest."""
        foreign = _open_run(monkeypatch, pid=os.getpid() + 1)
        broken = _open_run(monkeypatch)
        ended = _open_run(monkeypatch)

        def fail(_: BaseException) -> None:
            raise OSError("disk full")

        monkeypatch.setattr(broken, "_end", fail)
        _signals.close_open_sessions(SystemExit())
        assert [foreign, broken] == _context.REGISTRY.open_sessions()
        assert ended not in _context.REGISTRY.open_sessions()


class TestAtExit:
    def test_nothing_open_nothing_done(self, closed: list[BaseException], died: list[int]) -> None:
        """A clean exit with no session open neither closes nor dies."""
        _signals._at_exit()
        assert ([], []) == (closed, died)

    def test_after_a_signal_closes_and_dies_by_it(
        self, monkeypatch: pytest.MonkeyPatch, closed: list[BaseException], died: list[int]
    ) -> None:
        """Sessions open after SIGTERM end as interrupted, and the process dies by SIGTERM."""
        _open_run(monkeypatch)
        _signals._received.append(signal.SIGTERM)
        _signals._at_exit()
        assert [(_signals.SessionInterrupted, "terminated by SIGTERM")] == [
            (type(r), str(r)) for r in closed
        ]
        assert [signal.SIGTERM] == died

    def test_after_ctrl_c_closes_and_dies_by_sigint(
        self, monkeypatch: pytest.MonkeyPatch, closed: list[BaseException], died: list[int]
    ) -> None:
        """After an uncaught KeyboardInterrupt the sessions end so, and SIGINT ends the process."""
        _open_run(monkeypatch)
        monkeypatch.setattr(sys, "last_type", KeyboardInterrupt, raising=False)
        _signals._at_exit()
        assert [KeyboardInterrupt] == [type(r) for r in closed]
        assert [signal.SIGINT] == died

    def test_plain_exit_closes_without_dying(
        self, monkeypatch: pytest.MonkeyPatch, closed: list[BaseException], died: list[int]
    ) -> None:
        """A plain exit with a session open ends it as failed and exits normally."""
        _open_run(monkeypatch)
        monkeypatch.delattr(sys, "last_type", raising=False)
        _signals._at_exit()
        assert [(SystemExit, "process exited with the session still open")] == [
            (type(r), str(r)) for r in closed
        ]
        assert [] == died

    def test_ctrl_c_with_nothing_open_lets_python_exit(
        self, monkeypatch: pytest.MonkeyPatch, closed: list[BaseException], died: list[int]
    ) -> None:
        """With no session open, CPython's own Ctrl-C exit is left untouched."""
        monkeypatch.setattr(sys, "last_type", KeyboardInterrupt, raising=False)
        _signals._at_exit()
        assert ([], []) == (closed, died)

    def test_a_signal_with_nothing_open_still_dies_by_it(
        self, closed: list[BaseException], died: list[int]
    ) -> None:
        """After a signal the process dies by it even with no session left to close."""
        _signals._received.append(signal.SIGTERM)
        _signals._at_exit()
        assert ([], [signal.SIGTERM]) == (closed, died)
