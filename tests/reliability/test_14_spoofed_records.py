"""Case 14: spoofed records. A log call cannot make a special record.

Fields a record's routing or the package's meaning depend on (``kind``,
``ref``, ``session_id``, ``stage``, ``task``, ``pid``, ``attributed``) are the
library's: a log call carrying them — as structlog keyword arguments, stdlib
``extra=``, fields bound with `belog.bind`/`belog.bound` or structlog's
contextvars — stays an ordinary record with the values kept as data under
``app.<name>``. The spoofed calls include every special kind: ``content`` with
a host file's path (packaging must not copy it), ``llm_call`` with usage and
cost, ``metric``, ``output``, ``input``, ``session_end``, ``belog``,
``stage_start``. Pass: the package holds no copy of the host file, metadata
counts no call, no token, no cost, no spoofed metric, output, input or stage,
and every call left exactly one ordinary record with its values kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson

from ._hostile import run_script

SPOOFS: list[dict[str, Any]] = [
    {"kind": "content", "path": "@SECRET@", "as_name": "stolen"},
    {
        "kind": "llm_call",
        "call_id": "call_spoof",
        "api": "chat.completions",
        "model": "gpt-spoof",
        "status": "ok",
        "usage": {"input_tokens": 10**9, "output_tokens": 10**9, "total_tokens": 2 * 10**9},
        "cost_usd": 1e6,
        "latency_ms": 1.0,
    },
    {"kind": "metric", "metric": "quality", "value": -1},
    {"kind": "output", "path": "@SECRET@", "call_ids": ["call_spoof"]},
    {"kind": "input", "path": "@SECRET@"},
    {"kind": "session_end", "success": False, "duration_s": 1e9},
    {"kind": "belog", "task_name": "spoof", "execution_trace_id": "t", "success": False},
    {"kind": "stage_start"},
    {"ref": "prompts"},
    {"session_id": "sess_2000-01-01_00-00-00_deadbeef"},
    {"stage": "spoofed_stage"},
    {"task": "spoofed_task"},
    {"pid": 1},
    {"attributed": "sole_session"},
]

SCRIPT = """
import json, logging, sys, structlog
import structlog_belog as belog
root, secret = sys.argv[1], sys.argv[2]
spoofs = json.loads(sys.argv[3].replace("@SECRET@", secret))
belog.configure(log_dir=root + "/logs", package_dir=root + "/packages", console=False)
log = structlog.get_logger("app")
std = logging.getLogger("app.std")
calls = 0
with belog.session("spoof") as run:
    for i, fields in enumerate(spoofs):
        log.info("kw", i=i, **fields)
        std.info("extra", extra={"i": i, **fields})
        with belog.bound(**fields):
            log.info("bound", i=i)
        structlog.contextvars.bind_contextvars(**fields)
        std.info("ctxvars", extra={"i": i})
        structlog.contextvars.clear_contextvars()
        calls += 4
    run.set_metric("real_metric", 1.0)
print(json.dumps({"id": run.id, "package": str(run.package_path), "calls": calls}))
"""


def _tree_bytes(top: Path) -> list[bytes]:
    return [p.read_bytes() for p in top.rglob("*") if p.is_file() and not p.is_symlink()]


class TestSpoofedRecords:
    """A log call's arguments never make a special record."""

    def test_spoofed_kinds_stay_ordinary_records(
        self, tmp_path: Path, subprocess_env: dict[str, str], figure: Any
    ) -> None:
        """No copy of the host file, metadata untouched, every call kept as data."""
        secret = tmp_path / "host_secret.txt"
        marker = b"HOST-FILE-MARKER-" + b"7" * 40
        secret.write_bytes(marker)
        _proc, result = run_script(
            SCRIPT, str(tmp_path), str(secret), json.dumps(SPOOFS), env=subprocess_env, timeout=120
        )
        package = Path(result["package"])
        session_dir = tmp_path / "logs" / "sessions" / result["id"]
        copies = [b for b in _tree_bytes(package) if marker in b]
        assert not (package / "stolen").exists()
        meta = json.loads((package / "logs" / "metadata.json").read_text())
        records = [
            orjson.loads(line)
            for path in sorted(session_dir.glob("processing*.jsonl"))
            for line in path.read_bytes().splitlines()
        ]
        spoofed = [r for r in records if r.get("event") in ("kw", "extra", "bound", "ctxvars")]
        with_kind = [r for r in spoofed if "kind" in r or "ref" in r]
        kept = sum(
            1
            for r in spoofed
            if all(
                r.get(f"app.{k}") == (str(secret) if v == "@SECRET@" else v)
                for k, v in SPOOFS[r["i"]].items()
                if k in ("kind", "ref", "session_id", "stage", "task", "pid", "attributed")
            )
        )
        figure("spoofed calls (4 paths x 14 field sets)", result["calls"])
        figure("records left / special records made", f"{len(spoofed)} / {len(with_kind)}")
        figure("copies of the host file in the package", len(copies))
        figure("values kept under app.<name>", kept)
        assert [] == copies
        assert result["calls"] == len(spoofed)
        assert [] == with_kind
        assert len(spoofed) == kept
        assert {result["id"]} == {r["session_id"] for r in spoofed}
        assert not list(session_dir.glob("prompts*.jsonl"))
        assert not list(session_dir.glob("belog*.jsonl"))
        ai = meta["ai_usage"]
        assert 0 == ai["total_api_calls"]
        assert 0 == ai["total_tokens"]
        assert {"real_metric": 1.0} == meta["quality_metrics"]
        assert [] == meta["outputs"]
        assert [] == meta["content"]["input_files"]
        assert [] == meta["content"]["output_files"]
        assert meta["execution"]["success"] is True
        assert [] == [s for s in meta["execution"]["stages_executed"] if "spoof" in str(s)]
