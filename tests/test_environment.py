"""The environment is pinned once and mirrored: requirements.in, requirements.lock, environment.yml."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version

import yaml

from conftest import REPO


def _pins(path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, pinned = line.partition("==")
            assert pinned, f"{path.name}: '{line}' is not pinned exactly (name==version)"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = pinned
    return pins


def test_every_direct_dependency_is_pinned_identically_in_the_lock():
    direct, locked = _pins(REPO / "requirements.in"), _pins(REPO / "requirements.lock")
    mismatched = {name: (pin, locked.get(name)) for name, pin in direct.items() if locked.get(name) != pin}
    assert not mismatched, f"requirements.in vs requirements.lock: {mismatched} (run `make lock`)"
    assert "xgboost" not in locked, "the CUDA build of xgboost slipped in; use xgboost-cpu"


def test_the_installed_environment_matches_the_lock():
    stale = {}
    for name, pinned in _pins(REPO / "requirements.lock").items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = None
        if installed != pinned:
            stale[name] = (pinned, installed)
    assert not stale, f"installed packages differ from requirements.lock: {stale} (rm -rf .venv && make venv)"


def test_environment_yml_mirrors_the_lock():
    environment = yaml.safe_load((REPO / "environment.yml").read_text(encoding="utf-8"))
    dependencies = environment["dependencies"]
    assert "python=3.11" in dependencies
    pip_section = next(d["pip"] for d in dependencies if isinstance(d, dict))
    assert "-r requirements.lock" in pip_section and "-e ." in pip_section
