"""Where the gap between a model and the oracle (the simulator's true probability) comes from.

AUC is the share of (buyer, non-buyer) pairs a score puts in the right order. The gap between the
oracle and a model is the share of pairs the oracle orders right and the model does not (minus the
reverse). Giving each pair's difference half to each of its two customers splits the gap exactly over
customers, so any grouping of the customers splits it too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

#: The groups of the dormant customers and of those with a longer history (the others are named by the settings).
DORMANT = "dormant"
#: A group whose share of the gap is at least this many times its share of customers carries "more than its size".
OVER_SIZE = 1.2


def pair_credit(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Each customer's share of the (buyer, non-buyer) pairs that `p` orders correctly (ties count half).

    ROC-AUC is the share of all such pairs in which the buyer scores higher. A buyer's credit is the
    number of non-buyers it outscores, a non-buyer's the number of buyers that outscore it, both divided
    by the number of pairs: the credits of the buyers add up to the AUC, and so do those of the non-buyers.
    """
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    positives, negatives = np.sort(p[y == 1]), np.sort(p[y == 0])
    if not len(positives) or not len(negatives):
        raise ValueError("pair credit needs at least one buyer and one non-buyer")
    credit = np.empty(len(y))
    buyer_scores, other_scores = p[y == 1], p[y == 0]
    below = np.searchsorted(negatives, buyer_scores, "left")
    tied = np.searchsorted(negatives, buyer_scores, "right") - below
    credit[y == 1] = below + 0.5 * tied
    above = len(positives) - np.searchsorted(positives, other_scores, "right")
    tied = np.searchsorted(positives, other_scores, "right") - np.searchsorted(positives, other_scores, "left")
    credit[y == 0] = above + 0.5 * tied
    return credit / (len(positives) * len(negatives))


def _auc_or_nan(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def gap_attribution(y: np.ndarray, model: np.ndarray, oracle: np.ndarray,
                    groups: pd.Series | np.ndarray) -> pd.DataFrame:
    """Split the AUC gap between the oracle and a model over groups of customers, exactly.

    The gap (oracle AUC - model AUC) is the mean over (buyer, non-buyer) pairs of "the oracle orders the
    pair right" minus "the model does". Each pair's difference is shared half and half by its two
    customers, so every customer carries a part of the gap and the parts of any grouping add up to it.
    A group's `share_of_gap` is how much of the oracle's advantage sits with its customers (negative:
    the model orders them better than the oracle). `model_auc` and `oracle_auc` are AUCs within the
    group (NaN when it lacks buyers or non-buyers). attrs["gap"] is the whole gap.
    """
    y = np.asarray(y).astype(int)
    groups = pd.Series(np.asarray(groups, dtype=object), name=getattr(groups, "name", None) or "group")
    if not len(y) == len(model) == len(oracle) == len(groups):
        raise ValueError("labels, model scores, oracle scores and groups must have one entry per customer")
    part = 0.5 * (pair_credit(y, oracle) - pair_credit(y, np.asarray(model, dtype=float)))
    gap = float(part.sum())
    frame = pd.DataFrame({"group": groups, "y": y, "model": np.asarray(model, dtype=float),
                          "oracle": np.asarray(oracle, dtype=float), "part": part})
    rows = {}
    for name, rows_of in frame.groupby("group", sort=True, dropna=False):
        labels = rows_of["y"].to_numpy()
        rows[name] = {
            "customers": len(rows_of), "buyers": int(labels.sum()), "share_of_customers": len(rows_of) / len(frame),
            "model_auc": _auc_or_nan(labels, rows_of["model"].to_numpy()),
            "oracle_auc": _auc_or_nan(labels, rows_of["oracle"].to_numpy()),
            "gap_points": float(rows_of["part"].sum()),
            "share_of_gap": float(rows_of["part"].sum() / gap) if gap != 0 else float("nan"),
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = groups.name
    table.attrs["gap"] = gap
    return table


@dataclass(frozen=True)
class GroupLabels:
    """The names of the groups the gap is split over (they carry the settings' day counts)."""

    active_recency_days: int
    short_history_days: int

    @property
    def active(self) -> str:
        return f"active (seen in {self.active_recency_days} days)"

    @property
    def short(self) -> str:
        return f"short (< {self.short_history_days} days)"

    @property
    def longer(self) -> str:
        return f"longer (>= {self.short_history_days} days)"

    def active_mask(self, test: pd.DataFrame) -> np.ndarray:
        """Which customers of `test` were seen within `active_recency_days` of the cutoff."""
        return (test["recency_days"] <= self.active_recency_days).to_numpy()


def groupings(test: pd.DataFrame, labels: GroupLabels, personas: pd.Series | None) -> dict[str, np.ndarray]:
    """The test customers grouped by activity (recency), length of history (tenure) and, when known, persona."""
    grouped = {
        "activity": np.where(labels.active_mask(test), labels.active, DORMANT),
        "history": np.where((test["tenure_days"] < labels.short_history_days).to_numpy(), labels.short, labels.longer),
    }
    if personas is not None:
        grouped["persona"] = personas.to_numpy()
    return grouped


def gap_tables(y: np.ndarray, model: np.ndarray, oracle: np.ndarray,
               grouped: dict[str, np.ndarray]) -> dict[str, pd.DataFrame]:
    """`gap_attribution` for every grouping."""
    return {name: gap_attribution(y, model, oracle, pd.Series(groups, name=name)) for name, groups in grouped.items()}


def over_size(table: pd.DataFrame) -> pd.Series:
    """Each group's share of the gap over its share of customers, largest first (1: exactly its size)."""
    return (table["share_of_gap"] / table["share_of_customers"]).sort_values(ascending=False, kind="stable")


def widest_gap_within(table: pd.DataFrame) -> str | None:
    """The group whose within-group oracle AUC exceeds the model's the most (None if no group has both AUCs)."""
    edge = (table["oracle_auc"] - table["model_auc"]).dropna().sort_values(ascending=False, kind="stable")
    return None if edge.empty else str(edge.index[0])


def probability_rise(test: np.ndarray | pd.Series, test_groups: np.ndarray | pd.Series,
                     training: np.ndarray | pd.Series, training_groups: np.ndarray | pd.Series) -> pd.DataFrame:
    """Mean true P(order) per group in the test window against the training windows, and their ratio.

    `test`/`training`: the true probabilities of the test snapshot's and of the training snapshots' rows;
    `*_groups`: each row's group. Row "all" is every customer. Sorted by ratio, largest first.
    """
    test, training = np.asarray(test, dtype=float), np.asarray(training, dtype=float)
    frame = pd.DataFrame({
        "test": pd.Series(test).groupby(np.asarray(test_groups, dtype=object)).mean(),
        "training": pd.Series(training).groupby(np.asarray(training_groups, dtype=object)).mean(),
    })
    frame.loc["all"] = [float(test.mean()), float(training.mean())]
    frame["ratio"] = frame["test"] / frame["training"]
    return frame.sort_values("ratio", ascending=False, kind="stable")
