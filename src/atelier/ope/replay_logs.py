"""Off-policy evaluation on the replay: exploratory logs of the simulated shop, where the truth is known.

The logging policy is the shop as it runs before personalization (the default page) with
epsilon-greedy exploration over the candidate pages of `atelier.replay.explore`; every decision
logged the probability of what it showed. From those logs we estimate what each evaluation policy
(always one candidate page for customers the shop can personalize, the default page for the
others) would convert, and compare with the simulator's truth (the same visits replayed with
that policy) and with the closed-loop A/B test of the replay stage.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from atelier.ope.estimators import BanditLog, deterministic
from atelier.replay.explore import ACTIONS

ROUND_COLUMNS = ("session_id", "customer_id", "action", "action_probability", "eligible", "propensity",
                 *(f"p_{a}" for a in ACTIONS), *(f"match_{a}" for a in ACTIONS))


def logged_rounds(decisions: pd.DataFrame, visits: pd.DataFrame) -> pd.DataFrame:
    """One row per explored visit: the decision's log joined with the visit's outcome (`purchased`).

    A clear ValueError when the decisions carry no propensities (exploration was off) or a visit has no outcome.
    """
    missing = [c for c in ROUND_COLUMNS if c not in decisions.columns]
    if missing:
        raise ValueError(f"the replay's decisions lack {missing}: off-policy evaluation needs the policy's logged "
                         "propensities; run the replay with exploration on (params.yaml ope.exploration.epsilon)")
    rounds = decisions.loc[:, list(ROUND_COLUMNS)].merge(visits[["session_id", "purchased"]], on="session_id",
                                                         how="left", validate="one_to_one")
    if rounds["purchased"].isna().any():
        raise ValueError(f"{int(rounds['purchased'].isna().sum())} logged decisions have no visit outcome; the "
                         "decisions and visits come from different runs")
    return rounds.assign(purchased=rounds["purchased"].astype(float))


def bandit_log(rounds: pd.DataFrame) -> BanditLog:
    """The rounds as a bandit log clustered by customer, with the logger's full distribution (for overlap checks)."""
    action = rounds["action"].map({a: i for i, a in enumerate(ACTIONS)})
    if action.isna().any():
        raise ValueError(f"unknown logged actions {sorted(set(rounds['action'][action.isna()]))}; known: {ACTIONS}")
    return BanditLog(action=action.to_numpy(dtype=np.int64), reward=rounds["purchased"].to_numpy(dtype=float),
                     propensity=rounds["action_probability"].to_numpy(dtype=float),
                     cluster=rounds["customer_id"].astype(str).to_numpy(),
                     logger=rounds[[f"p_{a}" for a in ACTIONS]].to_numpy(dtype=float))


def policy(name: str, rounds: pd.DataFrame) -> np.ndarray:
    """The evaluation policy "always `name`" where the shop can personalize, the default page elsewhere."""
    if name not in ACTIONS:
        raise ValueError(f"unknown evaluation policy {name!r}; choose from {list(ACTIONS)}")
    chosen = np.where(rounds["eligible"].to_numpy(dtype=bool), ACTIONS.index(name), 0)
    return deterministic(chosen, len(ACTIONS))


def features(rounds: pd.DataFrame) -> np.ndarray:
    """The reward model's inputs for every (visit, candidate page): visits x actions x features.

    Per page: which page (one-hot), how well it matches the categories the customer viewed, that match minus the
    default page's, and the champion's purchase score (log-odds; 0 and a flag when unscored).
    """
    n, k = len(rounds), len(ACTIONS)
    score = rounds["propensity"].to_numpy(dtype=float)
    scored = np.isfinite(score)
    logit = np.where(scored, np.log(np.clip(np.nan_to_num(score, nan=0.5), 1e-4, 1 - 1e-4) /
                                    (1 - np.clip(np.nan_to_num(score, nan=0.5), 1e-4, 1 - 1e-4))), 0.0)
    match = rounds[[f"match_{a}" for a in ACTIONS]].to_numpy(dtype=float)
    out = np.zeros((n, k, k + 4))
    out[:, np.arange(k), np.arange(k)] = 1.0
    out[:, :, k] = match
    out[:, :, k + 1] = match - match[:, [0]]
    out[:, :, k + 2] = logit[:, None]
    out[:, :, k + 3] = (~scored)[:, None]
    return out


def reward_model(rounds: pd.DataFrame, log: BanditLog) -> Callable[[np.ndarray], np.ndarray]:
    """A fit function for `estimators.crossfit` / DM's refits: logistic regression of the purchase on the logged
    (visit, page) features, trained on the given rows, predicting every visit's purchase chance on every page."""
    design = features(rounds)
    logged = design[np.arange(len(log)), log.action]

    def fit(rows: np.ndarray) -> np.ndarray:
        reward = log.reward[rows]
        if reward.min() == reward.max():  # one class only (tiny samples): the mean is the best model
            return np.full(design.shape[:2], float(reward.mean()))
        model = LogisticRegression(C=1.0, max_iter=500).fit(logged[rows], reward)
        flat = design.reshape(-1, design.shape[2])
        return model.predict_proba(flat)[:, 1].reshape(design.shape[:2])

    return fit


def conversion(visits: pd.DataFrame) -> float:
    """Share of visits with a purchase."""
    return float(visits["purchased"].astype(bool).mean())
