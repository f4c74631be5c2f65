"""Point-in-time snapshots: one row per (cutoff, customer) with the features as of the cutoff and the label
after it, for every cutoff of the timeline (params.yaml `timeline`)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import partial
from typing import Any

import pandas as pd
from tqdm import tqdm

from atelier.core.config import ParamsError
from atelier.core.parallel import dealt_map
from atelier.data.features import FeatureSettings, build_snapshot, label_window_complete


def parse_cutoffs(cutoffs: list[Any]) -> list[pd.Timestamp]:
    """Cutoffs from params as sorted, distinct timestamps (at least two: train and test)."""
    try:
        parsed = sorted({pd.Timestamp(c) for c in cutoffs})
    except (TypeError, ValueError) as error:
        raise ParamsError(
            f"params.yaml timeline.cutoffs must be a list of dates (e.g. '2025-07-01'): {error}") from None
    if len(parsed) < 2:
        raise ParamsError("params.yaml timeline.cutoffs: give at least two dates (the last is the out-of-time test)")
    return parsed


@dataclass(frozen=True)
class Timeline:
    """The snapshot dates (params.yaml `timeline`): every cutoff but the last is for training, the last is the
    out-of-time test; a label is "ordered within `horizon_days` after the cutoff"."""

    cutoffs: list[pd.Timestamp]
    horizon_days: int

    @classmethod
    def from_params(cls, section: dict[str, Any]) -> Timeline:
        """The timeline from params.yaml's `timeline` section (cutoffs sorted and distinct, at least two)."""
        missing = [key for key in ("cutoffs", "horizon_days") if key not in section]
        if missing:
            raise ParamsError(f"params.yaml timeline: missing {missing}; restore them from the project's params.yaml")
        horizon = section["horizon_days"]
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ParamsError(f"params.yaml timeline.horizon_days must be a whole number of days >= 1, got {horizon!r}")
        if not isinstance(section["cutoffs"], (list, tuple)):
            raise ParamsError(f"params.yaml timeline.cutoffs must be a list of dates, got {section['cutoffs']!r}")
        return cls(parse_cutoffs(section["cutoffs"]), horizon)

    @property
    def train_cutoffs(self) -> list[pd.Timestamp]:
        return self.cutoffs[:-1]

    @property
    def test_cutoff(self) -> pd.Timestamp:
        return self.cutoffs[-1]


def check_label_windows(cutoffs: list[pd.Timestamp], horizon_days: int) -> None:
    """The leakage rule across snapshots (the model stage's, checked by the first stage too): every training
    cutoff's label window (`horizon_days` long) must end by the test cutoff (the last one)."""
    cutoffs = sorted(pd.Timestamp(c) for c in cutoffs)
    test_cutoff = cutoffs[-1]
    for cutoff in cutoffs[:-1]:
        if cutoff + pd.Timedelta(days=horizon_days) > test_cutoff:
            raise ParamsError(
                f"params.yaml timeline.cutoffs: the training snapshot {cutoff.date()}'s label window "
                f"({horizon_days} days) ends after the test cutoff {test_cutoff.date()}, so its labels use the test "
                "period; space the cutoffs at least timeline.horizon_days apart"
            )


def censored_labels_error(censored: list[str]) -> ParamsError:
    """The error for cutoffs whose label window runs past the end of the data (the model stage refuses them)."""
    return ParamsError(
        f"params.yaml timeline.cutoffs: labels at {censored} are censored (the data ends before their window "
        "does); choose cutoffs at least timeline.horizon_days before the end of the data"
    )


def check_cutoffs_in_data(tables: dict[str, pd.DataFrame], cutoffs: list[pd.Timestamp], horizon_days: int) -> None:
    """Every cutoff after the first order (`check_cutoffs`) and every label window inside the data (or the model
    stage would refuse the censored labels): what the validate stage checks before minutes of work."""
    check_cutoffs(tables, cutoffs)
    censored = [c.date().isoformat() for c in cutoffs if not label_window_complete(tables, c, horizon_days)]
    if censored:
        raise censored_labels_error(censored)


