"""Off-policy estimators: the value of a policy that was never run, from the logs of one that was.

A log holds, per round, the logged action, the reward and the logging policy's probability of
that action (its propensity). An evaluation policy is a matrix of action probabilities per round
(`target[i, a]`), a reward model a matrix of predicted rewards (`q[i, a]`). Each estimator is a
ratio of per-round sums, so one bootstrap serves them all, and resampling whole clusters (a
customer's visits) keeps correlated rounds together:

- direct method (DM): mean of sum_a target[i, a] q[i, a] (biased when the model is, low variance);
- inverse propensity weighting (IPW): mean of w_i r_i with w_i = target[i, a_i] / propensity_i (unbiased
  under overlap, variance grows with the weights);
- self-normalized IPW (SNIPW): sum w_i r_i / sum w_i (slightly biased, much steadier when weights are large);
- doubly robust (DR): DM + mean of w_i (r_i - q[i, a_i]) (unbiased if either the propensities or the model are right).

Clipping caps each weight at `clip` (less variance, some bias); the effective sample size
(sum w)^2 / sum w^2 says how many rounds the estimate really rests on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from atelier.replay.abtest import bootstrap_ratio

METHODS = ("dm", "ipw", "snipw", "dr")
#: A probability this close to 0 is 0: the logger never took the action.
TINY = 1e-12


class OverlapError(ValueError):
    """The evaluation policy puts mass on actions the logging policy never takes: no estimate from these logs."""


@dataclass(frozen=True)
class BanditLog:
    """Logged rounds: the action taken (column index), its reward, the logger's probability of it, and the cluster.

    `logger` (optional) is the logging policy's full action distribution per round (rows sum to 1);
    with it, the overlap check sees every action the logger could have taken, not just those it did.
    """

    action: np.ndarray
    reward: np.ndarray
    propensity: np.ndarray
    cluster: np.ndarray | None = None
    logger: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.action)


@dataclass(frozen=True)
class Estimate:
    """One estimator's answer: value, bootstrap interval, effective sample size, weights and clipping."""

    method: str
    value: float
    ci_low: float
    ci_high: float
    ess: float
    max_weight: float
    clipped: int
    rounds: int

    def as_dict(self) -> dict[str, float | int | str]:
        return {"method": self.method, "value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "ess": self.ess, "max_weight": self.max_weight, "clipped": self.clipped, "rounds": self.rounds}


def check_log(log: BanditLog, n_actions: int, source: str = "the log") -> None:
    """Refuse a log the estimators cannot use, naming the field and the fix (ValueError)."""
    n = len(log)
    for name in ("reward", "propensity"):
        if len(getattr(log, name)) != n:
            raise ValueError(f"{source}: {name} has {len(getattr(log, name))} rows but action has {n}")
    if n == 0:
        raise ValueError(f"{source}: no logged rounds; an estimate needs at least one")
    action = np.asarray(log.action)
    if not np.issubdtype(action.dtype, np.integer) or action.min() < 0 or action.max() >= n_actions:
        raise ValueError(f"{source}: action must hold column indices 0..{n_actions - 1} of the policy matrices")
    propensity = np.asarray(log.propensity, dtype=float)
    missing = int(np.isnan(propensity).sum())
    if missing:
        raise ValueError(f"{source}: propensity is missing in {missing} of {n} rounds; OPE needs the logging "
                         "policy's probability of every logged action (log it at decision time, or drop those "
                         "rounds and say so)")
    bad = int(((propensity <= TINY) | (propensity > 1.0)).sum())
    if bad:
        raise ValueError(f"{source}: propensity must lie in (0, 1]; {bad} of {n} rounds have 0, a negative value or "
                         "more than 1 (a logged action had probability 0: the log or the logger is wrong)")
    if np.isnan(np.asarray(log.reward, dtype=float)).any():
        raise ValueError(f"{source}: reward has missing values; every logged round needs its outcome (0 or more)")


def _check_matrix(matrix: np.ndarray, n: int, n_actions: int, name: str) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape != (n, n_actions):
        raise ValueError(f"{name} must have one row per round and one column per action {(n, n_actions)}, "
                         f"got {matrix.shape}")
    if np.isnan(matrix).any():
        raise ValueError(f"{name} has missing values")
    return matrix


def overlap(log: BanditLog, target: np.ndarray) -> dict[str, float | int]:
    """Where the evaluation policy goes but the logger never does: rounds affected and the target's mass there.

    Without the logger's full distribution only the logged action is known, and overlap cannot be checked
    (reported as None-like zeros with `checked` = 0).
    """
    if log.logger is None:
        return {"checked": 0, "rounds_without_support": 0, "mass_without_support": 0.0}
    unsupported = (np.asarray(log.logger) <= TINY) & (target > TINY)
    mass = np.where(unsupported, target, 0.0).sum(axis=1)
    return {"checked": 1, "rounds_without_support": int((mass > 0).sum()), "mass_without_support": float(mass.mean())}


def require_overlap(log: BanditLog, target: np.ndarray, source: str = "the log") -> None:
    """Raise OverlapError when the target puts mass where the logger never went (IPW would silently ignore it)."""
    found = overlap(log, target)
    if found["rounds_without_support"]:
        raise OverlapError(
            f"{source}: the evaluation policy takes actions the logging policy never takes in "
            f"{found['rounds_without_support']} of {len(log)} rounds ({found['mass_without_support']:.1%} of its "
            "probability mass); no importance-weighted estimate exists there. Explore those actions in the logger, "
            "restrict the evaluation policy to the logger's support, or use the direct method and say it is "
            "model-based")


def weights(log: BanditLog, target: np.ndarray, clip: float | None = None) -> tuple[np.ndarray, int]:
    """Importance weights target[i, a_i] / propensity_i, each capped at `clip` if given; also how many were capped."""
    raw = target[np.arange(len(log)), log.action] / np.asarray(log.propensity, dtype=float)
    if clip is None:
        return raw, 0
    if not clip > 0:
        raise ValueError(f"clip must be a positive weight cap (e.g. 20), got {clip!r}")
    return np.minimum(raw, clip), int((raw > clip).sum())


def effective_sample_size(w: np.ndarray) -> float:
    """(sum w)^2 / sum w^2: the number of equally weighted rounds with the same variance (0 when all weights are 0)."""
    squares = float(np.sum(w**2))
    return float(np.sum(w) ** 2 / squares) if squares > 0 else 0.0


def terms(method: str, log: BanditLog, target: np.ndarray, q: np.ndarray | None,
          w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-round numerator and denominator whose sums' ratio is the estimator's value."""
    reward = np.asarray(log.reward, dtype=float)
    ones = np.ones(len(log))
    if method == "ipw":
        return w * reward, ones
    if method == "snipw":
        return w * reward, w
    if q is None:
        raise ValueError(f"{method} needs a reward model's predictions q[i, a]")
    direct = (target * q).sum(axis=1)
    if method == "dm":
        return direct, ones
    if method == "dr":
        return direct + w * (reward - q[np.arange(len(log)), log.action]), ones
    raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")


def _clustered(numerator: np.ndarray, denominator: np.ndarray,
               cluster: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster sums (the bootstrap's units); rounds are their own clusters without `cluster`."""
    if cluster is None:
        return numerator, denominator
    _, inverse = np.unique(np.asarray(cluster), return_inverse=True)
    return np.bincount(inverse, weights=numerator), np.bincount(inverse, weights=denominator)


def estimate(method: str, log: BanditLog, target: np.ndarray, q: np.ndarray | None = None, *,
             clip: float | None = None, n_boot: int = 500, seed: int = 0, level: float = 0.95,
             check_overlap: bool = True, dm_draws: np.ndarray | None = None) -> Estimate:
    """The value of the policy `target` (n x actions) by `method`, with a percentile bootstrap interval at `level`.

    A DM interval with a fixed `q` ignores the model's own uncertainty (it is far too narrow); pass `dm_draws`
    (`refit_dm_draws`: DM on resamples with the model refitted on each) and the interval comes from them.
    Raises ValueError for an unusable log and OverlapError (when the logger's distribution is logged and
    `check_overlap`) for a target that goes where the logger never did; DM needs no overlap.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    target = np.asarray(target, dtype=float)
    if target.ndim != 2:
        raise ValueError(f"the evaluation policy must be a matrix (rounds x actions), got shape {target.shape}")
    check_log(log, target.shape[1])
    target = _check_matrix(target, len(log), target.shape[1], "the evaluation policy")
    if q is not None:
        q = _check_matrix(q, len(log), target.shape[1], "the reward model's predictions")
    if check_overlap and method != "dm":
        require_overlap(log, target)
    if n_boot < 1 or not 0.0 < level < 1.0:
        raise ValueError(f"n_boot must be 1 or more and level strictly between 0 and 1; got {n_boot}, {level}")
    w, clipped = weights(log, target, clip)
    numerator, denominator = terms(method, log, target, q, w)
    value = float(numerator.sum() / denominator.sum()) if denominator.sum() > 0 else float("nan")
    if method == "dm" and dm_draws is not None:
        draws = np.asarray(dm_draws, dtype=float)
    else:
        draws = bootstrap_ratio(*_clustered(numerator, denominator, log.cluster), n_boot, np.random.default_rng(seed))
    draws = draws[np.isfinite(draws)]
    tail = (1.0 - level) / 2.0
    low, high = (float(v) for v in np.quantile(draws, [tail, 1.0 - tail])) if len(draws) else (np.nan, np.nan)
    uses_weights = method != "dm"
    return Estimate(method=method, value=value, ci_low=low, ci_high=high,
                    ess=effective_sample_size(w) if uses_weights else float(len(log)),
                    max_weight=float(w.max()) if uses_weights else 0.0, clipped=clipped, rounds=len(log))


def refit_dm_draws(log: BanditLog, targets: list[np.ndarray], refit: Callable[[np.ndarray], np.ndarray],
                   n_boot: int, seed: int = 0) -> list[np.ndarray]:
    """DM of each policy in `targets` on `n_boot` resamples (of clusters, when given), the reward model refitted on
    each resample by `refit` (row indices -> predictions for every round); one refit serves every policy."""
    rng = np.random.default_rng(seed)
    if log.cluster is None:
        groups = [np.array([i]) for i in range(len(log))]
        rows_of = np.arange(len(log))
    else:
        _, inverse = np.unique(np.asarray(log.cluster), return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        groups = np.split(order, np.cumsum(np.bincount(inverse))[:-1])
        rows_of = None
    draws = np.empty((len(targets), n_boot))
    for b in range(n_boot):
        picked = rng.integers(0, len(groups), len(groups))
        rows = rows_of[picked] if rows_of is not None else np.concatenate([groups[g] for g in picked])
        q = refit(rows)[rows]
        for t, target in enumerate(targets):
            draws[t, b] = float((np.asarray(target)[rows] * q).sum(axis=1).mean())
    return list(draws)


def estimate_all(log: BanditLog, target: np.ndarray, q: np.ndarray | None, *, clip: float | None = None,
                 n_boot: int = 500, seed: int = 0, methods: tuple[str, ...] = METHODS,
                 dm_q: np.ndarray | None = None, dm_draws: np.ndarray | None = None) -> list[Estimate]:
    """Every method in `methods` on the same log and policy (the same bootstrap seed: comparable intervals).

    `q` is the cross-fitted model DR uses; DM uses `dm_q` (a model fitted on all rounds) if given, else `q`,
    and `dm_draws` for its interval (see `estimate`)."""
    return [estimate(method, log, target, dm_q if method == "dm" and dm_q is not None else q, clip=clip,
                     n_boot=n_boot, seed=seed, dm_draws=dm_draws if method == "dm" else None) for method in methods]


def deterministic(actions: np.ndarray, n_actions: int) -> np.ndarray:
    """The action-probability matrix of a policy that always takes `actions[i]` in round i."""
    actions = np.asarray(actions)
    matrix = np.zeros((len(actions), n_actions))
    matrix[np.arange(len(actions)), actions] = 1.0
    return matrix


def rounds_for_half_width(log: BanditLog, target: np.ndarray, half_width: float, method: str = "ipw",
                          q: np.ndarray | None = None, level: float = 0.95) -> int:
    """Rounds a normal-approximation interval of `method` would need for the given half-width (per-round variance
    estimated from this log; for SNIPW its linearization)."""
    from scipy.stats import norm

    if not half_width > 0:
        raise ValueError(f"half_width must be positive, got {half_width!r}")
    w, _ = weights(log, target)
    numerator, denominator = terms(method, log, target, q, w)
    value = numerator.sum() / denominator.sum()
    influence = (numerator - value * denominator) / denominator.mean()
    z = norm.ppf(0.5 + level / 2.0)
    return int(np.ceil((z * influence.std(ddof=1) / half_width) ** 2))


def cell_means(log: BanditLog, context: np.ndarray, rows: np.ndarray, n_contexts: int, n_actions: int,
               prior: float = 1.0) -> np.ndarray:
    """A reward model for a few discrete contexts, fitted on `rows` (repeats allowed): the mean reward per
    (context, action), shrunk towards the overall mean with `prior` pseudo-rounds (contexts x actions; an unseen
    cell gets the overall mean)."""
    reward = np.asarray(log.reward, dtype=float)[rows]
    overall = float(reward.mean()) if len(rows) else 0.0
    cell = np.asarray(context)[rows] * n_actions + np.asarray(log.action)[rows]
    sums = np.bincount(cell, weights=reward, minlength=n_contexts * n_actions)
    counts = np.bincount(cell, minlength=n_contexts * n_actions)
    return ((sums + prior * overall) / (counts + prior)).reshape(n_contexts, n_actions)


def crossfit(fit: Callable[[np.ndarray], np.ndarray], n: int, folds: int = 2, seed: int = 0,
             cluster: np.ndarray | None = None) -> np.ndarray:
    """Cross-fitted predictions (rounds x actions): each round's come from `fit` (row indices -> predictions for
    every round) trained on the other folds, so DR never uses a round's own reward to predict it. Folds are drawn
    per cluster when given (all of a customer's visits in one fold)."""
    rng = np.random.default_rng(seed)
    if cluster is None:
        fold = rng.integers(0, folds, n)
    else:
        _, inverse = np.unique(np.asarray(cluster), return_inverse=True)
        fold = rng.integers(0, folds, inverse.max() + 1)[inverse]
    q = None
    for k in range(folds):
        predicted = fit(np.flatnonzero(fold != k))
        q = np.empty_like(predicted) if q is None else q
        q[fold == k] = predicted[fold == k]
    return q


def crossfit_cell_means(log: BanditLog, context: np.ndarray, n_contexts: int, n_actions: int, prior: float = 1.0,
                        folds: int = 2, seed: int = 0) -> np.ndarray:
    """`cell_means` cross-fitted (rounds x actions)."""
    context = np.asarray(context)
    return crossfit(lambda rows: cell_means(log, context, rows, n_contexts, n_actions, prior)[context], len(log),
                    folds, seed)


def relative_difference(method: str, log: BanditLog, target: np.ndarray, baseline: np.ndarray,
                        q: np.ndarray | None = None, *, clip: float | None = None, n_boot: int = 500, seed: int = 0,
                        level: float = 0.95) -> dict[str, float]:
    """value(target) / value(baseline) - 1 by `method` (not DM), both from the same log, with a paired bootstrap
    (the same resampled clusters for both): relative, ci_low, ci_high."""
    if method == "dm":
        raise ValueError("relative_difference uses the weighted estimators (ipw, snipw, dr); DM has no weights")
    parts = []
    for policy in (target, baseline):
        estimate(method, log, policy, q, n_boot=1, seed=seed)  # the same checks as a single estimate
        w, _ = weights(log, np.asarray(policy, dtype=float), clip)
        parts.extend(_clustered(*terms(method, log, np.asarray(policy, dtype=float), q, w), log.cluster))
    sums = [float(part.sum()) for part in parts]
    relative = (sums[0] / sums[1]) / (sums[2] / sums[3]) - 1.0
    rng = np.random.default_rng(seed)
    units = len(parts[0])
    draws = np.empty(n_boot)
    per_chunk = max(1, 2_000_000 // units)
    for start in range(0, n_boot, per_chunk):
        size = min(per_chunk, n_boot - start)
        counts = np.stack([np.bincount(row, minlength=units) for row in rng.integers(0, units, (size, units))])
        a, b, c, d = (counts @ part for part in parts)
        with np.errstate(divide="ignore", invalid="ignore"):
            draws[start:start + size] = (a / b) / (c / d) - 1.0
    draws = draws[np.isfinite(draws)]
    tail = (1.0 - level) / 2.0
    low, high = (float(v) for v in np.quantile(draws, [tail, 1.0 - tail]))
    return {"relative": float(relative), "ci_low": low, "ci_high": high}
