"""The execution summary: a SessionReport rendered to Markdown with Jinja2.

The template ships in the package (``templates/execution_summary.md.j2``) and
can be replaced with ``configure(summary_template=path)``. Every value that
reaches the document through ``{{ ... }}`` is escaped for Markdown first — pipes,
backticks, emphasis marks, brackets, raw HTML, newlines — so no log line can
break a table or inject markup. Identifiers, paths and names go through
``|code`` instead (``|cell(code=True)`` in a table): a code span, unescaped, so
an ID copied from the summary works in the CLI and grep finds it. A template
opts out per value with ``|raw``.
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

from ..core.sanitize import visible

if TYPE_CHECKING:
    from .report import SessionReport

__all__ = ["cell", "code_span", "escape_md", "render_summary"]

_MD_SPECIAL: Final = re.compile(r"([\\`*_\[\]|~#])")
# What could open a block where a value starts a cell's or a list item's text
# and is not escaped already (* # ` ~ are; > becomes &gt;): a bullet (- +), a
# rule or setext line (--- ===), an ordered-list number (1. 1)). Leading
# whitespace (an indented code block) is dropped.
_BLOCK_START: Final = re.compile(r"^(?:([-+])(?=[ \t]|$)|([-=])(?=\2)|(\d{1,9})([.)])(?=[ \t]|$))")
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_NEWLINES: Final = re.compile(r"\r\n|\r|\n|\u2028|\u2029|\x85")
_HTML: Final = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_TEMPLATE: Final = "execution_summary.md.j2"
_BACKTICKS: Final = re.compile(r"`+")


def _one_line(value: Any) -> str:
    """*value* as one line of text: newlines shown as ``⏎``, control characters dropped.

    Every value the summary shows passes through here — prose, table cells
    and code spans alike — so hardening what may reach the document is one edit.
    """
    text = value if isinstance(value, str) else str(value)
    return _CONTROL.sub("", visible(_NEWLINES.sub(" ⏎ ", text)))


def escape_md(value: Any) -> str:
    """*value* as text that Markdown shows literally, on one line.

    Newlines become ``⏎``, C0 control characters are dropped, C1 and bidi
    characters shown as escapes (``\\u202e``), ``& < >`` become HTML entities,
    Markdown's punctuation is backslash-escaped, and a start that could open
    a block (a list, a rule, a heading, a quote, indented code) is escaped.
    """
    text = _one_line(value)
    # Leading whitespace dropped: it could indent a code block.
    text = _MD_SPECIAL.sub(r"\\\1", text.lstrip(" \t").translate(_HTML))
    return _BLOCK_START.sub(_block_start, text, count=1)


def _block_start(m: re.Match[str]) -> str:
    # The marker backslash-escaped: shown, and opening nothing.
    if m.group(1) or m.group(2):
        return "\\" + (m.group(1) or m.group(2))
    return f"{m.group(3)}\\{m.group(4)}"


def code_span(value: Any, *, in_table: bool = False) -> Markup:
    """*value* as a Markdown code span: shown, copied and grepped exactly as it is.

    The fence is one backtick longer than the longest run of backticks inside
    the value, and a value that starts or ends with a backtick (or with spaces
    at both ends) is padded with one space, which Markdown strips: no value can
    close the span early. Nothing inside is escaped, except ``|`` as ``\\|`` in
    a table cell (GitHub-flavoured tables split rows on pipes even there, and
    show ``\\|`` as ``|``). ``None`` is ``—``.
    """
    if value is None:
        return Markup("—")
    text = _one_line(value)
    if in_table:
        text = text.replace("|", "\\|")
    if not text.strip():
        return Markup("(blank)") if text else Markup("(empty)")
    fence = "`" * (max(map(len, _BACKTICKS.findall(text)), default=0) + 1)
    pad = " " if text[0] == "`" or text[-1] == "`" or (text[0] == " " and text[-1] == " ") else ""
    return Markup(f"{fence}{pad}{text}{pad}{fence}")  # noqa: S704 - a code span shows text as is


def cell(value: Any, code: bool = False) -> Markup:
    """A table cell: *value* on one line that cannot end the cell or the row.

    Names, identifiers and paths (``code=True``) become code spans; other
    values are escaped prose. The one function every table cell goes through.
    """
    if code:
        return code_span(value, in_table=True)
    shown = _finalize(value)
    return shown if isinstance(shown, Markup) else Markup(str(shown))  # noqa: S704 - escaped


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
    env.filters["code"] = code_span
    env.filters["cell"] = cell
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
