"""The BELog execution loop, six steps per run, against an offline fake model.

1. What was I doing last?                  ``store.last_execution(blueprint_id)``
2. How did my last attempt go?             ``belog.reflect(task)``: outcome, time, score
3. What went wrong, what should change?    ``belog.reflect(task)``: problems, suggestions
4. Do the task, with 1-3 in the prompt     ``belog.task(...)`` around an audited LLM call
5. Record what happened                    one BELog record, written when the task ends
6. Revise the blueprint from the evidence  ``belog.generate_blueprint_revision(...)``

The model is structlog-belog's offline fake (no network, no API key): the
first three runs succeed (the third one slowly), the last two meet a server
error, so step 6 has a recurring error, a time regression, a falling success
rate and a repeated suggestion to report, each citing its trace IDs.

Run: python examples/momentum_loop.py [--out FOLDER] [--runs N]
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import openai

import structlog_belog as belog
from structlog_belog.audit.fake_llm import FakeLLM, fake_openai_client

BLUEPRINT = "bp_supertask"
TASK = "Generate beginner supertask"


def fake_model_for(run: int) -> FakeLLM:
    """The fake model's behaviour in run *run*: slow in run 2, failing from run 3 on."""
    if run >= 3:
        return FakeLLM(fail_first=10, fail_status=500)
    return FakeLLM(latency=0.3 if run == 2 else 0.01)


def one_run(run: int, store: Any) -> None:
    """Steps 1-5 for one run of the blueprint."""
    client = belog.instrument_openai(
        fake_openai_client(transport=fake_model_for(run), max_retries=0)
    )
    with belog.session(
        "momentum",
        execution_context="Generate supertasks from Naval content",
        blueprint_id=BLUEPRINT,
        blueprint_version=f"v1.{run}",
    ):
        # Steps 1-3: what was done last, how it went, what to change.
        last = store.last_execution(BLUEPRINT)
        print(f"\n=== run {run} ===")
        print("1. last:", "nothing yet" if last is None else last["task_name"])
        lessons = belog.reflect(TASK, store)
        print("2-3.", lessons.replace("\n", "\n     "))

        # Steps 4-5: the task itself; its BELog record is written when it ends.
        try:
            with belog.task(TASK, expected_outcome="a supertask as JSON") as task:
                reply = client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[
                        {"role": "system", "content": f"Lessons from earlier runs:\n{lessons}"},
                        {"role": "user", "content": "Write one beginner supertask."},
                    ],
                )
                task.suggest("Cache the template analysis between supertasks")
                if run == 2:
                    task.cross_check("difficulty labels of slow generations")
                print("4. model said:", reply.choices[0].message.content)
        except openai.APIError as exc:
            print(f"4. the call failed: {type(exc).__name__}")
        record = task.record or {}
        print(
            f"5. recorded {record.get('execution_trace_id')}: success={record.get('success')}, "
            f"{record.get('execution_time', 0):.2f} s, efficiency {record.get('efficiency_score')}"
        )


def llm_proposer(records: Sequence[Mapping[str, Any]], items: Sequence[Any]) -> list[str]:
    """A proposer that asks the (fake, audited) model for one more revision."""
    client = belog.instrument_openai(fake_openai_client())
    summary = "\n".join(f"- {item.title}" for item in items)
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "user", "content": f"Given these findings, propose one fix:\n{summary}"}
        ],
    )
    return [f"Model's proposal: {reply.choices[0].message.content}"]


def main() -> None:
    """Run the loop `--runs` times, then step 6."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for logs/ and packages/ (default: temp)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="momentum_"))
    belog.configure(log_dir=out / "logs", package_dir=out / "packages", console=False)
    store = belog.open_store()

    for run in range(args.runs):
        one_run(run, store)

    # Step 6: revise the blueprint from the evidence of every run.
    revision = belog.generate_blueprint_revision(BLUEPRINT, store, proposer=llm_proposer)
    print("\n6.", revision.to_markdown())
    print(f"written to {revision.path}")


if __name__ == "__main__":
    main()
