"""The leakage rule, attacked: rewrite everything at or after a cutoff and check that no feature moves.

`features.build_features` cuts every table at the cutoff before computing anything, so features
cannot see the future by construction. Comparing features from all the data with features from
data cut at the cutoff would prove nothing (both are cut the same way); this module rewrites the
future instead (`scramble_after_cutoff`) and, as a control, shows that the same rewrite started a
day earlier does change features, so the check can fail.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from atelier.data.features import DEMOGRAPHICS, FeatureSettings, build_features, purchase_label


def _new_ids(ids: pd.Series, count: int, prefix: str) -> np.ndarray:
    """`count` ids not in `ids`: integers above the largest for integer ids, else "<prefix>-<k>" text."""
    if pd.api.types.is_integer_dtype(ids.dtype):
        start = int(ids.max()) + 1 if len(ids) else 1
        return np.arange(start, start + count, dtype="int64")
    return np.array([f"{prefix}-{k}" for k in range(count)], dtype=object)


def _after(cutoff: pd.Timestamp, span: pd.Timedelta, count: int, rng: np.random.Generator) -> pd.Series:
    """`count` random times in [cutoff, cutoff + span), the first exactly at the cutoff (the boundary)."""
    offsets = pd.to_timedelta(rng.random(count) * span.total_seconds(), unit="s").round("s")
    times = pd.Series(cutoff + offsets, dtype="datetime64[us]")
    if count:
        times.iloc[0] = cutoff
    return times


def scramble_after_cutoff(
    tables: dict[str, pd.DataFrame], cutoff: pd.Timestamp, seed: int
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """A copy of `tables` whose future is rewritten, and a summary of what changed (the leakage test's input).

    Every order, event and signup at or after `cutoff` gets another time (still at or after the
    cutoff; one exactly at it), another customer and other values (amounts, quantities, event
    types, devices, dwell, products, demographics), and as many rows again are added after the
    cutoff: copies of random rows, past ones included, with new ids. Rows before the cutoff, and
    customers who signed up before it, are untouched, as are products (timeless). Features built at
    `cutoff` must not change; labels, which look after the cutoff, may. Summary columns: table,
    rows_before_cutoff (untouched), rows_changed, rows_added.
    """
    rng = np.random.default_rng(seed)
    cutoff = pd.Timestamp(cutoff)
    scrambled = dict(tables)
    summary = []
    customers = tables.get("customers")
    known_ids = [t["customer_id"].dropna() for t in tables.values() if "customer_id" in t.columns]
    pool = pd.unique(pd.concat(known_ids, ignore_index=True).to_numpy()) if known_ids else np.array([])

    def rewrite(name: str, time_column: str, key: str, change) -> None:
        frame = tables[name]
        times = frame[time_column]
        late = (times >= cutoff).to_numpy(dtype=bool, na_value=False)
        # Rows added: copies of random rows of the whole table (the past included), dated after the cutoff.
        n_added = max(int(late.sum()), 20) if len(frame) else 0
        added = frame.iloc[rng.integers(0, len(frame), n_added)].copy() if n_added else frame.iloc[0:0].copy()
        added[key] = _new_ids(frame[key], n_added, f"scrambled-{name}")
        future = pd.concat([frame[late], added], ignore_index=True)
        last = times.max()
        span = max(last - cutoff, pd.Timedelta(days=30)) if pd.notna(last) else pd.Timedelta(days=30)
        future[time_column] = _after(cutoff, span, len(future), rng).astype(times.dtype).to_numpy()
        if "customer_id" in future.columns and name != "customers" and len(pool):
            future["customer_id"] = rng.choice(pool, len(future))
        change(future)
        future = future.sort_values(time_column, kind="stable")
        scrambled[name] = pd.concat([frame[~late], future], ignore_index=True).astype(frame.dtypes.to_dict())
        summary.append((name, int((~late).sum()), int(late.sum()), n_added))

    def other_values(source: pd.Series, count: int) -> np.ndarray:
        """`count` values drawn from those `source` holds (all missing stays all missing)."""
        values = pd.unique(source.dropna().to_numpy())
        return rng.choice(values, count) if len(values) else np.full(count, None, dtype=object)

    def change_orders(future: pd.DataFrame) -> None:
        future["amount"] = (future["amount"] * rng.uniform(2, 20, len(future)) + 1).round(2)
        if "discount" in future.columns:
            future["discount"] = rng.uniform(0, 50, len(future)).round(2)
        if "quantity" in future.columns:
            future["quantity"] = rng.integers(1, 9, len(future))
        if "product_id" in future.columns:
            future["product_id"] = other_values(tables["orders"]["product_id"], len(future))

    def change_events(future: pd.DataFrame) -> None:
        for column in ("event_type", "device", "product_id"):
            if column in future.columns:
                future[column] = other_values(tables["events"][column], len(future))
        if "dwell_seconds" in future.columns:
            future["dwell_seconds"] = rng.uniform(0, 3600, len(future)).round(1)

    def change_customers(future: pd.DataFrame) -> None:
        for column in DEMOGRAPHICS:
            if column in future.columns:
                future[column] = other_values(tables["customers"][column], len(future))

    rewrite("orders", "ordered_at", "order_id", change_orders)
    if tables.get("events") is not None:
        rewrite("events", "ts", "event_id", change_events)
    if customers is not None and "signup_at" in customers.columns:
        rewrite("customers", "signup_at", "customer_id", change_customers)
    columns = ["table", "rows_before_cutoff", "rows_changed", "rows_added"]
    return scrambled, pd.DataFrame(summary, columns=columns).set_index("table")


def customers_with_different_features(features: pd.DataFrame, other: pd.DataFrame) -> pd.Index:
    """Customers whose feature rows differ between two feature tables, or who are in only one of them."""
    index = features.index.union(other.index)
    same = index.isin(features.index) & index.isin(other.index)
    left, right = features.reindex(index), other.reindex(index)
    for column in features.columns.union(other.columns):
        if column not in left.columns or column not in right.columns:
            return index
        a, b = left[column], right[column]
        both_missing = (a.isna() & b.isna()).to_numpy(dtype=bool)
        equal = (a == b).astype("boolean").fillna(False).to_numpy(dtype=bool) | both_missing
        same &= equal
    return index[~same]


@dataclass(frozen=True)
class LeakageCheck:
    """What the leakage check did at one cutoff: the rewrite (rows changed and added per table), the customers
    whose features were compared (all identical, or the check raised), the customers whose label the rewrite
    changed, and the customers whose features the control (the rewrite started a day early) changed."""

    cutoff: pd.Timestamp
    rewrite: pd.DataFrame
    customers: int
    labels_changed: int
    control_changed: int


def leakage_check(
    tables: dict[str, pd.DataFrame], cutoff: pd.Timestamp, settings: FeatureSettings, horizon_days: int, seed: int,
    snapshot: pd.DataFrame | None = None,
) -> LeakageCheck:
    """Rewrite the future after `cutoff` and require the features at `cutoff` to stay exactly as they were.

    Raises AssertionError (naming the first difference) if any feature changed: a feature peeked
    past the cutoff. The control rewrites from one day before the cutoff; it changes features
    whenever anything happened in that day, so `control_changed` 0 means this data cannot show the
    check failing (the unit tests do). `snapshot`, the prep snapshot at `cutoff` if it is already built
    (`build_snapshots`), gives the features as computed instead of building them a second time.
    """
    cutoff = pd.Timestamp(cutoff)
    as_computed = (build_features(tables, cutoff, settings) if snapshot is None
                   else snapshot.drop(columns=["cutoff", "label"]))
    rewritten, rewrite = scramble_after_cutoff(tables, cutoff, seed=seed)
    pd.testing.assert_frame_equal(build_features(rewritten, cutoff, settings), as_computed, check_exact=True)
    labels = [purchase_label(t["orders"], cutoff, horizon_days).reindex(as_computed.index, fill_value=0)
              for t in (tables, rewritten)]
    too_early, _ = scramble_after_cutoff(tables, cutoff - pd.Timedelta(days=1), seed=seed)
    moved = customers_with_different_features(as_computed, build_features(too_early, cutoff, settings))
    return LeakageCheck(cutoff, rewrite, len(as_computed), int((labels[0] != labels[1]).sum()), len(moved))
