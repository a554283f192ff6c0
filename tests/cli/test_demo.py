"""`run_demo` (``belog demo``) and the ``python -m structlog_belog.demo`` shim."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from structlog_belog import read_package
from structlog_belog.cli import demo as _demo


class TestRunDemo:
    def test_live_needs_an_api_key(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """`live=True` without OPENAI_API_KEY fails at once, naming the variable."""
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        with pytest.raises(ValueError, match="OPENAI_API_KEY") as info:
            _demo.run_demo(tmp_path / "out", live=True)
        assert "belog demo --live needs OPENAI_API_KEY in the environment" == str(info.value)

    def test_live_uses_the_real_client(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """With a key, the live client is the real OpenAI SDK client, reading the key."""
        import openai

        key = "sk-" + "test-" + "A" * 40
        monkeypatch.setenv("OPENAI_API_KEY", key)
        client = _demo._client(live=True)
        assert (openai.OpenAI, key) == (type(client), client.api_key)

    def test_live_without_openai_says_how_to_install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """`live=True` without the openai SDK raises ModuleNotFoundError naming the extra."""
        monkeypatch.setenv("OPENAI_API_KEY", "sk-" + "test-" + "A" * 40)
        monkeypatch.setitem(sys.modules, "openai", None)
        with pytest.raises(ModuleNotFoundError) as info:
            _demo._client(live=True)
        assert ("openai", "belog demo requires openai: pip install 'structlog-belog[openai]'") == (
            info.value.name,
            str(info.value),
        )

    def test_non_json_replies_lower_schema_compliance(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Replies that are not JSON are logged as `not_json` and count against compliance."""
        monkeypatch.setattr(_demo, "_generate", lambda *_, **__: "Sorry, I can't.")
        path = _demo.run_demo(tmp_path / "out")
        assert {"supertasks": 3, "schema_compliance": 0.0} == read_package(path).metadata[
            "quality_metrics"
        ]
        (log,) = (tmp_path / "out" / "logs" / "sessions").glob("*/processing.jsonl")
        warned = [
            e
            for e in map(json.loads, log.read_text("utf-8").splitlines())
            if e["event"] == "not_json"
        ]
        assert [("warning", "beginner"), ("warning", "intermediate"), ("warning", "advanced")] == [
            (e["level"], e["supertask_level"]) for e in warned
        ]

    def test_no_package_is_an_error(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A run that builds no package raises RuntimeError rather than returning None."""
        real = _demo.session
        monkeypatch.setattr(_demo, "session", lambda *a, **kw: real(*a, **{**kw, "package": False}))
        with pytest.raises(RuntimeError) as info:
            _demo.run_demo(tmp_path / "out")
        assert "the demo run produced no package (see the messages above)" == str(info.value)


class TestModuleShim:
    def test_python_dash_m_runs_the_demo(
        self, tmp_path: Path, subprocess_env: dict[str, str]
    ) -> None:
        """`python -m structlog_belog.demo --quiet` is `belog demo`: prints only the package."""
        env = {k: v for k, v in subprocess_env.items() if k != "OPENAI_API_KEY"}
        env["HTTPS_PROXY"] = env["HTTP_PROXY"] = "http://127.0.0.1:9"  # any network use would fail
        proc = subprocess.run(
            [sys.executable, "-m", "structlog_belog.demo", "--out", str(tmp_path / "d"), "--quiet"],
            env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
        )  # fmt: skip
        assert (0, "") == (proc.returncode, proc.stderr)
        lines = proc.stdout.strip().splitlines()
        assert 1 == len(lines)
        path = Path(lines[0].removeprefix("Package: "))
        assert [path] == list((tmp_path / "d" / "packages").iterdir())

    def test_main_passes_argv_through(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`demo.main(argv)` is `belog demo ARGV`: `--json` prints the package and metadata."""
        from structlog_belog import demo

        assert 0 == demo.main(["--out", str(tmp_path / "d"), "--json"])
        out = json.loads(capsys.readouterr().out)
        assert [Path(out["package"])] == list((tmp_path / "d" / "packages").iterdir())
