"""The package's layout: imports only go down the record's path, and never in a circle.

Reads the source with `ast` (nothing is imported), so lazy imports inside
functions and ``TYPE_CHECKING`` imports count as much as top-level ones.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import structlog_belog

PACKAGE_DIR = Path(structlog_belog.__file__).parent
ROOT = "structlog_belog"

#: The layers, lowest first. A module may import its own layer and the ones below.
LAYERS = ("exceptions", "core", "audit", "package", "memory", "cli")
FACADE = len(LAYERS)  # the public modules at the top level: may import anything


def module_name(path: Path) -> str:
    """The dotted name of the module at *path*."""
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def layer_of(module: str) -> int:
    """The layer of *module*: its first component below the package root."""
    parts = module.split(".")
    if len(parts) == 1:
        return FACADE
    first = parts[1]
    return LAYERS.index(first) if first in LAYERS else FACADE


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that *module* imports, anywhere in its source."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == ROOT)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] != ROOT:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
    found.discard(module)
    return found


def graph() -> dict[str, set[str]]:
    """Module → the package's modules it imports."""
    modules = all_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in edges.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


class TestLayers:
    def test_imports_only_go_down(self) -> None:
        """No module imports a module of a higher layer, lazily or for types either."""
        upward = sorted(
            f"{source} -> {target}"
            for source, targets in graph().items()
            for target in targets
            if layer_of(target) > layer_of(source)
        )

        assert [] == upward

    def test_no_import_cycles(self) -> None:
        """No two modules import each other, directly or through others."""
        assert [] == cycles(graph())

    def test_every_module_has_a_layer(self) -> None:
        """Every subpackage is one of the layers; the top level holds only the facade."""
        subpackages = {p.parent.name for p in PACKAGE_DIR.glob("*/__init__.py")}

        assert set(LAYERS) - {"exceptions"} == subpackages

    @pytest.mark.parametrize("layer", [name for name in LAYERS if name != "exceptions"])
    def test_subpackage_says_what_it_owns(self, layer: str) -> None:
        """Each layer's ``__init__`` opens with a docstring saying what it owns."""
        doc = ast.get_docstring(ast.parse((PACKAGE_DIR / layer / "__init__.py").read_text()))

        assert doc is not None
        assert len(doc) > 80

    def test_no_module_over_600_lines(self) -> None:
        """One module, one idea: none is longer than 600 lines."""
        long = {
            name: n
            for name, path in all_modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 600
        }

        assert {} == long


class TestImport:
    def test_import_pulls_no_extra_and_no_revision(self) -> None:
        """``import structlog_belog`` imports no optional extra and defers the proposals."""
        code = (
            "import sys, structlog_belog\n"
            "names = ('openai', 'httpx', 'chromadb', 'opentelemetry', "
            "'structlog_belog.memory.revision', 'structlog_belog.cli')\n"
            "print(sorted(n for n in names if n in sys.modules))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout

        assert "[]\n" == out

    def test_deferred_names_resolve(self) -> None:
        """The deferred public names are there on first use, and unknown ones raise."""
        from structlog_belog.memory import revision

        assert revision.reflect is structlog_belog.reflect
        assert revision.generate_blueprint_revision is structlog_belog.generate_blueprint_revision
        with pytest.raises(AttributeError, match="no attribute 'nope'"):
            structlog_belog.nope  # noqa: B018 - the attribute access is the test


class TestChecker:
    def test_finds_an_upward_import(self, tmp_path: Path) -> None:
        """The checker sees a lazy import inside a function, from core up to cli."""
        source = tmp_path / "m.py"
        source.write_text("def f():\n    from ..cli import view\n")
        modules = {"structlog_belog.cli.view": source}

        found = imports_of("structlog_belog.core.m", source, modules)

        assert {"structlog_belog.cli.view"} == found
        assert layer_of("structlog_belog.cli.view") > layer_of("structlog_belog.core.m")

    def test_finds_a_type_checking_import(self, tmp_path: Path) -> None:
        """An import under ``if TYPE_CHECKING:`` counts."""
        source = tmp_path / "m.py"
        source.write_text(
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from structlog_belog.memory.task import Task\n"
        )

        found = imports_of("structlog_belog.audit.m", source, {})

        assert {"structlog_belog.memory.task"} == found

    def test_finds_a_cycle(self) -> None:
        """A circle through three modules is one component."""
        edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}

        assert [["a", "b", "c"]] == cycles(edges)
