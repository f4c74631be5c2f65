"""Per-customer feature state for the real-time phase, updated incrementally from clean records.

The batch prep phase computes each customer's sufficient statistics with `features.customer_state`
and turns them into features with the kernel `features.finalize_arrays`. This module keeps the very
same statistics for a live stream and calls the very same kernel, so that replaying every record up
to a time T gives the batch features at T (the training/serving-skew guarantee of a feature store).

Storage is a struct of arrays, one row per customer (`_index` maps customer_id -> row), plus three
small Python structures:

* `_starts[row]`: the customer's session start times (int64 microseconds, sorted) within the
  longest session window of the newest time seen — what the `sessions_<w>d` features count;
* `_sessions`: session_id -> [row, start, device, device_ts, device_event, cart, purchase] for
  every session that started within that window, so a session continues across calls (and across
  the cutoff it started before) and a late earliest event can still move its start and device;
* `_heap`: (start, seq, row, session_id) entries that expire both of the above once their start
  falls out of the longest window (memory stays bounded by the sessions in that window).

Sums are kept in the batch driver's integer units (`AMOUNT_SCALE`, `DWELL_SCALE`: cents and
milliseconds) so that they do not depend on the order in which records arrive; every count is an
integer. Parity with the batch driver holds for records (and `as_of` times) after the state's
starting point, for any order of records within and across calls, as long as an event arrives
before its session's start falls out of the longest window (older sessions are closed: a later
event of theirs would open a new one). It is exact except for the decayed engagement sum, whose
terms are decayed and added in another order (it may differ in the last bits, ~1e-15 relative).
Sessions still open at the starting cutoff continue (the batch state exports every session
started within a day of it: `open_session_*`).
"""

from __future__ import annotations

import bisect
import heapq
import json
import math
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from atelier.core.contract import KNOWN_DEVICES
from atelier.core.io import python_scalar
from atelier.data.features import (
    AMOUNT_SCALE,
    DEMOGRAPHICS,
    DWELL_SCALE,
    MICROSECONDS_PER_DAY,
    NAT,
    FeatureSettings,
    customer_state,
    finalize_arrays,
    microseconds,
)

#: Session device codes: KNOWN_DEVICES positions, OTHER_DEVICE for any other value, NO_DEVICE for missing.
OTHER_DEVICE = len(KNOWN_DEVICES)
NO_DEVICE = -1
LATEST = np.iinfo(np.int64).max
CHECKPOINT_VERSION = 1

_DEVICE_FIELDS = tuple(f"sessions_{device}" for device in KNOWN_DEVICES)
#: Integer statistics (counts; amount in cents, dwell in milliseconds).
_INT_FIELDS = ("orders", "amount_cents", "discounted_orders", "sessions", "views", "cart_adds", "cart_sessions",
               "cart_sessions_purchased", "dwell_ms", *_DEVICE_FIELDS)
#: Times in int64 microseconds (NAT where none); `signup` comes from the customers table.
_TIME_FIELDS = ("first_order_at", "last_order_at", "first_seen_at", "last_seen_at", "engagement_at", "signup")
_FLOAT_FIELDS = ("engagement",)
#: State columns (as `customer_state` names them) this driver knows how to update.
_COUNT_COLUMNS = ("orders", "discounted_orders", "sessions", "views", "cart_adds", "cart_sessions",
                  "cart_sessions_purchased", *_DEVICE_FIELDS)
_KNOWN_COLUMNS = (*_COUNT_COLUMNS, "amount", "dwell_seconds", "first_order_at", "last_order_at", "first_seen_at",
                  "last_seen_at", "engagement", "engagement_at", "session_starts")
#: Session bookkeeping slots.
ROW, START, DEVICE, DEVICE_TS, DEVICE_EVENT, CART, PURCHASE = range(7)


def _blank(field: str) -> Any:
    return NAT if field in _TIME_FIELDS else 0.0 if field in _FLOAT_FIELDS else 0


def _dtype(field: str) -> type:
    return np.float64 if field in _FLOAT_FIELDS else np.int64


def default_state_columns(products: pd.DataFrame | None, settings: FeatureSettings) -> list[str]:
    """The state columns `customer_state` produces for contract tables with every optional column.

    Asked of `customer_state` itself (on empty tables), so the column set and order follow the batch driver.
    """
    orders = pd.DataFrame({"customer_id": pd.Series(dtype="int64"), "order_id": pd.Series(dtype="int64"),
                           "ordered_at": pd.Series(dtype="datetime64[us]"), "amount": pd.Series(dtype=float),
                           "discount": pd.Series(dtype=float)})
    events = pd.DataFrame({"event_id": pd.Series(dtype="int64"), "customer_id": pd.Series(dtype="int64"),
                           "session_id": pd.Series(dtype="int64"), "ts": pd.Series(dtype="datetime64[us]"),
                           "event_type": pd.Series(dtype="string"), "product_id": pd.Series(dtype="Int64"),
                           "device": pd.Series(dtype="string"), "dwell_seconds": pd.Series(dtype=float)})
    tables = {"orders": orders, "events": events, "products": products}
    return [str(c) for c in customer_state(tables, pd.Timestamp("2000-01-01"), settings).columns]


