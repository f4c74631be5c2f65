"""Point-in-time customer features and the purchase label.

One set of definitions, two drivers. Every feature is a function of a small per-customer *state*
(sufficient statistics: counts, sums, first/last times, a decayed engagement sum, recent session
starts) evaluated at an `as_of` time by `finalize`. The batch driver here (`customer_state`)
computes that state from all data before a cutoff with vectorized group-bys; the real-time replay
updates the very same state one event at a time and calls the very same `finalize`, so a feature
means the same thing in training and in serving (no training/serving skew).

The leakage rule is structural: `build_features` first cuts every table at the cutoff
(`before_cutoff`), so nothing at or after the cutoff can reach a feature; only `purchase_label`
looks after the cutoff, and only at orders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from atelier.core.config import ParamsError
from atelier.core.contract import KNOWN_DEVICES

DAY = pd.Timedelta(days=1)
#: A session that started less than this many days before a cutoff may still be open at it.
OPEN_SESSION_DAYS = 1
#: Sums are kept in integer units (amounts in cents, dwell in milliseconds): integer sums are exact, so a
#: statistic does not depend on the order in which the batch and the streaming driver add records up.
AMOUNT_SCALE = 100
DWELL_SCALE = 1000


def integer_units(values: pd.Series, scale: int) -> np.ndarray:
    """Values in integer units of 1/scale (missing as 0): what sums are accumulated in."""
    return np.rint(values.fillna(0).to_numpy(dtype=float) * scale).astype(np.int64)


@dataclass(frozen=True)
class FeatureSettings:
    """The tunables of the feature definitions (params.yaml `prep`)."""

    session_windows_days: tuple[int, ...] = (7, 30, 90)
    half_life_days: float = 14.0
    engagement_weights: dict[str, float] = field(
        default_factory=lambda: {"product_view": 1.0, "add_to_cart": 3.0, "purchase": 10.0}
    )

    @classmethod
    def from_params(cls, prep: dict[str, Any]) -> FeatureSettings:
        """Settings from params.yaml's `prep` section (only its feature keys are read)."""
        missing = [key for key in ("session_windows_days", "half_life_days", "engagement_weights") if key not in prep]
        if missing:
            raise ParamsError(f"params.yaml prep: missing {missing}; restore them from the project's params.yaml")
        windows, half_life, weights = prep["session_windows_days"], prep["half_life_days"], prep["engagement_weights"]
        if not isinstance(windows, (list, tuple)) or not windows or not all(_whole_positive(w) for w in windows):
            raise ParamsError(
                f"params.yaml prep.session_windows_days must be a list of whole days >= 1, got {windows!r}")
        if isinstance(half_life, bool) or not isinstance(half_life, (int, float)) or not half_life > 0:
            raise ParamsError(f"params.yaml prep.half_life_days must be a number of days > 0, got {half_life!r}")
        if not isinstance(weights, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in weights.values()
        ):
            raise ParamsError(
                "params.yaml prep.engagement_weights must map event types to numbers "
                f"(e.g. {{product_view: 1.0, purchase: 10.0}}), got {weights!r}"
            )
        return cls(
            session_windows_days=tuple(int(w) for w in windows),
            half_life_days=float(half_life),
            engagement_weights={str(k): float(v) for k, v in weights.items()},
        )


def _whole_positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


