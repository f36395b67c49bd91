"""The package layout follows the data's flow: no import circles, and no module imports from a later stage.

Every import counts (module level, inside functions, and under ``TYPE_CHECKING``): a lazy import from a later
stage is still a dependency on it. The stages and their order are declared once, in ``LAYERS``, and described in
docs/architecture.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lossbench"

# Earliest first. A module may import from its own stage or an earlier one.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("lossbench.errors", "lossbench.environ"),
    ("lossbench.api", "lossbench.hookspecs"),
    ("lossbench.plugin",),
    ("lossbench.plan", "lossbench.data", "lossbench.records"),
    ("lossbench.scoring",),
    ("lossbench.builtin", "lossbench.examples"),
    ("lossbench.training",),
    ("lossbench.executors",),
    ("lossbench.results",),
    ("lossbench.report",),
    ("lossbench.jobs",),
    ("lossbench.authoring",),
    ("lossbench.cli", "lossbench.clidoc", "lossbench.testing"),
)
# The package itself re-exports the public API (lossbench.api) and, lazily, two types plugins annotate with.
# Edges still to remove (issue 13): each helper deletes its entry when its fix lands. Must end empty.
KNOWN_EXCEPTIONS = {}
PACKAGE_REEXPORTS = {"lossbench.api", "lossbench.scoring.evaluate", "lossbench.plan.grid"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, known: set[str] | None = None) -> set[str]:
    """Every lossbench module ``path`` imports (of ``known``, default the package's), wherever the import stands."""
    known = known if known is not None else {module_name(p) for p in PACKAGE.rglob("*.py")}
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name in known and name.startswith("lossbench.")}


def layer_of(name: str) -> int:
    for index, stage in enumerate(LAYERS):
        if any(name == prefix or name.startswith(prefix + ".") for prefix in stage):
            return index
    raise AssertionError(
        f"{name} belongs to no stage in LAYERS: add it to tests/test_layers.py and docs/architecture.md"
    )


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_has_a_stage() -> None:
    for name in MODULES:
        if name != "lossbench":
            layer_of(name)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n != "lossbench"))
def test_no_import_from_a_later_stage(name: str) -> None:
    later = sorted(
        dep
        for dep in imported_modules(MODULES[name])
        if (name, dep) not in KNOWN_EXCEPTIONS and not dep.startswith(name + ".") and layer_of(dep) > layer_of(name)
    )
    assert not later, f"{name} (stage {layer_of(name)}) imports from later stages: {later}"


def test_the_package_reexports_only_the_public_api() -> None:
    assert imported_modules(MODULES["lossbench"]) <= PACKAGE_REEXPORTS


def test_no_import_circles() -> None:
    graph = {
        name: {
            dep
            for dep in imported_modules(path)
            if dep != name and not dep.startswith(name + ".") and (name, dep) not in KNOWN_EXCEPTIONS
        }
        for name, path in MODULES.items()
        if name != "lossbench"
    }
    graph = {name: {dep for dep in deps if dep in graph} for name, deps in graph.items()}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycle = path[path.index(dep) :] + [dep]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_checker_sees_lazy_and_type_only_imports(tmp_path: Path) -> None:
    """A hand-made module: its function-level and TYPE_CHECKING imports are found like top-level ones."""
    source = tmp_path / "probe.py"
    source.write_text(
        "import os\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from lossbench.api import Metric\n"
        "def f():\n    import lossbench.results.store\n    from lossbench.plan import grid\n"
    )
    known = {"lossbench.api", "lossbench.results.store", "lossbench.plan", "lossbench.plan.grid", "lossbench.cli"}
    assert imported_modules(source, known) == {
        "lossbench.api",
        "lossbench.results.store",
        "lossbench.plan",
        "lossbench.plan.grid",
    }


def test_known_exceptions_are_still_real() -> None:
    """An exception whose import is gone must leave the list, so that the list only ever shrinks to empty."""
    for importer, imported in KNOWN_EXCEPTIONS:
        assert imported in imported_modules(MODULES[importer]), (
            f"{importer} no longer imports {imported}: delete the entry from KNOWN_EXCEPTIONS"
        )
