"""Calls land in their own session: threads, concurrent asyncio tasks, tasks, no session."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import structlog_belog as belog
from structlog_belog.audit.fake_llm import fake_openai_client
from structlog_belog.core import context as _context
from structlog_belog.core.config import Config
from tests.audit.test_audit import prompts
from tests.conftest import read_jsonl


class RecordingTask:
    """A minimal TaskObserver, as `run.task` gives the record path."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[dict[str, Any]] = []
        self.errors: list[Any] = []

    def note_error(self, event_dict: Any) -> None:
        """Remember an error record."""
        self.errors.append(event_dict)

    def note_call(self, record: Any) -> None:
        """Remember a call record."""
        self.calls.append(record)

    def note_record(self, event_dict: Any) -> None:
        """Every record logged inside (hosts, services, files): not needed here."""


class TestRouting:
    def test_fifty_concurrent_async_calls_in_five_sessions(self, belog_config: Config) -> None:
        """50 concurrent async calls in 5 sessions: each record in its own session, none lost."""
        client = belog.instrument_openai(fake_openai_client(async_=True, fail_first=7))

        async def one_session(s: int) -> belog.Run:
            async with belog.session(f"s{s}") as run:

                async def ask(i: int) -> None:
                    content = f"session {s} question {i}"
                    if i % 2:
                        stream = await client.chat.completions.create(
                            model="gpt-4o-mini",
                            messages=[{"role": "user", "content": content}],
                            stream=True,
                        )
                        async for _ in stream:
                            await asyncio.sleep(0)
                    else:
                        await client.chat.completions.create(
                            model="gpt-4o-mini", messages=[{"role": "user", "content": content}]
                        )

                await asyncio.gather(*(ask(i) for i in range(10)))
            return run

        async def main() -> list[belog.Run]:
            return await asyncio.gather(*(one_session(s) for s in range(5)))

        runs = asyncio.run(main())
        for s, run in enumerate(runs):
            records = prompts(run)
            assert 10 == len(records)
            assert {f"session {s} question {i}" for i in range(10)} == {
                r["request"]["messages"][0]["content"] for r in records
            }
            assert {run.id} == {r["session_id"] for r in records}
            assert all("ok" == r["status"] for r in records)

    def test_thread_pool_calls_stay_in_the_session(self, belog_config: Config) -> None:
        """Calls made by belog.ThreadPoolExecutor workers land in the submitting session."""
        client = belog.instrument_openai(fake_openai_client())

        def ask(i: int) -> str:
            result = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"q{i}"}]
            )
            return result.id

        with belog.session("threads") as run, belog.ThreadPoolExecutor(4) as pool:
            ids = list(pool.map(ask, range(8)))
        assert sorted(ids) == sorted(r["response"]["id"] for r in prompts(run))

    def test_stream_consumed_elsewhere_lands_where_it_was_made(self, belog_config: Config) -> None:
        """A stream created in one session and read outside it is recorded in its session."""
        client = belog.instrument_openai(fake_openai_client())
        with belog.session("maker") as run:
            stream = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True
            )
        list(stream)
        assert ["ok"] == [r["status"] for r in prompts(run)]
        global_file = Path(belog_config.log_dir) / f"{belog_config.app_name}.jsonl"
        assert [] == [r for r in read_jsonl(global_file) if r.get("kind") == "llm_call"]

    def test_outside_sessions_go_to_the_global_log(self, belog_config: Config) -> None:
        """A call made outside any session goes to the global file with session_id null."""
        client = belog.instrument_openai(fake_openai_client())
        client.embeddings.create(model="text-embedding-3-small", input="x")
        global_file = Path(belog_config.log_dir) / f"{belog_config.app_name}.jsonl"
        [record] = [r for r in read_jsonl(global_file) if r.get("kind") == "llm_call"]
        assert record["session_id"] is None


class TestTaskObserver:
    def test_task_is_told_about_its_calls(self, belog_config: Config) -> None:
        """The task open around a call gets note_call(record) and its name in the record."""
        client = belog.instrument_openai(fake_openai_client())
        task = RecordingTask("Generate beginner supertask")
        with belog.session("task") as run:
            token = _context.push(task=task)
            try:
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
                )
                inside = belog.last_call()
            finally:
                _context.reset(token)
            after = belog.last_call()
        [record] = prompts(run)
        assert [record["call_id"]] == [c["call_id"] for c in task.calls]
        assert "Generate beginner supertask" == record["task"]
        assert inside is not None
        assert after is not None
        assert inside["call_id"] == after["call_id"] == record["call_id"]
