"""The two analyses of the phase as tables: the replay (truth known) and ZOZOTOWN's logs (the other policy measured).

Both are pure: they take logs and settings, return DataFrames and dicts the stage writes and the
notebook shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from atelier.core.config import ParamsError
from atelier.ope import estimators, obd, replay_logs
from atelier.replay import abtest
from atelier.replay.explore import ACTIONS, Exploration
from atelier.replay.explore import from_params as exploration_from_params

DISTRIBUTIONS = ("frequencies", "propensities", "prior")


@dataclass(frozen=True)
class OpeSettings:
    """params.yaml `ope`: the exploratory replay, the estimators' options and the OBD analysis."""

    days: int
    window_minutes: float
    exploration: Exploration
    targets: tuple[str, ...]
    n_boot: int
    dm_refits: int
    clip: float
    folds: int
    distribution: str
    prior_simulations: int
    cell_prior: float
    relative_half_width: float
    seed: int

    @classmethod
    def from_params(cls, section: dict[str, Any], seed: int) -> OpeSettings:
        """Settings from params.yaml `ope`; a ParamsError names the key at fault and the fix."""
        try:
            replay, estimator, real = section["replay"], section["estimators"], section["obd"]
            values = dict(days=replay["days"], window_minutes=replay["window_minutes"],
                          exploration=exploration_from_params(replay["exploration"]), targets=tuple(replay["targets"]),
                          n_boot=estimator["n_boot"], dm_refits=estimator["dm_refits"], clip=estimator["clip"],
                          folds=estimator["folds"], distribution=real["distribution"],
                          prior_simulations=real["prior_simulations"], cell_prior=real["cell_prior"],
                          relative_half_width=real["relative_half_width"])
        except (KeyError, TypeError) as missing:
            raise ParamsError(f"params.yaml ope: missing or malformed key {missing}; restore the section from the "
                              "project's params.yaml") from None
        if values["exploration"] is None or not values["exploration"].epsilon > 0:
            raise ParamsError("params.yaml ope.replay.exploration.epsilon: must be above 0; without exploration the "
                              "logs hold no propensities for other pages and nothing can be estimated")
        for key in ("days", "n_boot", "dm_refits", "folds", "prior_simulations"):
            value = values[key]
            least = 2 if key == "folds" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ParamsError(f"params.yaml ope: {key} must be a whole number (at least {least}), got {value!r}")
        for key in ("window_minutes", "clip", "cell_prior", "relative_half_width"):
            if isinstance(values[key], bool) or not isinstance(values[key], (int, float)) or not values[key] > 0:
                raise ParamsError(f"params.yaml ope: {key} must be a positive number, got {values[key]!r}")
        unknown = [t for t in values["targets"] if t not in ACTIONS]
        if unknown:
            raise ParamsError(f"params.yaml ope.replay.targets: unknown policies {unknown}; "
                              f"choose from {list(ACTIONS)}")
        if values["distribution"] not in DISTRIBUTIONS:
            raise ParamsError(f"params.yaml ope.obd.distribution: {values['distribution']!r} is not one of "
                              f"{list(DISTRIBUTIONS)}")
        return cls(**values, seed=int(seed))


def _rows(estimates: list[estimators.Estimate], **extra: Any) -> list[dict[str, Any]]:
    return [{**extra, **e.as_dict()} for e in estimates]


