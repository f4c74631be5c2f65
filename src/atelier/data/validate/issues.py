"""Row problems of one table, collected as vectorized parts and joined into one reason per bad row.

Each part is (positions, order, text, class): the order sorts a row's reasons (by contract column,
then by kind of check; cross-table checks last), the text is what a person reads, the class is what
metrics/validate.json counts and what the quarantine's `reason_classes` column lists.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from atelier.data.validate.reasons import REASON_SEPARATOR

#: Order of a row's reasons within one contract column (column index * 10 + rank).
RANK = {"unparseable": 0, "missing": 1, "bound": 2, "time": 3, "duplicate": 4}
#: Cross-table checks come after every column's own checks.
CROSS_TABLE_ORDER = 10_000


class Issues:
    """Row problems of one table, collected as vectorized parts."""

    def __init__(self, n_rows: int) -> None:
        self.n_rows = n_rows
        self.parts: list[pd.DataFrame] = []

    def add(self, positions: np.ndarray, text: Any, reason_class: str, order: int) -> None:
        """Record one problem for the rows at `positions` (`text`: one string, or one per row)."""
        positions = np.asarray(positions, dtype="int64")
        if len(positions) == 0:
            return
        if isinstance(text, pd.Series):
            text = text.to_numpy(dtype=object)
        self.parts.append(pd.DataFrame({"pos": positions, "order": order, "text": text, "cls": reason_class}))

    def mask(self, reason_class: str | None = None) -> np.ndarray:
        """True for every row with at least one problem so far (of `reason_class` only, if given)."""
        bad = np.zeros(self.n_rows, dtype=bool)
        for part in self.parts:
            rows = part["pos"] if reason_class is None else part.loc[part["cls"] == reason_class, "pos"]
            bad[rows.to_numpy()] = True
        return bad

    def reasons(self) -> tuple[pd.DataFrame, dict[str, int]]:
        """One row per bad row (index: its position, sorted) with `reason` (the texts joined with "; ") and
        `reason_classes` (its distinct classes, a list in reason order), and the row count per class."""
        if not self.parts:
            index = pd.Index([], dtype="int64")
            reason, classes = pd.Series([], index=index, dtype="string"), pd.Series([], index=index, dtype=object)
            return pd.DataFrame({"reason": reason, "reason_classes": classes}), {}
        issues = pd.concat(self.parts, ignore_index=True)
        issues = issues.drop_duplicates(["pos", "text"]).sort_values(["pos", "order"], kind="stable")
        positions = issues["pos"].to_numpy()
        texts = pd.Series(issues["text"].to_numpy(), dtype="string")
        # Join each row's texts without a per-row Python call: the k-th text of every row at once.
        starts = np.r_[True, positions[1:] != positions[:-1]]
        group = np.cumsum(starts) - 1
        steps = np.arange(len(positions))
        rank = steps - np.maximum.accumulate(np.where(starts, steps, 0))
        reason = texts[starts].reset_index(drop=True)
        for k in range(1, int(rank.max()) + 1):
            at = rank == k
            rows = group[at]
            reason.iloc[rows] = (reason.iloc[rows].to_numpy() + REASON_SEPARATOR) + texts[at].to_numpy()
        classes = issues.drop_duplicates(["pos", "cls"])
        listed = classes.groupby("pos", sort=True)["cls"].agg(list)
        frame = pd.DataFrame(
            {"reason": reason.to_numpy(), "reason_classes": listed.reindex(positions[starts]).to_numpy()},
            index=pd.Index(positions[starts], dtype="int64"),
        )
        frame["reason"] = frame["reason"].astype("string")
        counts = classes["cls"].value_counts()
        return frame, {str(k): int(v) for k, v in counts.items()}
