"""Command line: `python -m atelier <stage>` runs one pipeline stage (what dvc.yaml calls).

Problems a user can fix (bad parameters, data that breaks the contract) end with a short message
naming the file, the column or key, and the fix, and exit code 2, not a stack trace.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from atelier.core.config import THREAD_VARIABLES
from atelier.core.paths import NOTEBOOK_STAGES

# Fixed BLAS/OpenMP threads unless the caller chose: the same params give the same numbers.
for _variable in THREAD_VARIABLES:
    os.environ.setdefault(_variable, "1")


def main(argv: list[str] | None = None) -> int:
    """Run the stage named on the command line; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m atelier", description=__doc__.splitlines()[0])
    parser.add_argument(
        "stage",
        choices=["simulate", "validate", *NOTEBOOK_STAGES, "index"],
        help="the stage to run ('index' writes reports/index.html)",
    )
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s", stream=sys.stderr)

    from atelier.core.config import ParamsError, load_params, project_root
    from atelier.core.contract import DataContractError
    from atelier.core.schema import check_keys

    try:
        root = project_root()
        # A misspelled or missing key stops whichever stage runs first, before any work.
        check_keys(load_params(root / "params.yaml"), str(root / "params.yaml"))
        if arguments.stage == "simulate":
            from atelier.data import stage as data_stage

            data_stage.run_simulate(load_params(root / "params.yaml"), root)
        elif arguments.stage == "validate":
            from atelier.data import stage as data_stage

            data_stage.run_validate(load_params(root / "params.yaml"), root)
        elif arguments.stage == "index":
            from atelier.report import index as report_index

            index = report_index.build_index(root)
            logging.getLogger("atelier.index").info("wrote %s", index)
        else:
            from atelier.report import notebook as stages

            stages.execute(arguments.stage, root)
    except (ParamsError, DataContractError, FileNotFoundError) as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    except Exception as problem:  # papermill wraps errors raised inside a notebook
        if type(problem).__name__ == "PapermillExecutionError":
            ename, evalue = getattr(problem, "ename", ""), getattr(problem, "evalue", str(problem))
            if ename in ("ParamsError", "DataContractError"):
                print(f"error: {evalue}", file=sys.stderr)
                return 2
            print(
                f"error in the {arguments.stage} notebook ({ename}): {evalue}\n"
                f"The executed notebook in reports/ shows the failing cell.",
                file=sys.stderr,
            )
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
