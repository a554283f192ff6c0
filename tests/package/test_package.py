"""The finalizer and the execution package, on real sessions and hand-made ones."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog

import structlog_belog as belog
from structlog_belog.core import config as _config
from structlog_belog.core.state import emit
from structlog_belog.exceptions import PackageError, SessionNotFoundError
from structlog_belog.package import members as _members
from structlog_belog.package import packager as _package
from structlog_belog.package.packager import build_package, finalize_run, packaged_at
from structlog_belog.package.slug import package_name, place_package, slugify
from structlog_belog.package.verify import record_problems, validate_metadata, verify_package
from tests.session_files import SID, full_session, rec, session_dir, start, ts, write

MEMBERS = ("processing.jsonl", "prompts_audit.jsonl", "belog.jsonl")


def _tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _zstd_lines(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    return [orjson.loads(line) for line in out.splitlines()]


def _sha256sum_ok(package: Path) -> str:
    proc = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"],
        cwd=package / "logs",
        capture_output=True,
        text=True,
        check=False,
    )
    assert 0 == proc.returncode, proc.stdout + proc.stderr
    return proc.stdout


def _llm_caller(run: belog.Run) -> Callable[[str, str], str]:
    """Make LLM calls through the audit and the fake model when they exist, else emit them."""
    try:
        from structlog_belog.audit.fake_llm import fake_openai_client
        from structlog_belog.audit.wrap import instrument_openai
    except ImportError:
        instrument_openai = None

    if instrument_openai is not None:
        client = instrument_openai(fake_openai_client())

        def via_audit(prompt: str, model: str) -> str:
            reply = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": prompt}]
            )
            return str(reply.choices[0].message.content)

        return via_audit

    def via_emit(prompt: str, model: str) -> str:
        call_id = "llm_" + uuid.uuid4().hex[:20]
        record = {
            "kind": "llm_call", "call_id": call_id, "api": "chat.completions", "model": model,
            "request": {"model": model, "messages": [{"role": "user", "content": prompt}]},
            "response": {"id": "r", "output_text": "answer", "finish_reason": "stop"},
            "usage": {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10},
            "latency_ms": 20.0, "stream": False, "status": "ok", "error": None,
            "attempts": [{"attempt": 1, "status_code": 200}], "cost_usd": 0.0001,
        }  # fmt: skip
        emit("llm_call", logger="structlog_belog.audit", **record)
        run.note_call(record)
        return "answer"

    return via_emit


class TestFullPipeline:
    def test_every_file_of_the_package(
        self, belog_config: _config.Config, tmp_path: Path, subprocess_env: dict[str, str]
    ) -> None:
        """A real run's package: tools read it, schemas hold, totals match, summary is right."""
        work = tmp_path / "work"
        (work / "01_raw").mkdir(parents=True)
        (work / "03_output").mkdir()
        raw = work / "01_raw" / "content.md"
        raw.write_text("# Naval\nWealth is assets that earn while you sleep.\n")
        with belog.session(
            "Naval supertask", execution_context="Generate supertasks", blueprint_id="bp_003",
            blueprint_version="v1.2",
        ) as run:  # fmt: skip
            llm = _llm_caller(run)
            with run.stage("preprocessing"):
                logging.getLogger("lyfe.preprocess").info("parsed %s", raw.name)
                run.add_input(raw)
                with belog.ThreadPoolExecutor(max_workers=2) as pool:
                    list(pool.map(lambda i: logging.getLogger("worker").info("w%d", i), range(4)))
                subprocess.run(
                    [sys.executable, "-c", "import logging, structlog_belog as b; "
                     "b.configure(console=False); logging.getLogger('child').warning('hi')"],
                    env={**subprocess_env, **belog.session_env()}, check=True,
                )  # fmt: skip
            with run.stage("generation"):
                for level in ("beginner", "advanced"):
                    answer = llm(f"Write a {level} supertask", "gpt-4o-mini")
                    out = work / "03_output" / f"{level}.json"
                    out.write_text(answer)
                    run.add_output(out)
                structlog.get_logger("gen").error("validation_failed", level="advanced")
            run.add_content(work / "01_raw", as_name="01_raw")
            run.add_content(work / "03_output", as_name="03_output")
            run.set_metric("schema_compliance", 0.5)
        package = run.package_path
        assert package is not None
        assert belog_config.package_dir.resolve() == package.parent
        assert re.fullmatch(r"naval-supertask-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}", package.name)

        # Tools read it.
        listed = _sha256sum_ok(package)
        for name in (*(m + ".zst" for m in MEMBERS), "metadata.json", "execution_summary.md",
                     "execution_report.html", "../01_raw/content.md",
                     "../03_output/beginner.json"):  # fmt: skip
            assert f"{name}: OK" in listed
        records = _zstd_lines(package / "logs" / "processing.jsonl.zst")
        calls = _zstd_lines(package / "logs" / "prompts_audit.jsonl.zst")
        belogs = _zstd_lines(package / "logs" / "belog.jsonl.zst")

        # Every record of the session, shards included, in time order.
        session_lines = sum(
            len(p.read_bytes().splitlines())
            for p in run.directory.glob("processing*.jsonl")  # type: ignore[union-attr]
        )
        assert session_lines == len(records)
        # The child's shard is merged in by time (threads of one process may
        # append a few microseconds out of order, so only the shard is checked).
        at = next(i for i, r in enumerate(records) if r.get("logger") == "child")
        assert records[at].get("pid")
        stamps = [r["timestamp"] for r in records]
        assert stamps[at - 1] <= stamps[at] <= stamps[at + 1]
        assert 4 == sum(1 for r in records if r.get("logger") == "worker")

        # Schemas hold for metadata and every record.
        meta = orjson.loads((package / "logs" / "metadata.json").read_bytes())
        validate_metadata(meta)
        for r in records:
            assert [] == record_problems(r, reference=True), r
        for r in (*calls, *belogs):
            assert [] == record_problems(r), r
        assert [] == verify_package(package)

        # Totals equal what was logged.
        assert run.id == meta["session_id"]
        assert len(records) == meta["records"]["total"]
        assert 2 == meta["ai_usage"]["total_api_calls"] == len(calls)
        assert sum(c["usage"]["total_tokens"] for c in calls) == meta["ai_usage"]["total_tokens"]
        assert ["preprocessing", "generation"] == meta["execution"]["stages_executed"]
        assert (True, True) == (meta["execution"]["success"], meta["execution"]["ended"])
        assert {"schema_compliance": 0.5} == meta["quality_metrics"]
        outputs = {Path(o["path"]).name: o["call_ids"] for o in meta["outputs"]}
        assert [[c["call_id"]] for c in calls] == [
            outputs["beginner.json"],
            outputs["advanced.json"],
        ]
        assert [
            [o]
            for o in sorted(str(work / "03_output" / f) for f in ("advanced.json", "beginner.json"))
        ] == sorted(c["outputs"] for c in calls)
        assert 1 == meta["records"]["by_level"]["error"]
        assert 0 == meta["records"]["dropped"]

        # Content copied, files private.
        assert (work / "03_output" / "beginner.json").read_bytes() == (
            package / "03_output" / "beginner.json"
        ).read_bytes()
        for path in (package / "logs").iterdir():
            assert 0o600 == stat.S_IMODE(path.stat().st_mode)
        assert 0o700 == stat.S_IMODE((package / "logs").stat().st_mode)

        # The summary has each section with the right figures.
        summary = (package / "logs" / "execution_summary.md").read_text()
        assert f"| Session ID | `{run.id}` |" in summary
        assert "| 1 | `preprocessing` | ✅ |" in summary
        assert "| 2 | `generation` | ✅ |" in summary
        assert "- Calls: 2 (0 failed, success rate 100.0 %)" in summary
        assert "| `schema_compliance` | 0.5 |" in summary
        assert "| 1 | `gen` | validation\\_failed |" in summary
        assert "beginner.json`** " in summary or "beginner.json`**\n" in summary
        assert packaged_at(run.directory) == package  # type: ignore[arg-type]

    def test_session_that_raised(self, belog_config: _config.Config) -> None:
        """A run that raises is still packaged, marked failed, with the exception."""
        with pytest.raises(RuntimeError), belog.session("boom") as run:
            raise RuntimeError("kaput")
        assert run.package_path is not None
        meta = belog.read_package(run.package_path).metadata
        assert (False, True) == (meta["execution"]["success"], meta["execution"]["ended"])
        assert "RuntimeError: kaput" in meta["execution"]["exception"]
        assert "exception" == meta["issues_detected"][0]["kind"]

    def test_package_false(self, belog_config: _config.Config) -> None:
        """package=False leaves no package."""
        with belog.session("quiet", package=False) as run:
            pass
        assert run.package_path is None
        assert not belog_config.package_dir.exists() or not any(belog_config.package_dir.iterdir())