class StreamingState:
    """Per-customer feature state, updated incrementally from clean events and orders."""

    def __init__(self, settings: FeatureSettings, *, products: pd.DataFrame | None = None,
                 customers: pd.DataFrame | None = None, state_columns: Sequence[str] | None = None) -> None:
        """An empty state. `state_columns` (default: what `customer_state` gives for full contract tables)
        fixes which statistics exist, hence which features `features` returns."""
        self.settings = settings
        self._products_table, self._customers_table = products, customers  # for `empty_like`
        columns = list(state_columns) if state_columns is not None else default_state_columns(products, settings)
        self._columns = [c for c in columns if not c.startswith("open_session_")]
        self.categories = [c.removeprefix("views_") for c in self._columns if c.startswith("views_")]
        unknown = [c for c in self._columns if c not in _KNOWN_COLUMNS and not c.startswith("views_")]
        if unknown:
            raise ValueError(f"the streaming state does not know how to update state columns {unknown}")
        if self.categories and products is None:
            raise ValueError("views_<category> statistics need the products table")
        self._events = "sessions" in self._columns
        self._window_us = max(settings.session_windows_days) * MICROSECONDS_PER_DAY
        # product_id -> position of its category in self.categories (-1: not a tracked category)
        if products is not None and self.categories:
            category = products["category"].astype("string")
            position = {name: i for i, name in enumerate(self.categories)}
            self._product_index = pd.Index(products["product_id"].to_numpy())
            self._product_category = np.array([position.get(c, -1) if not pd.isna(c) else -1 for c in category],
                                              dtype=np.int64)
        else:
            self._product_index, self._product_category = None, np.zeros(0, dtype=np.int64)
        # customers master data: signup (as activity) and demographics, exactly as `finalize` uses them
        self._customers: pd.DataFrame | None = None
        self._signups: dict[Any, int] = {}
        if customers is not None:
            self._customers = customers.drop_duplicates("customer_id").set_index("customer_id")
            # Master data as arrays with a position lookup: read at every decision, so no pandas reindex.
            self._master_position = {python_scalar(c): i for i, c in enumerate(self._customers.index.tolist())}
            self._master_signup = (microseconds(self._customers["signup_at"]) if "signup_at" in self._customers.columns
                                   else None)
            self._master_demographics = {
                column: np.append(self._customers[column].astype("string").to_numpy(dtype=object, na_value=pd.NA),
                                  pd.NA)
                for column in DEMOGRAPHICS if column in self._customers.columns
            }
            if "signup_at" in self._customers.columns:
                signup = microseconds(self._customers["signup_at"])
                self._signups = {k: int(v) for k, v in zip(self._customers.index.tolist(), signup.tolist()) if v != NAT}
        # the struct of arrays (capacity > number of customers: row n is always blank)
        self._ids: list[Any] = []
        self._index: dict[Any, int] = {}
        self._capacity = 0
        self._a: dict[str, np.ndarray] = {}
        self._views = np.zeros((0, len(self.categories)), dtype=np.int64)
        self._grow(1024)
        self._starts: list[list[int]] = []
        self._sessions: dict[Any, list[Any]] = {}
        self._heap: list[tuple[int, int, int, Any]] = []
        self._seq = 0
        self._newest = NAT

    # ------------------------------------------------------------------------------------------
    # Rows
    # ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Customers with state."""
        return len(self._ids)

    @property
    def state_columns(self) -> list[str]:
        """The statistics this state keeps (as `customer_state` names them)."""
        return list(self._columns)

    def empty_like(self, master_data: bool = True) -> StreamingState:
        """An empty state with the same settings, statistics and products (and master data, unless told not to)."""
        return StreamingState(self.settings, products=self._products_table,
                              customers=self._customers_table if master_data else None,
                              state_columns=self._columns)

    @property
    def newest(self) -> int:
        """The newest record time applied (microseconds; the starting cutoff before any)."""
        return self._newest

    def known(self, customer_id: Any) -> bool:
        """Whether the customer has state (any order or event applied)."""
        return customer_id in self._index

    def _grow(self, capacity: int) -> None:
        old = self._capacity
        for field in (*_INT_FIELDS, *_TIME_FIELDS, *_FLOAT_FIELDS):
            array = np.full(capacity, _blank(field), dtype=_dtype(field))
            if old:
                array[:old] = self._a[field][:old]
            self._a[field] = array
        views = np.zeros((capacity, len(self.categories)), dtype=np.int64)
        views[:old] = self._views[:old]
        self._views = views
        self._capacity = capacity

    def _add_rows(self, ids: list[Any]) -> None:
        n = len(self._ids)
        if n + len(ids) + 1 > self._capacity:
            self._grow(max(2 * self._capacity, n + len(ids) + 1))
        for offset, customer in enumerate(ids):
            self._index[customer] = n + offset
            self._starts.append([])
        self._ids.extend(ids)
        self._a["signup"][n:n + len(ids)] = [self._signups.get(c, NAT) for c in ids]

    def _rows(self, customer_ids: Any) -> tuple[np.ndarray, np.ndarray]:
        """(row of each record, rows of the distinct customers) — new customers get a row. Codes index the latter."""
        codes, uniques = pd.factorize(np.asarray(customer_ids), sort=False)
        uniques = [python_scalar(u) for u in uniques.tolist()]
        new = [u for u in uniques if u not in self._index]
        if new:
            self._add_rows(new)
        unique_rows = np.fromiter((self._index[u] for u in uniques), dtype=np.intp, count=len(uniques))
        return codes, unique_rows

    # ------------------------------------------------------------------------------------------
    # From the batch driver
    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_batch(cls, state: pd.DataFrame, as_of: pd.Timestamp, settings: FeatureSettings, *,
                   products: pd.DataFrame | None = None, customers: pd.DataFrame | None = None) -> StreamingState:
        """Start from `customer_state(before_cutoff(tables, as_of), as_of, settings)`: every statistic,
        the session starts, and every session still open at the cutoff (it continues)."""
        self = cls(settings, products=products, customers=customers, state_columns=[str(c) for c in state.columns])
        ids = [python_scalar(c) for c in state.index.tolist()]
        self._add_rows(ids)
        rows = np.arange(len(ids), dtype=np.intp)

        def numbers(column: str) -> np.ndarray:
            return np.nan_to_num(state[column].to_numpy(dtype=float, na_value=np.nan))

        for column in self._columns:
            if column in _COUNT_COLUMNS:
                self._a[column][rows] = np.rint(numbers(column)).astype(np.int64)
            elif column == "amount":
                self._a["amount_cents"][rows] = np.rint(numbers(column) * AMOUNT_SCALE).astype(np.int64)
            elif column == "dwell_seconds":
                self._a["dwell_ms"][rows] = np.rint(numbers(column) * DWELL_SCALE).astype(np.int64)
            elif column == "engagement":
                self._a["engagement"][rows] = numbers(column)
            elif column in _TIME_FIELDS:
                self._a[column][rows] = microseconds(state[column])
            elif column.startswith("views_"):
                self._views[rows, self.categories.index(column.removeprefix("views_"))] = np.rint(numbers(column))
        if "session_starts" in state.columns:
            for row, times in enumerate(state["session_starts"].tolist()):
                if isinstance(times, np.ndarray) and len(times):
                    self._starts[row] = sorted(int(t) for t in times)
                    for start in self._starts[row]:
                        self._push(start, row, None)
        if "open_session_ids" in state.columns:
            has_open = state[state["open_session_ids"].map(lambda ids: isinstance(ids, np.ndarray) and len(ids) > 0)]
            for customer, row in zip(has_open.index.tolist(), has_open.itertuples(index=False)):
                position = self._index[python_scalar(customer)]
                record = row._asdict()
                devices = record.get("open_session_device")
                known = devices if devices is not None else [pd.NA] * len(record["open_session_ids"])
                codes = self._device_codes(pd.Series(known))
                for sid, start, device, cart, purchase in zip(record["open_session_ids"].tolist(),
                                                              record["open_session_starts"].tolist(),
                                                              codes.tolist(), record["open_session_cart"].tolist(),
                                                              record["open_session_purchase"].tolist()):
                    # Every later event is after the cutoff: a known device stays, a missing one takes the first seen.
                    device_ts = NAT if device != NO_DEVICE else LATEST
                    self._sessions[python_scalar(sid)] = [position, int(start), device, device_ts, None, bool(cart),
                                                          bool(purchase)]
                    self._push(int(start), position, python_scalar(sid))
        self._newest = int(microseconds(pd.Timestamp(as_of)))
        self._prune()
        return self

    # ------------------------------------------------------------------------------------------
    # Updates
    # ------------------------------------------------------------------------------------------
    def apply(self, events: pd.DataFrame | None = None, orders: pd.DataFrame | None = None) -> None:
        """Update the state with clean, de-duplicated events and orders (any order, within and across calls)."""
        newest = self._newest
        if orders is not None and len(orders):
            newest = max(newest, self._apply_orders(orders))
        if events is not None and len(events):
            if not self._events:
                raise ValueError("this state has no event statistics (its state columns have no 'sessions')")
            newest = max(newest, self._apply_events(events))
        self._newest = newest
        self._prune()

    def _first_last(self, field_first: str, field_last: str, codes: np.ndarray, rows: np.ndarray,
                    ts: np.ndarray) -> None:
        """Fold the records' times into a (first, last) pair of time columns."""
        lowest = np.full(len(rows), LATEST, dtype=np.int64)
        highest = np.full(len(rows), NAT, dtype=np.int64)
        np.minimum.at(lowest, codes, ts)
        np.maximum.at(highest, codes, ts)
        first = self._a[field_first][rows]
        self._a[field_first][rows] = np.minimum(np.where(first == NAT, LATEST, first), lowest)
        self._a[field_last][rows] = np.maximum(self._a[field_last][rows], highest)

    def _apply_orders(self, orders: pd.DataFrame) -> int:
        codes, rows = self._rows(orders["customer_id"].to_numpy())
        k = len(rows)
        ts = microseconds(orders["ordered_at"])
        cents = np.rint(orders["amount"].to_numpy(dtype=float) * AMOUNT_SCALE).astype(np.int64)
        self._a["orders"][rows] += np.bincount(codes, minlength=k)
        amount = np.zeros(k, dtype=np.int64)
        np.add.at(amount, codes, cents)
        self._a["amount_cents"][rows] += amount
        if "discount" in orders.columns:
            discounted = (orders["discount"].fillna(0) > 0).to_numpy(dtype=bool)
            self._a["discounted_orders"][rows] += np.bincount(codes[discounted], minlength=k)
        self._first_last("first_order_at", "last_order_at", codes, rows, ts)
        self._first_last("first_seen_at", "last_seen_at", codes, rows, ts)
        return int(ts.max())

    @staticmethod
    def _lookup(values: pd.Series | np.ndarray, table: dict[str, Any], missing: Any, other: Any) -> np.ndarray:
        """table[value] for each value (as text); `missing` where the value is missing, `other` where it is not in
        table."""
        values = pd.Series(values) if not isinstance(values, pd.Series) else values
        if isinstance(values.dtype, pd.CategoricalDtype):
            codes, labels = values.cat.codes.to_numpy(), values.cat.categories
        else:
            codes, labels = pd.factorize(values, use_na_sentinel=True)
        mapped = np.array([table.get(str(label), other) for label in labels] + [missing])
        return mapped[codes]  # code -1 (missing) takes the last entry

    def _device_codes(self, devices: pd.Series | np.ndarray) -> np.ndarray:
        """Device codes: the position in KNOWN_DEVICES, OTHER_DEVICE for another value, NO_DEVICE if missing."""
        known = {device: i for i, device in enumerate(KNOWN_DEVICES)}
        return self._lookup(devices, known, NO_DEVICE, OTHER_DEVICE).astype(np.int64)

    def _apply_events(self, events: pd.DataFrame) -> int:
        codes, rows = self._rows(events["customer_id"].to_numpy())
        k = len(rows)
        ts = microseconds(events["ts"])
        kinds = self._lookup(events["event_type"], {"product_view": 0, "add_to_cart": 1, "purchase": 2}, -1, -1)
        view, cart, purchase = kinds == 0, kinds == 1, kinds == 2
        a = self._a
        a["views"][rows] += np.bincount(codes[view], minlength=k)
        a["cart_adds"][rows] += np.bincount(codes[cart], minlength=k)
        if "dwell_seconds" in events.columns:
            dwell = np.rint(events["dwell_seconds"].to_numpy(dtype=float, na_value=0.0) * DWELL_SCALE).astype(np.int64)
            total = np.zeros(k, dtype=np.int64)
            np.add.at(total, codes, dwell)
            a["dwell_ms"][rows] += total
        if self.categories and "product_id" in events.columns:
            category = np.full(len(events), -1, dtype=np.int64)
            where = self._product_index.get_indexer(events["product_id"].array)
            category[where >= 0] = self._product_category[where[where >= 0]]
            counted = view & (category >= 0)
            n_categories = len(self.categories)
            counts = np.bincount(codes[counted] * n_categories + category[counted], minlength=k * n_categories)
            self._views[rows] += counts.reshape(k, n_categories)
        self._first_last("first_seen_at", "last_seen_at", codes, rows, ts)
        # engagement: decay the old sum to the customer's newest time, add the new events decayed to it
        weights = self._lookup(events["event_type"], self.settings.engagement_weights, 0.0, 0.0).astype(float)
        latest = np.full(k, NAT, dtype=np.int64)
        np.maximum.at(latest, codes, ts)
        before = a["engagement_at"][rows]
        after = np.maximum(before, latest)
        half_life_us = self.settings.half_life_days * MICROSECONDS_PER_DAY
        added = np.bincount(codes, weights=weights * np.exp2(-(after[codes] - ts) / half_life_us), minlength=k)
        kept = np.where(before == NAT, 0.0,
                        a["engagement"][rows] * np.exp2(-(after - np.where(before == NAT, after, before))
                                                                             / half_life_us))
        a["engagement"][rows] = kept + added
        a["engagement_at"][rows] = after
        self._apply_sessions(events, codes, rows, ts, cart, purchase)
        return int(ts.max())

    def _apply_sessions(self, events: pd.DataFrame, codes: np.ndarray, rows: np.ndarray, ts: np.ndarray,
                        cart: np.ndarray, purchase: np.ndarray) -> None:
        """Fold the batch's sessions into the session statistics (a loop over the batch's distinct sessions)."""
        session_codes, session_ids = pd.factorize(events["session_id"].to_numpy(), sort=False)
        m = len(session_ids)
        event_ids = events["event_id"].to_numpy()
        tiebreak = event_ids if np.issubdtype(event_ids.dtype, np.number) else pd.factorize(event_ids, sort=True)[0]
        order = np.lexsort((tiebreak, ts, session_codes))
        sorted_sessions = session_codes[order]
        first = np.flatnonzero(np.r_[True, sorted_sessions[1:] != sorted_sessions[:-1]])
        earliest = order[first]  # each session's earliest event (ties: lowest event_id)
        start = ts[earliest]
        row = rows[codes[earliest]]
        device = np.full(m, NO_DEVICE, dtype=np.int64)
        device_ts = np.full(m, LATEST, dtype=np.int64)
        device_event = np.full(m, None, dtype=object)
        if "device" in events.columns:
            codes_device = self._device_codes(events["device"])
            has = codes_device[order] != NO_DEVICE
            present, position = np.unique(sorted_sessions[has], return_index=True)
            chosen = order[has][position]  # each session's earliest event with a device
            device[present] = codes_device[chosen]
            device_ts[present] = ts[chosen]
            device_event[present] = event_ids[chosen]
        has_cart = np.bincount(session_codes[cart], minlength=m) > 0
        has_purchase = np.bincount(session_codes[purchase], minlength=m) > 0

        sessions, starts, a = self._sessions, self._starts, self._a
        device_counts = [a[f] for f in _DEVICE_FIELDS]
        ids = session_ids.tolist()
        if session_ids.dtype == object:
            ids = [python_scalar(sid) for sid in ids]
        infos = [sessions.get(sid) for sid in ids]
        new = np.fromiter((info is None for info in infos), dtype=bool, count=m)
        # new sessions: counts vectorized, bookkeeping per session
        new_rows = row[new]
        np.add.at(a["sessions"], new_rows, 1)
        for d, counts in enumerate(device_counts):
            np.add.at(counts, new_rows[device[new] == d], 1)
        np.add.at(a["cart_sessions"], new_rows[has_cart[new]], 1)
        np.add.at(a["cart_sessions_purchased"], new_rows[(has_cart & has_purchase)[new]], 1)
        columns = (row.tolist(), start.tolist(), device.tolist(), device_ts.tolist(), device_event.tolist(),
                   has_cart.tolist(), has_purchase.tolist())
        for s in np.flatnonzero(new).tolist():
            sid = ids[s]
            r, t = columns[0][s], columns[1][s]
            sessions[sid] = [r, t, columns[2][s], columns[3][s], python_scalar(columns[4][s]), columns[5][s],
                             columns[6][s]]
            bisect.insort(starts[r], t)
            self._push(t, r, sid)
        # continuing sessions (across calls or across the cutoff)
        for s in np.flatnonzero(~new).tolist():
            sid, info = ids[s], infos[s]
            r, t = info[ROW], columns[1][s]
            if t < info[START]:  # its earliest event arrived late: the session starts earlier
                times = starts[r]
                i = bisect.bisect_left(times, info[START])
                if i < len(times) and times[i] == info[START]:
                    del times[i]
                bisect.insort(times, t)
                info[START] = t
                self._push(t, r, sid)
            d = columns[2][s]
            if d != NO_DEVICE:
                dts, dev = columns[3][s], python_scalar(columns[4][s])
                if dts < info[DEVICE_TS] or (dts == info[DEVICE_TS] and dev < info[DEVICE_EVENT]):
                    if d != info[DEVICE]:
                        if 0 <= info[DEVICE] < OTHER_DEVICE:
                            device_counts[info[DEVICE]][r] -= 1
                        if d < OTHER_DEVICE:
                            device_counts[d][r] += 1
                    info[DEVICE], info[DEVICE_TS], info[DEVICE_EVENT] = d, dts, dev
            was_cart, was_both = info[CART], info[CART] and info[PURCHASE]
            info[CART] = was_cart or columns[5][s]
            info[PURCHASE] = info[PURCHASE] or columns[6][s]
            a["cart_sessions"][r] += info[CART] and not was_cart
            a["cart_sessions_purchased"][r] += (info[CART] and info[PURCHASE]) and not was_both

    def _push(self, start: int, row: int, session_id: Any) -> None:
        heapq.heappush(self._heap, (start, self._seq, row, session_id))
        self._seq += 1

    def _prune(self) -> None:
        """Drop session starts and session bookkeeping older than the longest window before the newest time."""
        if self._newest == NAT:
            return
        horizon = self._newest - self._window_us
        heap, starts, sessions = self._heap, self._starts, self._sessions
        while heap and heap[0][0] < horizon:
            _, _, row, sid = heapq.heappop(heap)
            times = starts[row]
            if times and times[0] < horizon:
                del times[:bisect.bisect_left(times, horizon)]
            if sid is not None:
                info = sessions.get(sid)
                if info is not None and info[START] < horizon:
                    del sessions[sid]

    # ------------------------------------------------------------------------------------------
    # Features
    # ------------------------------------------------------------------------------------------
    def arrays(self, rows: np.ndarray) -> dict[str, Any]:
        """The kernel's input (`finalize_arrays`) for internal rows; a row >= len(self) is a blank customer."""
        rows = np.asarray(rows, dtype=np.intp)
        a, n = self._a, len(self._ids)
        out: dict[str, Any] = {}
        for column in self._columns:
            if column in _COUNT_COLUMNS:
                out[column] = a[column][rows].astype(float)
            elif column == "amount":
                out[column] = a["amount_cents"][rows] / AMOUNT_SCALE
            elif column == "dwell_seconds":
                out[column] = a["dwell_ms"][rows] / DWELL_SCALE
            elif column in _TIME_FIELDS or column in _FLOAT_FIELDS:
                out[column] = a[column][rows]
            elif column == "session_starts":
                starts = np.empty(len(rows), dtype=object)
                for i, row in enumerate(rows.tolist()):
                    starts[i] = np.array(self._starts[row], dtype=np.int64) if row < n else None
                out[column] = starts
            else:  # views_<category>
                out[column] = self._views[rows, self.categories.index(column.removeprefix("views_"))].astype(float)
        return out

    def _registration(self, index: pd.Index, as_of_us: int) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
        """Signup times (NAT unless registered before as_of), the mask of customers known from the master data,
        and each customer's position in the master arrays (one past the end when unknown)."""
        if self._customers is None:
            return None, None, np.empty(0, dtype=np.intp)
        unknown = len(self._master_position)
        positions = np.fromiter((self._master_position.get(c, unknown) for c in index.tolist()), dtype=np.intp,
                                count=len(index))
        registered = positions < unknown
        if self._master_signup is None:
            return None, registered, positions
        signup = np.append(self._master_signup, NAT)[positions]
        later = signup >= as_of_us  # before_cutoff: not registered yet
        return np.where(later, NAT, signup), registered & ~later, positions

    def features(self, customer_ids: Sequence, as_of: pd.Timestamp) -> pd.DataFrame:
        """Features at `as_of` (as `build_features` gives them; index customer_id) via the shared kernel.

        Unknown customers get what `finalize` gives a registered customer without activity.
        """
        index = pd.Index(customer_ids, name="customer_id")
        blank = len(self._ids)
        rows = np.fromiter((self._index.get(c, blank) for c in index.tolist()), dtype=np.intp, count=len(index))
        as_of_us = int(microseconds(pd.Timestamp(as_of)))
        signup, registered, positions = self._registration(index, as_of_us)
        values = finalize_arrays(self.arrays(rows), as_of_us, self.settings, signup)
        if self._customers is not None:
            for column, labels in self._master_demographics.items():
                values[column] = pd.array(np.where(registered, labels[positions], pd.NA), dtype="string")
        return pd.DataFrame(values, index=index)

    def feature_vector(self, customer_id: Any, as_of_us: int, columns: list[str]) -> np.ndarray | None:
        """The per-event fast path: float64 values of numeric feature `columns` at `as_of_us`; None if unknown.

        A scalar transcription of `finalize_arrays` for one customer (the kernel's numpy calls cost
        ~120 us on one row); tests hold it equal to `features`, and a feature it does not know is
        computed by the kernel itself.
        """
        row = self._index.get(customer_id)
        if row is None:
            return None
        values = self._scalar_features(row, int(as_of_us))
        try:
            return np.array([values[c] for c in columns], dtype=np.float64)
        except KeyError:
            signup = self._a["signup"][row]
            signup = NAT if signup >= as_of_us else signup
            kernel = finalize_arrays(self.arrays(np.array([row])), int(as_of_us), self.settings, np.array([signup]))
            return np.array([values[c] if c in values else kernel[c][0] for c in columns], dtype=np.float64)

    def _scalar_features(self, row: int, as_of: int) -> dict[str, float]:
        a, state = self._a, self._columns
        nan, day = math.nan, float(MICROSECONDS_PER_DAY)

        def elapsed(t: int) -> float:
            return nan if t == NAT else float(as_of - t) / day

        def ratio(x: float, y: float) -> float:
            return x / y if y > 0 else nan

        signup = int(a["signup"][row])
        if signup >= as_of:
            signup = NAT
        last_seen, first_seen = int(a["last_seen_at"][row]), int(a["first_seen_at"][row])
        last_seen = max(last_seen, signup)
        first_seen = first_seen if signup == NAT else signup
        orders, amount = float(a["orders"][row]), a["amount_cents"][row] / AMOUNT_SCALE
        out = {"recency_days": elapsed(last_seen), "frequency": orders, "monetary": float(amount),
               "avg_order_value": ratio(amount, orders),
               "days_since_last_purchase": elapsed(int(a["last_order_at"][row])),
               "tenure_days": elapsed(first_seen)}
        if "discounted_orders" in state:
            out["discount_share"] = ratio(float(a["discounted_orders"][row]), orders)
        if "sessions" in state:
            times = self._starts[row]
            for window in self.settings.session_windows_days:
                since = as_of - window * MICROSECONDS_PER_DAY
                out[f"sessions_{window}d"] = float(len(times) - bisect.bisect_left(times, since))
            sessions = float(a["sessions"][row])
            out["sessions_total"] = sessions
            if "dwell_seconds" in state:
                out["avg_session_duration"] = ratio(float(a["dwell_ms"][row] / DWELL_SCALE), sessions)
            out["views_per_session"] = ratio(float(a["views"][row]), sessions)
            out["cart_adds"] = float(a["cart_adds"][row])
            out["cart_abandonment_rate"] = 1 - ratio(float(a["cart_sessions_purchased"][row]),
                                                     float(a["cart_sessions"][row]))
            at = int(a["engagement_at"][row])
            decay = 0.0 if at == NAT else float(as_of - at) / day
            out["engagement_score"] = float(a["engagement"][row] * np.exp2(-decay / self.settings.half_life_days))
            for device in KNOWN_DEVICES:
                if f"sessions_{device}" in state:
                    out[f"share_{device}"] = ratio(float(a[f"sessions_{device}"][row]), sessions)
            views = self._views[row].tolist()
            total = 0.0
            for count in views:
                total += count
            for name, count in zip(self.categories, views):
                out[f"affinity_{name}"] = ratio(float(count), total)
        return out

    # ------------------------------------------------------------------------------------------
    # Per-customer profiles (a distributed engine keeps each customer's statistics in its own state store)
    # ------------------------------------------------------------------------------------------
    def profiles(self, customer_ids: Sequence | None = None) -> dict[Any, dict[str, Any]]:
        """Each customer's statistics as plain JSON-able values (default: every customer with state).

        `load_profiles` on an empty state with the same settings gives the same statistics back.
        """
        wanted = self._ids if customer_ids is None else [c for c in customer_ids if c in self._index]
        rows = {self._index[c]: c for c in wanted}
        by_row: dict[int, list[list[Any]]] = {}
        for sid, info in self._sessions.items():
            if info[ROW] in rows:
                by_row.setdefault(info[ROW], []).append([python_scalar(sid), *info[1:]])
        fields = (*_INT_FIELDS, *_TIME_FIELDS[:-1], *_FLOAT_FIELDS)  # not signup: it comes from the master data
        out = {}
        for row, customer in rows.items():
            values = {f: self._a[f][row].item() for f in fields}
            out[customer] = {"values": values, "views": self._views[row].tolist(), "starts": list(self._starts[row]),
                             "sessions": by_row.get(row, [])}
        return out

    def load_profiles(self, profiles: dict[Any, dict[str, Any]], newest: int | None = None) -> None:
        """Add customers from `profiles` (their statistics as `profiles` gave them), then prune to `newest`
        (microseconds; the newest time the whole stream has seen, when the caller knows it)."""
        ids = [c for c in profiles if c not in self._index]
        self._add_rows(ids)
        for customer in ids:
            row, profile = self._index[customer], profiles[customer]
            for field, value in profile["values"].items():
                self._a[field][row] = value
            if self.categories:
                self._views[row] = profile["views"]
            self._starts[row] = [int(t) for t in profile["starts"]]
            for start in self._starts[row]:
                self._push(start, row, None)
            for sid, *info in profile["sessions"]:
                self._sessions[sid] = [row, *info]
                self._push(int(info[0]), row, sid)
        if newest is not None:
            self._newest = max(self._newest, int(newest))
        self._prune()

    def reset(self) -> None:
        """Forget every customer (the settings, products and master data stay)."""
        self._ids, self._index, self._capacity, self._a = [], {}, 0, {}
        self._views = np.zeros((0, len(self.categories)), dtype=np.int64)
        self._grow(1024)
        self._starts, self._sessions, self._heap, self._seq, self._newest = [], {}, [], 0, NAT

    # ------------------------------------------------------------------------------------------
    # Durability
    # ------------------------------------------------------------------------------------------
    def checkpoint(self, path: Path) -> None:
        """Write the whole state to a SQLite file, atomically (a temporary file renamed over `path`)."""
        path = Path(path)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.writing")
        temporary.unlink(missing_ok=True)
        n = len(self._ids)
        fields = (*_INT_FIELDS, *_TIME_FIELDS, *_FLOAT_FIELDS)
        meta = {"version": CHECKPOINT_VERSION, "settings": asdict(self.settings), "columns": self._columns,
                "categories": self.categories, "newest": self._newest, "seq": self._seq, "customers": n,
                "amount_scale": AMOUNT_SCALE, "dwell_scale": DWELL_SCALE}
        connection = sqlite3.connect(temporary)
        try:
            with connection:
                connection.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
                connection.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
                names = ", ".join(f'"{f}" {"REAL" if f in _FLOAT_FIELDS else "INTEGER"}' for f in fields)
                connection.execute(f"CREATE TABLE customers (row INTEGER PRIMARY KEY, customer_id, {names}, "
                                   "views_by_category TEXT, session_starts TEXT)")
                columns = [self._a[f][:n].tolist() for f in fields]
                views = [json.dumps(v) for v in self._views[:n].tolist()]
                starts = [json.dumps(s) for s in self._starts]
                placeholders = ", ".join("?" * (len(fields) + 4))
                connection.executemany(f"INSERT INTO customers VALUES ({placeholders})",
                                       zip(range(n), self._ids, *columns, views, starts))
                connection.execute("CREATE TABLE sessions (position INTEGER PRIMARY KEY, session_id, row INTEGER, "
                                   "start INTEGER, device INTEGER, device_ts INTEGER, device_event, cart INTEGER, "
                                   "purchase INTEGER)")
                connection.executemany("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                       ((i, sid, *info) for i, (sid, info) in enumerate(self._sessions.items())))
                connection.execute("CREATE TABLE heap (position INTEGER PRIMARY KEY, start INTEGER, seq INTEGER, "
                                   "row INTEGER, session_id)")
                connection.executemany("INSERT INTO heap VALUES (?, ?, ?, ?, ?)",
                                       ((i, *entry) for i, entry in enumerate(self._heap)))
        finally:
            connection.close()
        os.replace(temporary, path)

    @classmethod
    def restore(cls, path: Path, settings: FeatureSettings, *, products: pd.DataFrame | None = None,
                customers: pd.DataFrame | None = None) -> StreamingState:
        """The state `checkpoint` wrote; it continues exactly as the original would."""
        connection = sqlite3.connect(Path(path))
        try:
            meta = {k: json.loads(v) for k, v in connection.execute("SELECT key, value FROM meta")}
            if meta["version"] != CHECKPOINT_VERSION:
                raise ValueError(f"checkpoint version {meta['version']} is not {CHECKPOINT_VERSION}")
            if meta["settings"] != json.loads(json.dumps(asdict(settings))):
                raise ValueError(f"checkpoint was written with feature settings {meta['settings']}, "
                                 f"not {asdict(settings)}")
            if (meta["amount_scale"], meta["dwell_scale"]) != (AMOUNT_SCALE, DWELL_SCALE):
                raise ValueError("checkpoint was written with other amount/dwell units")
            self = cls(settings, products=products, customers=customers, state_columns=meta["columns"])
            if self.categories != meta["categories"]:
                raise ValueError(f"checkpoint categories {meta['categories']} differ from the products' "
                                 f"{self.categories}")
            fields = (*_INT_FIELDS, *_TIME_FIELDS, *_FLOAT_FIELDS)
            records = connection.execute("SELECT * FROM customers ORDER BY row").fetchall()
            sessions = connection.execute("SELECT * FROM sessions ORDER BY position").fetchall()
            heap = connection.execute("SELECT * FROM heap ORDER BY position").fetchall()
        finally:
            connection.close()
        n = meta["customers"]
        ids = [r[1] for r in records]
        self._add_rows(ids)
        if records:
            table = list(zip(*records))
            for j, field in enumerate(fields):
                values = table[2 + j]
                if field in _FLOAT_FIELDS:
                    values = [math.nan if v is None else v for v in values]
                self._a[field][:n] = np.array(values, dtype=_dtype(field))
            if self.categories:
                self._views[:n] = np.array([json.loads(v) for v in table[2 + len(fields)]], dtype=np.int64)
            self._starts = [json.loads(s) for s in table[3 + len(fields)]]
        self._sessions = {sid: [row, start, device, device_ts, device_event, bool(cart), bool(purchase)]
                          for _, sid, row, start, device, device_ts, device_event, cart, purchase in sessions}
        self._heap = [tuple(entry[1:]) for entry in heap]
        self._seq, self._newest = meta["seq"], meta["newest"]
        return self