def replay_table(rounds: pd.DataFrame, truths: dict[str, float], ab: dict[str, float | None],
                 settings: OpeSettings) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Each evaluation policy x estimator on the exploratory replay: estimate, interval, truth, error, covered,
    ESS, largest weight (plus the clipped IPW), and the closed-loop A/B's measured rate where the A/B ran that policy.

    Also returns facts: rounds, conversions, how often each page was shown and the overlap check.
    """
    log = replay_logs.bandit_log(rounds)
    fit = replay_logs.reward_model(rounds, log)
    q = estimators.crossfit(fit, len(log), settings.folds, settings.seed, log.cluster)
    full = fit(np.arange(len(log)))
    targets = {name: replay_logs.policy(name, rounds) for name in settings.targets}
    dm_draws = estimators.refit_dm_draws(log, list(targets.values()), fit, settings.dm_refits, settings.seed)
    rows = []
    for (name, target), draws in zip(targets.items(), dm_draws):
        found = estimators.estimate_all(log, target, q, n_boot=settings.n_boot, seed=settings.seed, dm_q=full,
                                        dm_draws=draws)
        clipped = estimators.estimate("ipw", log, target, clip=settings.clip, n_boot=settings.n_boot,
                                      seed=settings.seed)
        rows += _rows(found, policy=name) + _rows([clipped], policy=name)
        rows[-1]["method"] = f"ipw_clip{settings.clip:g}"
    table = pd.DataFrame(rows)
    table["truth"] = table["policy"].map(truths)
    table["error"] = table["value"] - table["truth"]
    table["covered"] = (table["ci_low"] <= table["truth"]) & (table["truth"] <= table["ci_high"])
    table["ab_measured"] = table["policy"].map(ab)
    facts = {"rounds": len(log), "customers": int(pd.Series(log.cluster).nunique()),
             "conversions": int(log.reward.sum()), "eligible_share": float(rounds["eligible"].mean()),
             "shown": rounds["action"].value_counts().reindex(list(ACTIONS), fill_value=0).to_dict(),
             "epsilon": settings.exploration.epsilon}
    return table, facts


def replay_uplift(rounds: pd.DataFrame, truths: dict[str, float], ab_uplift: dict[str, float],
                  settings: OpeSettings, target: str = "personalized", baseline: str = "default") -> pd.DataFrame:
    """The relative conversion uplift of `target` over `baseline`: each weighted estimator (paired bootstrap), the
    closed-loop A/B test and the simulator's truth."""
    log = replay_logs.bandit_log(rounds)
    q = estimators.crossfit(replay_logs.reward_model(rounds, log), len(log), settings.folds, settings.seed,
                            log.cluster)
    a, b = replay_logs.policy(target, rounds), replay_logs.policy(baseline, rounds)
    rows = [{"source": method, **estimators.relative_difference(method, log, a, b, q, n_boot=settings.n_boot,
                                                                   seed=settings.seed)}
            for method in ("ipw", "snipw", "dr")]
    rows.append({"source": "closed-loop A/B", "relative": ab_uplift["relative_uplift"],
                 "ci_low": ab_uplift["ci_low"], "ci_high": ab_uplift["ci_high"]})
    truth = truths[target] / truths[baseline] - 1.0
    rows.append({"source": "simulator truth", "relative": truth, "ci_low": np.nan, "ci_high": np.nan})
    frame = pd.DataFrame(rows)
    frame["covers_truth"] = (frame["ci_low"] <= truth) & (truth <= frame["ci_high"])
    return frame


def ab_reference(visits: pd.DataFrame | None, days: int, first_day: int, seed: int,
                 n_boot: int) -> tuple[dict, dict]:
    """The replay stage's A/B test over the same first `days` days: each arm's conversion (control ran the default
    page, treatment the personalized policy) and the uplift with its customer bootstrap interval (NaN without
    the replay's visits)."""
    if visits is None:
        return {}, {"relative_uplift": np.nan, "ci_low": np.nan, "ci_high": np.nan}
    window = visits[(visits["day"] >= first_day) & (visits["day"] < first_day + days)]
    sessions = window.assign(converted=window["purchased"].astype(bool))[list(abtest.SESSION_COLUMNS)]
    summary = abtest.arm_summary(sessions)["conversion_rate"]
    measured = {"default": float(summary.get("control", np.nan)),
                "personalized": float(summary.get("treatment", np.nan))}
    return measured, abtest.uplift(sessions, n_boot=n_boot, seed=seed)


def action_distribution(logs: obd.CampaignLogs, prior: dict[str, tuple[np.ndarray, np.ndarray]],
                        settings: OpeSettings) -> dict[str, np.ndarray]:
    """BTS's action distribution (items x positions) reconstructed three ways (see `atelier.ope.obd`)."""
    found = {"frequencies": obd.distribution_from_frequencies(logs.bts, logs.n_items),
             "propensities": obd.distribution_from_propensities(logs.bts, logs.n_items)}
    if logs.campaign in prior and len(prior[logs.campaign][0]) == logs.n_items:
        found["prior"] = obd.distribution_from_prior(*prior[logs.campaign], settings.prior_simulations, settings.seed)
    return found


