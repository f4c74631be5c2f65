"""The whole validation of a set of tables: each table typed and checked, then the cross-table checks, then each
table split into clean rows and a quarantine, with the report metrics/validate.json holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from atelier.core.config import ParamsError
from atelier.core.contract import TABLES, DataContractError
from atelier.data.validate.checks import (
    CheckedTable,
    check_columns,
    cross_table_issues,
    schema,
    schema_issues,
    type_table,
)
from atelier.data.validate.issues import Issues
from atelier.data.validate.parse import id_types, to_naive_utc
from atelier.data.validate.reasons import SEE_README


@dataclass(frozen=True)
class ValidationSettings:
    """The bounds of validation (params.yaml `validate`): timestamps outside [valid_from, valid_until] are
    quarantined, and a column with more than `max_bad_value_share` unparseable values stops the stage."""

    valid_from: pd.Timestamp
    valid_until: pd.Timestamp
    max_bad_value_share: float

    @classmethod
    def from_params(cls, section: dict[str, Any], now: pd.Timestamp | None = None) -> ValidationSettings:
        """Settings from params.yaml's `validate` section; valid_until null means `now` (default: this moment)."""
        missing = [key for key in ("valid_from", "valid_until", "max_bad_value_share") if key not in section]
        if missing:
            raise ParamsError(f"params.yaml validate: missing {missing}; restore them from the project's params.yaml")
        until = section["valid_until"]
        try:
            valid_from = to_naive_utc(section["valid_from"])
            valid_until = to_naive_utc((now or pd.Timestamp.now(tz="UTC")) if until is None else until)
        except (TypeError, ValueError) as error:
            raise ParamsError(f"params.yaml validate.valid_from / valid_until must be dates: {error}") from None
        share = section["max_bad_value_share"]
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise ParamsError(f"params.yaml validate.max_bad_value_share must be a number in [0, 1], got {share!r}")
        return cls(valid_from, valid_until, float(share))


@dataclass
class ValidationResult:
    """Clean tables, quarantined rows and the JSON-friendly report of one validation."""

    tables: dict[str, pd.DataFrame]
    quarantine: dict[str, pd.DataFrame]
    report: dict[str, Any] = field(default_factory=dict)


def finish_table(item: CheckedTable) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Split one table into clean rows and quarantine rows, and its report entry.

    The quarantine keeps the bad rows' original values as text, `reason` (for people),
    `reason_classes` (a list: what metrics/validate.json counts the row under) and `source_row`
    (1-based row of the input).
    """
    problems, counts = item.issues.reasons()
    bad_positions = problems.index.to_numpy(dtype="int64")
    bad = np.zeros(len(item.typed), dtype=bool)
    bad[bad_positions] = True

    clean = item.typed[~bad].reset_index(drop=True)
    for column in item.table.columns:
        # Required id columns have no missing values left: plain int64 when the entity is integer.
        if column.kind == "id" and not column.nullable and column.name in clean.columns:
            if clean[column.name].dtype == "Int64":
                clean[column.name] = clean[column.name].astype("int64")

    quarantine = item.raw.iloc[bad_positions].astype("string").reset_index(drop=True)
    quarantine["reason"] = problems["reason"].to_numpy(dtype=object)
    quarantine["reason"] = quarantine["reason"].astype("string")
    quarantine["reason_classes"] = pd.Series(list(problems["reason_classes"]), dtype=object)
    quarantine["source_row"] = (bad_positions + 1).astype("int64")

    rows_in = len(item.raw)
    assert rows_in == len(clean) + len(quarantine), f"{item.table.name}: rows lost in validation"
    contract_names = {c.name for c in item.table.columns}
    entry = {
        "file": item.source,
        "rows_in": rows_in,
        "rows_valid": len(clean),
        "rows_quarantined": len(quarantine),
        "reasons": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        "extra_columns": [str(c) for c in item.raw.columns if c not in contract_names],
    }
    return clean, quarantine, entry


def value_counts(values: pd.Series) -> dict[str, int]:
    """Rows per value (missing as "(missing)"), largest first, ties by name."""
    counts = values.fillna("(missing)").value_counts()
    return {str(k): int(v) for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))}


def validate_tables(
    raw: dict[str, pd.DataFrame],
    *,
    valid_from: pd.Timestamp,
    valid_until: pd.Timestamp,
    max_bad_value_share: float,
    sources: dict[str, str] | None = None,
) -> ValidationResult:
    """Check raw tables against the contract; return clean tables, quarantined rows and a report.

    `sources` maps a table to its file name for messages (default "<table> table"). Raises
    DataContractError on column-level problems; row-level problems go to quarantine.
    """
    if "orders" not in raw:
        raise DataContractError(f"no orders table given: it is the one required table. {SEE_README}")
    unknown = sorted(set(raw) - set(TABLES))
    if unknown:
        raise ValueError(f"not contract tables: {unknown}; expected some of {list(TABLES)}")
    if not 0 <= max_bad_value_share <= 1:
        raise ValueError(f"max_bad_value_share must be between 0 and 1, got {max_bad_value_share}")
    valid_from, valid_until = to_naive_utc(valid_from), to_naive_utc(valid_until)
    if valid_until < valid_from:
        raise ValueError(f"valid_until {valid_until} is before valid_from {valid_from}")
    # valid_until close to now: a later timestamp is "in the future"; otherwise name the bound.
    future = valid_until >= to_naive_utc(pd.Timestamp.now(tz="UTC")) - pd.Timedelta(days=1)
    sources = {name: (sources or {}).get(name, f"{name} table") for name in raw}

    frames = {name: raw[name].reset_index(drop=True) for name in TABLES if name in raw}
    for name, frame in frames.items():
        check_columns(TABLES[name], frame, sources[name])
    kinds = id_types(frames)

    checked: dict[str, CheckedTable] = {}
    for name, frame in frames.items():
        table = TABLES[name]
        issues = Issues(len(frame))
        typed = type_table(table, frame, kinds, max_bad_value_share, sources[name], issues)
        present = [c.name for c in table.columns if c.name in frame.columns]
        table_schema, meaning = schema(table, present, valid_from, valid_until, future)
        schema_issues(table, typed, issues, table_schema, meaning)
        checked[name] = CheckedTable(table, frame, typed, issues, sources[name])
    cross_table_issues(checked)

    tables: dict[str, pd.DataFrame] = {}
    quarantine: dict[str, pd.DataFrame] = {}
    entries: dict[str, dict[str, Any]] = {}
    for name, item in checked.items():
        tables[name], quarantine[name], entries[name] = finish_table(item)

    orders = tables["orders"]
    events = tables.get("events")
    report: dict[str, Any] = {
        "tables_present": list(checked),
        "tables_missing": [name for name in TABLES if name not in checked],
        "not_read": [],
        "tables": entries,
        "id_types": kinds,
        "event_types": value_counts(events["event_type"]) if events is not None else {},
        "devices": value_counts(events["device"]) if events is not None and "device" in events.columns else {},
        "ordered_at_range": (
            [orders["ordered_at"].min().isoformat(), orders["ordered_at"].max().isoformat()] if len(orders) else None
        ),
    }
    return ValidationResult(tables=tables, quarantine=quarantine, report=report)
