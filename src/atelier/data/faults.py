"""The catalog of row faults that validation must quarantine, the function that injects them into valid tables,
and the scorecard of what the quarantine caught.

One catalog serves both demonstrations: notebook 01 breaks the orders in memory to show quarantine at
work, and notebook 07 breaks every table, writes it as CSV like a user's export and counts what the
`validate` stage's code catches (metrics/robustness.json `data_checks`). A fault is caught when its
row lands in quarantine with one of the fault's reason classes (the quarantine's `reason_classes`
column, so nothing is read out of reason text).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from atelier.core.contract import TABLES
from atelier.data.validate import reasons
from atelier.data.validate.parse import to_naive_utc
from atelier.data.validate.quality import class_counts
from atelier.data.validate.tables import ValidationResult, ValidationSettings, validate_tables

#: How a fault breaks its rows.
KINDS = ("missing", "negative", "duplicate", "future", "before_valid_from", "unknown_customer", "unparseable")


@dataclass(frozen=True)
class Fault:
    """One way to break a row: where (table, column), how (`kind`, one of KINDS), the contract check that must
    catch it, and the quarantine reason classes that count as caught."""

    table: str
    problem: str
    column: str
    kind: str
    check: str
    caught_as: tuple[str, ...]


FAULTS: tuple[Fault, ...] = (
    Fault("orders", "missing customer_id", "customer_id", "missing", "required value (not null)",
          (reasons.missing_text("customer_id"),)),
    Fault("orders", "negative amount", "amount", "negative", "amount >= 0", ("amount is negative",)),
    Fault("orders", "duplicate order_id", "order_id", "duplicate", "unique order_id (first kept)",
          (reasons.duplicate_class("order_id"),)),
    Fault("orders", "timestamp in the future", "ordered_at", "future", "ordered_at <= valid_until",
          (reasons.IN_THE_FUTURE, reasons.AFTER_VALID_UNTIL)),
    Fault("orders", "timestamp before valid_from", "ordered_at", "before_valid_from", "ordered_at >= valid_from",
          (reasons.BEFORE_VALID_FROM,)),
    Fault("orders", "unknown customer", "customer_id", "unknown_customer", "customer_id in customers",
          (reasons.unknown_class("customer_id"),)),
    Fault("orders", "unparseable amount", "amount", "unparseable", "amount parses as a number",
          (reasons.unparseable_class("amount"),)),
    Fault("events", "missing event_id", "event_id", "missing", "required value (not null)",
          (reasons.missing_text("event_id"),)),
    Fault("events", "duplicate event_id", "event_id", "duplicate", "unique event_id (first kept)",
          (reasons.duplicate_class("event_id"),)),
    Fault("events", "missing event_type", "event_type", "missing", "required value (not null)",
          (reasons.missing_text("event_type"),)),
    Fault("events", "negative dwell_seconds", "dwell_seconds", "negative", "dwell_seconds >= 0",
          ("dwell_seconds is negative",)),
    Fault("events", "unknown customer", "customer_id", "unknown_customer", "customer_id in customers",
          (reasons.unknown_class("customer_id"),)),
)
UNPARSEABLE_AMOUNTS = ("n/a", "12,50", "€49.90", "forty-nine")
MANIFEST_COLUMNS = ["problem", "table", "column", "rows_injected", "expected_catcher", "caught_as", "positions"]
SCORECARD_COLUMNS = ["table", "problem", "injected", "caught", "missed", "caught_by", "counted_as", "also_quarantined"]
UNTOUCHED = "none (untouched rows)"


def check_count(per_problem: Any) -> None:
    """Raise ValueError unless `per_problem` is a positive integer."""
    if isinstance(per_problem, bool) or not isinstance(per_problem, (int, np.integer)) or per_problem < 1:
        raise ValueError(f"per_problem must be a positive integer, got {per_problem!r}")


def draw_disjoint(rng: np.random.Generator, pool: np.ndarray, sizes: list[int], table: str) -> list[np.ndarray]:
    """Disjoint random subsets of `pool` with the given sizes."""
    if len(pool) < sum(sizes):
        raise ValueError(
            f"{table}: {len(pool):,} rows are available but the demo needs {sum(sizes):,}; lower per_problem")
    return np.split(rng.choice(pool, sum(sizes), replace=False), np.cumsum(sizes)[:-1])


def new_customer_ids(tables: dict[str, pd.DataFrame], count: int, offset: int) -> list[Any]:
    """`count` customer ids found in no table (integers when the ids are integers)."""
    columns = [t["customer_id"] for t in tables.values() if "customer_id" in t.columns and len(t)]
    if all(pd.api.types.is_integer_dtype(c.dtype) for c in columns):
        start = max(int(c.max()) for c in columns) + 1 + offset
        return list(range(start, start + count))
    return [f"unknown-customer-{offset + k}" for k in range(count)]


def applicable(frame: pd.DataFrame, table: str, tables: dict[str, pd.DataFrame]) -> list[Fault]:
    """The catalog's faults for `table` that this data can show: the column exists, and an unknown customer needs
    a customers table to be unknown to."""
    return [fault for fault in FAULTS if fault.table == table and fault.column in frame.columns
            and (fault.kind != "unknown_customer" or "customers" in tables)]


def inject(
    tables: dict[str, pd.DataFrame], seed: int, per_problem: int, *,
    valid_from: pd.Timestamp, valid_until: pd.Timestamp | None = None,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """A corrupted copy of valid `tables` and its manifest (one row per fault of `FAULTS` the tables can show).

    `valid_from` and `valid_until` (None: now) are validation's bounds: the out-of-range timestamps
    fall outside them.

    Each fault hits `per_problem` rows of its own (seeded, disjoint); row order is kept, so a
    manifest position is the row's position in its table (and CSV source_row - 1). Event faults
    need events, unknown customers need customers, optional columns need the column. A duplicate
    copies the id of an earlier, untouched row. Each unknown-customer event is in a session of its
    own, which it drags into quarantine ("session_id shared by several customers").
    """
    if not isinstance(tables, dict) or not isinstance(tables.get("orders"), pd.DataFrame):
        raise ValueError("tables must be a dict of DataFrames with at least 'orders' (as validate.read_tables returns)")
    check_count(per_problem)
    rng = np.random.default_rng(seed)
    now = to_naive_utc(pd.Timestamp.now(tz="UTC"))
    future = (now if valid_until is None else max(now, to_naive_utc(valid_until))).ceil("D")
    corrupted = {name: frame.reset_index(drop=True).copy() for name, frame in tables.items()}
    manifest = []
    for name in dict.fromkeys(fault.table for fault in FAULTS):
        if name not in corrupted:
            continue
        frame, n = corrupted[name], per_problem
        missing = [c for c in TABLES[name].required_columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{name}: required columns {missing} are missing; inject corrupts valid tables only")
        faults = applicable(frame, name, tables)
        pool, chosen = np.arange(len(frame)), {}
        unknown = [fault.problem for fault in faults if fault.kind == "unknown_customer"]
        if name == "events" and unknown:
            # One event per session, and no other fault in those sessions, so the cascade is its own.
            first = frame["session_id"].iloc[rng.permutation(len(frame))].dropna().drop_duplicates().iloc[:n]
            if len(first) < n:
                raise ValueError(
                    f"events: {len(first):,} sessions are too few for {n} unknown customers; lower per_problem")
            chosen[unknown[0]] = first.index.to_numpy()
            pool = np.flatnonzero(~frame["session_id"].isin(first).to_numpy())
        drawn = [fault.problem for fault in faults if fault.problem not in chosen]
        *subsets, earlier = draw_disjoint(rng, pool, [n] * (len(drawn) + 1), name)  # earlier: the rows duplicates copy
        chosen |= dict(zip(drawn, subsets))
        for fault in faults:
            rows, values, as_object = chosen[fault.problem], None, True
            if fault.kind == "negative":
                values, as_object = -np.round(rng.uniform(0.01, 100.0, n), 2), False
            elif fault.kind == "duplicate":
                first_rows, rows = np.sort(np.stack([rows, earlier]), axis=0)  # the later row copies the earlier id
                values, as_object = frame[fault.column].to_numpy()[first_rows], False
            elif fault.kind == "future":
                values, as_object = future + pd.to_timedelta(rng.integers(1, 365 * 86_400, n), unit="s"), False
            elif fault.kind == "before_valid_from":
                earliest = to_naive_utc(valid_from)
                values, as_object = earliest - pd.to_timedelta(rng.integers(86_400, 3650 * 86_400, n), unit="s"), False
            elif fault.kind == "unknown_customer":
                values = new_customer_ids(tables, n, offset=n * len(manifest))
            elif fault.kind == "unparseable":
                values = rng.choice(UNPARSEABLE_AMOUNTS, n)
            if as_object:  # None in an integer column, text in a number column: object keeps the rest as they were
                frame[fault.column] = frame[fault.column].astype(object)
            frame.iloc[rows, frame.columns.get_loc(fault.column)] = values
            manifest.append((fault.problem, name, fault.column, n, f"validate: {fault.check}", fault.caught_as,
                             tuple(sorted(rows.tolist()))))
    return corrupted, pd.DataFrame(manifest, columns=MANIFEST_COLUMNS)


def scorecard(
    corrupted: dict[str, pd.DataFrame], manifest: pd.DataFrame, quarantine: dict[str, pd.DataFrame]
) -> pd.DataFrame:
    """Per fault of `manifest`, what validation's `quarantine` (of the `corrupted` tables) did with its rows.

    Columns: table, problem, injected, caught (injected rows quarantined with one of the fault's
    reason classes), missed, caught_by, counted_as (every reason class the injected rows got),
    also_quarantined (untouched rows quarantined because of them: the rest of a session that now
    has two customers). The last row of each table is the control: `injected` counts its untouched
    rows and `caught` those quarantined without an injected cause (false alarms; should be 0).
    """
    out = []
    for name in (t for t in TABLES if t in corrupted):
        frame, held = corrupted[name], quarantine[name]
        classes = pd.Series(list(held["reason_classes"]), index=held["source_row"].to_numpy() - 1, dtype=object)
        classes = classes.reindex(pd.RangeIndex(len(frame)))
        quarantined, explained = classes.notna().to_numpy(), np.zeros(len(frame), dtype=bool)
        faults = manifest[manifest["table"] == name]
        for positions in faults["positions"]:
            explained[list(positions)] = True
        for fault in faults.itertuples(index=False):
            found = classes.iloc[list(fault.positions)]
            caught = sum(_has_any(got, fault.caught_as) for got in found)
            collateral = np.zeros(len(frame), dtype=bool)
            if name == "events":  # validate quarantines every event of a session with two customers
                sessions = frame["session_id"].iloc[list(fault.positions)].dropna()
                collateral = quarantined & ~explained & frame["session_id"].isin(sessions).to_numpy()
                explained |= collateral
            out.append((name, fault.problem, fault.rows_injected, caught, fault.rows_injected - caught,
                        fault.expected_catcher if caught else "", "; ".join(class_counts(found).index),
                        int(collateral.sum())))
        false_alarms = quarantined & ~explained
        out.append((name, UNTOUCHED, len(frame) - int(faults["rows_injected"].sum()), int(false_alarms.sum()),
                    pd.NA, "", "; ".join(class_counts(classes[false_alarms]).index), 0))
    return pd.DataFrame(out, columns=SCORECARD_COLUMNS).astype({"missed": "Int64"})


def _has_any(got: Any, expected: tuple[str, ...]) -> bool:
    """Whether a row's reason classes (a list, or missing when the row was not quarantined) hold one expected."""
    return isinstance(got, (list, tuple, np.ndarray)) and any(value in expected for value in got)


