"""The workspace `make quick` and the stage budget run in: params laid over the project's, sources kept in sync."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO

from atelier.core import schema
from atelier.core.config import ParamsError, load_params
from atelier.report import workspace


def test_an_override_is_laid_over_section_by_section():
    base = {"seed": 1, "model": {"cv_folds": 4, "grids": {"xgboost": {"max_depth": [3, 5]}}}, "prep": {"imputer": "x"}}
    result = workspace.merged(base, {"model": {"grids": {"xgboost": {"max_depth": [3]}}}, "run_label": "Quick"})
    assert result == {"seed": 1, "model": {"cv_folds": 4, "grids": {"xgboost": {"max_depth": [3]}}},
                      "prep": {"imputer": "x"}, "run_label": "Quick"}
    assert base["model"]["grids"]["xgboost"]["max_depth"] == [3, 5], "the base is not changed"


def test_a_misspelled_override_is_refused():
    with pytest.raises(ParamsError, match=r"override 'model.cv_fold' is not in params.yaml"):
        workspace.merged({"model": {"cv_folds": 4}}, {"model": {"cv_fold": 2}})


def test_the_quick_params_give_a_valid_params_file_with_a_label():
    quick = yaml.safe_load((REPO / "params.quick.yaml").read_text(encoding="utf-8"))
    params = workspace.merged(load_params(REPO / "params.yaml"), quick)
    assert schema.problems(params) == []
    assert params["simulate"]["n_customers"] == 3000 and "Quick run" in params["run_label"]
    assert params["timeline"] == load_params(REPO / "params.yaml")["timeline"], "the same timeline as the full run"


def test_sync_copies_changes_and_removes_stale_files(tmp_path):
    source, target = tmp_path / "source", tmp_path / "target"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("a", encoding="utf-8")
    (source / "sub" / "b.txt").write_text("b", encoding="utf-8")
    workspace._sync(source, target)
    (source / "a.txt").write_text("changed", encoding="utf-8")
    (source / "sub" / "b.txt").unlink()
    workspace._sync(source, target)
    assert (target / "a.txt").read_text(encoding="utf-8") == "changed"
    assert not (target / "sub" / "b.txt").exists() and (target / "sub").is_dir()