# --------------------------------------------------------------------------------------------
# What each feature means. The notebook renders this table; `feature_groups` says which exist.
# --------------------------------------------------------------------------------------------
FEATURE_DOCS: dict[str, tuple[str, str, str]] = {
    # name: (group, meaning, why it matters for personalization)
    "recency_days": (
        "orders",
        "days since the last visit or order",
        "recent customers are warm: the strongest single signal of buying soon",
    ),
    "frequency": ("orders", "orders placed so far", "repeat buyers buy again; the F of RFM"),
    "monetary": ("orders", "total spent so far", "value at stake; the M of RFM"),
    "avg_order_value": ("orders", "spend per order (empty if no order)", "price level to recommend at"),
    "days_since_last_purchase": (
        "orders", "days since the last order (empty if none)", "purchase cycle: replenishment and win-back timing",
    ),
    "tenure_days": (
        "orders", "days since signup (or first activity)", "new and established customers need different journeys",
    ),
    "discount_share": (
        "orders", "share of orders with a discount", "deal seekers respond to sales, not to full-price banners",
    ),
    "sessions_total": ("events", "visits so far", "overall engagement"),
    "avg_session_duration": ("dwell", "seconds of page time per visit", "depth of interest per visit"),
    "views_per_session": ("events", "product views per visit", "browsing depth"),
    "cart_adds": ("events", "products added to the cart so far", "purchase intent"),
    "cart_abandonment_rate": (
        "events",
        "share of visits with a cart add and no purchase (empty if none)",
        "hesitant buyers: reminder and reassurance targets",
    ),
    "engagement_score": (
        "events",
        "time-decayed weighted count of views, cart adds and purchases",
        "current interest, fading with a half-life",
    ),
}
WINDOW_DOC = ("events", "visits in the last {w} days", "short-term activity; the shape of recent visits")
DEVICE_DOC = ("device", "share of visits on {d}", "where to personalize: mobile layouts convert differently")
AFFINITY_DOC = ("categories", "share of product views in {c}", "what to recommend: category affinity")
DEMOGRAPHIC_DOC = ("demographics", "{col} from the customers table", "context; also what fairness checks group by")
DEMOGRAPHICS = ("age_band", "gender", "region")
#: Count and amount features with long right tails (log1p before scaling).
HEAVY_TAILED = ("frequency", "monetary", "avg_order_value", "sessions_total", "cart_adds", "engagement_score")


def feature_groups(tables: dict[str, pd.DataFrame]) -> dict[str, bool]:
    """Which feature groups the available tables support (orders alone supports only 'orders')."""
    events = tables.get("events")
    has_events = events is not None and len(events.columns) > 0
    return {
        "orders": True,
        "events": has_events,
        "dwell": has_events and "dwell_seconds" in events.columns,
        "device": has_events and "device" in events.columns,
        "categories": has_events and "product_id" in events.columns and tables.get("products") is not None,
        "demographics": tables.get("customers") is not None
        and any(c in tables["customers"].columns for c in DEMOGRAPHICS),
    }


# --------------------------------------------------------------------------------------------
# The leakage rule
# --------------------------------------------------------------------------------------------
def before_cutoff(tables: dict[str, pd.DataFrame], cutoff: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """Every table as it was known just before `cutoff`: rows timestamped at or after it removed.

    Customers who signed up at or after the cutoff are not known yet; products are timeless.
    """
    cut = dict(tables)
    cut["orders"] = tables["orders"][tables["orders"]["ordered_at"] < cutoff]
    if tables.get("events") is not None:
        cut["events"] = tables["events"][tables["events"]["ts"] < cutoff]
    customers = tables.get("customers")
    if customers is not None and "signup_at" in customers.columns:
        cut["customers"] = customers[~(customers["signup_at"] >= cutoff)]
    return cut


def purchase_label(orders: pd.DataFrame, cutoff: pd.Timestamp, horizon_days: int) -> pd.Series:
    """1 if the customer ordered within `horizon_days` after `cutoff`, else 0 (index: customer_id).

    Only customers with such an order appear; callers reindex onto their population with 0.
    """
    window = orders[(orders["ordered_at"] >= cutoff) & (orders["ordered_at"] < cutoff + horizon_days * DAY)]
    buyers = pd.Index(window["customer_id"].unique(), name="customer_id")
    return pd.Series(1, index=buyers, name="label", dtype="int8")


# --------------------------------------------------------------------------------------------
# State: the sufficient statistics every feature is computed from
# --------------------------------------------------------------------------------------------
def is_event(events: pd.DataFrame, event_type: str) -> np.ndarray:
    """Boolean mask of the events of `event_type`."""
    return (events["event_type"] == event_type).to_numpy(dtype=bool, na_value=False)


def sessions_table(events: pd.DataFrame) -> pd.DataFrame:
    """One row per session from its events: customer, start, device, views, cart and purchase flags, dwell."""
    frame = pd.DataFrame(
        {
            "session_id": events["session_id"].to_numpy(),
            "customer_id": events["customer_id"].to_numpy(),
            "ts": events["ts"].to_numpy(),
            "view": is_event(events, "product_view"),
            "cart": is_event(events, "add_to_cart"),
            "purchase": is_event(events, "purchase"),
        }
    )
    aggregations: dict[str, tuple[str, str]] = {
        "customer_id": ("customer_id", "first"),
        "start": ("ts", "min"),
        "views": ("view", "sum"),
        "cart_adds": ("cart", "sum"),
        "has_purchase": ("purchase", "any"),
    }
    if "dwell_seconds" in events.columns:
        frame["dwell_ms"] = integer_units(events["dwell_seconds"], DWELL_SCALE)
        aggregations["dwell_ms"] = ("dwell_ms", "sum")
    if "device" in events.columns:
        frame["device"] = events["device"].to_numpy()
    ordered = frame.sort_values(["ts"], kind="stable")
    sessions = ordered.groupby("session_id", sort=True).agg(**aggregations)
    if "dwell_ms" in sessions.columns:
        sessions["dwell_seconds"] = sessions["dwell_ms"] / DWELL_SCALE
    if "device" in frame.columns:
        sessions["device"] = ordered.groupby("session_id", sort=True)["device"].first().astype("string")
    return sessions.reset_index()


def _grouped_arrays(keys: np.ndarray, values: np.ndarray) -> pd.Series:
    """The values of each key as one array (in their given order), indexed by key."""
    if len(keys) == 0:
        return pd.Series(dtype=object)
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], values[order]
    boundaries = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    starts = np.concatenate([[0], boundaries])
    series = pd.Series(np.split(values, boundaries), index=keys[starts], dtype=object)
    series.index.name = "customer_id"
    return series


