"""Case 18: no control character from data reaches the terminal; summary cells stay cells.

A real session logs every character class a terminal acts on — C0 controls
(BEL, BS, CR, VT, FF), ESC with CSI and OSC sequences (clear screen, retitle
the window, a hyperlink), DEL, C1 controls (CSI U+009B, OSC U+009D, NEL
U+0085), the bidi overrides and isolates U+202A-U+202E and U+2066-U+2069 — in
the title, stage and task names, messages, field names and values, an
output path, a metric name, BELog suggestions and a session folder's name.
Every command prints it (text and ``--json``). Pass: none of those
characters in stdout or stderr.

The summary: values that would open a block inside a table cell or a list
item (``- x``, ``+ x``, ``1. x``, ``1) x``, ``---``, ``# h``, ``> q``, an
indented code line, a fence) and bidi characters. Pass: the summary's block
structure, parsed with markdown-it (rich's own parser), is the same as with
plain values, and it holds no bidi or control character.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ._hostile import UNSAFE, belog_cli, python_code

EVIL = (
    "\x07\x08\r\x0b\x0c\x1b[2J\x1b]0;pwned\x07\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\"
    "\x7f\x9b31m\x9d0;t\x9c\x85\u202aa\u202bb\u202cc\u202dd\u202ee\u2066f\u2067g\u2068h\u2069"
)

SCRIPT = """
import json, logging, sys, structlog
import structlog_belog as belog
root, evil = sys.argv[1], sys.argv[2]
belog.configure(log_dir=root + "/logs", package_dir=root + "/packages", console=False)
log = structlog.get_logger("app" + evil)
with belog.session("title" + evil, blueprint_id="bp_e", blueprint_version="v1") as run:
    with run.stage("stage" + evil):
        log.info("event" + evil, **{"key" + evil: "value" + evil})
        logging.getLogger("std").error("std %s", evil)
        with run.task("task" + evil, expected_outcome="x" + evil) as task:
            task.suggest("suggest" + evil)
            logging.getLogger("std").error("in task " + evil)
        open(root + "/out.txt", "w").write("x")
        run.add_output(root + "/out.txt")
    run.set_metric("metric" + evil, 1.0)
print(json.dumps({"id": run.id, "package": str(run.package_path)}))
"""


@pytest.mark.slow
class TestTerminalEscapes:
    """Every view neutralises control and bidi characters from data."""

    def test_no_control_character_printed(
        self, tmp_path: Path, subprocess_env: dict[str, str], figure: Any
    ) -> None:
        """Every command, text and JSON: no C0 (but tab/newline), DEL, C1 or bidi."""
        proc = subprocess.run(
            python_code(SCRIPT, str(tmp_path), EVIL),
            env=subprocess_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert 0 == proc.returncode, proc.stderr
        made = json.loads(proc.stdout.strip().splitlines()[-1])
        sessions = tmp_path / "logs" / "sessions"
        (sessions / ("sess_evil" + EVIL.replace("/", "_"))).mkdir()
        sid, pkg = made["id"], made["package"]
        d = ["--log-dir", str(tmp_path / "logs"), "--package-dir", str(tmp_path / "out")]
        commands = [
            ["sessions"],
            ["sessions", "--json"],
            ["show", sid],
            ["show", sid, "--json"],
            ["show", pkg],
            ["tail", sid],
            ["tail", sid, "--json"],
            ["view", sid],
            ["view", sid, "--all"],
            ["view", pkg],
            ["summary", sid],
            ["summary", sid, "--raw"],
            ["summary", pkg],
            ["summary", sid, "--json"],
            ["verify", pkg],
            ["last"],
            ["last", "--json"],
            ["attempts", "task" + EVIL],
            ["revise", "bp_e", "--no-write"],
            ["revise", "bp_e", "--no-write", "--json"],
            ["package", sid],
            ["show", "sess_evil" + EVIL],
        ]
        leaks = []
        for command in commands:
            run = subprocess.run(
                belog_cli(*d, *command),
                env=subprocess_env,
                capture_output=True,
                timeout=60,
                check=False,
            )
            for stream, data in (("stdout", run.stdout), ("stderr", run.stderr)):
                text = data.decode("utf-8", "replace")
                found = sorted({f"U+{ord(c):04X}" for c in UNSAFE.findall(text)})
                if found:
                    leaks.append((command[0], stream, found))
        figure("commands run", len(commands))
        figure("commands leaking a control character", len(leaks))
        assert [] == leaks


BLOCKS = [
    "- x",
    "+ x",
    "* x",
    "1. x",
    "1) x",
    "---",
    "***",
    "# h",
    "> q",
    "    code",
    "```",
    "~~~",
    "=== x",
    "<div>",
    "2. \u202eevil",
]

SUMMARY = """
import json, sys
import structlog_belog as belog
from markdown_it import MarkdownIt
root, values = sys.argv[1], json.loads(sys.argv[2])
belog.configure(log_dir=root + "/logs", package_dir=root + "/packages", console=False)
def run_with(v, n):
    with belog.session(v, execution_context=v, blueprint_id=v, blueprint_version=v) as run:
        with run.stage(v):
            with run.task(v) as task:
                task.suggest(v)
                import logging; logging.getLogger(v).error(v)
            p = root + "/f%d" % n
            open(p, "w").write("x")
            run.add_input(p)
            run.add_output(p)
        run.set_metric(v, 1.0)
    return (run.package_path / "logs" / "execution_summary.md").read_text()
def shape(md):
    return [(t.type, t.level) for t in MarkdownIt("commonmark").enable("table").parse(md)
            if t.type.endswith("_open") or t.type in ("hr", "fence", "code_block", "html_block")]
plain = shape(run_with("plain", 0))
out = []
for n, v in enumerate(values, 1):
    md = run_with(v, n)
    out.append({"value": v, "same": shape(md) == plain, "text": md})
print(json.dumps(out))
"""


class TestSummaryCells:
    """Hostile values cannot open a block in the summary, nor carry bidi/control characters."""

    def test_block_structure_unchanged(
        self, tmp_path: Path, subprocess_env: dict[str, str], figure: Any
    ) -> None:
        """The parsed block structure with each hostile value equals the plain one."""
        proc = subprocess.run(
            python_code(SUMMARY, str(tmp_path), json.dumps(BLOCKS)),
            env=subprocess_env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert 0 == proc.returncode, proc.stderr
        results = json.loads(proc.stdout.strip().splitlines()[-1])
        changed = [r["value"] for r in results if not r["same"]]
        unsafe = [r["value"] for r in results if UNSAFE.search(r["text"])]
        figure(
            "values / changing the structure / with bidi or control",
            f"{len(results)} / {len(changed)} / {len(unsafe)}",
        )
        assert [] == changed
        assert [] == unsafe
