"""Tests for atelier.cli: what a stage's process loads before its work."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
import atelier.cli as cli
try:
    cli.main(["--help"])
except SystemExit:
    pass
import nbformat
from nbformat.v4 import new_notebook
nbformat.validate(new_notebook())  # a valid notebook passes
broken = new_notebook()
broken["metadata"]["kernelspec"] = {"name": 3}  # the schema wants a string and a display_name
try:
    nbformat.validate(broken)
    print("invalid notebook accepted")
except nbformat.ValidationError:
    print("invalid notebook refused")
print(sorted(name for name in cli.UNUSED_OPTIONAL_MODULES if sys.modules.get(name, "absent") is not None))
"""


def test_a_stage_process_validates_notebooks_without_loading_the_unused_modules():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == ["invalid notebook refused", "[]"]


def test_the_simulate_and_validate_stages_do_not_load_the_model_libraries():
    """simulate and validate fit and persist nothing: their process loads neither scikit-learn nor skops (which
    walks every scikit-learn estimator at import), about 3 s per stage; the prep stage loads them when it writes."""
    script = ("import sys\nimport atelier.data.stage\nprint(sorted({name.split('.')[0] for name in sys.modules}"
              " & {'sklearn', 'skops', 'xgboost'}))\nfrom atelier.data.stage import write_prep\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"
