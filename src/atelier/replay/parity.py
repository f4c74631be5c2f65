"""Training/serving skew: do the streamed profiles equal the batch features computed from scratch?

`check` streams every replayed record before a time T into a fresh profile store and compares it,
feature by feature, with `build_features` at T; `summary` gives the verdict the report and the
metrics state.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from atelier.data.features import build_features
from atelier.replay.context import ReplayContext

#: Streamed features that may differ from the batch ones in the last bits, and by how much at most:
#: the decayed engagement sum (its terms are decayed and added in a different order; see atelier.replay.state).
#: Every other feature must be identical.
DECAYED_FEATURES = ("engagement_score",)
TOLERANCE = 1e-9
#: The check compares the profiles this many days into the replay (or at the label horizon, if sooner).
DAYS = 14
#: Replayed events are streamed in chunks of this many, as a stream would deliver them.
CHUNK = 20_000


def check_time(cutoff: pd.Timestamp, horizon_days: int) -> pd.Timestamp:
    """When the check compares the profiles: DAYS into the replay, or `horizon_days` if that is sooner."""
    return pd.Timestamp(cutoff) + pd.Timedelta(days=min(DAYS, int(horizon_days)))


def check(context: ReplayContext, tables: dict[str, pd.DataFrame], until: pd.Timestamp) -> pd.DataFrame:
    """Stream every record of `tables` from the cutoff to `until` into a fresh profile store; compare with the batch
    features at `until`.

    Returns, per feature (index), the largest absolute difference (NaN for text features) and whether
    every value is identical.
    """
    state = context.initial_state()
    events, orders = tables["events"], tables["orders"]
    events = events[(events["ts"] >= context.cutoff) & (events["ts"] < until)]
    orders = orders[(orders["ordered_at"] >= context.cutoff) & (orders["ordered_at"] < until)]
    for start in range(0, len(events), CHUNK):
        state.apply(events.iloc[start: start + CHUNK], None)
    state.apply(None, orders)
    batch = build_features(tables, until, context.features)
    streamed = state.features(batch.index, until)
    rows = []
    for column in batch.columns:
        left, right = batch[column], streamed[column]
        if pd.api.types.is_numeric_dtype(left):
            difference = np.nanmax(np.abs(left.to_numpy(float) - right.to_numpy(float))) if len(left) else 0.0
            same = bool(np.array_equal(left.to_numpy(float), right.to_numpy(float), equal_nan=True))
        else:
            difference, same = np.nan, bool(left.astype(object).equals(right.astype(object)))
        rows.append({"feature": column, "max_abs_difference": difference, "identical": same})
    return pd.DataFrame(rows).set_index("feature")


def summary(parity: pd.DataFrame) -> dict[str, Any]:
    """The verdict on a `check` table, as the report and the metrics state it.

    features, identical (how many), differing (names of the non-identical features), the largest
    absolute difference as text, unrounded (Python's shortest round-trip form: metrics round floats
    to 6 places, which would turn 5.7e-14 into 0.0), the tolerance as text, and `holds`: only
    DECAYED_FEATURES differ, each by less than TOLERANCE.
    """
    differing = [str(f) for f in parity.index[~parity["identical"].to_numpy(bool)]]
    difference = parity["max_abs_difference"].to_numpy(float)
    largest = float(np.nanmax(difference)) if np.isfinite(difference).any() else 0.0
    within = all(f in DECAYED_FEATURES and parity.loc[f, "max_abs_difference"] < TOLERANCE for f in differing)
    return {"features": int(len(parity)), "identical": int(len(parity) - len(differing)), "differing": differing,
            "max_abs_difference": repr(largest), "tolerance": f"{TOLERANCE:.0e}", "holds": bool(within)}