def demonstrate(
    tables: dict[str, pd.DataFrame], settings: ValidationSettings, *, seed: int, per_problem: int
) -> tuple[pd.DataFrame, ValidationResult]:
    """Break the orders of valid `tables` in every way the catalog knows, validate them in memory with the
    stage's code and bounds, and score what the quarantine caught (`scorecard`); nothing is written.

    The customers and products come along untouched (an order's customer must exist, or be made
    unknown on purpose); events are left out, so every quarantined row is an injected one (notebook
    05 breaks the events too, where a stranger's event drags its whole session into quarantine).
    """
    given = {name: tables[name] for name in ("orders", "customers", "products") if name in tables}
    corrupted, manifest = inject(given, seed, per_problem, valid_from=settings.valid_from,
                                 valid_until=settings.valid_until)
    result = validate_tables(corrupted, valid_from=settings.valid_from, valid_until=settings.valid_until,
                             max_bad_value_share=settings.max_bad_value_share)
    return scorecard(corrupted, manifest, result.quarantine), result


def scorecard_totals(scorecard_frame: pd.DataFrame) -> dict[str, int]:
    """The scorecard's totals: faults, rows injected, missed, untouched rows, false alarms (untouched rows
    quarantined without a cause) and collateral rows (quarantined with the injected rows they belong to)."""
    injected = scorecard_frame["missed"].notna()
    return {
        "faults": int(injected.sum()),
        "untouched_rows": int(scorecard_frame.loc[~injected, "injected"].sum()),
        "injected_rows": int(scorecard_frame.loc[injected, "injected"].sum()),
        "missed": int(scorecard_frame.loc[injected, "missed"].sum()),
        "false_alarms": int(scorecard_frame.loc[~injected, "caught"].sum()),
        "collateral_rows": int(scorecard_frame["also_quarantined"].sum()),
    }
