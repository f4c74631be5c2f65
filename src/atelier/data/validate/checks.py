"""The checks of the data contract: column-level ones that stop validation, and row-level ones that send a row
to quarantine (types, missing values, bounds, timestamps, duplicate keys through a pandera schema; unknown
customers and products, and sessions shared by several customers, across tables with plain pandas)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from atelier.core.contract import DataContractError, Table
from atelier.data.validate import reasons
from atelier.data.validate.issues import CROSS_TABLE_ORDER, RANK, Issues
from atelier.data.validate.parse import PARSERS, clean_text, integer_ids, string_ids
from atelier.data.validate.reasons import QUARANTINE_COLUMNS, SEE_README


@dataclass
class CheckedTable:
    """A table after its own checks, before the cross-table ones."""

    table: Table
    raw: pd.DataFrame
    typed: pd.DataFrame
    issues: Issues
    source: str


def check_columns(table: Table, raw: pd.DataFrame, source: str) -> None:
    """Stop on a missing required column, a reserved column name, or an empty orders table."""
    for name in table.required_columns:
        if name in raw.columns:
            continue
        column = table.column(name)
        near = [c for c in raw.columns if str(c).strip().lower() == name]
        hint = f" (found {near[0]!r}: rename it to {name!r})" if near else ""
        if len(raw.columns) == 1 and any(separator in str(raw.columns[0]) for separator in ";\t|"):
            hint = f" (the header reads {str(raw.columns[0])!r}: the file seems not to be comma-separated)"
        raise DataContractError(
            f"{source}: required column {name!r} is missing{hint}. Add it ({column.description}) "
            f"or rename your column to {name!r}. {SEE_README}"
        )
    for name in QUARANTINE_COLUMNS:
        if name in raw.columns:
            raise DataContractError(
                f"{source}: column {name!r} is reserved for the quarantine table. Rename it "
                f"(e.g. to 'input_{name}'). {SEE_README}"
            )
    if table.required and len(raw) == 0:
        raise DataContractError(
            f"{source}: the {table.name} table has no rows. Atelier needs at least one row "
            f"({table.row} per row); check that the file was exported completely. {SEE_README}"
        )


def type_table(
    table: Table, raw: pd.DataFrame, kinds: dict[str, str], max_bad_value_share: float, source: str, issues: Issues
) -> pd.DataFrame:
    """Type the contract columns of `raw` (extras kept as read); unparseable values become issues.

    A column with more than `max_bad_value_share` of its non-empty values unparseable is the wrong
    type: a DataContractError, not a quarantine.
    """
    typed = raw.copy(deep=False)
    for index, column in enumerate(table.columns):
        if column.name not in raw.columns:
            continue
        values = raw[column.name]
        if column.kind == "id":
            # Every id column is named after its entity (see parse.ID_ENTITIES).
            typed[column.name] = integer_ids(values) if kinds[column.name] == "int64" else string_ids(values)
            continue
        if column.kind == "text":
            typed[column.name] = clean_text(values)
            continue
        parsed, bad = PARSERS[column.kind](values)
        typed[column.name] = parsed
        n_bad = int(bad.sum())
        if n_bad == 0:
            continue
        n_present = int(values.notna().sum())
        share = n_bad / max(n_present, 1)
        original = values[bad].astype("string")
        expected = reasons.KIND_EXPECTED[column.kind]
        if share > max_bad_value_share:
            raise DataContractError(
                f"{source}: column {column.name!r} looks like the wrong type: {n_bad:,} of "
                f"{n_present:,} non-empty values ({share:.0%}) are not {expected}, "
                f"e.g. {reasons.examples(original)}. Expected {expected} "
                f"({column.description}). Fix the values (or the export's format), or rename the "
                f"column if it holds something else. {SEE_README}"
            )
        text = f"{column.name} {reasons.KIND_UNPARSEABLE[column.kind]}: '" + original + "'"
        issues.add(np.flatnonzero(bad), text, reasons.unparseable_class(column.name), index * 10 + RANK["unparseable"])
    return typed


def schema(
    table: Table, present: list[str], valid_from: pd.Timestamp, valid_until: pd.Timestamp, future: bool
) -> tuple[pa.DataFrameSchema, dict[tuple[str, str], tuple[str, str, int]]]:
    """The pandera schema for `table`'s present contract columns, and a map from each failure
    (column, check) to (reason text, reason class, order)."""
    columns: dict[str, pa.Column] = {}
    meaning: dict[tuple[str, str], tuple[str, str, int]] = {}
    for index, column in enumerate(table.columns):
        if column.name not in present:
            continue
        checks: list[pa.Check] = []
        if column.minimum is not None:
            text = reasons.bound_text(column)
            check = pa.Check.ge if column.minimum_inclusive else pa.Check.gt
            checks.append(check(column.minimum, error=text))
            meaning[(column.name, text)] = (text, text, index * 10 + RANK["bound"])
        if column.kind == "timestamp":
            early = f"{column.name} is before valid_from {reasons.format_time(valid_from)}"
            if future:
                late = f"{column.name} is after {reasons.format_time(valid_until)} (in the future)"
                late_class = reasons.IN_THE_FUTURE
            else:
                late = f"{column.name} is after valid_until {reasons.format_time(valid_until)}"
                late_class = reasons.AFTER_VALID_UNTIL
            checks += [pa.Check.ge(valid_from, error=early), pa.Check.le(valid_until, error=late)]
            meaning[(column.name, early)] = (early, reasons.BEFORE_VALID_FROM, index * 10 + RANK["time"])
            meaning[(column.name, late)] = (late, late_class, index * 10 + RANK["time"])
        unique = column.name == table.key
        if unique:
            text = f"duplicate {column.name} (first occurrence kept)"
            meaning[(column.name, "field_uniqueness")] = (
                text, reasons.duplicate_class(column.name), index * 10 + RANK["duplicate"])
        missing = reasons.missing_text(column.name)
        meaning[(column.name, "not_nullable")] = (missing, missing, index * 10 + RANK["missing"])
        columns[column.name] = pa.Column(
            nullable=column.nullable, checks=checks, unique=unique, report_duplicates="exclude_first"
        )
    return pa.DataFrameSchema(columns, strict=False, name=table.name), meaning


def schema_issues(
    table: Table, typed: pd.DataFrame, issues: Issues, table_schema: pa.DataFrameSchema,
    meaning: dict[tuple[str, str], tuple[str, str, int]],
) -> None:
    """Run the pandera schema lazily and turn its failure cases into row issues."""
    try:
        table_schema.validate(typed, lazy=True, inplace=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
    else:
        return
    for (column, check), group in cases.groupby(["column", "check"], sort=False):
        if (column, check) not in meaning or group["index"].isna().any():
            raise RuntimeError(f"unexpected pandera failure on {table.name}.{column}: {check}\n{group.head()}")
        text, reason_class, order = meaning[(column, check)]
        positions = group["index"].to_numpy(dtype="int64")
        if check == "not_nullable":  # an unparseable value is typed as missing: it is reported once, as unparseable
            positions = positions[~issues.mask(reasons.unparseable_class(column))[positions]]
        issues.add(positions, text, reason_class, order)


def cross_table_issues(checked: dict[str, CheckedTable]) -> None:
    """Unknown customers/products and sessions shared by several customers.

    Quarantined customers and products are excluded from the reference sets first, so an order of
    a quarantined customer is itself quarantined as "unknown customer_id (not in customers)".
    """
    reference: dict[str, pd.Series] = {}
    for name, key in (("customers", "customer_id"), ("products", "product_id")):
        if name in checked:
            item = checked[name]
            reference[key] = item.typed[key][~item.issues.mask()].dropna()
    for name in ("orders", "events"):
        if name not in checked:
            continue
        item = checked[name]
        for offset, (key, table_name) in enumerate((("customer_id", "customers"), ("product_id", "products"))):
            if key not in reference or key not in item.typed.columns:
                continue
            values = item.typed[key]
            unknown = values.notna() & ~values.isin(reference[key])
            item.issues.add(
                np.flatnonzero(unknown.to_numpy(dtype=bool)),
                f"unknown {key} (not in {table_name})",
                reasons.unknown_class(key),
                CROSS_TABLE_ORDER + offset,
            )
    if "events" in checked:
        item = checked["events"]
        pairs = item.typed[["session_id", "customer_id"]]
        pairs = pairs[pairs.notna().all(axis=1)].drop_duplicates()
        shared_sessions = pairs.loc[pairs["session_id"].duplicated(keep=False), "session_id"]
        if len(shared_sessions):
            shared = item.typed["session_id"].isin(shared_sessions.unique())
            item.issues.add(
                np.flatnonzero(shared.to_numpy(dtype=bool)),
                reasons.SHARED_SESSION,
                reasons.SHARED_SESSION,
                CROSS_TABLE_ORDER + 2,
            )
