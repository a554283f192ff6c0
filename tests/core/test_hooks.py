"""`core.hooks` and `core.state`: how the core reaches the layers above it."""

from __future__ import annotations

import pytest

from structlog_belog.core import hooks as _hooks
from structlog_belog.core import state as _state


class TestHooks:
    def test_registered_at_import(self) -> None:
        """Importing structlog_belog registers the package and memory layers' hooks."""
        from structlog_belog.memory.task import task
        from structlog_belog.package.packager import finalize_run

        assert (finalize_run, task) == (_hooks._finalize_run, _hooks._make_task)

    def test_unset_finalizer_is_a_clear_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """With no finalizer registered, finalizing names the missing layer."""
        monkeypatch.setattr(_hooks, "_finalize_run", None)

        with pytest.raises(RuntimeError) as info:
            _hooks.finalize_run(object())

        assert "structlog_belog.package" in str(info.value)

    def test_unset_task_factory_is_a_clear_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """With no task factory registered, run.task names the missing layer."""
        monkeypatch.setattr(_hooks, "_make_task", None)

        with pytest.raises(RuntimeError) as info:
            _hooks.make_task("t")

        assert "structlog_belog.memory" in str(info.value)

    def test_register_keeps_what_is_not_given(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Registering one hook leaves the other as it was."""
        monkeypatch.setattr(_hooks, "_make_task", None)
        before = _hooks._finalize_run

        def made(name: str, **fields: object) -> str:
            return name

        _hooks.register(make_task=made)

        assert (before, "t") == (_hooks._finalize_run, _hooks.make_task("t"))


class TestState:
    def test_no_default_configure_is_a_clear_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Before core.config registered its default, ensure_pipeline says what is missing."""
        monkeypatch.setattr(_state.STATE, "pipeline", None)
        monkeypatch.setattr(_state, "_configure_default", None)

        with pytest.raises(RuntimeError) as info:
            _state.ensure_pipeline()

        assert "import structlog_belog first" in str(info.value)

    def test_emit_never_raises(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A record path that cannot be set up makes emit say so on stderr, not raise."""
        monkeypatch.setattr(_state.STATE, "pipeline", None)
        monkeypatch.setattr(_state, "_configure_default", None)

        _state.emit("lost")

        assert "structlog-belog: could not emit a record\n" == capsys.readouterr().err