def customer_state(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, settings: FeatureSettings) -> pd.DataFrame:
    """Per-customer sufficient statistics from tables already cut at `as_of` (index: customer_id).

    Columns: orders, amount, discounted_orders, first_order_at, last_order_at, first_seen_at,
    last_seen_at, and with events: sessions, views, cart_adds, cart_sessions,
    cart_sessions_purchased, dwell_seconds, engagement, engagement_at, session_starts (an int64
    array of session start times, in microseconds, within the longest window), sessions_<device>,
    views_<category>, and open_session_* (per customer, arrays of the id, start, cart and purchase
    flags and device of every session started within OPEN_SESSION_DAYS before `as_of`: what a
    streaming driver needs to continue sessions that span the cutoff).
    """
    orders = tables["orders"]
    grouped = orders.groupby("customer_id")
    state = pd.DataFrame(
        {
            "orders": grouped.size(),
            "amount": pd.Series(integer_units(orders["amount"], AMOUNT_SCALE), index=orders.index)
            .groupby(orders["customer_id"]).sum() / AMOUNT_SCALE,
            "first_order_at": grouped["ordered_at"].min(),
            "last_order_at": grouped["ordered_at"].max(),
        }
    )
    if "discount" in orders.columns:
        state["discounted_orders"] = (orders["discount"].fillna(0) > 0).groupby(orders["customer_id"]).sum()
    seen = [orders[["customer_id", "ordered_at"]].rename(columns={"ordered_at": "ts"})]

    events = tables.get("events")
    if events is not None:
        seen.append(events[["customer_id", "ts"]])
        sessions = sessions_table(events)
        by_customer = sessions.groupby("customer_id")
        state = state.join(
            pd.DataFrame(
                {
                    "sessions": by_customer.size(),
                    "views": by_customer["views"].sum(),
                    "cart_adds": by_customer["cart_adds"].sum(),
                    "cart_sessions": sessions["cart_adds"].gt(0).groupby(sessions["customer_id"]).sum(),
                    "cart_sessions_purchased": (sessions["cart_adds"].gt(0) & sessions["has_purchase"])
                    .groupby(sessions["customer_id"])
                    .sum(),
                }
            ),
            how="outer",
        )
        if "dwell_seconds" in sessions.columns:
            state["dwell_seconds"] = by_customer["dwell_ms"].sum() / DWELL_SCALE
        if "device" in sessions.columns:
            device_counts = sessions.groupby(["customer_id", "device"]).size().unstack(fill_value=0)
            for device in KNOWN_DEVICES:
                state[f"sessions_{device}"] = device_counts[device] if device in device_counts else 0
        horizon = as_of - max(settings.session_windows_days) * DAY
        recent = sessions[sessions["start"] >= horizon].sort_values("start", kind="stable")
        state["session_starts"] = _grouped_arrays(recent["customer_id"].to_numpy(), microseconds(recent["start"]))
        # Sessions that may still be open at the cutoff, so a streaming driver can continue them.
        recent = sessions[sessions["start"] >= as_of - OPEN_SESSION_DAYS * DAY]
        open_sessions = recent.sort_values(["start", "session_id"], kind="stable")
        owners = open_sessions["customer_id"].to_numpy()
        state["open_session_ids"] = _grouped_arrays(owners, open_sessions["session_id"].to_numpy())
        state["open_session_starts"] = _grouped_arrays(owners, microseconds(open_sessions["start"]))
        state["open_session_cart"] = _grouped_arrays(owners, (open_sessions["cart_adds"] > 0).to_numpy())
        state["open_session_purchase"] = _grouped_arrays(owners, open_sessions["has_purchase"].to_numpy(dtype=bool))
        if "device" in open_sessions:
            state["open_session_device"] = _grouped_arrays(owners, open_sessions["device"].to_numpy(dtype=object))
        weights = events["event_type"].map(settings.engagement_weights).astype(float).fillna(0.0).to_numpy()
        age_days = (as_of - events["ts"]).dt.total_seconds().to_numpy() / 86_400
        decayed = weights * np.exp2(-age_days / settings.half_life_days)
        state["engagement"] = pd.Series(decayed, index=events.index).groupby(events["customer_id"]).sum()
        state["engagement_at"] = as_of
        products = tables.get("products")
        if products is not None and "product_id" in events.columns:
            views = events[is_event(events, "product_view")]
            category = views["product_id"].map(products.set_index("product_id")["category"].astype("string"))
            counts = category.groupby(views["customer_id"]).value_counts().unstack(fill_value=0)
            for name in sorted(products["category"].dropna().astype("string").unique()):
                state[f"views_{name}"] = counts[name] if name in counts else 0

    activity = pd.concat(seen, ignore_index=True).groupby("customer_id")["ts"]
    state["first_seen_at"] = activity.min()
    state["last_seen_at"] = activity.max()
    state.index.name = "customer_id"
    return state


