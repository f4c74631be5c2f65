"""Tests for atelier.replay.parity: the streamed profiles against the batch features, and the verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
from conftest import tiny_params

from atelier.replay import parity

from .replay_shop import context_of

DECAYED = set(parity.DECAYED_FEATURES)


def test_the_stages_parity_check_finds_only_the_decayed_features_differing(tiny_root):
    # What the report and metrics/replay.json state: the stage's own check on the tiny shop, two weeks in.
    context = context_of(tiny_root, tiny_params())
    table = parity.check(context, context.tables, context.cutoff + pd.Timedelta(days=14))
    summary = parity.summary(table)
    assert summary["holds"] and set(summary["differing"]) <= DECAYED
    assert table.drop(index=sorted(DECAYED))["identical"].all()
    numeric = table["max_abs_difference"].dropna()
    assert (numeric.drop(index=sorted(DECAYED), errors="ignore") == 0).all()
    assert float(summary["max_abs_difference"]) == numeric.max() < parity.TOLERANCE
    assert summary["identical"] == summary["features"] - len(summary["differing"]) >= summary["features"] - len(DECAYED)


def test_parity_summary_keeps_tiny_differences_and_flags_any_other_feature():
    table = pd.DataFrame({"max_abs_difference": [0.0, 5.684341886080802e-14, np.nan], "identical": [True, False, True]},
                         index=pd.Index(["recency_days", "engagement_score", "region"], name="feature"))
    summary = parity.summary(table)
    assert summary == {"features": 3, "identical": 2, "differing": ["engagement_score"],
                       "max_abs_difference": "5.684341886080802e-14",
                       "tolerance": "1e-09", "holds": True}
    assert float(summary["max_abs_difference"]) == 5.684341886080802e-14  # exact, not rounded away to 0.0
    too_far = table.assign(max_abs_difference=[0.0, 2e-9, np.nan])
    assert parity.summary(too_far)["holds"] is False
    other = table.assign(identical=[False, True, True], max_abs_difference=[1e-15, 0.0, np.nan])
    assert parity.summary(other) | {"max_abs_difference": None} == {
        "features": 3, "identical": 2, "differing": ["recency_days"], "max_abs_difference": None, "tolerance": "1e-09",
        "holds": False}
    text = table.assign(identical=[True, True, False])  # a non-numeric feature differing: never within tolerance
    assert parity.summary(text)["holds"] is False
    assert parity.summary(table.assign(identical=True, max_abs_difference=0.0))["max_abs_difference"] == "0.0"
