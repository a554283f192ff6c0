"""A real headless Chromium for tests, driven over the DevTools protocol on a pipe.

``--remote-debugging-pipe`` speaks CDP as NUL-separated JSON on file
descriptors 3 (commands in) and 4 (replies and events out): no port, no
websocket library, nothing but the standard library. `Browser.open` loads a
file and records what the page did: dialogs opened (each dismissed at once),
network requests other than the page itself, script exceptions and console
errors.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)


def chromium_path() -> str | None:
    """The Chromium program: ``$BELOG_CHROMIUM``, else ``chromium`` on PATH."""
    for name in (os.environ.get("BELOG_CHROMIUM"), "chromium", "chromium-browser"):
        if name and (found := shutil.which(name)):
            return found
    return None


def require_chromium() -> str:
    """The Chromium program, or skip (fail under ``BELOG_REQUIRE_CHROMIUM=1``, as in CI)."""
    path = chromium_path()
    if path is None:
        reason = (
            "chromium is not installed (Debian: apt-get install chromium; or set BELOG_CHROMIUM)"
        )
        if os.environ.get("BELOG_REQUIRE_CHROMIUM") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


class CDPError(RuntimeError):
    """Chromium answered a command with an error, or did not answer in time."""


class Page:
    """One tab, attached with a flat session."""

    def __init__(self, browser: Browser, session_id: str) -> None:
        self.browser = browser
        self.session_id = session_id
        self.dialogs: list[dict[str, Any]] = []
        self.requests: list[str] = []
        self.exceptions: list[str] = []
        self.console_errors: list[str] = []
        self.loaded = False
        self.url = ""

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30) -> Any:
        """Send a command to this page and return its result."""
        return self.browser.send(method, params, session_id=self.session_id, timeout=timeout)

    def on_event(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        params = message.get("params", {})
        if method == "Page.javascriptDialogOpening":
            self.dialogs.append(params)
            self.browser.post(
                "Page.handleJavaScriptDialog", {"accept": False}, session_id=self.session_id
            )
        elif method == "Network.requestWillBeSent":
            url = params.get("request", {}).get("url", "")
            if url != self.url:
                self.requests.append(url)
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.exceptions.append(json.dumps(details)[:2000])
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.console_errors.append(json.dumps(params.get("args"))[:2000])
        elif method == "Page.loadEventFired":
            self.loaded = True

    def open(self, path: Path, timeout: float = 30) -> float:
        """Load the file *path*; return the seconds until its load event."""
        self.url = Path(path).resolve().as_uri()
        self.loaded = False
        t0 = time.perf_counter()
        self.send("Page.navigate", {"url": self.url})
        self.browser.pump_until(lambda: self.loaded, timeout)
        return time.perf_counter() - t0

    def js(self, expression: str, timeout: float = 30) -> Any:
        """Evaluate *expression* in the page and return its value (JSON-able)."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            raise CDPError(f"{expression!r} raised: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 10) -> Any:
        """Poll *expression* until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise CDPError(f"timed out waiting for {expression!r}")
            self.browser.pump(0.05)

    def click(self, selector: str) -> None:
        """A real mouse click (pressed and released) at the centre of *selector*'s element."""
        self.js(
            f"document.querySelector({json.dumps(selector)}).scrollIntoView({{block: 'center'}})"
        )
        box = self.js(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1},
            )

    def type_into(self, selector: str, text: str) -> None:
        """Focus *selector* and type *text* as keyboard input."""
        self.js(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", {"text": text})

    def screenshot(self, path: Path) -> None:
        """Save a PNG of the viewport."""
        import base64

        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        Path(path).write_bytes(base64.b64decode(data))


def _high(fds: tuple[int, int]) -> tuple[int, int]:
    """*fds* moved to 10 and up, clear of the 3 and 4 the child's shell assigns."""
    moved = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds)
    for fd in fds:
        os.close(fd)
    return moved[0], moved[1]


class Browser:
    """A headless Chromium process and its DevTools pipe."""

    def __init__(self, program: str, profile: Path) -> None:
        cmd_read, self._cmd_write = _high(os.pipe())
        self._out_read, out_write = _high(os.pipe())
        # The pipe must be Chromium's fds 3 and 4; bash's redirections put them there
        # (dash's cannot name descriptors past 9).
        shell = f'exec "$0" "$@" 3<&{cmd_read} 4>&{out_write} {cmd_read}<&- {out_write}>&-'
        self.proc = subprocess.Popen(
            [
                shutil.which("bash") or "/bin/bash",
                "-c",
                shell,
                program,
                *FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            pass_fds=(cmd_read, out_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=None if os.environ.get("BELOG_CHROMIUM_LOG") else subprocess.DEVNULL,
        )
        os.close(cmd_read)
        os.close(out_write)
        self._buffer = b""
        self._next_id = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self.pages: dict[str, Page] = {}

    def post(self, method: str, params: dict[str, Any] | None = None, **kw: Any) -> int:
        """Send a command without waiting for its reply; return its id."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if kw.get("session_id"):
            message["sessionId"] = kw["session_id"]
        os.write(self._cmd_write, json.dumps(message).encode() + b"\0")
        return self._next_id

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session_id: str | None = None,
        timeout: float = 30,
    ) -> Any:
        """Send a command and wait for its reply."""
        ident = self.post(method, params, session_id=session_id)
        self.pump_until(lambda: ident in self._replies, timeout, what=method)
        reply = self._replies.pop(ident)
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def pump(self, timeout: float) -> None:
        """Read what Chromium sent within *timeout* seconds and dispatch it."""
        ready, _, _ = select.select([self._out_read], [], [], timeout)
        if not ready:
            return
        chunk = os.read(self._out_read, 1 << 20)
        if not chunk:
            raise CDPError("chromium closed its DevTools pipe (it exited)")
        self._buffer += chunk
        while b"\0" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\0", 1)
            message = json.loads(raw)
            if "id" in message:
                self._replies[message["id"]] = message
            elif (page := self.pages.get(message.get("sessionId", ""))) is not None:
                page.on_event(message)

    def pump_until(self, done: Any, timeout: float, what: str = "an event") -> None:
        """Dispatch messages until ``done()`` or *timeout* seconds pass."""
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError(f"no reply from chromium for {what} within {timeout} s")
            self.pump(min(left, 0.5))

    def new_page(self) -> Page:
        """A new tab with Page, Runtime and Network events on."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        page = Page(self, session["sessionId"])
        self.pages[page.session_id] = page
        for domain in ("Page", "Runtime", "Network"):
            page.send(f"{domain}.enable")
        return page

    def close(self) -> None:
        """End Chromium."""
        try:
            self.post("Browser.close")
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            os.close(self._cmd_write)
            os.close(self._out_read)


@contextmanager
def chromium() -> Iterator[Browser]:
    """A fresh headless Chromium with its own profile folder; skips when it is missing."""
    program = require_chromium()
    with tempfile.TemporaryDirectory(prefix="belog-chromium-") as profile:
        browser = Browser(program, Path(profile))
        try:
            yield browser
        finally:
            browser.close()
