"""Checks of a package's ``execution_report.html``, for ``belog verify``.

The page must be what `render_page` makes: one Content-Security-Policy that
fetches nothing and admits, by hash, exactly the inline scripts and styles the
file holds; no element that loads anything (``src``, ``href``, ``srcset``,
``<object>``...); and one JSON data block that parses, for the package's own
session.
"""

from __future__ import annotations

import base64
import hashlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Final

import orjson

__all__ = ["MAX_REPORT_BYTES", "report_problems"]

#: A page larger than this is refused unread (the page keeps itself under 20 MB).
MAX_REPORT_BYTES: Final = 64 * 1024 * 1024
_LOADING_ATTRS: Final = frozenset(("src", "href", "srcset", "srcdoc", "data", "action", "poster"))
_LOADING_TAGS: Final = frozenset(("iframe", "object", "embed", "link", "base", "img", "frame"))


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.policies: list[str] = []
        self.scripts: list[tuple[str | None, str]] = []  # (type, body)
        self.styles: list[str] = []
        self.loading: list[str] = []
        self._open: tuple[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "meta" and (a.get("http-equiv") or "").lower() == "content-security-policy":
            self.policies.append(a.get("content") or "")
        if tag in _LOADING_TAGS or _LOADING_ATTRS & a.keys():
            self.loading.append(tag)
        if tag in ("script", "style"):
            self._open, self._text = (tag, a.get("type")), []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._open is not None and tag == self._open[0]:
            body = "".join(self._text)
            if tag == "script":
                self.scripts.append((self._open[1], body))
            else:
                self.styles.append(body)
            self._open = None


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _policy(text: str) -> dict[str, set[str]]:
    parts = (p.strip().split() for p in text.split(";"))
    return {p[0].lower(): set(p[1:]) for p in parts if p}


def _read(path: Path, expected: Any) -> tuple[str | None, list[str]]:
    """The page's text (None when unreadable) and what is wrong with its bytes."""
    name = path.name
    try:
        size = path.stat().st_size
        if size > MAX_REPORT_BYTES:
            return None, [f"{name}: {size} bytes, more than a report page can be"]
        raw = path.read_bytes()
    except OSError as exc:
        return None, [f"{name}: cannot be read ({exc.strerror or exc})"]
    problems = []
    if isinstance(expected, dict):
        if expected.get("sha256") not in (None, hashlib.sha256(raw).hexdigest()):
            problems.append(f"{name}: SHA-256 differs from metadata.json's package.report")
        if expected.get("bytes") not in (None, len(raw)):
            problems.append(f"{name}: size differs from metadata.json's package.report")
    try:
        return raw.decode("utf-8"), problems
    except UnicodeDecodeError:
        return None, [*problems, f"{name}: not UTF-8"]


def _structure(page: _Page, name: str) -> list[str]:
    """The policy against the page's own scripts and styles; elements that load."""
    if len(page.policies) != 1:
        return [f"{name}: {len(page.policies)} Content-Security-Policy tags, not 1"]
    problems = []
    policy = _policy(page.policies[0])
    if policy.get("default-src") != {"'none'"}:
        problems.append(f"{name}: the policy's default-src is not 'none'")
    code = [body for kind, body in page.scripts if kind is None]
    if policy.get("script-src", set()) != {_hash(body) for body in code}:
        problems.append(f"{name}: the policy does not admit exactly the page's own script")
    if policy.get("style-src", set()) != {_hash(body) for body in page.styles}:
        problems.append(f"{name}: the policy does not admit exactly the page's own style")
    if page.loading:
        problems.append(f"{name}: elements that load resources: {sorted(set(page.loading))}")
    return problems


def _data(page: _Page, name: str, session_id: str | None, expected: Any) -> list[str]:
    """The one JSON data block, for *session_id*, of the version metadata.json names."""
    blocks = [body for kind, body in page.scripts if kind == "application/json"]
    if len(blocks) != 1:
        return [f"{name}: {len(blocks)} data blocks, not 1"]
    try:
        data = orjson.loads(blocks[0])
    except orjson.JSONDecodeError as exc:
        return [f"{name}: the data block is not JSON ({exc})"]
    if not isinstance(data, dict):
        return [f"{name}: the data block is not a JSON object"]
    session = data.get("session")
    found = session.get("id") if isinstance(session, dict) else None
    if session_id is not None and found != session_id:
        return [f"{name}: the data is for session {found!r}, not {session_id!r}"]
    problems = []
    version = expected.get("data_version") if isinstance(expected, dict) else None
    if version is not None and data.get("v") != version:
        problems.append(f"{name}: data version {data.get('v')!r}, metadata.json says {version!r}")
    # Each call is an array of the fields call_fields names (data version 2).
    fields, calls = data.get("call_fields"), data.get("calls")
    if calls is not None and not (
        isinstance(fields, list)
        and isinstance(calls, list)
        and all(isinstance(c, list) and len(c) == len(fields) for c in calls)
    ):
        problems.append(f"{name}: the calls are not rows of the fields call_fields names")
    return problems


def report_problems(path: Path, session_id: str | None, expected: Any = None) -> list[str]:
    """What is wrong with the report page at *path*; an empty list when nothing is.

    Args:
        path: The ``execution_report.html`` file.
        session_id: The package's session, which the page's data must name.
        expected: ``metadata.json``'s ``package.report`` entry (its ``sha256``,
            ``bytes`` and ``data_version`` are compared), or None.
    """
    text, problems = _read(path, expected)
    if text is None:
        return problems
    page = _Page()
    page.feed(text)
    page.close()
    return [
        *problems,
        *_structure(page, path.name),
        *_data(page, path.name, session_id, expected),
    ]
