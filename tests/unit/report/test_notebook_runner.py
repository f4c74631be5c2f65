"""The pipeline file tells the truth: stages, params and notebooks agree, and sources are clean."""

from __future__ import annotations

import nbformat
import pytest
import yaml
from conftest import REPO

from atelier.core import paths
from atelier.core.config import ParamsError, get, load_params
from atelier.report import notebook as stages

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))
PARAMS = load_params(REPO / "params.yaml")
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def _leaf_keys(node: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            keys |= _leaf_keys(value, dotted + ".")
        else:
            keys.add(dotted)
    return keys


@pytest.mark.parametrize("stage", sorted(paths.NOTEBOOK_STAGES))
def test_notebook_parameters_match_the_stage_params(stage):
    declared = stages.declared_params(stage, REPO)
    expected = sorted({key.split(".")[0] for key in declared})
    notebook = REPO / "notebooks" / f"{paths.NOTEBOOK_STAGES[stage]}.ipynb"
    assert sorted(stages.parameter_cell_names(notebook)) == expected
    assert f"notebooks/{notebook.name}" in DVC["stages"][stage]["deps"]


def test_every_stage_runs_through_the_launcher():
    """`bin/atelier <stage>` picks the project's interpreter, so `dvc repro` works whatever the caller's PATH."""
    commands = {name: stage["cmd"] for name, stage in DVC["stages"].items()}
    assert commands == {name: f"bin/atelier {name}" for name in commands}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_sources_are_stripped_and_parameterized(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit notebooks without outputs"
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    assert path.stem in paths.NOTEBOOK_STAGES.values(), "every notebook is run by a stage"


def test_every_declared_param_exists_and_every_param_is_read():
    declared = {key for stage in DVC["stages"] for key in stages.declared_params(stage, REPO)}
    for key in declared:
        get(PARAMS, key)  # raises ParamsError naming the key if it is missing
    # Sections read by commands that are not DVC stages (`make serve`): nothing of the pipeline depends on them.
    outside = ("serve.",)
    unread = {key for key in _leaf_keys(PARAMS) if not any(key == d or key.startswith(d + ".") for d in declared)
              and not key.startswith(outside)}
    assert not unread, f"params.yaml keys no stage declares (so DVC would not rerun on them): {sorted(unread)}"


def test_stage_source_deps_exist():
    for name, stage in DVC["stages"].items():
        for dep in stage.get("deps", []):
            if dep.startswith(("src/", "notebooks/")):
                assert (REPO / dep).exists(), f"stage {name} depends on missing {dep}"


def test_notebook_parameters_group_declared_keys_by_section():
    params = {"seed": 1, "prep": {"a": 2, "b": {"c": 3, "d": 4}, "unread": 5}, "model": {"x": [1]}}
    got = stages.notebook_parameters(["seed", "prep.a", "prep.b.c", "model"], params)
    assert got == {"seed": 1, "prep": {"a": 2, "b": {"c": 3}}, "model": {"x": [1]}}  # only what is declared
    got["model"]["x"].append(2)
    assert params["model"]["x"] == [1], "the notebook gets copies, never the loaded params themselves"


def test_notebook_parameters_reject_a_key_inside_another_declared_key():
    with pytest.raises(ParamsError, match="'model' and 'model.seed'"):
        stages.notebook_parameters(["model", "model.seed"], {"model": {"seed": 2}})


def test_declared_params_reads_the_file_form(tmp_path):
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  s:\n    cmd: x\n    params:\n      - seed\n      - params.yaml:\n          - prep.imputer\n",
        encoding="utf-8",
    )
    assert stages.declared_params("s", tmp_path) == ["seed", "prep.imputer"]
    with pytest.raises(ParamsError, match="no stage 'missing'"):
        stages.declared_params("missing", tmp_path)


def test_parameter_cell_names_need_exactly_one_tagged_cell(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("a = 1\nb: int = 2  # typed\n  c = 3\nif a == 1:\n    d = 4")]
    path = tmp_path / "n.ipynb"
    nbformat.write(notebook, path)
    with pytest.raises(ValueError, match="exactly one cell tagged 'parameters'"):
        stages.parameter_cell_names(path)
    notebook.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(notebook, path)
    assert stages.parameter_cell_names(path) == ["a", "b"]