def obd_table(campaigns: list[obd.CampaignLogs], prior: dict[str, tuple[np.ndarray, np.ndarray]],
              settings: OpeSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """For each campaign: BTS's click rate estimated from the random logs by every estimator (with the chosen
    reconstruction of BTS's probabilities), beside BTS's measured click rate (bootstrap interval) and the random
    policy's; and a second table of every reconstruction's IPW estimate and its distance to the frequencies."""
    rows, sensitivity = [], []
    for logs in campaigns:
        log = logs.bandit_log()
        position = logs.random["position"].to_numpy() - 1
        n_items = logs.n_items

        def fit(rows_: np.ndarray, log=log, position=position, n_items=n_items) -> np.ndarray:
            return estimators.cell_means(log, position, rows_, obd.POSITIONS, n_items, settings.cell_prior)[position]

        q = estimators.crossfit(fit, len(log), settings.folds, settings.seed)
        distributions = action_distribution(logs, prior, settings)
        target = logs.target(distributions[settings.distribution])
        draws = estimators.refit_dm_draws(log, [target], fit, settings.dm_refits, settings.seed)[0]
        found = estimators.estimate_all(log, target, q, n_boot=settings.n_boot, seed=settings.seed,
                                        dm_q=fit(np.arange(len(log))), dm_draws=draws)
        measured = _click_rate(logs.bts["click"].to_numpy(dtype=float), settings)
        random_rate = float(logs.random["click"].mean())
        needed_precise = estimators.rounds_for_half_width(
            log, target, settings.relative_half_width * measured["value"])
        gap = abs(measured["value"] - random_rate)
        needed_separate = estimators.rounds_for_half_width(log, target, gap / 2.0) if gap > 0 else None
        for e in found:
            rows.append({"campaign": logs.campaign, **e.as_dict(), "bts_measured": measured["value"],
                         "bts_ci_low": measured["ci_low"], "bts_ci_high": measured["ci_high"],
                         "random_measured": random_rate, "random_clicks": int(logs.random["click"].sum()),
                         "bts_clicks": int(logs.bts["click"].sum()), "n_items": n_items,
                         "rounds_for_relative_half_width": needed_precise, "rounds_to_separate": needed_separate})
        for name, distribution in distributions.items():
            ipw = estimators.estimate("ipw", log, logs.target(distribution), n_boot=settings.n_boot,
                                      seed=settings.seed)
            sensitivity.append({"campaign": logs.campaign, "distribution": name, "value": ipw.value,
                                "ci_low": ipw.ci_low, "ci_high": ipw.ci_high, "ess": ipw.ess,
                                "distance_to_frequencies": obd.total_variation(distribution,
                                                                               distributions["frequencies"])})
    table = pd.DataFrame(rows)
    table["error"] = table["value"] - table["bts_measured"]
    table["covers_measured"] = (table["ci_low"] <= table["bts_measured"]) & (table["bts_measured"] <= table["ci_high"])
    return table, pd.DataFrame(sensitivity)


def _click_rate(clicks: np.ndarray, settings: OpeSettings) -> dict[str, float]:
    """A measured click rate with its percentile bootstrap interval over impressions."""
    draws = abtest.bootstrap_ratio(clicks, np.ones(len(clicks)), settings.n_boot, np.random.default_rng(settings.seed))
    low, high = np.quantile(draws, [0.025, 0.975])
    return {"value": float(clicks.mean()), "ci_low": float(low), "ci_high": float(high)}


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]


def metrics(*, synthetic: pd.DataFrame, replay: pd.DataFrame | None, facts: dict[str, Any] | None,
            uplift: pd.DataFrame | None, obd_estimates: pd.DataFrame, reconstruction: pd.DataFrame,
            settings: OpeSettings, redrawn: pd.DataFrame | None = None) -> dict[str, Any]:
    """metrics/ope.json: the synthetic check, both tables, the uplift comparison and the headline figures
    (the replay's part None without a simulated shop)."""
    def pick(frame: pd.DataFrame | None, **where: Any) -> dict[str, Any]:
        if frame is None:
            return {}
        mask = np.logical_and.reduce([frame[k] == v for k, v in where.items()])
        return _records(frame[mask])[0] if mask.any() else {}

    return {
        "synthetic": _records(synthetic.reset_index()),
        "replay": None if replay is None else {
            "facts": facts, "estimates": _records(replay), "uplift": _records(uplift), "days": settings.days,
            "window_minutes": settings.window_minutes,
            "redrawn_logs": None if redrawn is None else _records(redrawn.reset_index())},
        "obd": {"estimates": _records(obd_estimates), "reconstruction": _records(reconstruction),
                "distribution": settings.distribution, "package": f"{obd.PACKAGE}=={obd.VERSION}",
                "sha256": obd.WHEEL_SHA256, "citation": obd.CITATION},
        "headline": {"personalized_dr": pick(replay, policy="personalized", method="dr"),
                     "uplift_dr": pick(uplift, source="dr"), "uplift_truth": pick(uplift, source="simulator truth"),
                     "bts_all_ipw": pick(obd_estimates, campaign="all", method="ipw")},
    }


