"""Exact output links: `Run.producing`, link kinds, and the issues inferred links raise."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

import structlog_belog as belog
from structlog_belog.audit.fake_llm import fake_openai_client
from structlog_belog.core.config import Config
from tests.audit.test_audit import MESSAGES, processing, prompts

CHAT = {"model": "gpt-4o-mini", "messages": MESSAGES}


def _metadata(run: belog.Run) -> dict[str, Any]:
    assert run.package_path is not None
    meta: dict[str, Any] = orjson.loads((run.package_path / "logs" / "metadata.json").read_bytes())
    return meta


def _summary(run: belog.Run) -> str:
    assert run.package_path is not None
    return (run.package_path / "logs" / "execution_summary.md").read_text()


def _outputs(run: belog.Run) -> list[dict[str, Any]]:
    return [r for r in processing(run) if r.get("kind") == "output"]


@pytest.fixture
def client(belog_config: Config) -> Any:
    """A fake OpenAI client, instrumented."""
    return belog.instrument_openai(fake_openai_client())


class TestProducing:
    def test_two_blocks_link_exactly(self, client: Any, tmp_path: Path) -> None:
        """Two calls then two outputs: each block gets its own call, said to be explicit."""
        first, second = tmp_path / "first.json", tmp_path / "second.json"
        with belog.session("exact") as run:
            with run.producing(first):
                client.chat.completions.create(**CHAT)
                first.write_text("{}")
            with run.producing(second):
                client.chat.completions.create(**CHAT)
                second.write_text("{}")
        a, b = (r["call_id"] for r in prompts(run))
        assert [(str(first), [a], "explicit"), (str(second), [b], "explicit")] == [
            (o["path"], o["call_ids"], o["link"]) for o in _outputs(run)
        ]
        assert [
            {"path": str(first), "call_ids": [a], "link": "explicit"},
            {"path": str(second), "call_ids": [b], "link": "explicit"},
        ] == _metadata(run)["outputs"]
        kinds = {i["kind"] for i in _metadata(run)["issues_detected"]}
        assert not kinds & {"ambiguous_output_link", "call_without_output"}

    def test_calls_inside_a_block_are_not_inferred_again(self, client: Any, tmp_path: Path) -> None:
        """A later add_output infers only the calls made outside any producing block."""
        exact, later = tmp_path / "exact.json", tmp_path / "later.json"
        with belog.session("mixed") as run:
            with run.producing(exact):
                client.chat.completions.create(**CHAT)
            client.embeddings.create(model="text-embedding-3-small", input="x")
            linked = run.add_output(later)
        inside, outside = (r["call_id"] for r in prompts(run))
        assert [outside] == linked
        assert [([inside], "explicit"), ([outside], "inferred")] == [
            (o["call_ids"], o["link"]) for o in _outputs(run)
        ]

    def test_async_blocks_in_concurrent_tasks(self, client: Any, tmp_path: Path) -> None:
        """async with run.producing in two concurrent tasks: each output gets its task's call."""
        aclient = belog.instrument_openai(fake_openai_client(async_=True))

        async def produce(run: belog.Run, path: Path) -> str:
            async with run.producing(path):
                await asyncio.sleep(0)
                result = await aclient.chat.completions.create(**CHAT)
                await asyncio.sleep(0)
            return str(result.id)

        async def main() -> belog.Run:
            async with belog.session("async-exact") as run:
                await asyncio.gather(*(produce(run, tmp_path / f"{i}.json") for i in range(4)))
            return run

        run = asyncio.run(main())
        by_call = {r["call_id"]: r for r in prompts(run)}
        outputs = _outputs(run)
        assert 4 == len(outputs)
        assert all(1 == len(o["call_ids"]) and "explicit" == o["link"] for o in outputs)
        assert set(by_call) == {o["call_ids"][0] for o in outputs}

    def test_threads_through_propagate(self, client: Any, tmp_path: Path) -> None:
        """Calls made in threads started with propagate inside the block are linked to it."""
        path = tmp_path / "threads.json"
        with belog.session("threads") as run:
            with run.producing(path):
                workers = [
                    threading.Thread(
                        target=belog.propagate(lambda: client.chat.completions.create(**CHAT))
                    )
                    for _ in range(3)
                ]
                for w in workers:
                    w.start()
                for w in workers:
                    w.join()
            client.chat.completions.create(**CHAT)  # after the block: not linked to it
        calls = [r["call_id"] for r in prompts(run)]
        [output] = _outputs(run)
        assert sorted(calls[:3]) == sorted(output["call_ids"])
        assert calls[3] not in output["call_ids"]

    def test_failed_block_writes_no_output(self, client: Any, tmp_path: Path) -> None:
        """A block that raises produced nothing: no output, and its call is flagged."""

        def fail() -> None:
            with run.producing(tmp_path / "x.json"):
                client.chat.completions.create(**CHAT)
                raise ValueError("bad JSON")

        with belog.session("failed") as run, pytest.raises(ValueError, match="bad JSON"):
            fail()
        assert [] == _outputs(run)
        [call] = prompts(run)
        [unlinked] = [
            i for i in _metadata(run)["issues_detected"] if i["kind"] == "call_without_output"
        ]
        assert [call["call_id"]] == unlinked["examples"]

    def test_bad_path_is_refused(self, client: Any) -> None:
        """A path that is not a string or PathLike is refused, the argument named."""
        with belog.session("bad") as run, pytest.raises(TypeError, match="path"):
            run.producing(42)  # type: ignore[arg-type]


