"""Synthetic bandit logs whose true policy values are known exactly: the estimators' test bench.

Contexts are one of `n_contexts` kinds (drawn uniformly), each action has a fixed click
probability per kind, the logger is a softmax over a seeded preference and the evaluation policy
greedily takes the best action for a kind most of the time. The value of any policy is then a
finite sum, computed exactly (`SyntheticBandit.value`), so an estimate's error is known.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from atelier.ope.estimators import BanditLog


@dataclass(frozen=True)
class SyntheticBandit:
    """Click probabilities (contexts x actions), the logger's and the target's action distributions (same shape)."""

    reward_probability: np.ndarray
    logger: np.ndarray
    target: np.ndarray

    @classmethod
    def make(cls, n_contexts: int = 20, n_actions: int = 5, seed: int = 0, logger_temperature: float = 1.0,
             target_greediness: float = 0.9, rates: tuple[float, float] = (0.01, 0.2)) -> SyntheticBandit:
        """A seeded problem: click rates uniform in `rates`, a softmax logger, a mostly greedy target."""
        rng = np.random.default_rng(seed)
        rates = rng.uniform(*rates, size=(n_contexts, n_actions))
        preference = rng.normal(size=(n_contexts, n_actions)) / logger_temperature
        logger = np.exp(preference - preference.max(axis=1, keepdims=True))
        logger /= logger.sum(axis=1, keepdims=True)
        best = rates.argmax(axis=1)
        target = np.full((n_contexts, n_actions), (1.0 - target_greediness) / n_actions)
        target[np.arange(n_contexts), best] += target_greediness
        return cls(reward_probability=rates, logger=logger, target=target)

    def value(self, policy: np.ndarray) -> float:
        """The exact expected reward per round of `policy` (contexts x actions), contexts being uniform."""
        return float((policy * self.reward_probability).sum(axis=1).mean())

    def sample(self, n: int, seed: int) -> tuple[BanditLog, np.ndarray]:
        """`n` logged rounds under the logger and each round's context index."""
        rng = np.random.default_rng(seed)
        context = rng.integers(0, len(self.logger), n)
        cumulative = self.logger[context].cumsum(axis=1)
        action = np.minimum((rng.random(n)[:, None] > cumulative).sum(axis=1), self.logger.shape[1] - 1)
        reward = (rng.random(n) < self.reward_probability[context, action]).astype(float)
        log = BanditLog(action=action, reward=reward, propensity=self.logger[context, action],
                        logger=self.logger[context])
        return log, context



def repeated_estimates(bandit: SyntheticBandit, rounds: int, seeds: int, n_boot: int,
                       clip: float | None = None) -> pd.DataFrame:
    """Every estimator on `seeds` independent logs of `rounds` rounds, against the exact truth: one row per
    (seed, method) with the estimate, its interval and whether it covers the truth. DR and DM use a cross-fitted
    cell-means reward model; "dr_oracle" uses the true click probabilities (the best possible model)."""
    from atelier.ope.estimators import crossfit_cell_means, estimate, estimate_all

    truth = bandit.value(bandit.target)
    n_contexts, n_actions = bandit.reward_probability.shape
    rows = []
    for seed in range(seeds):
        log, context = bandit.sample(rounds, seed)
        target = bandit.target[context]
        q = crossfit_cell_means(log, context, n_contexts, n_actions, seed=seed)
        found = estimate_all(log, target, q, clip=clip, n_boot=n_boot, seed=seed)
        found.append(estimate("dr", log, target, bandit.reward_probability[context], n_boot=n_boot, seed=seed))
        for method, e in zip([*[e.method for e in found[:-1]], "dr_oracle"], found):
            rows.append({"seed": seed, "method": method, "value": e.value, "ci_low": e.ci_low, "ci_high": e.ci_high,
                         "ess": e.ess, "covered": e.ci_low <= truth <= e.ci_high, "truth": truth})
    return pd.DataFrame(rows)


def summary(repeated: pd.DataFrame) -> pd.DataFrame:
    """Per method: mean error (bias), spread of the estimates across logs, mean interval width and coverage."""
    frame = repeated.assign(error=repeated["value"] - repeated["truth"], width=repeated["ci_high"] - repeated["ci_low"])
    return frame.groupby("method", sort=False).agg(bias=("error", "mean"), spread=("value", "std"),
                                                    width=("width", "mean"), coverage=("covered", "mean"),
                                                    ess=("ess", "mean"))
