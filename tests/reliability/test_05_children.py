"""Case 5: multiprocessing children, and forking while threads hold logging locks.

Children started by ``fork``, ``spawn`` and ``forkserver`` log 5,000 records
each and simply return (no flush, no close): every record must be in the
child's shard. Then 20 children are forked while one thread holds the
router's, the session's and the stdlib handler's locks and two others log
flat out: every child must log and exit within 7 s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import child_json, read_lines, run_child

CHILDREN = 4
RECORDS = 5000


class TestMultiprocessingChildren:
    """Records of multiprocessing children reach their shards without an explicit flush."""

    @pytest.mark.parametrize("durability", ["record", "buffered"])
    @pytest.mark.parametrize(
        "method", ["fork", pytest.param("spawn", marks=pytest.mark.slow), "forkserver"]
    )
    def test_all_records_arrive(
        self,
        method: str,
        durability: str,
        tmp_path: Path,
        subprocess_env: dict[str, str],
        figure: Any,
    ) -> None:
        """4 children x 5,000 records: 20,000 of 20,000 on disk."""
        log_dir = tmp_path / "logs"
        result = child_json(
            run_child(
                subprocess_env,
                "mp_children",
                str(log_dir),
                method,
                str(CHILDREN),
                str(RECORDS),
                durability,
            )
        )
        assert [0] * CHILDREN == result["exitcodes"]
        session_dir = log_dir / "sessions" / result["session_id"]
        found = 0
        for pid in result["pids"]:
            records, tail = read_lines(session_dir / f"processing.{pid}.jsonl")
            assert b"" == tail
            mine = sorted(int(r["i"]) for r in records if r["event"] == "rec")
            assert list(range(RECORDS)) == mine
            assert {result["session_id"]} == {r["session_id"] for r in records}
            found += len(mine)
        figure("records found", f"{found}/{CHILDREN * RECORDS}")
        assert CHILDREN * RECORDS == found


class TestForkWithLocksHeld:
    """A fork while other threads are inside the logging locks."""

    def test_children_exit(
        self, tmp_path: Path, subprocess_env: dict[str, str], figure: Any
    ) -> None:
        """20 of 20 children log and exit within 7 s."""
        log_dir = tmp_path / "logs"
        result = child_json(
            run_child(subprocess_env, "fork_locked", str(log_dir), "20", timeout=200)
        )
        children = result["children"]
        exited = [c for c in children if c["exited"] and c["seconds"] < 7]
        figure("children exited within 7 s", f"{len(exited)}/{len(children)}")
        figure("slowest child (s)", round(max(c["seconds"] for c in children), 3))
        assert 20 == len(exited)
        session_dir = log_dir / "sessions" / result["session_id"]
        for child in children:
            records, tail = read_lines(session_dir / f"processing.{child['pid']}.jsonl")
            assert b"" == tail
            assert 200 == sum(1 for r in records if str(r["event"]).split(" ")[0] == "child")
            assert 1 == sum(1 for r in records if r.get("kind") == "metric")