class TestBuildPackage:
    def test_plain(self, tmp_path: Path) -> None:
        """compress=False writes plain JSONL members, still checksummed."""
        package = build_package(full_session(tmp_path / "logs"), tmp_path / "p", compress=False)
        for name in MEMBERS:
            assert (package / "logs" / name).is_file()
        _sha256sum_ok(package)
        assert 15 == len(list(belog.read_package(package).records()))

    def test_level(self, tmp_path: Path) -> None:
        """An integer compress sets the zstd level, recorded in metadata."""
        package = build_package(full_session(tmp_path / "logs"), tmp_path / "p", compress=19)
        meta = belog.read_package(package).metadata
        assert {"format": "zstd", "level": 19} == meta["package"]["compression"]

    @pytest.mark.parametrize("bad", [23, "yes", 2.5])
    def test_bad_compress(self, tmp_path: Path, bad: Any) -> None:
        """Anything but a bool or a level from -7 to 22 is refused."""
        with pytest.raises(ValueError, match="compress must be"):
            build_package(full_session(tmp_path / "logs"), tmp_path / "p", compress=bad)

    def test_collision_suffix(self, tmp_path: Path) -> None:
        """A second package of the same title and minute gets a numeric suffix."""
        d = full_session(tmp_path / "logs")
        first = build_package(d, tmp_path / "p")
        second = build_package(d, tmp_path / "p")
        assert second.name == first.name + "-2"

    @pytest.mark.parametrize(
        "title",
        ["../../etc/passwd", "a/b\\c", "nul\x00byte", "\x01\x1fctrl\x7f", "é" * 300, "..",
         "/", "漢字" * 150, "CON", " - _ . "],
    )  # fmt: skip
    def test_hostile_titles(self, tmp_path: Path, title: str) -> None:
        """Any title gives one safe folder name directly inside package_dir."""
        root = tmp_path / "p"
        package = build_package(full_session(tmp_path / "logs"), root, title=title)
        assert root.resolve() == package.parent
        assert re.fullmatch(r"[a-z0-9_-]+", package.name)
        assert len(package.name) <= 64 + 20
        assert [package.name] == [p.name for p in root.iterdir()]
        assert title == belog.read_package(package).metadata["title"]

    def test_planted_symlink(self, tmp_path: Path) -> None:
        """A link planted at the package's name cannot redirect it outside package_dir."""
        root = tmp_path / "p"
        root.mkdir()
        outside = tmp_path / "outside"
        outside.mkdir()
        name = package_name("Naval supertask", datetime.fromisoformat(ts(0)).astimezone())
        (root / name).symlink_to(outside, target_is_directory=True)
        package = build_package(full_session(tmp_path / "logs"), root)
        assert root.resolve() / f"{name}-2" == package
        assert [] == list(outside.iterdir())
        assert outside == (root / name).readlink()

    def test_failure_while_compressing(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A write failure leaves no half package and the session files untouched."""
        d = full_session(tmp_path / "logs")
        before = _tree_digest(d)
        calls = []

        def failing(self: Any, data: bytes) -> int:
            calls.append(len(data))
            raise OSError(28, "No space left on device")

        # The compressed bytes reach the file through _HashingFile.write: fail there.
        monkeypatch.setattr(_members.HashingFile, "write", failing)
        root = tmp_path / "p"
        with pytest.raises(PackageError, match="No space left") as info:
            build_package(d, root)
        assert d == info.value.path
        assert calls
        assert [] == list(root.iterdir())
        assert before == _tree_digest(d)

    def test_failure_while_placing(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """If no name can be claimed, the built folder is removed."""

        def no_room(built: Path, root: Path, name: str) -> Path:
            raise FileExistsError("no free package name")

        monkeypatch.setattr(_package, "place_package", no_room)
        root = tmp_path / "p"
        with pytest.raises(PackageError, match="no free package name"):
            build_package(full_session(tmp_path / "logs"), root)
        assert [] == list(root.iterdir())

    def test_content_links_copied_as_links(self, tmp_path: Path) -> None:
        """Links inside added content stay links; files outside are not pulled in."""
        content = tmp_path / "c"
        content.mkdir()
        (content / "a.txt").write_text("a")
        secret = tmp_path / "secret.txt"
        secret.write_text("secret")
        (content / "link").symlink_to(secret)
        d = session_dir(tmp_path / "logs")
        write(d / "processing.jsonl", [start(0), rec(1, "content", kind="content",
              path=str(content), as_name="03_output")])  # fmt: skip
        package = build_package(d, tmp_path / "p")
        assert (package / "03_output" / "link").is_symlink()
        assert "a" == (package / "03_output" / "a.txt").read_text()
        sums = (package / "logs" / "SHA256SUMS").read_text()
        assert "link" not in sums
        _sha256sum_ok(package)

    def test_missing_content_is_an_issue(self, tmp_path: Path) -> None:
        """Content that vanished before packaging is reported, not fatal."""
        d = session_dir(tmp_path / "logs")
        write(d / "processing.jsonl", [start(0), rec(1, "content", kind="content",
              path=str(tmp_path / "gone"), as_name="x")])  # fmt: skip
        meta = belog.read_package(build_package(d, tmp_path / "p")).metadata
        assert ["missing_content"] == [i["kind"] for i in meta["issues_detected"]][-1:]

    def test_fifo_content_never_opened(self, tmp_path: Path) -> None:
        """Content that is a FIFO nobody writes is reported, not opened (it would hang)."""
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        d = session_dir(tmp_path / "logs")
        write(d / "processing.jsonl", [start(0), rec(1, "content", kind="content",
              path=str(fifo), as_name="x")])  # fmt: skip
        package = build_package(d, tmp_path / "p")
        meta = belog.read_package(package).metadata
        (issue,) = [i for i in meta["issues_detected"] if i["kind"].endswith("_content")]
        assert ("refused_content", [str(fifo)]) == (issue["kind"], issue["examples"])
        assert "FIFO" in issue["message"]
        assert not (package / "x").exists()

    @pytest.mark.parametrize("planted", ["link", "fifo"])
    def test_planted_shard_refused_and_reported(self, planted: str, tmp_path: Path) -> None:
        """A shard that is a link or a FIFO is never opened, and named under the issues."""
        outside = tmp_path / "outside.jsonl"
        write(outside, [rec(5, "from outside")])
        d = session_dir(tmp_path / "logs")
        write(d / "processing.jsonl", [start(0), rec(1, "inside")])
        shard = d / "processing.4242.jsonl"
        if planted == "link":
            shard.symlink_to(outside)
        else:
            os.mkfifo(shard)
        package = build_package(d, tmp_path / "p")
        meta = belog.read_package(package).metadata
        (issue,) = [i for i in meta["issues_detected"] if i["kind"] == "refused_files"]
        assert (1, ["processing.4242.jsonl"]) == (issue["count"], issue["examples"])
        events = [r.get("event") for r in belog.iter_records(package)]
        assert "inside" in events
        assert "from outside" not in events

    def test_odd_file_names_in_sums(self, tmp_path: Path) -> None:
        """File names with a newline or backslash are escaped the way sha256sum reads them."""
        content = tmp_path / "c"
        content.mkdir()
        (content / "new\nline").write_text("x")
        (content / "back\\slash").write_text("y")
        d = session_dir(tmp_path / "logs")
        write(d / "processing.jsonl", [start(0), rec(1, "content", kind="content",
              path=str(content), as_name="odd")])  # fmt: skip
        package = build_package(d, tmp_path / "p")
        _sha256sum_ok(package)
        assert [] == verify_package(package)

    def test_not_a_session(self, tmp_path: Path) -> None:
        """A missing session folder raises SessionNotFoundError."""
        with pytest.raises(SessionNotFoundError):
            build_package(tmp_path / "nope", tmp_path / "p")

    def test_package_dir_is_a_file(self, tmp_path: Path) -> None:
        """An unusable package_dir raises PackageError naming it."""
        (tmp_path / "p").write_text("file")
        with pytest.raises(PackageError, match="cannot create a package"):
            build_package(full_session(tmp_path / "logs"), tmp_path / "p")


class TestPackage:
    def test_by_id(self, belog_config: _config.Config, tmp_path: Path) -> None:
        """package(session_id) finds the session under log_dir and packages it to package_dir."""
        full_session(belog_config.log_dir)
        path = belog.package(SID, title="Again")
        assert belog_config.package_dir.resolve() == path.parent
        assert path.name.startswith("again-")

    def test_dest_and_plain(self, belog_config: _config.Config, tmp_path: Path) -> None:
        """dest and compress=False are honoured."""
        full_session(belog_config.log_dir)
        path = belog.package(SID, dest=tmp_path / "elsewhere", compress=False)
        assert (tmp_path / "elsewhere").resolve() == path.parent
        assert (path / "logs" / "processing.jsonl").is_file()

    @pytest.mark.parametrize("sid", ["sess_missing", "../sessions", "..", ""])
    def test_unknown(self, belog_config: _config.Config, sid: str) -> None:
        """Unknown IDs and path tricks raise SessionNotFoundError."""
        with pytest.raises(SessionNotFoundError):
            belog.package(sid)

    def test_crashed_session(self, belog_config: _config.Config) -> None:
        """A session whose process died is packaged as failed and not ended."""
        d = session_dir(belog_config.log_dir)
        write(d / "processing.jsonl", [start(0), rec(5, "working")])
        pkg = belog.read_package(belog.package(SID))
        assert (False, False) == (
            pkg.metadata["execution"]["success"], pkg.metadata["execution"]["ended"]
        )  # fmt: skip
        assert "Did not end" in pkg.summary


class TestFinalizeRun:
    def test_never_raises(
        self, belog_config: _config.Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A packaging failure at session exit is reported on stderr; logs stay."""
        blocker = tmp_path / "blocked"
        blocker.write_text("a file where a folder should be")
        with belog.session("t", package_dir=blocker) as run:
            logging.getLogger("x").info("kept")
        assert run.package_path is None
        assert f"belog package {run.id}" in capsys.readouterr().err
        assert (run.directory / "processing.jsonl").is_file()  # type: ignore[operator]

    def test_survives_a_closed_stderr(
        self, belog_config: _config.Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Even with stderr gone, a packaging failure at exit does not raise."""
        blocker = tmp_path / "blocked"
        blocker.write_text("a file where a folder should be")

        class Gone:
            def write(self, _: str) -> int:
                raise OSError("stderr is closed")

        with belog.session("t", package_dir=blocker, package=False) as run:
            pass
        monkeypatch.setattr(sys, "stderr", Gone())
        assert None is finalize_run(run)

    def test_unstarted_run(self) -> None:
        """A run that never started has nothing to package."""
        assert finalize_run(belog.Run("never")) is None


class TestContents:
    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("../../etc/./passwd", "etc/passwd"),
            ("a\\b\x00c", "a/bc"),
            ("/..", "content"),
            ("logs/metadata.json", "logs_content/metadata.json"),
        ],
    )
    def test_safe_relative(self, name: str, expected: str) -> None:
        """Content names lose .., roots and control characters, and never land in logs/."""
        assert Path(expected) == _package._safe_relative(name)

    def test_copy_contents(self, tmp_path: Path) -> None:
        """Folders are copied deep, a FIFO is refused, a name clash gets -2, missing is listed."""
        src = tmp_path / "src"
        (src / "deep").mkdir(parents=True)
        (src / "deep" / "a.txt").write_text("a")
        os.mkfifo(src / "pipe")
        single = tmp_path / "one.txt"
        single.write_text("1")
        items: list[dict[str, Any]] = [
            {"path": str(src), "as_name": "data"},
            {"path": str(single), "as_name": "data"},
            {"path": str(tmp_path / "gone.txt")},
        ]
        root = tmp_path / "root"
        root.mkdir()
        report = type("Report", (), {"contents": items})()
        missing, refused = _package._copy_contents(report, root)
        assert ([str(tmp_path / "gone.txt")], [str(src / "pipe")]) == (missing, refused)
        assert ["data", "data-2", None] == [i.get("copied_to") for i in items]
        assert "a" == (root / "data" / "deep" / "a.txt").read_text()
        assert ["deep"] == sorted(p.name for p in (root / "data").iterdir())
        assert "1" == (root / "data-2").read_text()


class TestSlug:
    def test_examples(self) -> None:
        """Titles become lower-case ASCII slugs."""
        assert "naval_supertask" == slugify("naval_supertask")
        assert "naval-supertask-v1-2" == slugify("Naval Supertask v1.2")
        assert "cafe-creme" == slugify("Café crème")

    def test_too_short_max(self) -> None:
        """max_length below 16 is refused."""
        with pytest.raises(ValueError, match="max_length must be at least 16"):
            slugify("x", max_length=3)

    def test_place_package_refuses_paths(self, tmp_path: Path) -> None:
        """place_package only takes a single component as name."""
        with pytest.raises(ValueError, match="single path component"):
            place_package(tmp_path / "x", tmp_path, "../x")


class TestPlacePackage:
    def test_rename_race(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """If the claimed name is swapped before the rename, the next name is used."""
        from structlog_belog.package import slug as _slug

        real_rename = os.rename
        calls: list[str] = []

        def flaky(src: str, dst: str, **kwargs: Any) -> None:
            calls.append(dst)
            if len(calls) == 1:
                raise NotADirectoryError(20, "swapped for a link")
            real_rename(src, dst, **kwargs)

        monkeypatch.setattr(_slug.os, "rename", flaky)
        root = tmp_path / "p"
        package = build_package(full_session(tmp_path / "logs"), root)
        assert package.name.endswith("-2")
        assert [package.name] == [p.name for p in root.iterdir()]

    def test_no_free_name(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """When every candidate name is taken, packaging fails cleanly."""
        from structlog_belog.package import slug as _slug

        monkeypatch.setattr(_slug, "_MAX_ATTEMPTS", 2)
        root = tmp_path / "p"
        root.mkdir()
        name = package_name("Naval supertask", datetime.fromisoformat(ts(0)).astimezone())
        (root / name).mkdir()
        (root / f"{name}-2").write_text("taken")
        with pytest.raises(PackageError, match="no free package name"):
            build_package(full_session(tmp_path / "logs"), root)
        assert {name, f"{name}-2"} == {p.name for p in root.iterdir()}
