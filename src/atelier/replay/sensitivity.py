"""How the measured uplift depends on the assumed response strength (the one number the simulation assumes).

Every run replays the same visits with the same random numbers from the cutoff, for the first
`days` days; only the strength of the response to what is shown differs. At strength 0 what is
shown changes nothing, so its interval must cover 0: `null_check` says whether it does.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from atelier.core.parallel import deal, dealt_map, each, start
from atelier.replay import abtest
from atelier.replay.context import ReplayContext

COLUMNS = ["strength", "visits", "control", "treatment", "relative_uplift", "ci_low", "ci_high",
           "rule_treatment", "rule_relative_uplift", "rule_ci_low", "rule_ci_high"]


def windows(context: ReplayContext, days: int) -> int:
    """The closed-loop windows in the first `days` days (what a sensitivity run replays)."""
    return int(days * 24 * 60 / context.settings.window_minutes)


def replay_days(context: ReplayContext, strength: float, days: int, learned: bool = True) -> pd.DataFrame:
    """The visits of a closed loop over the first `days` days (treatment arm: learned lists or the rule's pages).

    The same as the visits a longer loop (same strength and lists) has made when it reaches `windows(context,
    days)`: the loop looks at nothing ahead of its window, so the report's loop can stop there, lend its visits
    to the sweep (`sweep(known=...)`) and go on."""
    loop = context.closed_loop(strength, learned=learned)
    loop.run(until=windows(context, days), progress=False)
    return loop.frames("visits")


def _replay_run(context: ReplayContext, days: int, run: tuple[float, bool]) -> pd.DataFrame:
    return replay_days(context, run[0], days, run[1])


def variants(context: ReplayContext) -> tuple[bool, ...]:
    """Which lists each strength is replayed with: the learned ones (True) and, when there are any, the rule's."""
    return (True, False) if context.recommender is not None else (True,)


def runs_of(context: ReplayContext, strengths: tuple[float, ...]) -> list[tuple[float, bool]]:
    """A sweep's runs, (strength, learned), in the table's order."""
    return [(float(strength), learned) for strength in strengths for learned in variants(context)]


@dataclass
class PendingSweep:
    """A sweep under way in worker processes (`start_sweep`): each part is some runs and the future of their visits."""

    strengths: tuple[float, ...]
    variants: tuple[bool, ...]
    seed: int
    parts: list[tuple[list[tuple[float, bool]], Future]]


def start_sweep(context: ReplayContext, strengths: tuple[float, ...], days: int, lent: tuple[tuple[float, bool], ...]
                = (), workers: int = 1) -> PendingSweep:
    """Start a sweep's runs on `workers` processes and return at once (`collect` waits for them and makes the table).

    `lent`: runs the caller makes itself and gives to `collect` as `known` (the report's loop lends the run at the
    assumed strength), not started here. Every `workers`-th run goes to one process (`context.for_worker()` sent
    once to each, with its profile store at the cutoff, built here first); every run is seeded on its own, so the
    visits are the same as `sweep`'s, whatever the number of processes."""
    started = [run for run in runs_of(context, strengths) if run not in set(lent)]
    run = partial(_replay_run, context.for_worker(), days)  # the store at the cutoff built once here, not per worker
    return PendingSweep(tuple(strengths), variants(context), context.settings.seed,
                        [(hand, start(each, run, hand)) for hand in deal(started, workers)])


def collect(pending: PendingSweep, n_boot: int = 300, keep: dict[tuple[float, bool], pd.DataFrame] | None = None,
            known: dict[tuple[float, bool], pd.DataFrame] | None = None) -> pd.DataFrame:
    """The table of a sweep started by `start_sweep` (waits for its runs; errors in a worker are raised here), the same
    as `sweep`'s. `known` must hold the runs lent to it; `keep` collects each run's visits by (strength, learned)."""
    visits_by_run = dict(known or {})
    for group, future in pending.parts:
        visits_by_run.update(zip(group, future.result()))
    absent = [(float(s), learned) for s in pending.strengths for learned in pending.variants
              if (float(s), learned) not in visits_by_run]
    if absent:
        raise ValueError(f"sensitivity runs {absent} were neither started nor given as known (the lent runs)")
    return table(pending.strengths, pending.variants, visits_by_run, pending.seed, n_boot, keep)


def sweep(context: ReplayContext, strengths: tuple[float, ...], days: int, n_boot: int = 300,
          keep: dict[tuple[float, bool], pd.DataFrame] | None = None,
          known: dict[tuple[float, bool], pd.DataFrame] | None = None, workers: int = 1) -> pd.DataFrame:
    """Conversion uplift (with its interval) for each assumed response strength, over the first `days` days: of
    the treatment arm as deployed (learned lists when the recommend stage ran) and, when there are learned lists,
    of the same arm showing the favourite-category rule's pages instead (`rule_*`; NaN without learned lists).

    `known`: runs already made, by (strength, learned), reused instead of replayed; the others run on `workers`
    processes while the caller waits (`start_sweep` and `collect` let it go on meanwhile; every run is seeded on its
    own: the same visits with 1 worker or 2). `keep` collects each run's visits by (strength, learned)."""
    known = known or {}
    missing = [run for run in runs_of(context, strengths) if run not in known]
    light = context.for_worker()  # with the store at the cutoff, built once here: no worker rebuilds it
    visits_by_run = {**known, **dict(zip(missing, dealt_map(partial(_replay_run, light, days), missing, workers)))}
    return table(tuple(strengths), variants(context), visits_by_run, context.settings.seed, n_boot, keep)


def table(strengths: tuple[float, ...], lists: tuple[bool, ...], visits_by_run: dict[tuple[float, bool], pd.DataFrame],
          seed: int, n_boot: int = 300, keep: dict[tuple[float, bool], pd.DataFrame] | None = None) -> pd.DataFrame:
    """The sweep's table from every run's visits, by (strength, learned): one row per strength (`COLUMNS`), each
    with the `lists` it was replayed with (`variants`); the bootstraps seeded by `seed`."""
    rows = []
    for strength in strengths:
        row: dict[str, float] = {"strength": strength}
        for learned in lists:
            visits = visits_by_run[float(strength), learned]
            if keep is not None:
                keep[strength, learned] = visits
            result = abtest.measure(visits, seed, n_boot=n_boot)["conversion"]
            if learned:
                row.update(visits=len(visits), **{c: result[c] for c in COLUMNS[2:7]})
            else:
                row.update({f"rule_{c}": result[c] for c in ("treatment", "relative_uplift", "ci_low", "ci_high")})
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def learned_vs_rule(learned: pd.DataFrame, rule: pd.DataFrame, seed: int, n_boot: int = 1000) -> dict[str, Any]:
    """The treatment arm showing learned lists against the same arm showing the rule's pages, on the same visits
    with the same random numbers (two replays that differ only in the lists): the relative difference in
    conversion with a bootstrap interval over customers (the pairing removes visit-to-visit noise)."""
    on = ["session_id", "customer_id"]
    treated = learned.loc[learned["arm"] == "treatment", [*on, "purchased", "revenue"]]
    paired = treated.merge(rule.loc[rule["arm"] == "treatment", [*on, "purchased", "revenue"]], on=on,
                           suffixes=("_learned", "_rule"), validate="one_to_one")
    if paired.empty:
        return {"sessions": 0, "learned": None, "rule": None, "relative_difference": None, "ci_low": None,
                "ci_high": None}
    per_customer = paired.assign(learned=paired["purchased_learned"].astype(float),
                                 rule=paired["purchased_rule"].astype(float), sessions=1.0
                                 ).groupby("customer_id")[["learned", "rule", "sessions"]].sum()
    values = per_customer.to_numpy()
    draws = np.random.default_rng(seed).integers(0, len(values), size=(n_boot, len(values)))
    sums = values[draws].sum(axis=1)  # (n_boot, 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = sums[:, 0] / sums[:, 1] - 1
    total = values.sum(axis=0)
    low, high = np.nanpercentile(boot, [2.5, 97.5]) if np.isfinite(boot).any() else (np.nan, np.nan)
    return {"sessions": int(total[2]), "learned": float(total[0] / total[2]), "rule": float(total[1] / total[2]),
            "relative_difference": float(total[0] / total[1] - 1) if total[1] else None,
            "ci_low": float(low), "ci_high": float(high)}


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

