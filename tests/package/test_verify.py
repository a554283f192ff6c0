"""Schemas and package verification."""

from __future__ import annotations

import hashlib
from pathlib import Path

import jsonschema
import pytest

from structlog_belog.package.packager import build_package
from structlog_belog.package.verify import (
    KINDS,
    check_sums,
    load_schema,
    record_problems,
    validate_record,
    verify_package,
)
from tests.session_files import belog_record, call, full_session, rec


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A package of the hand-made full session."""
    return build_package(full_session(tmp_path / "logs"), tmp_path / "p")


class TestSchemas:
    @pytest.mark.parametrize("name", ["record", "metadata", *KINDS])
    def test_shipped(self, name: str) -> None:
        """Every schema ships, is a valid Draft 2020-12 schema and has an $id."""
        schema = load_schema(name)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$id"].endswith(name)

    def test_unknown(self) -> None:
        """An unknown schema name is refused with the list of names."""
        with pytest.raises(ValueError, match="one of"):
            load_schema("nope")

    def test_records(self) -> None:
        """Good records pass; a bad llm_call or belog record names the field."""
        validate_record(call(1, "c1"))
        validate_record(belog_record(1, "t"))
        validate_record(rec(1, "plain", user="x"))
        validate_record(rec(1, "records_dropped", kind="drops", pid=7, records_dropped=2))
        assert any(
            "records_dropped" in p
            for p in record_problems(rec(1, "records_dropped", kind="drops", pid=7))
        )
        assert any("status" in p for p in record_problems(call(1, "c1", status="weird")))
        assert any(
            "efficiency_score" in p
            for p in record_problems(belog_record(1, "t", efficiency_score=101))
        )
        with pytest.raises(jsonschema.ValidationError):
            validate_record({"event": "no timestamp"})

    def test_references(self) -> None:
        """In processing.jsonl, llm_call and belog lines are short references."""
        ref = rec(1, "llm_call", kind="llm_call", call_id="c1", ref="prompts")
        assert [] == record_problems(ref, reference=True)
        assert [] != record_problems(ref)


class TestVerifyPackage:
    def test_sound(self, package: Path) -> None:
        """A fresh package has no problems."""
        assert [] == verify_package(package)

    def test_bad_sums_lines(self, package: Path) -> None:
        """Malformed lines and paths escaping the package are reported."""
        sums = package / "logs" / "SHA256SUMS"
        outside = package.parent.parent / "outside.txt"
        outside.write_text("x")
        digest = hashlib.sha256(b"x").hexdigest()
        sums.write_text(sums.read_text() + "garbage\n" + f"{digest}  ../../../outside.txt\n")
        problems = list(check_sums(package))
        assert any("not a checksum line" in p for p in problems)
        assert any("points outside the package" in p for p in problems)

    def test_missing_member(self, package: Path) -> None:
        """A deleted member is reported as unreadable and missing."""
        (package / "logs" / "belog.jsonl.zst").unlink()
        problems = verify_package(package)
        assert any("belog.jsonl.zst: cannot be read" in p for p in problems)
        assert "logs/belog.jsonl[.zst]: missing" in problems

    def test_schema_problem(self, package: Path) -> None:
        """metadata.json that breaks the schema is reported (after its checksum)."""
        meta = package / "logs" / "metadata.json"
        meta.write_text(
            meta.read_text().replace('"metadata_version": "1.0"', '"metadata_version": 2')
        )
        problems = verify_package(package)
        assert "metadata.json: checksum mismatch" in problems
        assert any(p.startswith("metadata.json: metadata_version") for p in problems)

    def test_not_a_package(self, tmp_path: Path) -> None:
        """A folder that is no package says so."""
        problems = verify_package(tmp_path)
        assert any("not a package" in p for p in problems)


def _resum(package: Path, name: str) -> None:
    """Rewrite *name*'s line of SHA256SUMS to its current digest (a careful forger)."""
    sums = package / "logs" / "SHA256SUMS"
    digest = hashlib.sha256((package / "logs" / name).read_bytes()).hexdigest()
    lines = [
        f"{digest}  {name}" if line.endswith(f"  {name}") else line
        for line in sums.read_text().splitlines()
    ]
    sums.write_text("\n".join(lines) + "\n")


class TestVerifyReportPage:
    def test_listed_and_checked(self, package: Path) -> None:
        """The page is in SHA256SUMS and metadata.json, and a sound one passes."""
        import orjson

        meta = orjson.loads((package / "logs" / "metadata.json").read_bytes())
        page = (package / "logs" / "execution_report.html").read_bytes()
        assert hashlib.sha256(page).hexdigest() == meta["package"]["report"]["sha256"]
        assert "execution_report.html" in (package / "logs" / "SHA256SUMS").read_text()
        assert [] == verify_package(package)

    def test_a_script_slipped_in_is_found(self, package: Path) -> None:
        """A page given a remote script, its checksum line updated, still fails verify."""
        page = package / "logs" / "execution_report.html"
        page.write_text(
            page.read_text("utf-8").replace(
                "</body>", '<script src="http://127.0.0.1:9/x.js"></script></body>'
            ),
            "utf-8",
        )
        _resum(package, "execution_report.html")
        assert [
            "logs/execution_report.html: SHA-256 differs from metadata.json's package.report",
            "logs/execution_report.html: size differs from metadata.json's package.report",
            "logs/execution_report.html: the policy does not admit exactly the page's own script",
            "logs/execution_report.html: elements that load resources: ['script']",
        ] == verify_package(package)

    def test_missing_page_that_metadata_lists(self, package: Path) -> None:
        """A page metadata.json lists but the package lacks is reported missing."""
        (package / "logs" / "execution_report.html").unlink()
        problems = verify_package(package)
        assert "logs/execution_report.html: missing (metadata.json lists it)" in problems
