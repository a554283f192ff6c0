"""``belog view``: a session as a tree of stages, tasks and calls; one LLM call whole."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.console import Console

from structlog_belog.cli.view import call_view, find_call, session_tree
from structlog_belog.exceptions import CallNotFoundError
from tests.cli.test_cli import _main, belog, run_child
from tests.session_files import SID, call, full_session, rec, session_dir, stage, start, write


def _text(renderable: Any) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def _words(text: str) -> str:
    """*text* with each line's runs of spaces made one (table columns vary in width)."""
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


class TestSessionTree:
    def test_full_session(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Stages, their task, calls, outputs, problems and metrics land where they happened."""
        full_session(tmp_path / "logs")
        assert 0 == _main(tmp_path, "view", SID)
        out = capsys.readouterr().out
        header = out.splitlines()[0]
        assert header.startswith(f"Naval supertask  {SID}  ok  7.00 s  15 records · 1 LLM call")
        assert header.endswith("· 3 warnings or errors")
        assert "├── stage preprocessing  1.00 s ✓\n│   ├── input raw/content.md\n" in out
        assert "│   └── 1 log record\n" in out  # "parsed content.md", counted
        assert "├── stage generation  1.00 s ✗ ValueError\n" in out
        assert "│   ├── LLM c1 " in out
        assert "│   ├── ERROR gen: parse failed · ValueError: bad json\n" in out
        assert "│   ├── WARNING worker: worker warning\n" in out  # from the pid shard
        assert "│   ├── output out/beginner.json ← c1, c2\n" in out
        assert "└── metric schema_compliance = 0.5\n" in out

    def test_all_lists_plain_records(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--all lists every plain record instead of counting them."""
        full_session(tmp_path / "logs")
        assert 0 == _main(tmp_path, "view", "last", "--all")
        out = capsys.readouterr().out
        assert "17:30:01.100 app: parsed content.md" in out
        assert "17:30:03.500 worker: worker started" in out
        assert "log record" not in out

    def test_nested_and_unknown_stages(self) -> None:
        """A stage nests in its parent; a record naming a stage never started still gets one."""
        records = [
            start(0),
            stage(1, "outer", "stage_start"),
            stage(2, "inner", "stage_start", parent_stage="outer"),
            rec(2.5, "deep", level="error", stage="inner"),
            stage(3, "inner", "stage_end", parent_stage="outer"),
            stage(4, "outer", "stage_end", duration_s=None),
            rec(5, "late", level="warning", stage="lost"),
        ]
        text = _text(session_tree(records))
        assert "not ended (running, or crashed)" in text.splitlines()[0]
        assert "├── stage outer  — ✓\n│   └── stage inner  1.00 s ✓\n│       └── ERROR" in text
        assert "└── stage lost\n    └── WARNING app: late" in text

    def test_many_entries_are_counted(self) -> None:
        """Past the limit, a stage's entries are counted; with all_records they are listed."""
        records = [
            stage(0, "bulk", "stage_start"),
            *(rec(1 + i / 1000, f"bad row {i}", level="warning", stage="bulk") for i in range(53)),
        ]
        text = _text(session_tree(records))
        assert "WARNING app: bad row 49\n" in text
        assert "bad row 50" not in text
        assert "    └── … 3 more entries (--all shows them)\n" in text
        assert "· 53 warnings or errors" in text.splitlines()[0]
        everything = _text(session_tree(records, all_records=True))
        assert "    └── WARNING app: bad row 52\n" in everything
        assert "more entr" not in everything

    def test_odd_records(self) -> None:
        """Records missing the usual fields still read: nothing is dropped or invented."""
        records = [
            stage(1, "never started", "stage_end", duration_s=None),
            rec(2, "content", kind="content", path="work/out", as_name="out"),
            rec(3, "output", kind="output", path="made.txt", call_ids=[]),
            rec(
                4,
                "belog",
                kind="belog",
                task_name="solo",
                success=False,
                execution_time=2.5,
                efficiency_score=None,
            ),
            rec(5, "session_end", kind="session_end", success=False, duration_s=5.0),
        ]
        text = _text(session_tree(records))
        assert text.startswith("session  None  failed  5.00 s  5 records · 0 LLM calls")
        assert "├── content work/out as out\n" in text
        assert "├── output made.txt\n" in text
        assert "└── task solo  2.50 s ✗\n" in text
        assert "never started" not in text

    def test_attempts_on_the_call_line(self) -> None:
        """A call with a retry shows its attempts' statuses; a single 200 shows none."""
        ref = rec(1, "llm_call", kind="llm_call", call_id="c1", model="gpt-4", status="error",
                  latency_ms=1500.0, usage=None, cost_usd=None,
                  error={"type": "RateLimitError", "message": "slow down"})  # fmt: skip
        ok = rec(2, "llm_call", kind="llm_call", call_id="c2", model="gpt-4", status="ok",
                 latency_ms=12.0, usage={"total_tokens": 30}, cost_usd=0.0012)  # fmt: skip
        attempts = [{"attempt": 1, "status_code": 429}, {"attempt": 2, "error": "APITimeoutError"}]
        calls = [
            {"call_id": "c1", "attempts": attempts},
            {"call_id": "c2", "attempts": [{"attempt": 1, "status_code": 200}]},
        ]
        unrecorded = rec(3, "llm_call", kind="llm_call", call_id="c3", model="gpt-4", status="ok")
        text = _text(session_tree([start(0), ref, ok, unrecorded], calls))
        assert (
            "LLM c1 gpt-4 error · 1.50 s · attempts 429 → APITimeoutError · "
            "RateLimitError: slow down" in text
        )
        assert "LLM c2 gpt-4 ok · 12 ms · 30 tokens · $0.0012\n" in text
        assert "LLM c3 gpt-4 ok\n" in text  # no prompts record: what the reference says
        assert "3 LLM calls · 30 tokens" in text.splitlines()[0]

    def test_package(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A package (compressed logs) views like the session it was made from."""
        full_session(tmp_path / "logs")
        assert 0 == _main(tmp_path, "view", SID)
        from_session = capsys.readouterr().out
        assert 0 == _main(tmp_path, "package", SID)
        capsys.readouterr()
        (package,) = (tmp_path / "packages").iterdir()
        assert 0 == _main(tmp_path, "view", str(package))
        assert from_session == capsys.readouterr().out


class TestFindCall:
    CALLS = [{"call_id": f"llm_ab{i}"} for i in range(7)] + [{"call_id": "llm_x"}]

    @pytest.mark.parametrize(
        ("asked", "found"),
        [("llm_ab3", "llm_ab3"), ("llm_x", "llm_x"), ("llm_a", None), ("last", "llm_x")],
    )
    def test_forms(self, asked: str, found: str | None) -> None:
        """An exact ID or unique prefix finds its call; 'last' the last one."""
        if found is None:
            with pytest.raises(CallNotFoundError, match=r"7 LLM calls start with 'llm_a' \("):
                find_call(self.CALLS, asked)
        else:
            assert found == find_call(self.CALLS, asked)["call_id"]

    def test_not_found(self) -> None:
        """No match, or 'last' in a session without calls, names what was asked."""
        with pytest.raises(CallNotFoundError, match="no LLM call 'llm_zz'") as info:
            find_call(self.CALLS, "llm_zz")
        assert "llm_zz" == info.value.call_id
        with pytest.raises(CallNotFoundError, match="no LLM call 'last'"):
            find_call([], "last")

    def test_ambiguous_lists_a_few(self) -> None:
        """An ambiguous prefix lists up to five matches and says there are more."""
        with pytest.raises(CallNotFoundError) as info:
            find_call(self.CALLS, "llm_ab")
        assert str(info.value).endswith("llm_ab4, …): give more of the ID")


class TestCallView:
    def test_error_and_outputs(self) -> None:
        """An error call shows the error; outputs naming the call are listed."""
        record = call(4, "c1", status="error", response=None, usage=None, cost_usd=None,
                      error={"type": "BadRequestError", "message": "no such model",
                             "status_code": 400, "request_id": "req_1"},
                      attempts=[{"attempt": 1, "status_code": None, "duration_ms": None,
                                 "error": "APIConnectionError"}])  # fmt: skip
        outputs = [
            rec(5, "output", kind="output", path="out/a.json", call_ids=["c1"]),
            rec(6, "output", kind="output", path="out/b.json", call_ids=["c9"]),
        ]
        text = _words(_text(call_view(record, outputs)))
        assert "call c1 chat.completions gpt-4 error" in text
        assert "cost unknown" in text
        assert "1 APIConnectionError — — — —" in text
        assert "[user]\nprompt c1" in text
        assert "no response" in text
        assert "type BadRequestError\nmessage no such model\nstatus_code 400" in text
        assert "out/a.json" in text
        assert "out/b.json" not in text

    def test_responses_and_scrubbed(self) -> None:
        """Responses API input/instructions, and content not captured, read plainly."""
        fingerprint = {"length": 12, "sha256": "ab" * 32}
        record = call(1, "c1", api="responses", time_to_first_token_ms=3.5, stream=True,
                      request={"model": "gpt-4", "instructions": "Be brief.",
                               "input": [{"type": "input_text", "text": "hello"}]},
                      response={"id": "r1", "output_text": fingerprint})  # fmt: skip
        text = _words(_text(call_view(record)))
        assert "[instructions]\nBe brief.\n[input]\nhello\n" in text
        assert "first token 3.5 ms" in text
        assert f"(not captured: 12 chars, sha256 {'ab' * 8}…)" in text
        scrubbed = call(1, "c2", request={"messages": [{"role": "user", "content": fingerprint}]})
        assert "[user]\n(not captured: 12 chars" in _text(call_view(scrubbed))

    def test_odd_shapes(self) -> None:
        """Tool calls, content parts, non-text content and odd attempts are shown, not lost."""
        messages = [
            {"role": "assistant", "content": None, "tool_calls": [{"id": "t1"}]},
            {"role": "user", "content": [{"type": "text", "text": "part one"}, {"x": 1}]},
            {"role": "tool", "content": {"rows": 2}},
            "a bare string",
        ]
        response = {"id": "r1", "output_text": None, "tool_calls": [{"id": "t2"}]}
        record = call(
            1, "c1", request={"messages": messages}, attempts="garbled", response=response
        )
        text = _words(_text(call_view(record)))
        assert '[assistant]\n[{"id":"t1"}]' in text
        assert '[user]\npart one\n{"x":1}' in text
        assert '[tool]\n{\n"rows": 2\n}' in text
        assert "}\na bare string\nresponse ─" in text
        assert 'tool_calls [{"id":"t2"}]' in text
        assert "attempts" not in text.split("request")[0]
        odd = call(1, "c2", request="not a dict", attempts=[{"attempt": 1}, "junk"])
        text = _words(_text(call_view(odd)))
        assert "request ─" in text
        assert "\nnot a dict\n" in text
        assert "1 — — — — —" in text


class TestCommand:
    def test_real_run(self, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
        """On a real run with the real SDK: the tree, a call by prefix, its record as JSON."""
        body = textwrap.dedent(
            """
            from structlog_belog.audit.fake_llm import fake_openai_client
            client = belog.instrument_openai(fake_openai_client(fail_first=1))
            with belog.session("viewed run", package=False) as run:
                with run.stage("generation"), run.task("write"):
                    client.chat.completions.create(
                        model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hi"}])
                    run.add_output("hi.txt")
                with run.stage("check"), run.stage("schema"):
                    logging.getLogger("app").warning("odd field")
            print(run.id, belog.last_call()["call_id"] if belog.last_call() else "", flush=True)
            """
        )
        with run_child(tmp_path, subprocess_env, body) as child:
            assert child.stdout is not None
            out = child.stdout.read()
        assert 0 == child.returncode
        sid = out.split()[0]
        (prompts,) = (tmp_path / "logs" / "sessions" / sid).glob("prompts*.jsonl")
        written = orjson.loads(prompts.read_bytes().splitlines()[0])
        cid = written["call_id"]

        tree = belog(tmp_path, subprocess_env, "view", sid).stdout
        assert f"viewed run  {sid}  ok" in tree
        assert "│   └── task write  " in tree
        assert f"│       ├── LLM {cid} gpt-4o-mini ok · " in tree
        assert "attempts 429 → 200" in tree
        assert f"│       ├── output hi.txt ← {cid}\n" in tree
        assert "└── stage check  " in tree
        assert "    └── stage schema  " in tree
        assert "        └── WARNING app: odd field" in tree

        shown = _words(belog(tmp_path, subprocess_env, "view", sid, "--call", cid[:-1]).stdout)
        assert f"call {cid} chat.completions gpt-4o-mini ok" in shown
        assert "[user]\nSay hi\n" in shown
        assert "\n1 429 " in shown
        assert "\n2 200 " in shown
        assert "hi.txt" in shown
        as_json = belog(tmp_path, subprocess_env, "view", sid, "--call", "last", "--json").stdout
        assert written == orjson.loads(as_json)

    def test_errors(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown call, or --json without --call, is an error with status 1."""
        write(session_dir(tmp_path / "logs") / "processing.jsonl", [start(0)])
        assert 1 == _main(tmp_path, "view", SID, "--call", "nope")
        assert "no LLM call 'nope' in this session" in capsys.readouterr().err
        assert 1 == _main(tmp_path, "view", SID, "--json")
        assert "--json needs --call" in capsys.readouterr().err
