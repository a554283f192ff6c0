"""The BELog execution loop, six steps per iteration, against an offline fake model.

1. Retrieve the last execution             ``store.last_execution(blueprint_id)``
2. Evaluate it                             ``belog.reflect(task)``: outcome, time, score
3. Find what went wrong or slow            ``belog.reflect(task)``: problems, suggestions
4. Propose the next execution step         ``belog.next_step(task, proposer=...)``
5. Execute it, leaving BELog records       a three-stage pipeline of ``run.task(...)``
6. Loop: revise the blueprint              ``belog.generate_blueprint_revision(...)``

The pipeline prepares a template (and an index), generates a supertask with
an audited LLM call, and validates it. Iteration 2 forgets the index, so
validation fails with ``RuntimeError: index missing``; step 4 of iteration 3
reads that from the records and the pipeline applies the fix. Iteration 3 also
meets two rate-limited requests. Nothing in a record is filled by hand: files,
dependencies, connections, risk, cross-checks, suggestions and the score are
measured.

The model is structlog-belog's offline fake (no network, no API key).

Run: python examples/momentum_loop.py [--out FOLDER] [--iterations N] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import structlog_belog as belog
from structlog_belog.audit.fake_llm import FakeLLM, fake_openai_client

BLUEPRINT = "bp_supertask"
PREPARE = "Prepare content"
GENERATE = "Generate beginner supertask"
VALIDATE = "Validate supertask"
#: The iteration whose preparation forgets the index, and the one rate-limited.
FORGETS_INDEX, RATE_LIMITED = 2, 3

log = logging.getLogger("momentum.pipeline")


def fake_model_for(iteration: int) -> FakeLLM:
    """The fake model of *iteration*: two 429 answers before success in RATE_LIMITED."""
    if iteration == RATE_LIMITED:
        return FakeLLM(fail_first=2, fail_status=429)
    return FakeLLM()


def execute(
    iteration: int, step: belog.NextStep | None, lessons: str, version: str | None
) -> dict[str, Any]:
    """Step 5: the pipeline, one BELog record per task; returns the generation's record.

    *version* is the blueprint version to run, or None for the latest one known.
    """
    client = belog.instrument_openai(
        fake_openai_client(transport=fake_model_for(iteration), max_retries=3)
    )
    work = Path("work")
    raw = work / "01_raw" / "content.md"
    template = work / "02_preprocessed" / "template.json"
    index = work / "02_preprocessed" / "index.json"
    output = work / "03_output" / "beginner.json"
    fix_index = step is not None and any("index missing" in c for c in step.changes)
    with belog.session(
        "momentum",
        execution_context="Generate supertasks from Naval content",
        blueprint_id=BLUEPRINT,
        blueprint_version=version,  # None: the session uses (and records) the latest known
    ) as run:
        with run.stage("preprocessing"), run.task(PREPARE, expected_outcome="a template") as t:
            run.add_input(raw)
            template.parent.mkdir(parents=True, exist_ok=True)
            template.write_text(json.dumps({"sections": raw.read_text().split("\n\n")}))
            run.add_output(template)
            if iteration != FORGETS_INDEX or fix_index:
                index.write_text(json.dumps({"levels": ["beginner"]}))
            elif index.exists():
                index.unlink()
            if fix_index:
                t.suggest("Always rebuild the index with the template (fixed 'index missing')")

        with (
            run.stage("generation"),
            run.task(GENERATE, expected_outcome="a supertask as JSON") as t,
        ):
            run.add_input(template)
            messages = [
                {"role": "system", "content": f"Lessons from earlier runs:\n{lessons}"},
                {"role": "user", "content": "Write one beginner supertask."},
            ]
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
            text = reply.choices[0].message.content or ""
            try:
                json.loads(text)
            except ValueError:
                log.exception("reply_not_json: the model answered prose; asking again for JSON")
                reply = client.chat.completions.create(
                    model="gpt-4o-mini", messages=messages, response_format={"type": "json_object"}
                )
                text = reply.choices[0].message.content or ""
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text)
            run.add_output(output)
            t.suggest("Ask for JSON (response_format) on the first call")
        generated = t.record

        try:
            with run.stage("validation"), run.task(VALIDATE, expected_outcome="a valid supertask"):
                validate(run, output, index)
        except RuntimeError as exc:
            print(f"5. validation failed: {exc}", file=sys.stderr)
    return generated or {}


def validate(run: belog.Run, output: Path, index: Path) -> None:
    """The validation stage: the supertask parses and the index exists."""
    run.add_input(output)
    json.loads(output.read_text())
    if not index.exists():
        raise RuntimeError("index missing")
    run.add_input(index)


def llm_proposer(evidence: Any) -> str:
    """An LLM (the fake, audited) asked for one more change, given the evidence."""
    client = belog.instrument_openai(fake_openai_client())
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "user", "content": f"Propose one change:\n{json.dumps(evidence)[:4000]}"}
        ],
    )
    return reply.choices[0].message.content or ""


def main() -> None:
    """Run the loop `--iterations` times; print the last generation's BELog record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="working folder (default: a temporary one)")
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--json", action="store_true", help="print only the last record, as JSON")
    args = parser.parse_args()
    out = (args.out or Path(tempfile.mkdtemp(prefix="momentum_"))).absolute()
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(out)  # the working directory is what each task's files_changed watches
    raw = Path("work/01_raw/content.md")
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text("# Naval\n\nSeek wealth, not money or status.\n\nLearn to sell, learn to build.")
    belog.configure(log_dir="logs", package_dir="packages", console=False)
    say = (lambda *_: None) if args.json else print
    store = belog.open_store()

    record: dict[str, Any] = {}
    version: str | None = "v1.0"
    for iteration in range(args.iterations):
        say(f"\n=== iteration {iteration} ===")
        last = store.last_execution(BLUEPRINT)  # 1
        say("1. last:", "nothing yet" if last is None else f"{last['task_name']!r}")
        step = None
        lessons = "none yet"
        if last is not None:
            lessons = belog.reflect(last["task_name"], store)  # 2, 3
            say("2-3.", lessons.replace("\n", "\n     "))
            failed = store.get_past_attempts(VALIDATE, 1)
            focus = VALIDATE if failed and not failed[0]["success"] else last["task_name"]
            step = belog.next_step(focus, proposer=llm_proposer, store=store)  # 4
            say("4.", step.to_text().replace("\n", "\n   "))
        fixing = step is not None and step.action == "fix"
        # A fix is a new version of the blueprint: the one the last revision proposed.
        record = execute(iteration, step, lessons, version if fixing or iteration == 0 else None)
        say(f"5. recorded {record['execution_trace_id']}: score {record['efficiency_score']}")
        revision = belog.generate_blueprint_revision(BLUEPRINT, store)  # 6
        version = revision.proposed_version
        say("6.", revision.to_markdown().replace("\n", "\n   "))

    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print("\n=== the BELog record of the last generation ===")
        print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
