"""How good a segmentation is: silhouette, Davies-Bouldin and cluster sizes, read together.

A silhouette alone misleads: one giant cluster plus a few outliers scores high and is useless
(the silhouette trap). Every function here puts the sizes beside the score, and returns facts
(numbers, flags) that the report words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.metrics import davies_bouldin_score, silhouette_score

#: The case study's bar: "validated with silhouette score (>0.6)".
CASE_STUDY_SILHOUETTE = 0.6
#: Within this distance under the bar, a silhouette is "just below" it rather than "well below".
NEAR_MISS = 0.1
#: A cluster holding this share of customers or more is a giant: the silhouette trap's signature.
GIANT_SHARE = 0.75
#: The sweep's plateau is read from this k on: k=2 and 3 split customers into broad groups only.
PLATEAU_FROM_K = 4
#: Two silhouettes closer than this are equal at the three decimals the report prints.
SILHOUETTE_TIE = 0.0005


def silhouette(X: np.ndarray, labels: np.ndarray, sample: int | None, seed: int) -> float:
    """Silhouette score: exact if `sample` is None or >= rows, else on a fixed seeded sample."""
    if len(np.unique(labels)) < 2:
        return float("nan")
    if sample is None or sample >= len(X):
        return float(silhouette_score(X, labels))
    return float(silhouette_score(X, labels, sample_size=sample, random_state=seed))


def cluster_quality(X: np.ndarray, labels: np.ndarray, seed: int, sample: int | None = None) -> dict[str, Any]:
    """Silhouette, Davies-Bouldin and cluster sizes of one labelling."""
    sizes = pd.Series(labels).value_counts().sort_index()
    return {
        "silhouette": silhouette(X, labels, sample, seed),
        "davies_bouldin": float(davies_bouldin_score(X, labels)) if len(sizes) > 1 else float("nan"),
        "sizes": [int(size) for size in sizes.to_numpy()],
        "largest_share": float(sizes.max() / sizes.sum()),
        "smallest_share": float(sizes.min() / sizes.sum()),
    }


def against_case_study(silhouette_value: float) -> Literal["above", "just below", "well below"]:
    """Where a silhouette stands against the case study's "> 0.6"."""
    if silhouette_value > CASE_STUDY_SILHOUETTE:
        return "above"
    if silhouette_value > CASE_STUDY_SILHOUETTE - NEAR_MISS:
        return "just below"
    return "well below"


def side_by_side(sweep: pd.DataFrame, sweep_raw: pd.DataFrame) -> pd.DataFrame:
    """The two k sweeps' silhouette, Davies-Bouldin and largest share, log1p and raw columns in pairs."""
    columns = ["silhouette", "davies_bouldin", "largest_share"]
    joined = sweep[columns].join(sweep_raw[columns].add_suffix(" (raw)"))
    return joined[[name for column in columns for name in (column, f"{column} (raw)")]]


def silhouette_trap(sweep: pd.DataFrame, sweep_raw: pd.DataFrame, giant_share: float = GIANT_SHARE) -> dict[str, Any]:
    """Where raw scaling gets its best silhouette, how lopsided that split is, and whether it is the trap.

    `sweep` (log1p features) and `sweep_raw` (raw features) are `k_sweep` tables over the same k.
    The trap: raw features reach a silhouette at least as high as the best log1p one, but only
    because one cluster holds `giant_share` or more of the customers. A reader who picks features
    and k by silhouette alone falls into it; the cluster sizes give it away. On data without
    heavy tails it need not appear, and then `trap` is False.
    """
    raw_scores, log_scores = sweep_raw["silhouette"].dropna(), sweep["silhouette"].dropna()
    if raw_scores.empty or log_scores.empty:
        raise ValueError("silhouette_trap needs at least one defined silhouette in each sweep (k_sweep with k >= 2)")
    k_raw, k_log = int(raw_scores.idxmax()), int(log_scores.idxmax())
    raw, log_same_k, log_best = sweep_raw.loc[k_raw], sweep.loc[k_raw], sweep.loc[k_log]
    trap = bool(raw["silhouette"] >= log_best["silhouette"] and raw["largest_share"] >= giant_share)
    return {
        "k": k_raw,
        "silhouette_raw": float(raw["silhouette"]),
        "largest_share_raw": float(raw["largest_share"]),
        "smallest_share_raw": float(raw["smallest_share"]),
        "silhouette_log_same_k": float(log_same_k["silhouette"]),
        "largest_share_log_same_k": float(log_same_k["largest_share"]),
        "k_log_best": k_log,
        "silhouette_log_best": float(log_best["silhouette"]),
        "largest_share_log_best": float(log_best["largest_share"]),
        "giant_share": float(giant_share),
        "trap": trap,
    }


@dataclass(frozen=True)
class SweepReading:
    """What the log1p k sweep says about the k we keep."""

    best_k: int
    best_silhouette: float
    best_largest_share: float
    #: -1: the best k by silhouette is smaller than the kept k; 0: it is the kept k; 1: larger.
    best_vs_kept: int
    plateau_from: int
    plateau_to: int
    plateau_low: float
    plateau_high: float
    plateau_smallest_share: float
    kept_silhouette: float
    #: How far the kept k's silhouette lies under the plateau's best (0 when it is the best).
    kept_gap: float
    kept_is_plateau_best: bool


def read_sweep(sweep: pd.DataFrame, k: int) -> SweepReading:
    """The best k by silhouette, where the kept `k` stands, and the silhouette's range from k=4 on.

    The range starts at `PLATEAU_FROM_K` (or at the kept k, if smaller), so it always holds the kept k.
    """
    if k not in sweep.index:
        raise ValueError(f"the sweep covers k={list(sweep.index)}, not the kept k={k}")
    scores = sweep["silhouette"].dropna()
    if scores.empty:
        raise ValueError("read_sweep needs at least one defined silhouette (k_sweep with k >= 2)")
    best_k = int(scores.idxmax())
    later = [value for value in sweep.index if value >= min(PLATEAU_FROM_K, k)]
    plateau = sweep.loc[later]
    gap = float(plateau["silhouette"].max() - sweep.loc[k, "silhouette"])
    return SweepReading(
        best_k=best_k,
        best_silhouette=float(sweep.loc[best_k, "silhouette"]),
        best_largest_share=float(sweep.loc[best_k, "largest_share"]),
        best_vs_kept=int(np.sign(best_k - k)),
        plateau_from=int(later[0]),
        plateau_to=int(later[-1]),
        plateau_low=float(plateau["silhouette"].min()),
        plateau_high=float(plateau["silhouette"].max()),
        plateau_smallest_share=float(plateau["smallest_share"].min()),
        kept_silhouette=float(sweep.loc[k, "silhouette"]),
        kept_gap=max(gap, 0.0),
        kept_is_plateau_best=bool(gap < SILHOUETTE_TIE),
    )
