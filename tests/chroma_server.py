"""A real ChromaDB server for tests: ``chroma run`` on 127.0.0.1, started and stopped here."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest


def chroma_executable() -> str | None:
    """The ``chroma`` command of this interpreter's environment (the ``chroma`` extra), if any."""
    beside = Path(sys.executable).with_name("chroma")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("chroma")


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ChromaServer:
    """One ``chroma run --path PATH --port PORT --host 127.0.0.1`` process."""

    def __init__(self, path: Path, port: int | None = None) -> None:
        executable = chroma_executable()
        if executable is None:
            pytest.skip("the `chroma` command (pip install 'structlog-belog[chroma]') is missing")
        self.executable = executable
        self.path = path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = path.parent / f"{path.name}.server.log"

    def start(self, timeout: float = 90.0) -> None:
        """Start the server and wait until its heartbeat answers."""
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.executable,
                    "run",
                    "--path",
                    str(self.path),
                    "--port",
                    str(self.port),
                    "--host",
                    "127.0.0.1",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                msg = (
                    f"chroma run exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}"
                )
                raise RuntimeError(msg)
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=1) as resp:  # noqa: S310 - loopback
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.kill()
        msg = f"chroma run did not answer within {timeout}s: {self.log.read_text()[-2000:]}"
        raise RuntimeError(msg)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None


def running_server(path: Path) -> Iterator[ChromaServer]:
    """Yield a started server on a free port; stop it afterwards."""
    server = ChromaServer(path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
