"""The README's commands work as printed: on a fresh copy, with nothing of the project's on PATH.

Every command-looking line of README.md (a line of a shell block, or an inline code span starting with
a tool: make, dvc, python, ...) is either run here (`RUN`) or excluded with a reason (`EXCLUDED`); a new
command in the README fails `test_every_readme_command_is_run_or_excluded_with_a_reason` until it is
placed. The slow tests run the `RUN` commands in README order, in bash sessions whose PATH holds only the
system's directories (as a new user's shell has), on a fresh copy at tiny parameters: the shared
`built_project`, where `make repro` already ran that way (so here it has nothing left to do). The commands up
to `make quick` run here; those after it in test_readme_experiment.py, at the same time on another process.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import QUICK_LABEL, REPO, bare_bash, copy_project

README = REPO / "README.md"
TOOLS = ("make", "dvc", "python", "python3", "source", "git", "conda", "brew", "jupyter", "pip", "pytest", "ruff")

#: Commands the slow test runs as printed, in README order.
RUN = {
    "make repro",
    "make quick",
    "source .venv/bin/activate",
    "dvc exp run -S segmentation.k=6",
    "dvc exp show",
    "dvc metrics diff",
    "dvc dag",
    "dvc metrics show",
    "dvc plots show",
    "dvc repro",
    ".venv/bin/dvc repro",
}
#: Commands not run here, each with the reason.
EXCLUDED = {
    "git clone <this repository> atelier && cd atelier": "the fresh copy stands in for the clone",
    "make test": "this test is part of `make test`; .ci/run runs it on a clean clone",
    'python -m pytest -m "not slow"': "the suite this test belongs to (`make test` runs all of it)",
    "make lab": "starts JupyterLab and waits for a browser",
    "make lab     # or: .venv/bin/jupyter lab notebooks/": "starts JupyterLab and waits for a browser",
    "make bench": "about 12 minutes of benchmarks at full size; benchmarks/run.py --quick is their check",
    "make lock": "re-pins every dependency from PyPI (network; changes requirements.lock)",
    "make lint": "part of `make test`",
    "make repro PYTHON=python3.12": "needs another interpreter; the same make target is run with the default one",
    "conda env create -f environment.yml": "conda is not part of the test environment; "
                                           "test_environment checks environment.yml mirrors the lock",
    "brew install libomp": "macOS only",
    "dvc exp run -S prep.half_life_days=7": "the same mechanism as the segmentation.k=6 line, which is run; "
                                            "test_pipeline checks which stages a prep.half_life_days change reruns",
    "dvc exp run -S data.source=files -S data.path=/path/to/my/folder": "a placeholder path; test_pipeline runs "
                                                                        "the pipeline on an orders-only folder",
    "dvc exp run -S data.source=files -S data.path=<folder>": "a placeholder path (see the line above)",
    "python -m atelier <stage>": "a placeholder for a stage name; dvc repro runs every stage this way",
    "bin/atelier <stage>": "a placeholder for a stage name; dvc repro runs every stage this way",
    "make budget": "a full-size pipeline run in a temporary copy (minutes); test_stage_budget.py runs its parts",
    "make serve": "starts a server that runs until stopped; tests/unit/serve starts the same app with uvicorn",
    "make serve HOST=... PORT=...": "placeholders; tests/unit/serve/test_stage.py checks the host/port settings",
    "make serve-loop": "needs a running service; tests/unit/serve/test_parity.py drives the loop through the API",
    "python -m atelier serve-loop --days 1": "needs a running service (see `make serve-loop`)",
    "python benchmarks/serve_load.py": "a load test of minutes; `benchmarks/run.py --quick` is its check",
    "pip download --no-deps": "a fragment of the obd stage's command, which `make repro` runs",
    "pip install -r requirements.lock": "what `make repro` does to build .venv",
    "make test TEST_WORKERS=1": "the same suite as `make test` (this test is part of it), on one process",
    "python benchmarks/spark_stream.py": "minutes of Spark at default size; `benchmarks/run.py --quick` runs it on a "
                                         "day, tests/unit/replay/test_spark.py checks the same engine",
    "python benchmarks/spark_scaling.py --engine embedded|spark --data <folder>": "a placeholder folder; "
        "`benchmarks/run.py --quick` runs it at 20,000 customers",
}


def _strip_comment(line: str) -> str:
    """A shell line without its trailing comment (`  # ...`)."""
    return re.split(r"\s+#\s", line, maxsplit=1)[0].strip()


def readme_commands(text: str) -> list[str]:
    """Command-looking lines in README order: shell-block lines and inline code spans starting with a tool."""
    commands: list[str] = []
    in_shell = False
    for line in text.splitlines():
        fence = line.strip().startswith("```")
        if fence:
            in_shell = not in_shell and line.strip() in ("```bash", "```sh", "```shell")
            continue
        if in_shell:
            command = line.strip()
            if command and not command.startswith("#"):
                commands.append(command if command in EXCLUDED else _strip_comment(command))
            continue
        for span in re.findall(r"`([^`\n]+)`", line):
            words = span.split()
            if len(words) >= 2 and (words[0] in TOOLS or words[0].startswith((".venv/bin/", "bin/"))):
                commands.append(span)
    return list(dict.fromkeys(commands))


def test_every_readme_command_is_run_or_excluded_with_a_reason():
    found = readme_commands(README.read_text(encoding="utf-8"))
    placed = RUN | set(EXCLUDED)
    unplaced = [command for command in found if command not in placed]
    assert not unplaced, f"README commands neither run nor excluded by this test: {unplaced}"
    stale = sorted(placed - set(found))
    assert not stale, f"listed here but no longer in the README: {stale}"
    assert all(reason.strip() for reason in EXCLUDED.values())


def test_the_extraction_finds_shell_lines_and_inline_commands_only():
    text = (
        "Run `make repro` then `dvc.yaml` is read; `python3` alone is a name.\n"
        "```bash\n# a comment\nmake lab     # or: .venv/bin/jupyter lab notebooks/\n"
        "dvc exp show   # side by side\n```\n"
        "```\n+-----+\n| box |\n```\n"
    )
    assert readme_commands(text) == ["make repro", "make lab     # or: .venv/bin/jupyter lab notebooks/",
                                     "dvc exp show"]


def _reports(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "reports").glob("*.html"))}


def run_readme_part(built_project: Path, destination: Path, part: str) -> Path:
    """Run one part of the `RUN` commands, in README order, in one bash session with a new user's PATH, on a copy
    of the built project; return the copy. Part "until make quick" ends with `make quick` (then checks that the
    project's outputs are untouched and that quick/, rebuilt from nothing at the same parameters, has the same
    metrics); part "after make quick" is the rest (it starts with `source .venv/bin/activate`).

    The two parts are independent (`make quick` only writes quick/), so two test files run them side by side.
    """
    root = copy_project(built_project, destination)
    commands = [c for c in readme_commands(README.read_text(encoding="utf-8")) if c in RUN]
    assert set(commands) == RUN
    split = commands.index("make quick") + 1
    chosen = {"until make quick": commands[:split], "after make quick": commands[split:]}[part]
    script = ["set -euo pipefail"]
    for command in chosen:
        if command == "make quick":
            script.append("sha256sum reports/*.html metrics/*.json > ../before_quick.sha256")
        script.append(f"echo '>>> {command}' >&2")
        script.append(command)
        if command == "make quick":
            script.append("sha256sum -c --quiet ../before_quick.sha256")  # the project's outputs are untouched
            # quick/ was built from scratch at the project's parameters (params.quick.yaml only adds a label):
            # the same parameters give byte-identical metrics in another folder, from nothing.
            script.append("diff -r metrics quick/metrics >&2 || { echo 'quick/metrics differ from metrics/: the "
                          "same parameters gave other metrics (something is not seeded)' >&2; exit 1; }")
    result = bare_bash("\n".join(script), root)
    assert result.returncode == 0, f"{result.stderr[-6000:]}\n{result.stdout[-2000:]}"
    return root


@pytest.mark.slow
def test_the_readme_commands_until_make_quick_run_as_printed_on_a_fresh_copy(built_project, tmp_path):
    root = run_readme_part(built_project, tmp_path / "atelier", "until make quick")
    for name, html in _reports(root).items():
        assert b"run-label" not in html, f"reports/{name} carries the quick run's banner"
    quick = _reports(root / "quick")
    assert set(quick) >= {"index.html", "01_data_prep.html", "07_robustness.story.html"}
    for name, html in quick.items():
        assert QUICK_LABEL.encode() in html, f"quick/reports/{name} lacks the quick run's banner"