# --------------------------------------------------------------------------------------------
# From state to features (shared by the batch and streaming drivers)
# --------------------------------------------------------------------------------------------
#: Times inside the state kernel: int64 microseconds since the epoch, NAT where there is none.
NAT = np.iinfo(np.int64).min
MICROSECONDS_PER_DAY = 86_400_000_000
#: State columns holding times (converted to microseconds for the kernel).
TIME_COLUMNS = ("first_order_at", "last_order_at", "first_seen_at", "last_seen_at", "engagement_at")


def microseconds(values: Any) -> np.ndarray:
    """Datetimes (a Series, array or scalar) as int64 microseconds since the epoch; NaT becomes NAT."""
    if isinstance(values, pd.Timestamp):
        return np.datetime64(values.to_datetime64(), "us").astype(np.int64)
    return np.asarray(pd.Series(values).to_numpy(dtype="datetime64[us]")).astype(np.int64)


def _elapsed_days(as_of: int, times: np.ndarray) -> np.ndarray:
    """Days from each time to `as_of`; NaN where there is no time."""
    missing = times == NAT
    return np.where(missing, np.nan, (as_of - np.where(missing, 0, times)) / MICROSECONDS_PER_DAY)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, empty (NaN) where the denominator is 0."""
    return np.divide(numerator, denominator, out=np.full(len(numerator), np.nan), where=denominator > 0)


def finalize_arrays(
    state: dict[str, Any], as_of: int, settings: FeatureSettings, signup: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The feature kernel: state arrays at `as_of` (microseconds) -> feature arrays, for 1 or many customers.

    `state` maps state columns to arrays of one length: counts and sums as floats (0 where none),
    times as int64 microseconds (NAT where none), `session_starts` as an object array of int64
    microsecond arrays. `signup` (microseconds, NAT where unknown) makes signup count as activity.
    Both the batch driver (`finalize`) and the streaming driver call this, so a feature means the
    same thing in training and in serving.
    """
    count = state.get
    n = len(state["last_seen_at"])
    features: dict[str, np.ndarray] = {}
    last_seen, first_seen = state["last_seen_at"], state["first_seen_at"]
    if signup is not None:
        # Signing up is activity too: a registered customer who never visited is as recent as their signup.
        last_seen = np.maximum(last_seen, signup)
        first_seen = np.where(signup == NAT, first_seen, signup)
    features["recency_days"] = _elapsed_days(as_of, last_seen)
    features["frequency"] = count("orders")
    features["monetary"] = count("amount")
    features["avg_order_value"] = _ratio(count("amount"), count("orders"))
    features["days_since_last_purchase"] = _elapsed_days(as_of, state["last_order_at"])
    features["tenure_days"] = _elapsed_days(as_of, first_seen)
    if "discounted_orders" in state:
        features["discount_share"] = _ratio(count("discounted_orders"), count("orders"))
    if "sessions" in state:
        starts = state["session_starts"]
        lengths = np.fromiter((0 if times is None else len(times) for times in starts), dtype=np.int64, count=n)
        nonempty = [times for times in starts if times is not None and len(times)]
        flat = np.concatenate(nonempty or [np.empty(0, np.int64)])
        owner = np.repeat(np.arange(n), lengths)
        for window in settings.session_windows_days:
            since = as_of - window * MICROSECONDS_PER_DAY
            features[f"sessions_{window}d"] = np.bincount(owner[flat >= since], minlength=n).astype(float)
        features["sessions_total"] = count("sessions")
        if "dwell_seconds" in state:
            features["avg_session_duration"] = _ratio(count("dwell_seconds"), count("sessions"))
        features["views_per_session"] = _ratio(count("views"), count("sessions"))
        features["cart_adds"] = count("cart_adds")
        features["cart_abandonment_rate"] = 1 - _ratio(count("cart_sessions_purchased"), count("cart_sessions"))
        elapsed = np.nan_to_num(_elapsed_days(as_of, state["engagement_at"]))
        features["engagement_score"] = count("engagement") * np.exp2(-elapsed / settings.half_life_days)
        for device in KNOWN_DEVICES:
            if f"sessions_{device}" in state:
                features[f"share_{device}"] = _ratio(count(f"sessions_{device}"), count("sessions"))
        view_columns = [c for c in state if c.startswith("views_")]
        total_views = sum((count(c) for c in view_columns), np.zeros(n))
        for column in view_columns:
            features[f"affinity_{column.removeprefix('views_')}"] = _ratio(count(column), total_views)
    return features


