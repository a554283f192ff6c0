"""Finalize open sessions on SIGTERM, then let the signal do what it would have.

Only where the application has not installed a handler of its own. The
handler raises `SystemExit` in the main thread, so ``with session(...)``
blocks unwind and finalize as on any exit; sessions still open at exit (in
other threads) are closed as failed, and the process then dies by the same
signal, so its parent sees the usual exit status.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any, cast

from . import context as _context

if TYPE_CHECKING:
    from .session import Run

__all__ = ["close_open_sessions", "install_signal_handlers", "uninstall_signal_handlers"]

_installed: dict[int, Any] = {}
_received: list[int] = []


class SessionInterrupted(SystemExit):
    """Raised in the main thread when a signal ends the process mid-session."""


def _die(signum: int) -> None:
    """Take the signal's default action now (for SIGTERM: end the process)."""
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    if _received or not any(run.pid == os.getpid() for run in _context.REGISTRY.open_sessions()):
        # Nothing to finalize, or a second signal while finalizing (the sender
        # insists): take the default action at once, as if we were never installed.
        _die(signum)
        return
    _received.append(signum)
    name = signal.Signals(signum).name
    raise SessionInterrupted(f"terminated by {name}")


def _before_joining_threads() -> None:
    """After a signal, do not let running non-daemon threads hold the exit up.

    Python joins non-daemon threads before it runs atexit hooks, so a worker
    thread still running its session would keep a SIGTERM-ed process alive
    indefinitely. Close the open sessions now and die by the signal, as the
    default action would have.
    """
    if not _received:
        return
    me = threading.current_thread()
    if not any(t is not me and not t.daemon and t.is_alive() for t in threading.enumerate()):
        return  # the normal exit path (atexit) finishes the job
    signum = _received[0]
    close_open_sessions(SessionInterrupted(f"terminated by {signal.Signals(signum).name}"))
    _flush_and_die(signum)


_hooked_thread_shutdown: list[bool] = []


def install_signal_handlers() -> None:
    """Install the SIGTERM handler if SIGTERM still has its default action."""
    if threading.current_thread() is not threading.main_thread():
        return
    if not _hooked_thread_shutdown:
        # CPython's hook run before joining threads at exit (what
        # concurrent.futures uses); absent elsewhere, then only atexit is used.
        register = getattr(threading, "_register_atexit", None)
        if register is not None:
            try:
                register(_before_joining_threads)
                _hooked_thread_shutdown.append(True)
            except RuntimeError:  # already shutting down
                pass
    for signum in (signal.SIGTERM,):
        if signum in _installed:
            continue
        previous = signal.getsignal(signum)
        if previous is not signal.SIG_DFL:
            continue
        signal.signal(signum, _on_signal)
        _installed[signum] = previous


def uninstall_signal_handlers() -> None:
    """Restore the handlers `install_signal_handlers` replaced."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum, previous in list(_installed.items()):
        if signal.getsignal(signum) is _on_signal:
            signal.signal(signum, previous)
        del _installed[signum]


def close_open_sessions(reason: BaseException) -> None:
    """End (and package) every session still open in this process, as failed."""
    for run in _context.REGISTRY.open_sessions():
        if run.pid != os.getpid():
            continue
        try:
            cast("Run", run)._end(reason)
        except Exception:  # noqa: BLE001, S110 - exiting: do what can be done
            pass


def _at_exit() -> None:
    # An uncaught KeyboardInterrupt (Ctrl-C) is what ends the process, if
    # CPython recorded one for the main module.
    interrupted = getattr(sys, "last_type", None) is KeyboardInterrupt
    closed = False
    if _context.REGISTRY.open_sessions():
        reason: BaseException
        if _received:
            reason = SessionInterrupted(f"terminated by {signal.Signals(_received[0]).name}")
        elif interrupted:
            reason = KeyboardInterrupt()
        else:
            reason = SystemExit("process exited with the session still open")
        close_open_sessions(reason)
        closed = True
    if _received:
        _flush_and_die(_received[0])
    elif closed and interrupted:
        # CPython ends a Ctrl-C-ed process by re-raising SIGINT, so its parent
        # sees the usual status; but finalizing the sessions runs code (imports
        # that exec source) which clears CPython's note of the interrupt, and
        # the process would exit with status 1. Take the usual effect here.
        _flush_and_die(signal.SIGINT)


def _flush_and_die(signum: int) -> None:
    from .router import _flush_all_at_exit

    _flush_all_at_exit()
    _die(signum)


atexit.register(_at_exit)
