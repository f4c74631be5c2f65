"""Reading `params.yaml` and finding the project's folders."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import yaml

from atelier.core import paths

#: BLAS/OpenMP thread pools, fixed (to 1 unless the caller chose) so that the same params give the same numbers.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: The same compute kernels on every x86-64 machine with AVX2 (every x86-64 CPU since 2013). OpenBLAS and NumPy
#: choose their kernels by CPU when they load, and AVX-512 kernels sum in another order: implicit's ALS (which
#: calls OpenBLAS) then gave other factors in the last digits on another machine, and so other recommendation
#: metrics, from the same params. Pinned to the AVX2 kernels, the numbers repeat across such machines.
PORTABLE_KERNELS = {"OPENBLAS_CORETYPE": "Haswell", "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"}
#: Environment variable that overrides where the project root is (tests run the pipeline in a copy).
ROOT_ENV = "ATELIER_ROOT"


class ParamsError(ValueError):
    """A parameter in params.yaml is missing or has a value Atelier cannot use."""


def project_root(start: Path | str | None = None) -> Path:
    """The folder holding params.yaml: $ATELIER_ROOT if set, else the nearest parent of `start` (or cwd)."""
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).resolve()
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / paths.PARAMS_FILE).is_file():
            return folder
    raise FileNotFoundError(
        f"No {paths.PARAMS_FILE} in {here} or any parent folder. Run from inside the Atelier project "
        f"or set {ROOT_ENV} to its folder."
    )


def load_params(path: Path | str | None = None) -> dict[str, Any]:
    """All parameters from params.yaml (default: the project root's)."""
    path = Path(path) if path else project_root() / paths.PARAMS_FILE
    with open(path, encoding="utf-8") as handle:
        params = yaml.safe_load(handle) or {}
    if not isinstance(params, dict):
        raise ParamsError(f"{path} must hold a mapping of sections, found {type(params).__name__}")
    return params


def get(params: dict[str, Any], dotted_key: str) -> Any:
    """The value at `dotted_key` (e.g. "prep.half_life_days"), with a clear error if it is missing."""
    node: Any = params
    walked: list[str] = []
    for part in dotted_key.split("."):
        walked.append(part)
        if not isinstance(node, dict) or part not in node:
            raise ParamsError(
                f"params.yaml has no '{'.'.join(walked)}' (needed as '{dotted_key}'); "
                "add it or restore it from the project's params.yaml"
            )
        node = node[part]
    return node


def cpu_flags(cpuinfo: Path | str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (the first "flags" line of /proc/cpuinfo); empty elsewhere."""
    try:
        lines = Path(cpuinfo).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return frozenset()
    return next((frozenset(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), frozenset())


def fixed_environment(machine: str, flags: frozenset[str]) -> dict[str, str]:
    """What a stage sets, unless the caller already did, before NumPy or a BLAS loads: one thread per BLAS/OpenMP
    pool and, on x86-64 (`machine`, as `platform.machine()` names it) with AVX2 and FMA among the CPU's `flags`,
    `PORTABLE_KERNELS`. Elsewhere (ARM, or a CPU without AVX2) the kernels are left to the libraries."""
    fixed = dict.fromkeys(THREAD_VARIABLES, "1")
    if machine.lower() in ("x86_64", "amd64") and {"avx2", "fma"} <= flags:
        fixed.update(PORTABLE_KERNELS)
    return fixed


def stage_environment() -> dict[str, str]:
    """`fixed_environment` for this machine, with any of those variables the caller set kept as set: what a stage's
    process and its notebook kernel run with."""
    fixed = fixed_environment(platform.machine(), cpu_flags())
    return {name: os.environ.get(name, value) for name, value in fixed.items()}
