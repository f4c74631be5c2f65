"""`bin/atelier`, the stage launcher dvc.yaml calls: the project's interpreter whatever the caller's PATH."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from conftest import REPO

LAUNCHER = REPO / "bin" / "atelier"
BARE_PATH = "/usr/bin:/bin"  # no virtual environment on it: what `.venv/bin/dvc repro` gives a stage command


def _launch(launcher: Path, *arguments: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(launcher), *arguments], env={"PATH": BARE_PATH, **env}, cwd=launcher.parent,
                          capture_output=True, text=True, timeout=120)


def test_the_launcher_finds_the_project_interpreter_without_the_venv_on_path():
    assert (REPO / ".venv" / "bin" / "python").exists(), "make venv first"
    result = _launch(LAUNCHER, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: python -m atelier" in result.stdout and "simulate" in result.stdout


def test_atelier_python_overrides_the_interpreter():
    result = _launch(LAUNCHER, "--help", ATELIER_PYTHON="/nonexistent/python")
    assert result.returncode != 0 and "/nonexistent/python" in result.stderr


def test_without_a_venv_the_launcher_takes_python3_from_path(tmp_path):
    project = tmp_path / "project"
    (project / "bin").mkdir(parents=True)
    shutil.copy2(LAUNCHER, project / "bin" / "atelier")
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "python3").write_text('#!/bin/sh\necho "python3 $*"\n', encoding="utf-8")
    (fake / "python3").chmod(0o755)
    result = subprocess.run([str(project / "bin" / "atelier"), "prep"], env={"PATH": f"{fake}:{BARE_PATH}"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "python3 -m atelier prep"
