"""Tests for atelier.core.config's fixed environment: threads everywhere, the same kernels on x86-64 with AVX2."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from atelier.core.config import PORTABLE_KERNELS, THREAD_VARIABLES, cpu_flags, fixed_environment, stage_environment

AVX2 = frozenset({"sse2", "avx", "avx2", "fma"})


def test_x86_64_with_avx2_gets_one_thread_per_pool_and_the_portable_kernels():
    fixed = fixed_environment("x86_64", AVX2 | {"avx512f"})
    assert {name: fixed[name] for name in THREAD_VARIABLES} == dict.fromkeys(THREAD_VARIABLES, "1")
    assert fixed["OPENBLAS_CORETYPE"] == "Haswell"
    assert "X86_V4" in fixed["NPY_DISABLE_CPU_FEATURES"].split()
    assert fixed_environment("AMD64", AVX2) == fixed  # Windows' name for the same machine


@pytest.mark.parametrize(("machine", "flags"), [
    ("aarch64", frozenset({"fp", "asimd"})),  # ARM: OpenBLAS has no Haswell kernels there
    ("arm64", frozenset()),                   # macOS on Apple silicon (no /proc/cpuinfo)
    ("x86_64", frozenset({"sse2", "avx"})),   # an x86-64 CPU without AVX2: Haswell kernels would not run
    ("x86_64", frozenset()),                  # flags unknown (macOS on Intel): left to the libraries
])
def test_elsewhere_only_the_threads_are_fixed(machine, flags):
    assert fixed_environment(machine, flags) == dict.fromkeys(THREAD_VARIABLES, "1")


def test_cpu_flags_reads_the_first_flags_line_and_is_empty_without_the_file(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\nprocessor\t: 1\nflags\t\t: other\n")
    assert cpu_flags(cpuinfo) == {"fpu", "sse2", "avx2", "fma"}
    assert cpu_flags(tmp_path / "missing") == frozenset()
    cpuinfo.write_text("processor\t: 0\n")
    assert cpu_flags(cpuinfo) == frozenset()


def test_stage_environment_keeps_what_the_caller_set(monkeypatch):
    for name in (*THREAD_VARIABLES, *PORTABLE_KERNELS):
        monkeypatch.delenv(name, raising=False)
    assert stage_environment() == fixed_environment(platform.machine(), cpu_flags())
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert stage_environment()["OMP_NUM_THREADS"] == "3"


PROBE = """
import os
import atelier.cli  # what a stage's process imports first
from threadpoolctl import threadpool_info
import numpy, scipy.linalg  # noqa: F401  (loads both OpenBLAS builds)
print(os.environ.get("OPENBLAS_CORETYPE"), os.environ.get("OMP_NUM_THREADS"))
print(sorted({pool.get("architecture") for pool in threadpool_info() if pool["internal_api"] == "openblas"}))
"""


def _probe(extra: dict[str, str]) -> list[str]:
    env = {key: value for key, value in os.environ.items()
           if key not in {*THREAD_VARIABLES, *PORTABLE_KERNELS}} | extra
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.mark.skipif(not (platform.machine() == "x86_64" and {"avx2", "fma"} <= cpu_flags()),
                    reason="the kernels are pinned on x86-64 with AVX2 only")
def test_a_stage_process_loads_openblas_with_the_pinned_kernels_unless_the_caller_chose_others():
    assert _probe({}) == ["Haswell 1", "['Haswell']"]
    assert _probe({"OPENBLAS_CORETYPE": "Sandybridge", "OMP_NUM_THREADS": "2"}) == ["Sandybridge 2", "['Sandybridge']"]