class TestInferredLinks:
    def test_add_output_says_inferred(self, client: Any, tmp_path: Path) -> None:
        """add_output without produced_by is inferred; with it, explicit."""
        with belog.session("kinds") as run:
            client.chat.completions.create(**CHAT)
            run.add_output(tmp_path / "a.json")
            client.chat.completions.create(**CHAT)
            run.add_output(tmp_path / "b.json", produced_by=prompts_ids(run)[-1:])
        assert ["inferred", "explicit"] == [o["link"] for o in _outputs(run)]
        assert ["inferred", "explicit"] == [o["link"] for o in _metadata(run)["outputs"]]

    def test_two_calls_two_outputs_are_issues(self, client: Any, tmp_path: Path) -> None:
        """Both calls inferred into the first output, none into the second: both flagged."""
        with belog.session("ambiguous") as run:
            client.chat.completions.create(**CHAT)
            client.chat.completions.create(**CHAT)
            run.add_output(tmp_path / "first.json")
            run.add_output(tmp_path / "second.json")
        issues = {i["kind"]: i for i in _metadata(run)["issues_detected"]}
        assert [str(tmp_path / "first.json")] == issues["ambiguous_output_link"]["examples"]
        assert 1 == issues["ambiguous_output_link"]["count"]
        summary = _summary(run)
        assert "## Issues Detected" in summary
        assert "inferred from more than one LLM call" in summary
        assert "run.producing" in summary

    def test_call_without_output_is_an_issue(self, client: Any, tmp_path: Path) -> None:
        """A successful call that no output is linked to is listed, with its ID."""
        with belog.session("orphan") as run:
            client.chat.completions.create(**CHAT)
            run.add_output(tmp_path / "a.json")
            client.chat.completions.create(**CHAT)
        orphan = prompts(run)[-1]["call_id"]
        [issue] = [
            i for i in _metadata(run)["issues_detected"] if i["kind"] == "call_without_output"
        ]
        assert (1, [orphan]) == (issue["count"], issue["examples"])
        assert "linked to no output" in _summary(run)


def prompts_ids(run: belog.Run) -> list[str]:
    """The call IDs written so far in *run*'s prompts.jsonl."""
    return [str(r["call_id"]) for r in prompts(run)]