def state_arrays(state: pd.DataFrame) -> dict[str, Any]:
    """A state frame (from `customer_state`) in the kernel's form: floats, microsecond times, start arrays."""
    arrays: dict[str, Any] = {}
    for column in state.columns:
        if column in TIME_COLUMNS:
            arrays[column] = microseconds(state[column])
        elif column == "session_starts":
            listed = [times if isinstance(times, np.ndarray) else None for times in state[column]]
            # The extra None keeps numpy from stacking equal-length arrays into one 2-D array.
            arrays[column] = np.array(listed + [None], dtype=object)[:-1]
        elif column.startswith("open_session_"):
            continue  # bookkeeping for the streaming driver, not an input of any feature
        else:
            arrays[column] = state[column].to_numpy(dtype=float, na_value=np.nan)
            arrays[column] = np.nan_to_num(arrays[column])
    return arrays


def finalize(
    state: pd.DataFrame, as_of: pd.Timestamp, settings: FeatureSettings, customers: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The feature table at `as_of` from per-customer state (one row per state row, same index).

    Counts are 0 for customers with no activity; rates and averages are empty (NaN) where they are
    undefined (e.g. average order value with no order): imputation decides what to do with those.
    """
    signup = None
    if customers is not None and "signup_at" in customers.columns:
        signup = microseconds(customers.set_index("customer_id")["signup_at"].reindex(state.index))
    values = finalize_arrays(state_arrays(state), microseconds(pd.Timestamp(as_of)), settings, signup)
    features = pd.DataFrame(values, index=state.index)
    if customers is not None:
        demographics = customers.set_index("customer_id").reindex(state.index)
        for column in DEMOGRAPHICS:
            if column in demographics:
                features[column] = demographics[column].astype("string")
    return features


def build_features(tables: dict[str, pd.DataFrame], cutoff: pd.Timestamp, settings: FeatureSettings) -> pd.DataFrame:
    """Features of every customer known before `cutoff`, from data strictly before it (index: customer_id).

    Known customers: those in the customers table who signed up before the cutoff (when it has
    signup dates), plus anyone with an order or event before it. A customer without a signup date
    is known only through activity, so they never appear in snapshots from before they existed.
    """
    known = before_cutoff(tables, cutoff)
    state = customer_state(known, cutoff, settings)
    customers = known.get("customers")
    if customers is not None and "signup_at" in customers.columns:
        registered = customers.loc[customers["signup_at"].notna(), "customer_id"]
        state = state.reindex(state.index.union(pd.Index(registered, name="customer_id")))
    state = state.sort_index()
    return finalize(state, cutoff, settings, customers)


def build_snapshot(
    tables: dict[str, pd.DataFrame], cutoff: pd.Timestamp, horizon_days: int, settings: FeatureSettings
) -> pd.DataFrame:
    """Features at `cutoff` plus the label, one row per known customer, with a `cutoff` column."""
    features = build_features(tables, cutoff, settings)
    label = purchase_label(tables["orders"], cutoff, horizon_days).reindex(features.index, fill_value=0)
    snapshot = features.assign(label=label.astype("int8"))
    snapshot.insert(0, "cutoff", cutoff)
    return snapshot


def label_window_complete(tables: dict[str, pd.DataFrame], cutoff: pd.Timestamp, horizon_days: int) -> bool:
    """Whether the data reaches the end of the label window (else labels would be censored)."""
    last = tables["orders"]["ordered_at"].max()
    if tables.get("events") is not None and len(tables["events"]):
        last = max(last, tables["events"]["ts"].max())
    return bool(last >= cutoff + (horizon_days - 1) * DAY)


def feature_catalog(columns: list[str], settings: FeatureSettings) -> pd.DataFrame:
    """One row per feature column: its group, what it means and why it matters."""
    rows = []
    for column in columns:
        if column in FEATURE_DOCS:
            group, meaning, why = FEATURE_DOCS[column]
        elif column.startswith("sessions_") and column.endswith("d") and column[9:-1].isdigit():
            group, meaning, why = (t.format(w=column[9:-1]) for t in WINDOW_DOC)
        elif column.startswith("share_"):
            group, meaning, why = (t.format(d=column[6:]) for t in DEVICE_DOC)
        elif column.startswith("affinity_"):
            group, meaning, why = (t.format(c=column[9:]) for t in AFFINITY_DOC)
        elif column in DEMOGRAPHICS:
            group, meaning, why = (t.format(col=column) for t in DEMOGRAPHIC_DOC)
        else:
            continue
        if column == "engagement_score":
            meaning += f" (half-life {settings.half_life_days:g} days)"
        rows.append({"feature": column, "group": group, "meaning": meaning, "why it matters": why})
    return pd.DataFrame(rows)


def skipped_groups(tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    """Feature groups the data cannot support, with the table or column that would enable them."""
    needs = {
        "events": "an events table (clickstream)",
        "dwell": "a dwell_seconds column in events",
        "device": "a device column in events",
        "categories": "a products table and product_id in events",
        "demographics": "a customers table with age_band, gender or region",
    }
    return {group: needs[group] for group, present in feature_groups(tables).items() if not present}
