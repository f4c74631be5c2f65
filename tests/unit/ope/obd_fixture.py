"""A small wheel-like zip with the Open Bandit Dataset's layout (tests never download): CSVs per policy and
campaign, item_context.csv files and the BTS prior, with click rates and policies chosen so answers are known."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from atelier.ope import obd

ITEMS = {"all": 6, "men": 4, "women": 5}
ROWS = 3_000


def logs(policy: str, campaign: str, seed: int, *, uniform_bts: bool = False) -> pd.DataFrame:
    """Impressions: the random policy uniform over items, BTS favouring item 0 (or uniform too); item i clicks
    at 2 % + 1 % x i, whatever the position."""
    n_items = ITEMS[campaign]
    rng = np.random.default_rng(seed)
    if policy == "random" or uniform_bts:
        probability = np.full(n_items, 1 / n_items)
    else:
        probability = np.r_[0.5, np.full(n_items - 1, 0.5 / (n_items - 1))]
    item = rng.choice(n_items, size=ROWS, p=probability)
    click = (rng.random(ROWS) < 0.02 + 0.01 * item).astype(int)
    return pd.DataFrame({"timestamp": pd.date_range("2019-11-24", periods=ROWS, freq="min").astype(str),
                         "item_id": item, "position": rng.integers(1, 4, ROWS), "click": click,
                         "propensity_score": probability[item], "user_feature_0": "abc"})


def write_wheel(path: Path, *, uniform_bts: bool = False, change: dict | None = None) -> Path:
    """The fixture wheel at `path`; `change` maps a member to a frame that replaces it."""
    change = change or {}
    prior = {c: {"alpha": [1.0] * n, "beta": [30.0 + 10 * i for i in range(n)]} for c, n in ITEMS.items()}
    with zipfile.ZipFile(path, "w") as wheel:
        for number, campaign in enumerate(ITEMS):
            for policy in obd.POLICIES:
                name = obd.member(campaign, policy)
                frame = change.get(name, logs(policy, campaign, 10 * number + (policy == "bts"),
                                              uniform_bts=uniform_bts))
                buffer = io.StringIO()
                frame.to_csv(buffer)
                wheel.writestr(name, buffer.getvalue())
                wheel.writestr(name.rsplit("/", 1)[0] + "/item_context.csv", "item_id,item_feature_0\n0,0.1\n")
        wheel.writestr(obd.PRIOR_MEMBER, yaml.safe_dump(prior))
    return path
