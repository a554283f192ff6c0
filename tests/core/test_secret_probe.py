"""The secrets probe: every known format, planted in every place, never reaches a file.

For each format of `tests.secret_formats` one session writes a fresh secret
of that format into each place a secret can enter a record — the log
message, keyword arguments, nested values, tracebacks, stdlib arguments and
``extra=``, bound context, prompts, answers, streamed answers, tool-call
arguments, request headers, API error messages, BELog errors and
suggestions, session titles, stage and task names — through the real record
path, the real ``openai`` SDK (answered by ``httpx.MockTransport``), the
real package builder and store. Then every file under the log and package
folders is read (``.zst`` members through the ``zstd`` program) and no
secret may be in any of them.
"""
# Seeded random generators make the test data; nothing cryptographic.
# ruff: noqa: S311

from __future__ import annotations

import json
import logging
import random
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import structlog

import structlog_belog as belog
from structlog_belog.core.config import Config
from tests.secret_formats import FORMATS, make_format

MESSAGES = [{"role": "system", "content": "You are terse."}]


def _client(handle: Callable[[httpx.Request], httpx.Response]) -> openai.OpenAI:
    """The real SDK, every request answered by *handle* (no network)."""
    return openai.OpenAI(
        api_key="-".join(("test", "placeholder")),
        base_url="http://answer.invalid/v1",
        http_client=httpx.Client(transport=httpx.MockTransport(handle)),
        max_retries=0,
    )


def _answer(content: str, arguments: str) -> httpx.Response:
    message = {
        "role": "assistant",
        "content": content,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "save", "arguments": arguments},
            }
        ],
    }
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    return httpx.Response(200, json=body)


