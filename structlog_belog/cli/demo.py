"""``belog demo``: a small content pipeline, end to end, offline.

raw Markdown → preprocessed sections → generated supertasks (one per level),
with stdlib and structlog logging, a worker thread, a retried call (the fake
model answers the first request with HTTP 429), a streamed call and three BELog
tasks. The LLM is the offline fake OpenAI model (an httpx transport inside the
package: no network, no key) unless ``live=True``, which calls the real API
with ``OPENAI_API_KEY``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from importlib import import_module
from pathlib import Path
from typing import Any, Final

import orjson
import structlog

from ..audit.wrap import instrument_openai
from ..core.config import configure
from ..core.session import session
from ..core.threads import ThreadPoolExecutor
from ..memory.task import task

__all__ = ["run_demo"]

_RAW: Final = """\
# Naval on wealth and judgement

## Seek wealth, not money or status
Wealth is having assets that earn while you sleep. Money is how we transfer time and wealth.

## Understand that ethical wealth creation is possible
If you secretly despise wealth, it will elude you.

## Play iterated games
All the returns in life, in wealth, relationships or knowledge, come from compound interest.

## Learn to sell, learn to build
If you can do both, you will be unstoppable.
"""
_LEVELS: Final = ("beginner", "intermediate", "advanced")
_MODEL: Final = "gpt-4o-mini"
_JSON: Final = {"type": "json_object"}


def _client(live: bool) -> Any:
    if live:
        if not os.environ.get("OPENAI_API_KEY"):
            msg = "belog demo --live needs OPENAI_API_KEY in the environment"
            raise ValueError(msg)
        try:
            import openai
        except ImportError as exc:
            msg = "belog demo requires openai: pip install 'structlog-belog[openai]'"
            raise ModuleNotFoundError(msg, name="openai") from exc
        return openai.OpenAI()
    # Imported on use: the fake model needs httpx and openai (the `openai` extra).
    fake = import_module("structlog_belog.audit.fake_llm")
    # The first request is refused with 429: the SDK retries it, the audit records both.
    transport = fake.FakeLLM(fail_first=1, fail_status=429, latency=0.02)
    return fake.fake_openai_client(transport=transport)


def _sections(text: str) -> list[dict[str, str]]:
    parts = re.split(r"^## +(.+)$", text, flags=re.MULTILINE)
    return [
        {"title": title.strip(), "body": body.strip()}
        for title, body in zip(parts[1::2], parts[2::2], strict=True)
    ]


def _prompt(level: str, sections: list[dict[str, str]]) -> list[dict[str, str]]:
    ideas = "\n".join(f"- {s['title']}: {s['body']}" for s in sections)
    return [
        {
            "role": "system",
            "content": "You write supertasks: one JSON object with title, steps and reflection.",
        },
        {
            "role": "user",
            "content": f"Write a supertask for the {level} level from these ideas:\n{ideas}",
        },
    ]


def _generate(client: Any, level: str, sections: list[dict[str, str]], stream: bool) -> str:
    messages = _prompt(level, sections)
    if not stream:
        reply = client.chat.completions.create(
            model=_MODEL, messages=messages, temperature=0.7, response_format=_JSON
        )
        return str(reply.choices[0].message.content or "")
    chunks = client.chat.completions.create(
        model=_MODEL,
        messages=messages,
        response_format=_JSON,
        stream=True,
        stream_options={"include_usage": True},
    )
    with contextlib.closing(chunks):
        return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)


def run_demo(out: Path | str, *, live: bool = False) -> Path:
    """Run the demo pipeline with logs and packages under *out*; return the package path.

    Raises:
        ModuleNotFoundError: openai/httpx are missing (``pip install 'structlog-belog[openai]'``).
        ValueError: *live* without ``OPENAI_API_KEY``.
        RuntimeError: The run produced no package.
    """
    out = Path(out)
    work = out / "work"
    for sub in ("01_raw", "02_preprocessed", "03_output"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    raw = work / "01_raw" / "content.md"
    raw.write_text(_RAW, "utf-8")
    client = instrument_openai(_client(live))
    configure(
        log_dir=out / "logs", package_dir=out / "packages", console=False, handle_signals=False
    )
    log = logging.getLogger("demo.pipeline")
    slog = structlog.get_logger("demo.generator")
    with session(
        "naval_supertask",
        execution_context="Generate supertasks from Naval content (belog demo)",
        blueprint_id="bp_demo_supertask",
        blueprint_version="v1.0",
        model=_MODEL,
        live=live,
    ) as run:
        with run.stage("preprocessing"):
            run.add_input(raw)
            log.info("parsing %s", raw.name)
            sections = _sections(raw.read_text("utf-8"))
            with ThreadPoolExecutor(max_workers=2) as pool:
                counts = list(pool.map(_count_words, sections))
            template = {"sections": sections, "words": counts}
            pre = work / "02_preprocessed" / "sections.json"
            pre.write_bytes(orjson.dumps(template, option=orjson.OPT_INDENT_2))
            slog.info("template_ready", sections=len(sections), words=sum(counts))
        with run.stage("generation"):
            valid = 0
            for number, level in enumerate(_LEVELS):
                with task(
                    f"Generate {level} supertask", expected_outcome="valid supertask JSON"
                ) as generation:
                    text = _generate(client, level, sections, stream=number == 1)
                    path = work / "03_output" / f"{level}.json"
                    path.write_text(text, "utf-8")
                    run.add_output(path)
                    try:
                        orjson.loads(text)
                        valid += 1
                    except orjson.JSONDecodeError:
                        slog.warning("not_json", supertask_level=level, chars=len(text))
                    generation.suggest("Cache the template analysis between supertasks")
        with run.stage("validation"):
            run.set_metric("supertasks", len(_LEVELS))
            run.set_metric("schema_compliance", valid / len(_LEVELS))
            log.info("validated %d of %d supertasks", valid, len(_LEVELS))
        for sub in ("01_raw", "02_preprocessed", "03_output"):
            run.add_content(work / sub, as_name=sub)
    if run.package_path is None:
        msg = "the demo run produced no package (see the messages above)"
        raise RuntimeError(msg)
    return run.package_path


def _count_words(section: dict[str, str]) -> int:
    words = len(section["body"].split())
    logging.getLogger("demo.worker").info("section %r: %d words", section["title"], words)
    return words
