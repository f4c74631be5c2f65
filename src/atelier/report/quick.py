"""`make quick`: every report on a small shop in a few minutes, in quick/, labelled as the quick run.

    python -m atelier.report.quick          # what `make quick` runs

params.quick.yaml is laid over params.yaml (the same timeline and methods, fewer customers, smaller
searches and samples) and sets `run_label`, which every report and the landing page show as a banner.
The run has its own folder and DVC project (quick/), so the project's own outputs are untouched and
running it again reruns only what changed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import yaml

from atelier.core import paths
from atelier.core.config import ParamsError, project_root
from atelier.report import workspace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m atelier.report.quick", description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rerun every stage (dvc repro --force)")
    arguments = parser.parse_args(argv)
    project = project_root()
    override_file = project / paths.QUICK_PARAMS_FILE
    try:
        override = yaml.safe_load(override_file.read_text(encoding="utf-8")) or {}
        target = workspace.prepare(project, project / paths.QUICK_DIR, override)
    except (OSError, ParamsError) as problem:
        print(f"error: {override_file}: {problem}", file=sys.stderr)
        return 2
    began = time.perf_counter()
    try:
        workspace.dvc(target, "repro", *(["--force"] if arguments.force else []))
    except subprocess.CalledProcessError as failed:  # DVC has said which stage failed and why
        return failed.returncode
    index = Path(paths.QUICK_DIR) / paths.INDEX_FILE
    print(f"quick run done in {time.perf_counter() - began:.0f} s: open {index}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
