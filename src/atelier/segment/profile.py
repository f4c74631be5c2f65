"""What is each segment? Profiles in original units and centroids in standard deviations.

A profile holds the features the segments were clustered on, and descriptive columns (device shares,
category affinities) that describe the segments after the fact without shaping them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

#: Snapshot columns that describe a segment without being clustered on: device shares and
#: category affinities (each customer's share of product views per category).
DESCRIPTIVE_PREFIXES: tuple[str, ...] = ("share_", "affinity_")
CATEGORY_PREFIX = "affinity_"
#: The column groups of a profile table (its first column level).
SIZE, CLUSTERED, DESCRIPTIVE = "size", "clustered on", "descriptive (not clustered on)"
#: Category shares that differ by less than this between segments (5 percentage points) "hardly differ".
FLAT_SPREAD = 0.05


def descriptive_columns(snapshot: pd.DataFrame, clustered: list[str]) -> list[str]:
    """Numeric device-share and category-affinity columns of the snapshot that were not clustered on."""
    return [
        column
        for column in snapshot.columns
        if column.startswith(DESCRIPTIVE_PREFIXES)
        and column not in clustered
        and pd.api.types.is_numeric_dtype(snapshot[column])
    ]


def profiles(
    snapshot: pd.DataFrame, labels: np.ndarray, columns: list[str], descriptive: list[str] | tuple[str, ...] = ()
) -> pd.DataFrame:
    """Per segment: size, share and the mean of each column in original units (undefined values skipped).

    `columns` are the features clustered on; `descriptive` are columns profiled only to describe
    the segments (e.g. device shares, category affinities), never used to form them. The columns
    carry two levels: the group (`SIZE`, `CLUSTERED`, `DESCRIPTIVE`) and the column name.
    """
    descriptive = [column for column in descriptive if column not in columns]
    frame = snapshot[[*columns, *descriptive]].astype(float).assign(segment=labels)
    grouped = frame.groupby("segment")
    means = grouped.mean()
    size = pd.DataFrame({"customers": grouped.size(), "share": grouped.size() / len(frame)})
    return pd.concat({SIZE: size, CLUSTERED: means[columns], DESCRIPTIVE: means[descriptive]}, axis=1)


def centroid_z(X: np.ndarray, labels: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """Each segment's mean of the preprocessed (log1p, scaled) features: how far from average, in SDs."""
    return pd.DataFrame(X, columns=columns).groupby(labels).mean()


def descriptive_ranges(profile: pd.DataFrame) -> pd.DataFrame:
    """Each descriptive column's lowest and highest segment mean, which segments, and the spread between them.

    Index: the column; columns: kind ("device" or "category"), lowest, lowest_segment, highest,
    highest_segment, spread. Devices first, then categories; each group by decreasing spread.
    """
    columns = ["kind", "lowest", "lowest_segment", "highest", "highest_segment", "spread"]
    described = profile[DESCRIPTIVE] if DESCRIPTIVE in profile.columns.get_level_values(0) else pd.DataFrame()
    if described.empty:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="column"))
    table = pd.DataFrame(
        {
            "kind": ["category" if c.startswith(CATEGORY_PREFIX) else "device" for c in described.columns],
            "lowest": described.min(),
            "lowest_segment": described.idxmin(),
            "highest": described.max(),
            "highest_segment": described.idxmax(),
            "spread": described.max() - described.min(),
        }
    )
    table.index.name = "column"
    return table.sort_values(["kind", "spread"], ascending=[False, False], kind="stable")[columns]


@dataclass(frozen=True)
class CategoryContrast:
    """How much segments differ in what they look at."""

    #: "none": the data has no category columns; "flat": no category's share moves by `FLAT_SPREAD`
    #: or more between segments; "varies": at least one does.
    kind: Literal["none", "flat", "varies"]
    categories: int
    #: The category whose share differs most between segments, and by how much (None without categories).
    widest: str | None
    widest_spread: float


def category_contrast(ranges: pd.DataFrame, flat: float = FLAT_SPREAD) -> CategoryContrast:
    """Do segments differ in what they look at? From `descriptive_ranges`."""
    categories = ranges[ranges["kind"] == "category"]
    if categories.empty:
        return CategoryContrast("none", 0, None, float("nan"))
    widest = str(categories["spread"].astype(float).idxmax())
    spread = float(categories.loc[widest, "spread"])
    return CategoryContrast("flat" if spread < flat else "varies", len(categories), widest, spread)
