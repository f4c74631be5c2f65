"""Benchmark: the off-policy estimators on large synthetic logs, rounds per second and peak memory.

    python benchmarks/ope_estimators.py --rounds 1000000

Each estimator (DM, IPW, SNIPW, DR) with a 200-resample bootstrap interval on one log of --rounds
rounds and 5 actions (`atelier.ope.synthetic`), clustered in groups of 5 rounds (as customers cluster
visits). The bootstrap resamples clusters, so its cost grows with the number of clusters.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

from atelier.ope import estimators
from atelier.ope.synthetic import SyntheticBandit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1_000_000)
    parser.add_argument("--n-boot", type=int, default=200)
    arguments = parser.parse_args()
    bandit = SyntheticBandit.make(seed=0)
    log, context = bandit.sample(arguments.rounds, seed=1)
    log = estimators.BanditLog(action=log.action, reward=log.reward, propensity=log.propensity,
                               cluster=np.arange(arguments.rounds) // 5, logger=log.logger)
    target = bandit.target[context]
    began = time.perf_counter()
    q = estimators.crossfit_cell_means(log, context, *bandit.reward_probability.shape)
    fit_seconds = time.perf_counter() - began
    seconds = {}
    for method in estimators.METHODS:
        began = time.perf_counter()
        estimators.estimate(method, log, target, q, n_boot=arguments.n_boot, seed=0)
        seconds[method] = round(time.perf_counter() - began, 3)
    print(json.dumps({
        "rounds": arguments.rounds, "n_boot": arguments.n_boot, "reward_model_seconds": round(fit_seconds, 3),
        "seconds_per_estimator": seconds,
        "rounds_per_second_ipw": round(arguments.rounds / seconds["ipw"]),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }))


if __name__ == "__main__":
    main()
