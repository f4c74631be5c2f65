"""The environment is pinned once and mirrored: requirements.in, requirements.lock, environment.yml."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version

import yaml
from conftest import REPO
from packaging.requirements import Requirement


def _requirements(path) -> dict[str, Requirement]:
    """Each line of a requirements file, by normalized name; every line must pin one exact version."""
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            specifiers = list(requirement.specifier)
            assert len(specifiers) == 1 and specifiers[0].operator == "==", (
                f"{path.name}: '{line}' is not pinned exactly (name==version)"
            )
            found[re.sub(r"[-_.]+", "-", requirement.name).lower()] = requirement
    return found


def _pins(path, here_only: bool = False) -> dict[str, str]:
    """name -> pinned version (with `here_only`, only lines whose platform marker applies here)."""
    return {
        name: next(iter(r.specifier)).version
        for name, r in _requirements(path).items()
        if not (here_only and r.marker and not r.marker.evaluate())
    }


def test_every_direct_dependency_is_pinned_identically_in_the_lock():
    direct, locked = _requirements(REPO / "requirements.in"), _requirements(REPO / "requirements.lock")

    def pin(r):  # the version and the platform marker; the name's spelling may differ (PyYAML, pyyaml)
        return None if r is None else (str(r.specifier), str(r.marker))

    mismatched = {
        name: (str(r), str(locked.get(name))) for name, r in direct.items() if pin(locked.get(name)) != pin(r)
    }
    assert not mismatched, f"requirements.in vs requirements.lock: {mismatched} (run `make lock`)"


def test_the_cuda_build_of_xgboost_is_only_taken_where_no_cpu_build_exists():
    locked = _requirements(REPO / "requirements.lock")
    cpu, plain = locked["xgboost-cpu"], locked["xgboost"]
    assert cpu.specifier == plain.specifier, "xgboost-cpu and xgboost (macOS) pin different versions"
    for platform in ("linux", "win32", "darwin"):
        takes_cpu = cpu.marker.evaluate({"sys_platform": platform})
        takes_plain = plain.marker.evaluate({"sys_platform": platform})
        assert takes_cpu != takes_plain, f"exactly one xgboost build must apply on {platform}"
        assert takes_plain == (platform == "darwin"), f"plain xgboost (CUDA on {platform}) slipped in"


def test_the_installed_environment_matches_the_lock():
    stale = {}
    for name, pinned in _pins(REPO / "requirements.lock", here_only=True).items():
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
