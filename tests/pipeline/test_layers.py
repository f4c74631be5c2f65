"""The package's shape: one folder per phase, imports run one way (a later phase may use an earlier one, never the
reverse), and one module owns the paths, which match the outputs dvc.yaml declares."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from atelier.core import paths

PACKAGE = REPO / "src" / "atelier"
#: The phases in the case study's order; `core` is shared by all, `report` renders what every phase wrote.
LAYERS = ("core", "data", "segment", "model", "replay", "ope", "robustness", "report")
#: Modules at the package's top level that sit above every phase (they dispatch the stages).
TOP = ("cli", "__main__", "__init__")


def _imports(path: Path) -> set[str]:
    """The `atelier...` modules a source file imports (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("atelier")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("atelier"):
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: use absolute imports (from atelier.<phase> import ...)")
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_lives_in_a_phase_folder():
    loose = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in TOP)
    assert not loose, f"modules outside a phase folder: {loose}; move each into core/ or its phase"
    folders = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert folders == sorted(LAYERS), f"phase folders {folders} differ from the layers this test knows {LAYERS}"


@pytest.mark.parametrize("layer", LAYERS)
def test_a_phase_imports_only_itself_and_earlier_phases(layer):
    rank = LAYERS.index(layer)
    wrong = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for module in _imports(path):
            used = _layer(module)
            if used is not None and LAYERS.index(used) > rank:
                wrong.append(f"{path.relative_to(REPO)} imports {module}")
    assert not wrong, "a phase may import an earlier one, never a later one:\n" + "\n".join(wrong)


def test_the_layer_check_can_fail(tmp_path):
    later = tmp_path / "bad.py"
    later.write_text("def f():\n    from atelier.replay import engine\n", encoding="utf-8")
    assert _layer(next(iter(_imports(later)))) == "replay"


def _declared_outputs() -> set[str]:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    outputs: set[str] = set()
    for stage in stages.values():
        for key in ("outs", "metrics", "plots"):
            for entry in stage.get(key, []):
                outputs.add(next(iter(entry)) if isinstance(entry, dict) else str(entry))
    return outputs


def _path_constants() -> dict[str, Path]:
    return {name: value for name, value in vars(paths).items() if isinstance(value, Path) and name.isupper()}


def test_every_declared_output_is_named_in_paths():
    """Each output in dvc.yaml is a path constant, lies inside one, or is a notebook report."""
    constants = {p.as_posix() for p in _path_constants().values()}
    reports = {
        (paths.REPORT_DIR / f"{name}{suffix}").as_posix()
        for name in paths.NOTEBOOK_STAGES.values()
        for suffix in (".ipynb", ".html", ".story.html")
    } | {paths.INDEX_FILE.as_posix()}
    stray = []
    for output in sorted(_declared_outputs()):
        inside = any(output == c or output.startswith(c + "/") for c in constants)
        if not (inside or output in reports):
            stray.append(output)
    assert not stray, f"dvc.yaml outputs that core/paths.py does not name: {stray}"


def test_every_path_constant_is_a_declared_output_or_inside_one():
    """No stale constant: each data/models/metrics/plots path in core/paths.py is (inside) an output of a stage."""
    outputs = _declared_outputs()
    stale = []
    for name, value in sorted(_path_constants().items()):
        text = value.as_posix()
        if not text.startswith(("data/", "models/", "metrics/", "plots/")):
            continue
        if not any(text == o or text.startswith(o.rstrip("/") + "/") or o.startswith(text + "/") for o in outputs):
            stale.append(f"{name} = {text}")
    assert not stale, f"core/paths.py names paths no stage writes: {stale}"


def test_the_notebook_list_matches_the_notebooks_and_their_stages():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    assert sorted(p.stem for p in (REPO / paths.NOTEBOOK_DIR).glob("*.ipynb")) == sorted(paths.NOTEBOOK_STAGES.values())
    for stage, name in paths.NOTEBOOK_STAGES.items():
        assert f"{paths.NOTEBOOK_DIR.as_posix()}/{name}.ipynb" in stages[stage]["deps"]
        assert f"{paths.REPORT_DIR.as_posix()}/{name}.ipynb" in stages[stage]["outs"]
