"""Tests for the evidence a BELog record derives: hosts, services, connections, risk."""

from __future__ import annotations

from typing import Any

from structlog_belog.memory import evidence


def record(task: str, trace: str, **fields: Any) -> dict[str, Any]:
    """A minimal BELog record of *task*."""
    return {"task_name": task, "execution_trace_id": trace, "session_id": "s1", **fields}


class TestObserved:
    """Observed.note_record: what a log record names."""

    def test_http_client_records_name_hosts(self) -> None:
        """httpx's and urllib3's own messages give the host contacted, never credentials."""
        seen = evidence.Observed()
        seen.note_record(
            {"event": 'HTTP Request: POST https://user:pw@api.example.com/v1/x "HTTP/1.1 200 OK"'},
            "httpx",
        )
        seen.note_record(
            {"event": "Starting new HTTPS connection (1): files.example.org:443"},
            "urllib3.connectionpool",
        )
        assert ["http:api.example.com", "http:files.example.org:443"] == list(seen.services)

    def test_fields_name_services_and_databases(self) -> None:
        """database=, table=, url= fields of the app's own records are dependencies."""
        seen = evidence.Observed()
        seen.note_record(
            {"event": "saved", "database": "supertasks", "dsn": "postgresql://u:p@db.local/app"},
            "app",
        )
        seen.note_record({"event": "x", "service": "x" * 500}, "app")  # too long to be a name
        assert ["database:supertasks", "postgresql:db.local/app"] == list(seen.services)

    def test_inputs_and_outputs(self) -> None:
        """input/output records are files read and written, with their sizes."""
        seen = evidence.Observed()
        seen.note_record({"kind": "input", "path": "raw.md", "size": 12}, "structlog_belog.session")
        seen.note_record(
            {"kind": "output", "path": "out.json", "size": 0}, "structlog_belog.session"
        )
        seen.note_record({"event": "own", "database": "x"}, "structlog_belog.audit")
        assert {"raw.md": 12} == seen.inputs
        assert {"out.json": 0} == seen.outputs
        assert ["file:raw.md"] == seen.dependencies(str)


class TestConnections:
    """ConnectionIndex and connections(): who reads what a task wrote."""

    def test_downstream_and_upstream(self) -> None:
        """A reader of a written file is downstream; a writer of a read file upstream."""
        index = evidence.ConnectionIndex()
        index.add(record("write", "t1", stage="gen", files_changed=["out.json"]))
        index.add(record("read", "t2", stage="check", dependencies_affected=["file:out.json"]))
        down = index.readers(["out.json"], "write")
        up = index.writers(["out.json"], "read")
        assert [
            "downstream: task 'read' in stage 'check' reads out.json (t2)",
            "upstream: task 'write' in stage 'gen' wrote out.json (t1)",
        ] == evidence.connections(down, up)
        assert [] == index.readers(["out.json"], "read")  # a task is not its own reader


class TestAssessRisk:
    """assess_risk: a level only from evidence, with reasons."""

    def test_unknown_without_evidence(self) -> None:
        """No history and no changed file: nothing was assessed."""
        level, reasons, checks = evidence.assess_risk(
            success=True, errors=[], files_changed=[], downstream=[], past=[], regressions=[]
        )
        assert ("unknown", [], []) == (level, reasons, checks)

    def test_none_when_assessed_clean(self) -> None:
        """History without failures or readers: none, and says what was checked."""
        level, reasons, _ = evidence.assess_risk(
            success=True,
            errors=[],
            files_changed=["a"],
            downstream=[],
            past=[record("t", "p1", success=True)],
            regressions=[],
        )
        assert "none" == level
        assert ["assessed: no downstream reader"] == [r[:30] for r in reasons]

    def test_downstream_reader_of_a_failed_write_is_high(self) -> None:
        """A failed attempt that changed a file another task reads is high risk."""
        index = evidence.ConnectionIndex()
        index.add(record("read", "t2", dependencies_affected=["file:out.json"]))
        level, reasons, checks = evidence.assess_risk(
            success=False,
            errors=["RuntimeError: boom"],
            files_changed=["out.json"],
            downstream=index.readers(["out.json"], "write"),
            past=[],
            regressions=[],
        )
        assert "high" == level
        assert "this attempt failed: RuntimeError: boom" in reasons
        assert ["task 'read': reads out.json, which this task changed"] == checks

    def test_readers_in_pipeline_order(self) -> None:
        """Readers of several written files come in the order their records were indexed."""
        index = evidence.ConnectionIndex()
        index.add(record("late", "t3", dependencies_affected=["file:a.json"]))
        index.add(record("early", "t2", dependencies_affected=["file:b.json"]))
        index.add(record("late", "t4", dependencies_affected=["file:a.json"]))
        assert ["early", "late"] == [u.task for _, u in index.readers(["a.json", "b.json"], "w")]
