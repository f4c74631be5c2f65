"""Running a phase notebook as a DVC stage: parameters from params.yaml, papermill, HTML.

A notebook receives exactly the parameters its stage declares in dvc.yaml, grouped by section:
declaring `seed`, `prep.half_life_days` and `prep.imputer` gives the notebook `seed` and
`prep = {"half_life_days": ..., "imputer": ...}` (only the declared keys), and the notebook builds
its settings from a section with `<Settings>.from_params(prep)`. So DVC's record of what a stage
depends on is also the list of what the notebook can read. The source notebook is never executed in place:
papermill writes the executed copy to reports/, and nbconvert renders it to HTML beside it.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
import yaml

from atelier.core import paths
from atelier.core.config import ParamsError, get, load_params, stage_environment
from atelier.report.render import add_run_label, render_html, run_label, strip_engine_chatter, strip_progress_bars

log = logging.getLogger("atelier.report.notebook")


def declared_params(stage: str, root: Path) -> list[str]:
    """The params.yaml keys the stage lists in dvc.yaml."""
    dvc_file = root / "dvc.yaml"
    stages = yaml.safe_load(dvc_file.read_text(encoding="utf-8")).get("stages", {})
    if stage not in stages:
        raise ParamsError(f"{dvc_file} has no stage '{stage}'")
    keys: list[str] = []
    for entry in stages[stage].get("params", []):
        if isinstance(entry, str):
            keys.append(entry)
        elif isinstance(entry, dict):
            for file, names in entry.items():
                if Path(file).name != "params.yaml":
                    raise ParamsError(
                        f"stage '{stage}' reads params from {file}; Atelier keeps them all in params.yaml"
                    )
                keys.extend(names)
    return keys


def notebook_parameters(keys: list[str], params: dict[str, Any]) -> dict[str, Any]:
    """The declared keys grouped by their top-level section: `a.b.c` lands at parameters["a"]["b"]["c"]."""
    parameters: dict[str, Any] = {}
    for key in keys:
        outer = [other for other in keys if key.startswith(other + ".")]
        if outer:
            raise ParamsError(f"dvc.yaml declares both '{outer[0]}' and '{key}', which is inside it; keep one")
        *sections, name = key.split(".")
        node = parameters
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = copy.deepcopy(get(params, key))
    return parameters


def parameter_cell_names(notebook_path: Path) -> list[str]:
    """Names assigned in the cell tagged `parameters` (what the notebook expects to receive)."""
    notebook = nbformat.read(notebook_path, as_version=4)
    cells = [c for c in notebook.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{notebook_path} needs exactly one cell tagged 'parameters', found {len(cells)}")
    names = []
    for line in cells[0].source.splitlines():
        code = line.split("#", 1)[0]
        if "=" in code and not code.startswith((" ", "\t")):
            name = code.split("=", 1)[0].split(":", 1)[0].strip()
            if name.isidentifier():
                names.append(name)
    return names


@contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block, then restore them."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def execute(stage: str, root: Path, parameters: dict[str, Any] | None = None, report_dir: Path | None = None) -> Path:
    """Execute the stage's notebook with papermill (params from params.yaml unless given); return the executed copy."""
    root = Path(root).resolve()
    if stage not in paths.NOTEBOOK_STAGES:
        raise ParamsError(f"no notebook for stage '{stage}'; known: {sorted(paths.NOTEBOOK_STAGES)}")
    name = paths.NOTEBOOK_STAGES[stage]
    source = root / paths.NOTEBOOK_DIR / f"{name}.ipynb"
    params = load_params(root / "params.yaml")
    if parameters is None:
        parameters = notebook_parameters(declared_params(stage, root), params)
    expected = parameter_cell_names(source)
    if sorted(expected) != sorted(parameters):
        raise ParamsError(
            f"{source.name} expects parameters {sorted(expected)} but its stage passes {sorted(parameters)}; "
            "make the notebook's parameters cell and the stage's params in dvc.yaml list the same keys"
        )
    output_dir = root / (report_dir or paths.REPORT_DIR)
    output_dir.mkdir(parents=True, exist_ok=True)
    executed = output_dir / f"{name}.ipynb"
    log.info("executing %s -> %s", source.relative_to(root), executed.relative_to(root))
    html = run_notebook(source, executed, parameters, root, label=run_label(params))
    log.info("rendered %s", html.relative_to(root))
    return executed


def run_notebook(source: Path, executed: Path, parameters: dict[str, Any], root: Path,
                 label: str | None = None) -> Path:
    """Execute `source` into `executed` with papermill, keep progress bars out of it, put the run's label on
    top (if any), render it; return the HTML.

    The kernel's progress bars reach the log as they happen (papermill logs every stream output), then
    are stripped from the executed copy, so the reports show results, not progress; so is the engines' chatter
    (`render.strip_engine_chatter`).
    """
    import papermill

    # The kernel inherits the environment: it finds the project, and BLAS uses fixed threads and kernels.
    with _environment({"ATELIER_ROOT": str(root), **stage_environment()}):
        papermill.execute_notebook(
            str(source),
            str(executed),
            parameters=parameters,
            kernel_name="python3",
            cwd=str(root),
            log_output=True,
            progress_bar=True,
            request_save_on_cell_execute=True,
            shutdown_kernel="immediate",  # every cell has finished and its outputs are saved: no need to wait for
        )                                 # a graceful exit, which cost ~2.5 s per notebook (pools' exit handlers)
    notebook = nbformat.read(executed, as_version=4)
    stripped = strip_progress_bars(notebook) + strip_engine_chatter(notebook)
    if add_run_label(notebook, label) or stripped:
        nbformat.write(notebook, executed)
    return render_html(executed)
