"""How the measured uplift depends on the assumed response strength (the one number the simulation assumes).

Every run replays the same visits with the same random numbers from the cutoff, for the first
`days` days; only the strength of the response to what is shown differs. At strength 0 what is
shown changes nothing, so its interval must cover 0: `null_check` says whether it does.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from atelier.replay import abtest
from atelier.replay.context import ReplayContext

COLUMNS = ["strength", "visits", "control", "treatment", "relative_uplift", "ci_low", "ci_high"]


def sweep(context: ReplayContext, strengths: tuple[float, ...], days: int, n_boot: int = 300) -> pd.DataFrame:
    """Conversion uplift (with its interval) for each assumed response strength, over the first `days` days."""
    rows = []
    for strength in strengths:
        loop = context.closed_loop(strength)
        loop.run(until=int(days * 24 * 60 / context.settings.window_minutes), progress=False)
        visits = loop.frames("visits")
        result = abtest.measure(visits, context.settings.seed, n_boot=n_boot)["conversion"]
        rows.append({"strength": strength, "visits": len(visits), **{c: result[c] for c in COLUMNS[2:]}})
    return pd.DataFrame(rows, columns=COLUMNS)


def null_check(sweep: pd.DataFrame) -> dict[str, Any]:
    """The run at strength 0 (no true effect), if the sweep has one: its uplift, interval and whether it covers 0.

    run (whether there is a strength-0 run); relative_uplift, ci_low, ci_high and covers_zero
    (None when the interval is undefined) for that run, all None without one.
    """
    null = sweep[sweep["strength"] == 0.0]
    if null.empty:
        return {"run": False, "relative_uplift": None, "ci_low": None, "ci_high": None, "covers_zero": None}
    row = null.iloc[0]
    result = {"relative_uplift": float(row["relative_uplift"]), "ci_low": float(row["ci_low"]),
              "ci_high": float(row["ci_high"])}
    return {"run": True, **result, "covers_zero": abtest.covers_zero(result)}
