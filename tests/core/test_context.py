"""The one context variable: Context, push/reset, bind/bound, structlog's contextvars."""

from __future__ import annotations

import contextvars
import dataclasses
from typing import Any

import pytest
import structlog
import structlog.contextvars

import structlog_belog as belog
from structlog_belog.core import config as _config
from structlog_belog.core import context as _context
from tests.conftest import read_jsonl


def _events(run: belog.Run) -> list[dict[str, Any]]:
    assert run.directory is not None
    return [r for r in read_jsonl(run.directory / "processing.jsonl") if "kind" not in r]


class TestContext:
    def test_empty_outside_session(self) -> None:
        """Outside any session the context has no session, stage, task or fields."""
        ctx = _context.current()

        assert (None, None, None, {}) == (ctx.session_id, ctx.stage, ctx.task, dict(ctx.fields))

    def test_frozen(self) -> None:
        """A Context cannot be changed in place."""
        with pytest.raises(dataclasses.FrozenInstanceError):
            _context.current().stage = "x"  # type: ignore[misc]

    def test_push_and_reset(self) -> None:
        """push() derives a new context; reset() restores the previous one."""
        before = _context.current()
        token = _context.push(stage="s1")
        inside = _context.current()
        _context.reset(token)

        assert ("s1", before) == (inside.stage, _context.current())

    def test_repr_names_session_and_fields(self) -> None:
        """The repr shows session ID, stage, task and fields."""
        ctx = _context.Context(stage="st", fields={"a": 1})

        assert "Context(session_id=None, stage='st', task=None, fields={'a': 1})" == repr(ctx)


class TestBind:
    def test_bind_adds_fields_until_context_ends(self, belog_config: _config.Config) -> None:
        """bind() adds fields to every later record of the current context."""

        def work() -> belog.Run:
            with belog.session("bind", package=False) as run:
                structlog.get_logger().info("before")
                belog.bind(user="ana", attempt=2)
                structlog.get_logger().info("after")
            return run

        run = contextvars.copy_context().run(work)

        assert [{"event": "before"}, {"event": "after", "user": "ana", "attempt": 2}] == [
            {k: r[k] for k in ("event", "user", "attempt") if k in r} for r in _events(run)
        ]

    def test_bound_restores(self, belog_config: _config.Config) -> None:
        """bound() binds for the with block only."""
        with belog.session("bound", package=False) as run:
            with belog.bound(request_id="r-1"):
                structlog.get_logger().info("inside")
            structlog.get_logger().info("outside")

        assert [("inside", "r-1"), ("outside", None)] == [
            (r["event"], r.get("request_id")) for r in _events(run)
        ]

    def test_call_fields_win_over_bound(self, belog_config: _config.Config) -> None:
        """A field passed in the log call overrides a bound field of the same name."""
        with belog.session("override", package=False) as run, belog.bound(user="bound"):
            structlog.get_logger().info("x", user="call")

        assert ["call"] == [r["user"] for r in _events(run)]

    def test_bound_reaches_stdlib_records(self, belog_config: _config.Config) -> None:
        """Bound fields are added to stdlib records too."""
        import logging

        with belog.session("std", package=False) as run, belog.bound(tenant="t1"):
            logging.getLogger("lib").info("from stdlib")

        assert ["t1"] == [r["tenant"] for r in _events(run)]

    def test_structlog_contextvars_merged(self, belog_config: _config.Config) -> None:
        """structlog's bind_contextvars fields are merged into belog records."""
        with belog.session("sl-ctx", package=False) as run:
            structlog.contextvars.bind_contextvars(trace="abc")
            try:
                structlog.get_logger().info("merged")
                structlog.contextvars.unbind_contextvars("trace")
                structlog.get_logger().info("unbound")
            finally:
                structlog.contextvars.clear_contextvars()

        assert [("merged", "abc"), ("unbound", None)] == [
            (r["event"], r.get("trace")) for r in _events(run)
        ]

    def test_clear_contextvars_keeps_session(self, belog_config: _config.Config) -> None:
        """structlog's clear_contextvars() clears its own fields, not belog's session."""
        with belog.session("clear", package=False) as run:
            structlog.contextvars.clear_contextvars()
            inside = belog.current_session()
            structlog.get_logger().info("still in session")

        assert run is inside
        assert [run.id] == [r["session_id"] for r in _events(run)]

    def test_merge_contextvars_sees_no_belog_state(self, belog_config: _config.Config) -> None:
        """structlog's get_contextvars() does not list belog's context variable."""
        with belog.session("merge", package=False), belog.bound(user="ana"):
            structlog.contextvars.bind_contextvars(trace="t")
            try:
                seen = structlog.contextvars.get_contextvars()
            finally:
                structlog.contextvars.clear_contextvars()

        assert {"trace": "t"} == seen

    def test_session_fields_are_not_overridden_by_bound(self, belog_config: _config.Config) -> None:
        """A bound `session_id` cannot redirect a record to another session."""
        with belog.session("guard", package=False) as run, belog.bound(session_id="forged"):
            structlog.get_logger().info("x")

        assert [run.id] == [r["session_id"] for r in _events(run)]


class TestRegistry:
    def test_sole_tracks_exactly_one_open(self, belog_config: _config.Config) -> None:
        """REGISTRY.sole is the only open session, and None with zero or two open."""
        reg = _context.REGISTRY
        seen = [reg.sole]
        with belog.session("a", package=False) as a:
            seen.append(reg.sole)
            with belog.session("b", package=False):
                seen.append(reg.sole)
            seen.append(reg.sole)
        seen.append(reg.sole)

        assert [None, a, None, a, None] == seen
