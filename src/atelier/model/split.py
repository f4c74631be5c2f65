"""The out-of-time split of the snapshots, its leakage rule, and the model's input columns.

Label: did the customer order within the horizon after a snapshot's cutoff (from prep). Models
train on the earlier snapshots and are tested on the last one (out of time), as a deployed model is
used: fitted on the past, scored on a future it has not seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from atelier.core.config import ParamsError
from atelier.data import transform
from atelier.data.snapshots import censored_labels_error, check_label_windows

DAY = pd.Timedelta(days=1)
TRAINING = "training"
TEST = "test (out of time)"


@dataclass(frozen=True)
class TimeSplit:
    """Training snapshots (earlier cutoffs) and the out-of-time test snapshot (the last cutoff)."""

    train: pd.DataFrame
    test: pd.DataFrame
    train_cutoffs: list[pd.Timestamp]
    test_cutoff: pd.Timestamp


def split_by_time(snapshots: pd.DataFrame, horizon_days: int) -> TimeSplit:
    """Train on every snapshot before the last cutoff, test on the last.

    The leakage rule across snapshots: a training label looks `horizon_days` past its cutoff, so
    that window must end by the test cutoff; otherwise training would use what happened during
    the test period. Censored labels (windows past the data) cannot be used at all.
    """
    cutoffs = sorted(pd.Timestamp(c) for c in snapshots["cutoff"].unique())
    if len(cutoffs) < 2:
        raise ParamsError("params.yaml timeline.cutoffs: the propensity phase needs at least two cutoffs (train, test)")
    test_cutoff, train_cutoffs = cutoffs[-1], cutoffs[:-1]
    check_label_windows(cutoffs, horizon_days)
    if snapshots["label"].isna().any():
        unlabelled = snapshots.loc[snapshots["label"].isna(), "cutoff"]
        raise censored_labels_error(sorted({pd.Timestamp(c).date().isoformat() for c in unlabelled}))
    train = snapshots[snapshots["cutoff"] < test_cutoff]
    test = snapshots[snapshots["cutoff"] == test_cutoff]
    return TimeSplit(train=train, test=test, train_cutoffs=train_cutoffs, test_cutoff=test_cutoff)


def cutoff_roles(snapshots: pd.DataFrame, split: TimeSplit) -> pd.DataFrame:
    """Per cutoff: customers, buyers, the label rate and its role (training or the out-of-time test)."""
    roles = snapshots.groupby("cutoff")["label"].agg(customers="size", buyers="sum", label_rate="mean")
    roles["role"] = np.where(roles.index == split.test_cutoff, TEST, TRAINING)
    return roles


def validation_split(train: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training snapshots before the last training cutoff, and the last training snapshot (out-of-time validation)."""
    last = train["cutoff"].max()
    return train[train["cutoff"] < last], train[train["cutoff"] == last]


def features_of(snapshots: pd.DataFrame, keep: list[str] | None = None) -> tuple[list[str], list[str]]:
    """Numeric and categorical feature columns (restricted to `keep` if given)."""
    numeric, categorical = transform.split_columns(snapshots)
    if keep is not None:
        numeric = [c for c in numeric if c in keep]
        categorical = [c for c in categorical if c in keep]
    return numeric, categorical


def xy(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Model input (categoricals as objects with NaN), labels and groups (customer ids)."""
    features = transform.model_frame(frame[numeric + categorical])
    return features, frame["label"].astype(int).to_numpy(), frame.index.to_numpy()
