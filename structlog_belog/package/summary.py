"""The execution summary: a SessionReport rendered to Markdown with Jinja2.

The template ships in the package (``templates/execution_summary.md.j2``) and
can be replaced with ``configure(summary_template=path)``. Every value that
reaches the document through ``{{ ... }}`` is escaped for Markdown first — pipes,
backticks, emphasis marks, brackets, raw HTML, newlines — so no log line can
break a table or inject markup. A template opts out per value with ``|raw``.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

if TYPE_CHECKING:
    from .report import SessionReport

__all__ = ["escape_md", "render_summary"]

_MD_SPECIAL: Final = re.compile(r"([\\`*_\[\]|~#])")
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_NEWLINES: Final = re.compile(r"\r\n|\r|\n|\u2028|\u2029|\x85")
_HTML: Final = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_TEMPLATE: Final = "execution_summary.md.j2"


def escape_md(value: Any) -> str:
    """*value* as text that Markdown shows literally, on one line.

    Newlines become ``⏎``, control characters are dropped, ``& < >`` become
    HTML entities and Markdown's punctuation is backslash-escaped.
    """
    text = value if isinstance(value, str) else str(value)
    text = _CONTROL.sub("", _NEWLINES.sub(" ⏎ ", text))
    return _MD_SPECIAL.sub(r"\\\1", text.translate(_HTML))


def _finalize(value: Any) -> Any:
    if isinstance(value, Markup):
        return value
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return value
    return escape_md(value)


def _status(value: Any) -> Markup:
    return Markup({True: "✅", False: "❌"}.get(value, "⚠️"))  # noqa: S704 - constants


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {sec} s"


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—" if value is None else str(value)
    if isinstance(value, int) or value.is_integer():
        return f"{int(value):,}"
    return f"{value:,.4g}"


def _percent(value: Any) -> str:
    return "—" if not isinstance(value, int | float) else f"{value * 100:.1f} %"


def _usd(value: Any) -> str:
    return "—" if not isinstance(value, int | float) else f"${value:,.4f}"


def _raw(value: Any) -> Markup:
    # The template's explicit opt-out of escaping, for text it trusts.
    return Markup(str(value))  # noqa: S704


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        autoescape=False,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=StrictUndefined,
    )
    env.filters.update(
        status=_status, duration=_duration, number=_number, percent=_percent, usd=_usd, raw=_raw
    )
    env.filters["md"] = escape_md
    return env


@functools.lru_cache(maxsize=8)
def _compiled(source: str) -> Template:
    """The template *source* compiled once per process (compiling costs ~25 ms)."""
    return _environment().from_string(source)


def default_template() -> str:
    """The text of the packaged summary template."""
    return (resources.files("structlog_belog") / "templates" / _TEMPLATE).read_text("utf-8")


def render_summary(
    report: SessionReport,
    metadata: dict[str, Any] | None = None,
    template: Path | str | None = None,
) -> str:
    """Render *report* to Markdown with the packaged template or the file *template*.

    The template sees ``report`` (the `SessionReport`) and ``metadata`` (the
    ``metadata.json`` document).

    Raises:
        ValueError: The template file cannot be read or rendered; the message
            names the template and the Jinja2 error.
    """
    name = _TEMPLATE if template is None else str(template)
    try:
        source = default_template() if template is None else Path(template).read_text("utf-8")
        compiled = _compiled(source)
        return compiled.render(
            report=report, metadata=metadata if metadata is not None else report.to_metadata()
        )
    except (OSError, TemplateError) as exc:
        msg = f"summary_template {name!r} could not be rendered: {exc}"
        raise ValueError(msg) from exc
