"""Case 9: 1,000 generated secrets of every kind must not reach any file.

Secrets from ``tests/strategies.make_secrets`` (OpenAI project/service/admin/
legacy keys, Anthropic keys, JWTs, Bearer/Basic headers, AWS keys, PEM
private keys, passwords in URLs, ...) are planted in messages, fields, nested
request structures, JSON documents inside strings, formatted tracebacks,
really raised exceptions, stdlib messages, and in audited OpenAI calls (the
real SDK against ``httpx.MockTransport``): prompts, responses, request
headers and API error messages. Pass: 0 found in any session
file (raw bytes or any decoded string), and at most 1 % of 1,000 benign texts
altered.
"""

from __future__ import annotations

import html
import logging
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import structlog

import structlog_belog as belog
from structlog_belog.core.config import Config

from ..strategies import PLACES, make_benign_texts, make_secrets, plant
from .conftest import read_lines

SECRETS = 1000
#: Record-level places, then the places an audited OpenAI call carries.
PLACES_ALL = (*PLACES, "raised", "stdlib", "prompt", "response", "header", "api_error")
_AUDIT_PLACES = frozenset(("prompt", "response", "header", "api_error"))


def _openai_client() -> Any:
    """The real OpenAI SDK against an httpx.MockTransport that echoes a planted secret."""
    import httpx
    import openai

    def handler(request: httpx.Request) -> httpx.Response:
        secret = request.headers.get("x-echo", "")
        where = request.headers.get("x-where", "")
        if where == "api_error":
            error = {"message": f"Incorrect API key provided: {secret}", "type": "auth"}
            return httpx.Response(401, json={"error": error}, headers={"x-request-id": "req_e"})
        content = f"here it is: {secret}" if where == "response" else "done"
        body = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
        }
        return httpx.Response(200, json=body, headers={"x-request-id": "req_1"})

    client = openai.OpenAI(
        api_key="test-key",
        base_url="http://mock.invalid/v1",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    belog.instrument_openai(client)
    return client


def _call(client: Any, where: str, text: str) -> None:
    import openai

    prompt = f"please use {text}" if where == "prompt" else "hello"
    headers = {"x-where": where, "x-echo": text}
    if where == "header":
        headers["X-Api-Key"] = text
    try:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": prompt}],
            extra_headers=headers,
        )
    except openai.AuthenticationError:
        if where != "api_error":
            raise


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _text_of(path: Path) -> tuple[bytes, str]:
    """A file's raw bytes and its text as a reader would see it, decoded.

    JSONL: every string of every record. zstd members are decompressed with
    the ``zstd`` program first. Markdown: backslash escapes, HTML entities and
    the summary's newline marks undone, so an escaped secret is still found.
    """
    raw = path.read_bytes()
    if path.name.endswith(".zst"):
        raw = subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    name = path.name.removesuffix(".zst")
    if name.endswith(".jsonl"):
        decoded = "\n".join(s for line in raw.splitlines() for s in _strings(orjson.loads(line)))
    elif name.endswith(".json"):
        decoded = "\n".join(_strings(orjson.loads(raw)))
    else:
        text = raw.decode("utf-8", "replace")
        decoded = html.unescape(re.sub(r"\\(.)", r"\1", text)).replace(" \u23ce ", "\n")
    return raw, decoded


def leaks(files: list[Path], needles: list[str]) -> list[tuple[str, str]]:
    """(file name, needle) for every needle found in a file, raw or decoded."""
    found = []
    for path in files:
        raw, decoded = _text_of(path)
        for needle in needles:
            escaped = orjson.dumps(needle)[1:-1]
            if needle in decoded or needle.encode() in raw or escaped in raw:
                found.append((path.name, needle[:12]))
    return found


def _connect(text: str) -> None:
    raise ConnectionError(f"auth failed for {text}")


def log_secret(i: int, text_fields: dict[str, Any], where: str, text: str) -> None:
    """Log one record carrying a secret in the place *where*."""
    slog = structlog.get_logger("rel.secrets")
    if where == "raised":
        try:
            _connect(text)
        except ConnectionError:
            slog.exception("call failed", case=i)
    elif where == "stdlib":
        logging.getLogger("rel.secrets.stdlib").error("login with %s", text, extra={"case": i})
    else:
        fields = dict(text_fields)
        event = fields.pop("event", "secret")
        slog.info(event, case=i, **fields)


class TestSecrets:
    """SecretRedactor over whole sessions."""

    def test_no_secret_in_session_files(self, belog_config: Config, figure: Any) -> None:
        """1,000 secrets in 7 places: 0 found in any session or package file."""
        secrets = make_secrets(SECRETS, seed=9)
        client = _openai_client()
        with belog.session("secrets") as run:
            for i, secret in enumerate(secrets):
                where = PLACES_ALL[i % len(PLACES_ALL)]
                if where in _AUDIT_PLACES:
                    _call(client, where, secret.text)
                    continue
                fields = plant(secret, where) if where in PLACES else {}
                log_secret(i, fields, where, secret.text)
        assert run.directory is not None
        assert run.package_path is not None
        needles = [s.needle for s in secrets]
        session_files = sorted(run.directory.glob("*.jsonl"))
        calls = (run.directory / "prompts.jsonl").read_bytes().count(b"\n")
        found = leaks(session_files, needles)
        package_files = sorted(p for p in run.package_path.rglob("*") if p.is_file())
        in_package = leaks(package_files, needles)
        kinds = {s.kind for s in secrets}
        figure("secrets planted / kinds / places", f"{SECRETS} / {len(kinds)} / {len(PLACES_ALL)}")
        figure("audited LLM calls carrying secrets", calls)
        figure("found in session files", len(found))
        figure(
            "package files checked (decompressed) / secrets found",
            f"{len(package_files)} / {len(in_package)}",
        )
        assert len(kinds) >= 9
        assert len(package_files) >= 5
        assert calls >= 4 * SECRETS // len(PLACES_ALL)
        assert [] == found
        assert [] == in_package

    def test_benign_texts_unaltered(self, belog_config: Config, figure: Any) -> None:
        """At most 1 % of 1,000 benign texts are changed by redaction."""
        texts = make_benign_texts(1000, seed=9)
        slog = structlog.get_logger("rel.benign")
        with belog.session("benign", package=False) as run:
            for i, text in enumerate(texts):
                slog.info("benign", case=i, v=text)
        assert run.directory is not None
        records, _ = read_lines(run.directory / "processing.jsonl")
        got = {int(r["case"]): r["v"] for r in records if "case" in r}
        altered = sum(1 for i, text in enumerate(texts) if got[i] != text)
        figure("benign texts altered", f"{altered}/{len(texts)}")
        assert altered <= 10
