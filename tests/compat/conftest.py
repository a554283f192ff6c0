"""The compatibility suite's harness: real client libraries, a loopback server, real files.

These tests import instructor, langchain-openai, litellm and openai-agents,
which hold the ``openai`` SDK back, so they run in their own virtual
environment: ``tests/audit/test_compat.py`` builds it and runs them there (the main
suite skips this folder). To run them by hand in that environment::

    BELOG_COMPAT_SUITE=1 .cache/compat/venv/bin/python -m pytest tests/compat

Each test runs one scenario twice, each time against a new `FakeOpenAIServer`:
once bare (belog configured, the SDK not instrumented), then with
``belog.instrument_openai()`` — no argument, the whole process — called before
the library builds its client. It then checks that the caller saw the same
thing both times and that the audit wrote exactly one ``llm_call`` record per
call, matching, attempt by attempt, what the server answered.

Nothing may leave the machine: every connection and name lookup to anything
but the loopback interface is refused and fails the suite.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
import re
import socket
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Before any library is imported: litellm reads the model price map it ships
# instead of downloading one at import, and fetches nothing else of its own
# (offline mode); openai-agents sends no traces. The guard below proves it.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")

import structlog_belog as belog
from tests.fake_openai_server import FakeOpenAIServer, placeholder_key

from ..conftest import read_jsonl

MODEL = "gpt-4o-mini"
EMBEDDING_MODEL = "text-embedding-3-small"

# -- nothing leaves the machine ---------------------------------------------------

_LOOPBACK_NAMES = frozenset({"127.0.0.1", "::1", "localhost", "0.0.0.0"})  # noqa: S104
#: Every attempt to reach past the loopback interface, as "what: where".
REFUSED: list[str] = []
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo


def _outside(address: Any) -> str | None:
    host = address[0] if isinstance(address, tuple) else None
    if host is None or host in _LOOPBACK_NAMES or str(host).startswith("127."):
        return None
    return str(host)


def _guarded_connect(self: socket.socket, address: Any) -> None:
    host = _outside(address) if self.family in (socket.AF_INET, socket.AF_INET6) else None
    if host is not None:
        REFUSED.append(f"connect: {host}")
        msg = f"compat suite: connection to {host} refused (loopback only)"
        raise ConnectionRefusedError(msg)
    _connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    host = _outside(address) if self.family in (socket.AF_INET, socket.AF_INET6) else None
    if host is not None:
        REFUSED.append(f"connect: {host}")
        return 111  # ECONNREFUSED
    return _connect_ex(self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    name = host.decode() if isinstance(host, bytes) else host
    if name is not None and _outside((name,)) is not None:
        REFUSED.append(f"getaddrinfo: {name}")
        raise socket.gaierror(socket.EAI_NONAME, f"compat suite: lookup of {name} refused")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
socket.getaddrinfo = _guarded_getaddrinfo


@pytest.fixture(autouse=True)
def _loopback_only() -> Iterator[None]:
    """Fail the test if anything (the test, a library, belog) tried to reach past loopback."""
    assert [] == REFUSED, "tried to leave the machine (at import or in an earlier test)"
    yield
    assert [] == REFUSED, "tried to leave the machine"


# -- what the caller saw -------------------------------------------------------------

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: Keys whose values are clock readings or made-up IDs, equal in no two runs.
_VOLATILE = frozenset({"created", "created_at", "_response_ms", "response_ms"})


def plain(value: Any) -> Any:
    """*value* as JSON-like data, clock readings and random UUIDs blanked, for comparing runs."""
    if hasattr(value, "model_dump") and not isinstance(value, type):
        try:
            value = value.model_dump(mode="json")
        except Exception:  # some libraries' models only dump in python mode
            value = value.model_dump()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return _UUID.sub("<uuid>", value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    return f"<{type(value).__name__}>"


@dataclasses.dataclass
class Outcome:
    """One run of a scenario: what the caller got, and what belog and the server saw."""

    result: Any
    error: BaseException | None
    warnings: list[tuple[str, str]]
    server: FakeOpenAIServer
    records: list[dict[str, Any]]
    session_id: str


def _calls_of(log_dir: Path, session_id: str) -> list[dict[str, Any]]:
    folder = log_dir / "sessions" / session_id
    records: list[dict[str, Any]] = []
    for path in sorted(folder.glob("prompts*.jsonl")):
        records.extend(read_jsonl(path))  # type: ignore[arg-type]
    return [r for r in records if r.get("kind") == "llm_call"]


Scenario = Callable[[str], Any]


class Compat:
    """Runs a scenario bare and audited, and checks the audit against the server."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def _run(
        self, name: str, scenario: Scenario, setup: Callable[[FakeOpenAIServer], None] | None
    ) -> Outcome:
        log_dir = self.tmp_path / "logs"
        belog.configure(
            log_dir=log_dir,
            package_dir=self.tmp_path / "packages",
            console=False,
            handle_signals=False,
        )
        if name == "audited":
            belog.instrument_openai()
        error: BaseException | None = None
        result: Any = None
        with FakeOpenAIServer() as server:
            if setup is not None:
                setup(server)
            with (
                warnings.catch_warnings(record=True) as seen,
                belog.session(f"compat {name}", package=False) as run,
            ):
                warnings.simplefilter("always")
                try:
                    result = scenario(server.base_url)
                    if inspect.iscoroutine(result):
                        result = asyncio.run(result)
                except Exception as exc:
                    error = exc
        return Outcome(
            result=result,
            error=error,
            warnings=[
                (w.category.__name__, str(w.message))
                for w in seen
                if not issubclass(w.category, ResourceWarning)  # depends on the GC's timing
            ],
            server=server,
            records=_calls_of(log_dir, run.id),
            session_id=run.id,
        )

    def compare(
        self,
        scenario: Scenario,
        *,
        setup: Callable[[FakeOpenAIServer], None] | None = None,
        view: Callable[[Any], Any] = plain,
    ) -> Outcome:
        """Run *scenario* bare then audited; check the caller saw the same; return the audited run.

        *scenario* gets the server's base URL and returns the caller's result (or
        a coroutine giving it); *setup* prepares each server (faults); *view*
        turns a result into comparable data.
        """
        bare = self._run("bare", scenario, setup)
        try:
            audited = self._run("audited", scenario, setup)
        finally:
            belog.uninstrument_openai()
        assert [] == bare.records, "the bare run (not instrumented) wrote llm_call records"
        if bare.error is not None or audited.error is not None:
            assert type(bare.error) is type(audited.error), (bare.error, audited.error)
            assert str(bare.error) == str(audited.error)
            assert getattr(bare.error, "status_code", None) == getattr(
                audited.error, "status_code", None
            )
            assert plain(getattr(bare.error, "body", None)) == plain(
                getattr(audited.error, "body", None)
            )
        else:
            assert view(bare.result) == view(audited.result)
        assert [] == [w for w in audited.warnings if w not in bare.warnings], "new warnings"
        assert bare.server.answered == audited.server.answered
        return audited


