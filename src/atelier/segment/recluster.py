"""Re-clustering with stable names: match a refit's clusters to last period's, and count who moved."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.pipeline import Pipeline

from atelier.segment.cluster import assign, prepare


def match_segments(old: Pipeline, new: Pipeline, new_frame: pd.DataFrame) -> pd.DataFrame:
    """Map each new cluster to an old one (Hungarian matching on centroids in the old model's space).

    New clusters' centroids are the means of their members after the *old* preprocessing, so both
    sets of centroids live in the same space. Returns new_segment -> old_segment with the distance.
    """
    old_space = prepare(old, new_frame)
    new_labels = assign(new, new_frame)
    new_centroids = pd.DataFrame(old_space).groupby(new_labels).mean()
    old_centroids = old.named_steps["kmeans"].cluster_centers_
    distance = np.linalg.norm(new_centroids.to_numpy()[:, None, :] - old_centroids[None, :, :], axis=2)
    rows, columns = linear_sum_assignment(distance)
    return pd.DataFrame(
        {"old_segment": columns, "distance": distance[rows, columns]},
        index=pd.Index(new_centroids.index[rows], name="new_segment"),
    )


def relabel(labels: np.ndarray, matching: pd.DataFrame) -> np.ndarray:
    """New labels rewritten with the matched old segment ids."""
    mapping = matching["old_segment"].to_dict()
    return np.array([mapping[label] for label in labels])


def inherit_names(matching: pd.DataFrame, old_names: dict[int, str], new_names: dict[int, str]) -> pd.DataFrame:
    """`matching` plus the name each new segment inherits from its old match and the name today's rules give it."""
    return matching.assign(
        **{
            "inherited name": matching["old_segment"].map(old_names),
            "name by today's rules": matching.index.map(new_names),
        }
    )


def names_agree(inherited: pd.DataFrame) -> int:
    """How many inherited names equal the name today's rules give (from `inherit_names`)."""
    return int((inherited["inherited name"] == inherited["name by today's rules"]).sum())


def transitions(previous: pd.Series, current: pd.Series) -> pd.DataFrame:
    """Customers in both snapshots: counts from each previous segment (rows) to each current one (columns)."""
    both = previous.index.intersection(current.index)
    return pd.crosstab(previous.loc[both].rename("previous"), current.loc[both].rename("current"))


def kept_share(moves: pd.DataFrame) -> float:
    """Share of the customers in `transitions` whose segment name stayed the same (NaN when nobody is in both)."""
    total = moves.to_numpy().sum()
    if total == 0:
        return float("nan")
    stayed = sum(moves.at[name, name] for name in moves.index if name in moves.columns)
    return float(stayed / total)