def check_cutoffs(tables: dict[str, pd.DataFrame], cutoffs: list[pd.Timestamp]) -> None:
    """Every cutoff must fall after the first order, or its snapshot would be empty."""
    first, last = tables["orders"]["ordered_at"].min(), tables["orders"]["ordered_at"].max()
    early = [c.date().isoformat() for c in cutoffs if c <= first]
    if early:
        raise ParamsError(
            f"params.yaml timeline.cutoffs {early} are not after the first order ({first.date()}); "
            f"your orders run from {first.date()} to {last.date()}, choose cutoffs inside that span"
        )


def build_snapshots(
    tables: dict[str, pd.DataFrame], cutoffs: list[pd.Timestamp], horizon_days: int, settings: FeatureSettings,
    workers: int = 1,
) -> pd.DataFrame:
    """Stacked snapshots for every cutoff (index: customer_id; columns include cutoff and label).

    A cutoff whose label window runs past the end of the data gets an empty label (censored), not 0.
    The cutoffs are independent: with `workers` > 1 they are built on that many processes (every
    `workers`-th cutoff in one, so the tables are sent once per process), stacked in the same order: the same
    frame as one after another.
    """
    complete = [label_window_complete(tables, cutoff, horizon_days) for cutoff in cutoffs]
    if workers <= 1 or len(cutoffs) <= 1:
        return stack_snapshots(tables, cutoffs, horizon_days, settings, complete, progress=True)
    parts = dealt_map(partial(_snapshot_at, tables, cutoffs, horizon_days, settings, complete), range(len(cutoffs)),
                      workers)
    return pd.concat(parts)


def _snapshot_at(tables: dict[str, pd.DataFrame], cutoffs: list[pd.Timestamp], horizon_days: int,
                 settings: FeatureSettings, complete: list[bool], position: int) -> pd.DataFrame:
    """The snapshot of the cutoff at `position` (a worker's part of `build_snapshots`)."""
    return _labelled_snapshot(tables, cutoffs[position], horizon_days, settings, complete[position])


def _labelled_snapshot(tables: dict[str, pd.DataFrame], cutoff: pd.Timestamp, horizon_days: int,
                       settings: FeatureSettings, whole: bool) -> pd.DataFrame:
    """One cutoff's snapshot, its label nullable (Int8) and empty when the label window is not `whole`."""
    snapshot = build_snapshot(tables, cutoff, horizon_days, settings)
    if not whole:
        snapshot["label"] = pd.Series(pd.NA, index=snapshot.index, dtype="Int8")
    else:
        snapshot["label"] = snapshot["label"].astype("Int8")
    return snapshot


def stack_snapshots(
    tables: dict[str, pd.DataFrame], cutoffs: list[pd.Timestamp], horizon_days: int, settings: FeatureSettings,
    complete: list[bool], progress: bool = False,
) -> pd.DataFrame:
    """`build_snapshots` with the label-window verdict per cutoff given (`complete`): a distributed engine runs this
    on each partition of customers, with the verdict taken over all the data."""
    return pd.concat([
        _labelled_snapshot(tables, cutoff, horizon_days, settings, whole)
        for cutoff, whole in zip(tqdm(cutoffs, desc="prep: snapshots", file=sys.stderr, disable=not progress), complete)
    ])


def training_rows(snapshots: pd.DataFrame, cutoffs: list[pd.Timestamp]) -> pd.Series:
    """True for rows of the training snapshots (every cutoff but the last, the out-of-time test)."""
    return snapshots["cutoff"] < cutoffs[-1]


def cutoff_summary(snapshots: pd.DataFrame) -> pd.DataFrame:
    """Per cutoff: customers, buyers in the label window and the label rate (empty if censored)."""
    grouped = snapshots.groupby("cutoff")
    summary = pd.DataFrame(
        {
            "customers": grouped.size(),
            "buyers_in_window": grouped["label"].sum(min_count=1),
            "label_rate": grouped["label"].mean(),
            "label_complete": grouped["label"].apply(lambda s: bool(s.notna().all())),
        }
    )
    summary.index = summary.index.strftime("%Y-%m-%d")
    return summary