def check_records(
    outcome: Outcome,
    *,
    calls: int,
    api: str,
    stream: bool | None = None,
    status: str = "ok",
    attempts: list[int] | None = None,
) -> list[dict[str, Any]]:
    """Check the audited run's records against what its server answered; return them.

    Exactly *calls* records, all in the run's session, of *api*, with the
    stream flag and status given; their attempts, request ID by request ID,
    are every request the server answered, each once; the usage and output of
    each record are those of the answer its last attempt got.

    Args:
        calls: Records expected (one per logical call).
        api: The ``api`` of each record.
        stream: The ``stream`` flag of each record (``None``: not checked).
        status: The ``status`` of each record.
        attempts: The number of attempts of each record in order (default 1 each).
    """
    records = outcome.records
    server = outcome.server
    assert calls == len(records), [r.get("name") for r in records]
    assert {outcome.session_id} == {r["session_id"] for r in records}
    assert [api] * calls == [r["api"] for r in records]
    assert [status] * calls == [r["status"] for r in records], [r.get("error") for r in records]
    if stream is not None:
        assert [stream] * calls == [r["stream"] for r in records]
    expected_attempts = attempts if attempts is not None else [1] * calls
    assert expected_attempts == [len(r["attempts"]) for r in records]
    # Every answered request is one attempt of one record, and the other way round.
    sent_ids = [a["request_id"] for r in records for a in r["attempts"]]
    assert sorted(e.request_id for e in server.exchanges) == sorted(sent_ids)
    assert server.answered == len(sent_ids)
    for record in records:
        for attempt in record["attempts"]:
            assert server.exchange(attempt["request_id"]).status == attempt["status_code"]
        last = server.exchange(record["attempts"][-1]["request_id"])
        if status != "ok":
            assert last.status == record["error"]["status_code"]
            continue
        assert last.usage() == record["usage"], record["call_id"]
        response = record["response"]
        if api != "embeddings":
            assert last.output_text() == response["output_text"]
            arguments = last.tool_arguments()
            if arguments is not None:
                assert arguments == response["tool_calls"][0]["arguments"]
    return records


@pytest.fixture
def compat(tmp_path: Path) -> Compat:
    """The bare-versus-audited harness, writing under tmp_path."""
    return Compat(tmp_path)


@pytest.fixture
def api_key() -> str:
    """A placeholder API key (built at run time)."""
    return placeholder_key()
