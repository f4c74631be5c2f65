"""A separate pipeline workspace: the project's sources copied to another folder, with its own params and DVC.

`make quick` builds every report on a small shop in `quick/` (params.yaml overridden by params.quick.yaml),
and `benchmarks/stage_budget.py` times a run from clean in a temporary folder: neither touches the
project's own data, models, metrics or reports. A workspace is a DVC project of its own (`dvc init
--no-scm`), so running it again reruns only what changed, as in the project.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from atelier.core import paths
from atelier.core.config import ParamsError, load_params

#: What a pipeline run needs from the project besides params.yaml (dvc.yaml's code deps live in src/).
SOURCES = (paths.DVC_FILE, paths.NOTEBOOK_DIR, Path("src"), Path("bin"))


def merged(base: dict[str, Any], override: dict[str, Any], where: str = "") -> dict[str, Any]:
    """`base` with `override` laid over it, section by section (a mapping in both is merged, anything else replaced).

    An override key that `base` lacks is an error (a misspelling would otherwise be ignored), except a
    top-level key such as `run_label`, which the schema knows.
    """
    result = copy.deepcopy(base)
    for key, value in override.items():
        dotted = f"{where}{key}"
        if key not in result and where:
            raise ParamsError(f"override '{dotted}' is not in params.yaml; check its spelling")
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value, f"{dotted}.")
        else:
            result[key] = copy.deepcopy(value)
    return result


def _sync(source: Path, target: Path) -> None:
    """Make `target` an exact copy of `source` (a file or a folder), leaving unchanged files alone."""
    if source.is_file():
        if not target.is_file() or target.read_bytes() != source.read_bytes():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        return
    wanted = {p.relative_to(source) for p in source.rglob("*") if "__pycache__" not in p.parts}
    if target.is_dir():
        for existing in sorted(target.rglob("*"), reverse=True):
            relative = existing.relative_to(target)
            if relative not in wanted and "__pycache__" not in relative.parts:
                shutil.rmtree(existing) if existing.is_dir() else existing.unlink()
    for relative in sorted(wanted):
        if (source / relative).is_file():
            _sync(source / relative, target / relative)


def prepare(project: Path, target: Path, override: dict[str, Any]) -> Path:
    """Copy the project's sources to `target`, write params.yaml (the project's, with `override` laid over it)
    and make `target` a DVC project if it is not one yet; return `target`."""
    project, target = Path(project).resolve(), Path(target).resolve()
    target.mkdir(parents=True, exist_ok=True)
    for source in SOURCES:
        _sync(project / source, target / source)
    params = merged(load_params(project / paths.PARAMS_FILE), override)
    text = yaml.safe_dump(params, sort_keys=False, allow_unicode=True)
    params_file = target / paths.PARAMS_FILE
    if not params_file.is_file() or params_file.read_text(encoding="utf-8") != text:
        params_file.write_text(text, encoding="utf-8")
    if not (target / ".dvc").is_dir():
        dvc(target, "init", "--no-scm", "--quiet")
        dvc(target, "config", "core.analytics", "false")
    return target


def environment(target: Path) -> dict[str, str]:
    """The environment pipeline commands run in: this interpreter for the stages, the workspace as the root."""
    env = {**os.environ, "ATELIER_PYTHON": sys.executable, "ATELIER_ROOT": str(Path(target).resolve())}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def dvc(target: Path, *arguments: str, capture: bool = False) -> subprocess.CompletedProcess:
    """Run `dvc <arguments>` in the workspace with this interpreter's DVC; raise if it fails."""
    return subprocess.run([sys.executable, "-m", "dvc", *arguments], cwd=target, env=environment(target),
                          check=True, text=True, capture_output=capture)