def plot_frames(replay: pd.DataFrame | None, obd_estimates: pd.DataFrame | None) -> dict[str, pd.DataFrame | None]:
    """The declared plot CSVs: each estimate with its interval and the value it should hit (None: not run)."""
    def labelled(frame: pd.DataFrame | None, group: str) -> pd.DataFrame | None:
        return None if frame is None else frame.assign(label=frame[group] + " · " + frame["method"])

    return {"replay_estimates": labelled(replay, "policy"), "obd_estimates": labelled(obd_estimates, "campaign")}


def replay_findings(table: pd.DataFrame, truths: dict[str, float]) -> dict[str, Any]:
    """What the replay table says, as numbers for the report's sentences: coverage of the weighted estimators,
    the ranking by DR against the true ranking, and each policy's DR interval half-width."""
    weighted = table[table["method"].isin(["ipw", "snipw", "dr"])]
    dr = table[table["method"] == "dr"].set_index("policy")
    ranked = dr["value"].sort_values(ascending=False).index.tolist()
    truth_rank = sorted(truths, key=truths.get, reverse=True)
    return {"covered": int(weighted["covered"].sum()), "cases": len(weighted), "dr_ranking": ranked,
            "true_ranking": truth_rank, "same_ranking": ranked == truth_rank,
            "half_width": ((dr["ci_high"] - dr["ci_low"]) / 2).to_dict(),
            "largest_weight": float(table.loc[table["method"] == "ipw", "max_weight"].max())}


def interval_verdicts(uplift: pd.DataFrame, claim: float = abtest.CASE_STUDY_UPLIFT) -> dict[str, str]:
    """For each source with an interval: whether it excludes "no effect" and whether it holds the `claim`."""
    verdicts = {}
    for _, row in uplift.dropna(subset=["ci_low", "ci_high"]).iterrows():
        zero = "excludes no effect" if row["ci_low"] > 0 or row["ci_high"] < 0 else "cannot exclude no effect"
        held = "holds" if row["ci_low"] <= claim <= row["ci_high"] else "excludes"
        verdicts[row["source"]] = f"{zero} and {held} {claim:+.0%}"
    return verdicts


def redrawn_logs(rounds: pd.DataFrame, outcomes: pd.DataFrame, truths: dict[str, float], settings: OpeSettings,
                 draws: int, bootstrap_draws: int, target: str = "personalized") -> pd.DataFrame:
    """IPW and SNIPW of `target` on `draws` exploratory logs drawn again from the same logger over the same visits.

    The truth runs give every visit's purchase under every page (`outcomes`, by session id: common random
    numbers make them the visit's potential outcomes), so a new log is a new draw of the page from each
    visit's logged distribution with that page's outcome. The estimators' bias and spread over the redraws,
    and the coverage of their intervals (on the first `bootstrap_draws`), are then measured on the replay itself.
    """
    pages = [a for a in ACTIONS if a in outcomes.columns]
    if target not in pages or len(pages) < len(ACTIONS):
        raise ValueError(f"redrawn logs need a truth run of every page {list(ACTIONS)}; got {pages}")
    potential = outcomes.reindex(rounds["session_id"].to_numpy())[list(ACTIONS)].to_numpy(dtype=float)
    if np.isnan(potential).any():
        raise ValueError("some explored visits have no outcome in the truth runs: the runs cover different visits")
    logger = rounds[[f"p_{a}" for a in ACTIONS]].to_numpy(dtype=float)
    policy = replay_logs.policy(target, rounds)
    cluster = rounds["customer_id"].astype(str).to_numpy()
    rng = np.random.default_rng(settings.seed)
    rows = []
    for draw in range(draws):
        action = np.minimum((rng.random(len(rounds))[:, None] >= logger.cumsum(axis=1)).sum(axis=1),
                            len(ACTIONS) - 1)
        rows_ = np.arange(len(rounds))
        log = estimators.BanditLog(action=action, reward=potential[rows_, action],
                                   propensity=logger[rows_, action], cluster=cluster, logger=logger)
        for method in ("ipw", "snipw"):
            n_boot = settings.n_boot if draw < bootstrap_draws else 1
            found = estimators.estimate(method, log, policy, n_boot=n_boot, seed=settings.seed + draw)
            covered = found.ci_low <= truths[target] <= found.ci_high if draw < bootstrap_draws else np.nan
            rows.append({"draw": draw, "method": method, "value": found.value, "covered": covered})
    frame = pd.DataFrame(rows)
    return frame.groupby("method").agg(mean=("value", "mean"), spread=("value", "std"),
                                       coverage=("covered", "mean")).assign(truth=truths[target],
                                                                            bias=lambda d: d["mean"] - d["truth"])
