"""Each stage in dvc.yaml depends on all the package code it runs, so editing that code reruns it.

The code a stage runs is found from its entry point by following `atelier` imports through the
package's sources, function-level imports included. Two modules dispatch: `cli` imports each stage's
module inside the branch that runs it, and `report.notebook` runs (and renders) the notebook stages;
for those two only module-level imports are followed, and each stage's branch is named in `ENTRY`.
`atelier/__init__.py` and `__main__.py` only name the package and call the command line, so they are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import REPO

from atelier.core import paths

SRC = REPO / "src"
DVC = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))
TRIVIAL = {"src/atelier/__init__.py", "src/atelier/__main__.py"}
DISPATCHERS = {"atelier.cli", "atelier.report.notebook"}
#: What `cli.main` runs for every stage (its error handling), and per stage besides a notebook's imports.
ALWAYS = {"atelier.cli", "atelier.core.config", "atelier.core.contract", "atelier.core.schema"}
ENTRY = {
    "simulate": {"atelier.data.stage"},
    "validate": {"atelier.data.stage"},
    "obd": {"atelier.ope.stage"},
    "index": {"atelier.report.index"},
}
NOTEBOOK_ENTRY = {"atelier.report.notebook", "atelier.report.index"}


def _module_file(module: str) -> Path | None:
    """The source file of an `atelier...` module, or None if it is not one of the package's."""
    base = SRC.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _modules_imported(tree: ast.AST, package: str, module_level_only: bool = False) -> set[str]:
    """Names of the `atelier` modules a syntax tree imports (absolute and relative imports)."""
    found: set[str] = set()
    nodes = tree.body if module_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "atelier"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != "atelier":
                continue
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # `from atelier import simulate`
    return {name for name in found if _module_file(name) is not None}


def _closure(modules: set[str]) -> set[str]:
    """Source files (relative to the repo) of the modules and everything they import, parents included."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        parts = module.split(".")
        for depth in range(1, len(parts)):  # importing a.b.c runs a/__init__ and a/b/__init__ first
            todo.append(".".join(parts[:depth])) if ".".join(parts[:depth]) not in seen else None
        if module in seen:
            continue
        seen.add(module)
        path = _module_file(module)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        todo.extend(_modules_imported(tree, package, module_level_only=module in DISPATCHERS) - seen)
    return {_module_file(m).relative_to(REPO).as_posix() for m in seen}


def _notebook_imports(path: Path) -> set[str]:
    """The `atelier` modules a notebook's code cells import (magics and shell lines skipped)."""
    notebook = nbformat.read(path, as_version=4)
    code = "\n".join(
        line
        for cell in notebook.cells
        if cell.cell_type == "code"
        for line in cell.source.splitlines()
        if not line.lstrip().startswith(("%", "!"))
    )
    return _modules_imported(ast.parse(code), "atelier")


def code_run_by(stage: str) -> set[str]:
    """Package source files the stage `stage` executes."""
    if stage in paths.NOTEBOOK_STAGES:
        entry = NOTEBOOK_ENTRY | _notebook_imports(REPO / "notebooks" / f"{paths.NOTEBOOK_STAGES[stage]}.ipynb")
    else:
        entry = ENTRY[stage]
    return _closure(ALWAYS | entry) - TRIVIAL


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


@pytest.mark.parametrize("stage", sorted(DVC["stages"]))
def test_stage_depends_on_all_the_code_it_runs(stage):
    deps = DVC["stages"][stage].get("deps", [])
    missing = sorted(path for path in code_run_by(stage) if not _covered(path, deps))
    assert not missing, f"dvc.yaml stage '{stage}' runs code it does not list in deps: {missing}"


@pytest.mark.parametrize("stage", sorted(DVC["stages"]))
def test_stage_code_deps_are_code_it_runs(stage):
    """No stale code deps: each `src/` dep holds at least one file the stage runs."""
    run = code_run_by(stage)
    extra = [
        dep
        for dep in DVC["stages"][stage].get("deps", [])
        if dep.startswith("src/") and not any(_covered(path, [dep]) for path in run)
    ]
    assert not extra, f"dvc.yaml stage '{stage}' depends on code it never runs: {extra}"


def test_the_import_walk_follows_function_level_and_relative_imports():
    inside_a_function = ast.parse("def f():\n    from atelier.core import io\n    from . import attributes\n")
    assert _modules_imported(inside_a_function, "atelier.core") == {
        "atelier.core",
        "atelier.core.io",
        "atelier.core.attributes",
    }
    assert _modules_imported(inside_a_function, "atelier.core", module_level_only=True) == set()
    assert "src/atelier/report/index.py" not in _closure({"atelier.cli"}), "dispatchers: module level only"
    replay = _closure({"atelier.replay.stage"})
    assert "src/atelier/replay/__init__.py" in replay and len([p for p in replay if "/replay/" in p]) > 2
