"""The README's commands after `make quick` (activate the environment, run an experiment, compare, draw the DAG,
rerun) work as printed on a fresh copy; the commands before it are run by test_readme_commands.py."""

from __future__ import annotations

import pytest
import yaml

from atelier.core.io import read_json
from pipeline.test_readme_commands import run_readme_part


@pytest.mark.slow
def test_the_readme_commands_after_make_quick_run_as_printed_on_a_fresh_copy(built_project, tmp_path):
    root = run_readme_part(built_project, tmp_path / "atelier", "after make quick")
    # `dvc exp run -S segmentation.k=6` ran the experiment in the workspace (dvc exp show's table is cut to the
    # terminal's width, so its text is not checked).
    assert yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))["segmentation"]["k"] == 6
    assert read_json(root / "metrics" / "segment.json")["k"] == 6