def _streamed(content: str, arguments: str) -> httpx.Response:
    """A server-sent event stream whose text and tool arguments arrive in pieces."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        body = {
            "id": "chatcmpl-2",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body)}\n\n"

    half, args_half = len(content) // 2, len(arguments) // 2
    events = [
        chunk({"role": "assistant", "content": content[:half]}),
        chunk({"content": content[half:]}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "save", "arguments": arguments[:args_half]},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[args_half:]}}]}),
        chunk({}, "tool_calls"),
        "data: [DONE]\n\n",
    ]
    return httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content="".join(events).encode()
    )


def _refused(message: str) -> httpx.Response:
    return httpx.Response(401, json={"error": {"message": message, "code": "invalid_api_key"}})


def _fail(error: type[Exception], message: str) -> None:
    raise error(message)


def _plant_everywhere(fmt: str, rng: random.Random, store_dir: Path) -> dict[str, str]:
    """Write a fresh secret of *fmt* into every place; return place -> needle."""
    needles: dict[str, str] = {}

    def new(place: str) -> str:
        secret = make_format(fmt, rng)
        needles[place] = secret.needle
        return secret.text

    log = structlog.get_logger("probe")
    std = logging.getLogger("probe.stdlib")
    title = f"nightly import {new('session title')}"
    with belog.session(title, blueprint_id="probe") as run:
        with run.stage(f"fetch {new('stage name')}"):
            log.info(f"connecting with {new('log message')} now")
            log.info("configured", detail=new("kwargs"))
            log.info("request", payload={"items": [{"headers": {"X-Note": new("nested")}}]})
            try:
                _fail(ValueError, f"could not connect with {new('traceback')}")
            except ValueError:
                log.exception("connect failed")
            std.warning("using %s for the call", new("stdlib args"))
            std.warning("configured", extra={"detail": new("stdlib extra")})
            try:
                _fail(RuntimeError, f"refused {new('stdlib traceback')}")
            except RuntimeError:
                std.exception("stdlib call failed")
            with belog.bound(note=f"context {new('bound context')}"):
                log.info("bound")
            structlog.contextvars.bind_contextvars(hint=new("contextvars"))
            try:
                log.info("contextvars")
            finally:
                structlog.contextvars.clear_contextvars()
            log.info("dict key", fields={f"k {new('dict key')}": 1})
            log.info("bytes", body=new("bytes value").encode())

        with run.stage("llm"):
            answers = iter(
                [
                    _answer(new("answer"), json.dumps({"note": new("tool-call arguments")})),
                    _streamed(new("streamed answer"), json.dumps({"v": new("streamed tool args")})),
                    _refused(f"Incorrect API key provided: {new('API error message')}"),
                ]
            )
            client = belog.instrument_openai(_client(lambda _: next(answers)))
            prompt = [*MESSAGES, {"role": "user", "content": f"use {new('prompt')}"}]
            headers = {"X-Debug": new("request headers")}
            client.chat.completions.create(
                model="gpt-4o-mini", messages=prompt, extra_headers=headers
            )
            list(
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
            )
            with pytest.raises(openai.AuthenticationError):
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

        with belog.task(f"load {new('task name')}", store=store_dir / "belog.db") as task:
            task.suggest(f"rotate {new('BELog suggestion')} next time")
            log.error(f"step failed with {new('BELog error')}")
    belog.generate_blueprint_revision("probe", store=store_dir / "belog.db", out_dir=store_dir)
    return needles


def _all_text(root: Path) -> dict[Path, bytes]:
    """Every file under *root*, ``.zst`` ones decompressed by the zstd program."""
    out: dict[Path, bytes] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.suffix == ".zst":
            data = subprocess.run(
                ["zstd", "-dc", str(path)], capture_output=True, check=True
            ).stdout
        out[path] = data
    return out


@pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd program")
class TestSecretProbe:
    def test_at_least_sixty_formats(self) -> None:
        """The probe covers at least 60 formats."""
        assert len(FORMATS) >= 60

    @pytest.mark.parametrize("fmt", sorted(FORMATS))
    def test_format_never_reaches_a_file(self, fmt: str, belog_config: Config) -> None:
        """A secret of this format, planted in every place, is in no file written."""
        store_dir = belog_config.log_dir / "store"
        store_dir.mkdir()
        needles = _plant_everywhere(fmt, random.Random(fmt), store_dir)
        files = _all_text(belog_config.log_dir.parent)

        assert len(needles) >= 23
        assert any(p.suffix == ".zst" for p in files)  # a package was built and read
        leaks = [
            f"{place} in {path.relative_to(belog_config.log_dir.parent)}"
            for place, needle in needles.items()
            for path, data in files.items()
            if needle.encode() in data or needle.lower() in path.as_posix().lower()
        ]
        assert [] == leaks, "\n".join(leaks)


class TestNames:
    """Titles, stage and task names: redacted once, the same everywhere they are written."""

    def _key(self) -> str:
        return make_format("github_fine_grained_pat", random.Random(3)).text

    def test_title_written_as_the_jsonl_writes_it(self, belog_config: Config) -> None:
        """metadata.json, the summary and the folder name carry the JSONL's redacted title."""
        key = self._key()
        with belog.session(f"import with {key}") as run:
            pass
        [start] = [
            json.loads(line)
            for line in (run.directory / "processing.jsonl").read_text().splitlines()
            if '"session_start"' in line
        ]
        assert run.package_path is not None
        metadata = belog.read_package(run.package_path).metadata

        assert "import with [REDACTED:github_token]" == start["title"] == metadata["title"]
        assert key.lower() not in run.package_path.name.lower()
        assert "redacted-github_token" in run.package_path.name
        summary = (run.package_path / "logs" / "execution_summary.md").read_text()
        assert "`import with [REDACTED:github_token]`" in summary  # a code span, as written

    def test_title_given_to_package_redacted(self, belog_config: Config, tmp_path: Path) -> None:
        """A title passed to `package` is redacted before it names anything."""
        key = self._key()
        with belog.session("plain", package=False) as run:
            pass

        path = belog.package(run.id, dest=tmp_path / "out", title=f"rerun {key}")

        assert key.lower() not in path.name.lower()
        assert "rerun [REDACTED:github_token]" == belog.read_package(path).metadata["title"]

    def test_stage_and_task_names_redacted_in_records_and_store(self, belog_config: Config) -> None:
        """A stage's and a task's name reach records and the store redacted."""
        key = self._key()
        store = belog_config.log_dir / "names.db"
        with belog.session("names", package=False) as run:
            with run.stage(f"fetch {key}"):
                pass
            with belog.task(f"load {key}", store=store) as task:
                pass
        written = (run.directory / "processing.jsonl").read_text()
        assert key not in written
        assert "fetch [REDACTED:github_token]" in written
        assert task.record is not None
        assert "load [REDACTED:github_token]" == task.record["task_name"]
        assert key.encode() not in b"".join(p.read_bytes() for p in store.parent.glob("names.db*"))

    def test_redaction_off_keeps_names(self, tmp_path: Path) -> None:
        """With redact=False the user's names are kept as given."""
        belog.configure(log_dir=tmp_path / "logs", console=False, redact=False)
        key = self._key()
        with belog.session(f"raw {key}", package=False) as run:
            pass
        assert f"raw {key}" == run.title
