"""Validate input tables against the data contract: type them, quarantine bad rows, report.

The stage reads the folder named by `data.path` (orders required; events, customers, products
optional), checks every table against `atelier.contract`, and splits each one into

* a clean table (contract columns typed, extra columns kept as read) in ``data/validated/``,
* a quarantine table (the bad rows' original values as text, plus ``reason`` and ``source_row``)
  in ``data/quarantine/``,
* a JSON report in ``metrics/validate.json``.

Two levels of problems:

* **Column-level** problems stop the stage with a `DataContractError` naming the file, the column
  and the fix: missing ``orders``, a missing required column, a column that looks like the wrong
  type (more than ``validate.max_bad_value_share`` of its non-empty values fail to parse), an
  empty ``orders`` table.
* **Row-level** problems send the row to quarantine with a human reason (several problems are
  joined with "; "): a missing value, an unparseable value, a value below its minimum, a duplicate
  key (first occurrence kept), a timestamp outside [valid_from, valid_until], an unknown customer
  or product, a session shared by several customers. Nothing is silently dropped.

Per-table column checks run through a pandera schema; cross-table checks are plain pandas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow.lib as pa_lib
from pandera.errors import SchemaErrors

from atelier.core import paths
from atelier.core.config import ParamsError, get
from atelier.core.contract import FILE_SUFFIXES, TABLES, Column, DataContractError, Table
from atelier.core.io import write_json, write_parquet

SEE_README = "See README, 'Data contract'."
REASON_SEP = "; "
#: Folder the simulator writes to; the only folder allowed with data.source=simulate.
#: Columns added to quarantine tables (an input column with one of these names is refused).
QUARANTINE_COLUMNS = ("reason", "source_row")

#: Entities whose id columns share one type across tables, so joins work.
ID_ENTITIES: dict[str, tuple[tuple[str, str], ...]] = {
    "customer_id": (("orders", "customer_id"), ("events", "customer_id"), ("customers", "customer_id")),
    "product_id": (("orders", "product_id"), ("events", "product_id"), ("products", "product_id")),
    "session_id": (("orders", "session_id"), ("events", "session_id")),
    "order_id": (("orders", "order_id"),),
    "event_id": (("events", "event_id"),),
}
#: A text id that can be held as int64 without changing it ("0012" or "+5" cannot: they stay text).
_INT_TEXT = r"-?(?:0|[1-9][0-9]{0,17})"
_INT64_MAX = np.iinfo(np.int64).max
_KIND_EXPECTED = {
    "number": "a number (e.g. 49.90)",
    "integer": "a whole number (e.g. 3)",
    "timestamp": "an ISO 8601 timestamp (e.g. 2025-03-01T14:30:00Z)",
}
_KIND_UNPARSEABLE = {
    "number": "is not a number",
    "integer": "is not a whole number",
    "timestamp": "is not an ISO 8601 timestamp",
}
# Order of a row's reasons: by contract column, then by this rank; cross-table checks come last.
_RANK = {"unparseable": 0, "missing": 1, "bound": 2, "time": 3, "duplicate": 4}
_CROSS_ORDER = 10_000


@dataclass
class ValidationResult:
    """Clean tables, quarantined rows and the JSON-friendly report of one validation."""

    tables: dict[str, pd.DataFrame]
    quarantine: dict[str, pd.DataFrame]
    report: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Finding and reading files


def find_table_files(folder: Path) -> dict[str, Path]:
    """The contract tables present in `folder`, as {table: path} (orders.parquet or orders.csv...).

    Raises DataContractError if the folder does not exist, if `orders` is missing, or if a table
    exists in both formats.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataContractError(
            f"data folder '{folder}' does not exist. Set data.path in params.yaml to the folder "
            f"holding orders.csv or orders.parquet. {SEE_README}"
        )
    found: dict[str, Path] = {}
    for name in TABLES:
        candidates = [folder / f"{name}{suffix}" for suffix in FILE_SUFFIXES]
        present = [path for path in candidates if path.exists()]
        if len(present) > 1:
            names = " and ".join(path.name for path in present)
            raise DataContractError(
                f"{folder}: both {names} exist, so Atelier cannot tell which '{name}' table to "
                f"read. Keep one of them (move or delete the other). {SEE_README}"
            )
        if present:
            found[name] = present[0]
    required = [name for name, table in TABLES.items() if table.required]
    for name in required:
        if name not in found:
            others = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
            listing = ", ".join(others) if others else "nothing"
            raise DataContractError(
                f"{folder}: no {name}.csv or {name}.parquet found (found: {listing}). '{name}' is "
                f"the one required table ({TABLES[name].row} per row). Add it, or set data.path "
                f"in params.yaml to the folder that holds it. {SEE_README}"
            )
    return found


def not_read_files(folder: Path, files: dict[str, Path]) -> list[str]:
    """Names of the entries in `folder` that are not contract tables (hidden files skipped)."""
    used = {Path(path).name for path in files.values()}
    return sorted(p.name for p in Path(folder).iterdir() if not p.name.startswith(".") and p.name not in used)


_UNREADABLE_FIX = f"Check that it is a file you can read (permissions, not a folder) and try again. {SEE_README}"


def _one_line(error: BaseException, path: Path) -> str:
    """The first line of a reader's error, without the file name our message already starts with."""
    text = str(error).strip()
    text = text.splitlines()[0] if text else type(error).__name__
    text = text.removeprefix(f"Could not open Parquet input source '{path}': ")
    return text.replace(f": '{path}'", "").replace(f" '{path}'", "").rstrip(".")


def read_tables(folder: Path) -> dict[str, pd.DataFrame]:
    """Read the contract tables in `folder`: CSV with every column as text, Parquet with its types.

    CSV cells are read as strings (only an empty cell is missing; "NA" stays the text "NA") so a
    bad value can be quarantined with its original text.
    """
    frames: dict[str, pd.DataFrame] = {}
    for name, path in find_table_files(folder).items():
        if path.suffix == ".csv":
            try:
                # The pyarrow parser is ~5x faster than the C one and refuses ragged rows (the C
                # parser would silently turn an extra field into the index).
                frames[name] = pd.read_csv(
                    path, dtype=str, keep_default_na=False, na_values=[""], engine="pyarrow"
                )
            except pd.errors.EmptyDataError:
                raise DataContractError(
                    f"{path}: the file is empty (not even a header row). Write a header row with "
                    f"the column names, or remove the file. {SEE_README}"
                ) from None
            except pd.errors.ParserError as error:
                raise DataContractError(
                    f"{path}: could not be read as a comma-separated UTF-8 file ({_one_line(error, path)}). "
                    f"Export it as CSV (UTF-8, comma-separated, one header row, the same number of fields on "
                    f"every row) or as Parquet. {SEE_README}"
                ) from None
            except OSError as error:
                raise DataContractError(f"{path}: could not be opened ({_one_line(error, path)}). {_UNREADABLE_FIX}") from None
        elif path.is_file() and path.stat().st_size == 0:
            raise DataContractError(
                f"{path}: the file is empty (0 bytes), so there is no '{name}' table to read. Export it "
                f"again (the export may have failed or still be running), or remove the file. {SEE_README}"
            )
        else:
            try:
                frames[name] = pd.read_parquet(path)
            except OSError as error:  # includes pyarrow's ArrowIOError: permissions, a folder, a broken disk read
                raise DataContractError(f"{path}: could not be opened ({_one_line(error, path)}). {_UNREADABLE_FIX}") from None
            except (pa_lib.ArrowException, ValueError) as error:
                raise DataContractError(
                    f"{path}: could not be read as Parquet ({_one_line(error, path)}). It may be truncated, "
                    f"corrupt, still being written, or another format renamed to .parquet. Export it again as "
                    f"Parquet, or as CSV named {name}.csv. {SEE_README}"
                ) from None
    return frames


# --------------------------------------------------------------------------------------------
# Parsing columns (vectorized): each returns the typed column and a mask of unparseable values


def _clean_text(values: pd.Series) -> pd.Series:
    """Pandas "string" dtype, stripped, with empty strings as missing."""
    text = values.astype("string").str.strip()
    return text.mask(text == "")


def _parse_timestamp(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Naive UTC datetime64[us]; aware values are converted to UTC, naive ones taken as UTC."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        if getattr(values.dtype, "tz", None) is not None:
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        return values.astype("datetime64[us]"), np.zeros(len(values), dtype=bool)
    text = _clean_text(values)
    parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    parsed = parsed.dt.tz_localize(None).astype("datetime64[us]")
    bad = (text.notna() & parsed.isna()).to_numpy(dtype=bool)
    return parsed, bad


def _parse_number(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """float64; text that is not a number, NaN/inf spelled out, and infinities are unparseable."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        present = values.notna().to_numpy(dtype=bool)
        parsed = values.astype("float64")
    else:
        text = _clean_text(values)
        present = text.notna().to_numpy(dtype=bool)
        try:
            parsed = text.astype("float64")  # fast path: every value is a number
        except (ValueError, TypeError):
            parsed = pd.to_numeric(text, errors="coerce").astype("float64")
    array = parsed.to_numpy(dtype="float64", copy=True)
    finite = np.isfinite(array)
    bad = present & ~finite
    array[~finite] = np.nan
    return pd.Series(array, index=values.index, name=values.name), bad


def _parse_integer(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Int64 (nullable); numbers with a fractional part are unparseable."""
    number, bad = _parse_number(values)
    array = number.to_numpy(copy=True)
    present = ~np.isnan(array)
    whole = present & (np.floor(array) == array) & (np.abs(array) < 2.0**63)
    bad = bad | (present & ~whole)
    array[~whole] = 0
    parsed = pd.Series(pd.arrays.IntegerArray(array.astype("int64"), ~whole), index=values.index, name=values.name)
    return parsed, bad


def _integer_like(values: pd.Series) -> bool:
    """Whether an id column holds only integers (all-missing columns do not decide either way)."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return False
    if pd.api.types.is_integer_dtype(dtype):
        if pd.api.types.is_unsigned_integer_dtype(dtype) and len(values) and values.max() > _INT64_MAX:
            return False
        return True
    if pd.api.types.is_float_dtype(dtype):
        array = values.dropna().to_numpy(dtype="float64")
        return bool(np.all(np.isfinite(array) & (np.floor(array) == array) & (np.abs(array) < 2.0**53)))
    if pd.api.types.is_string_dtype(dtype) or dtype == object:
        text = _clean_text(values).dropna()
        return bool(text.str.fullmatch(_INT_TEXT).all())
    return False


def _int_ids(values: pd.Series) -> pd.Series:
    """An integer-like id column as Int64."""
    if pd.api.types.is_integer_dtype(values.dtype) or pd.api.types.is_float_dtype(values.dtype):
        return values.astype("Int64")
    return _clean_text(values).astype("Int64")


def _string_ids(values: pd.Series) -> pd.Series:
    """An id column as pandas "string": integers without ".0", text stripped, "" missing."""
    dtype = values.dtype
    if pd.api.types.is_integer_dtype(dtype):
        return values.astype("string")
    if pd.api.types.is_float_dtype(dtype):
        out = values.astype("string")
        array = values.to_numpy(dtype="float64")
        whole = np.isfinite(array) & (np.floor(array) == array) & (np.abs(array) < 2.0**53)
        if whole.any():
            out[whole] = values[whole].astype("Int64").astype("string")
        return out
    return _clean_text(values)


def id_types(raw: dict[str, pd.DataFrame]) -> dict[str, str]:
    """For each entity present: "int64" if its id is integer in every table that has it, else "string"."""
    kinds: dict[str, str] = {}
    for entity, places in ID_ENTITIES.items():
        columns = [raw[t][c] for t, c in places if t in raw and c in raw[t].columns]
        if columns:
            kinds[entity] = "int64" if all(_integer_like(col) for col in columns) else "string"
    return kinds


# --------------------------------------------------------------------------------------------
# Messages


def _fmt_time(value: pd.Timestamp) -> str:
    """A date if `value` is midnight, else date and time to the minute."""
    if value == value.normalize():
        return value.strftime("%Y-%m-%d")
    return value.strftime("%Y-%m-%d %H:%M")


def _bound_text(column: Column) -> str:
    """The quarantine reason for a value below `column.minimum` (also its reason class)."""
    if column.minimum == 0:
        return f"{column.name} is negative" if column.minimum_inclusive else f"{column.name} must be > 0"
    op = ">=" if column.minimum_inclusive else ">"
    return f"{column.name} must be {op} {column.minimum:g}"


def _examples(values: pd.Series, count: int = 3) -> str:
    return ", ".join(repr(str(v)) for v in pd.unique(values.to_numpy(dtype=object))[:count])


def _to_naive_utc(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp


# --------------------------------------------------------------------------------------------
# Row issues: (position, order, text, class) parts, joined into one reason per row at the end


class _Issues:
    """Row problems of one table, collected as vectorized parts."""

    def __init__(self, n_rows: int) -> None:
        self.n_rows = n_rows
        self.parts: list[pd.DataFrame] = []

    def add(self, positions: np.ndarray, text: Any, reason_class: str, order: int) -> None:
        positions = np.asarray(positions, dtype="int64")
        if len(positions) == 0:
            return
        if isinstance(text, pd.Series):
            text = text.to_numpy(dtype=object)
        self.parts.append(
            pd.DataFrame({"pos": positions, "order": order, "text": text, "cls": reason_class})
        )

    def mask(self) -> np.ndarray:
        bad = np.zeros(self.n_rows, dtype=bool)
        for part in self.parts:
            bad[part["pos"].to_numpy()] = True
        return bad

    def reasons(self) -> tuple[pd.Series, dict[str, int]]:
        """One reason per bad row (indexed by position, sorted) and the row count per class."""
        if not self.parts:
            return pd.Series([], index=pd.Index([], dtype="int64"), dtype="string"), {}
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
            reason.iloc[rows] = (reason.iloc[rows].to_numpy() + REASON_SEP) + texts[at].to_numpy()
        reason.index = pd.Index(positions[starts], dtype="int64")
        counts = issues.drop_duplicates(["pos", "cls"])["cls"].value_counts()
        return reason, {str(k): int(v) for k, v in counts.items()}


# --------------------------------------------------------------------------------------------
# One table: required columns, types, pandera column checks


@dataclass
class _Checked:
    """A table after its own checks, before the cross-table ones."""

    table: Table
    raw: pd.DataFrame
    typed: pd.DataFrame
    issues: _Issues
    source: str


def _check_columns(table: Table, raw: pd.DataFrame, source: str) -> None:
    """Stop on a missing required column, a reserved column name, or an empty orders table."""
    for name in table.required_columns:
        if name in raw.columns:
            continue
        column = table.column(name)
        near = [c for c in raw.columns if str(c).strip().lower() == name]
        hint = f" (found {near[0]!r}: rename it to {name!r})" if near else ""
        if len(raw.columns) == 1 and any(sep in str(raw.columns[0]) for sep in ";\t|"):
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


def _type_table(
    table: Table,
    raw: pd.DataFrame,
    kinds: dict[str, str],
    max_bad_value_share: float,
    source: str,
    issues: _Issues,
) -> pd.DataFrame:
    """Type the contract columns of `raw` (extras kept as read); unparseable values become issues."""
    typed = raw.copy(deep=False)
    for index, column in enumerate(table.columns):
        if column.name not in raw.columns:
            continue
        values = raw[column.name]
        if column.kind == "id":
            # Every id column is named after its entity (see ID_ENTITIES).
            typed[column.name] = _int_ids(values) if kinds[column.name] == "int64" else _string_ids(values)
            continue
        if column.kind == "text":
            typed[column.name] = _clean_text(values)
            continue
        parser = {"timestamp": _parse_timestamp, "number": _parse_number, "integer": _parse_integer}[column.kind]
        parsed, bad = parser(values)
        typed[column.name] = parsed
        n_bad = int(bad.sum())
        if n_bad == 0:
            continue
        n_present = int(values.notna().sum())
        share = n_bad / max(n_present, 1)
        original = values[bad].astype("string")
        if share > max_bad_value_share:
            raise DataContractError(
                f"{source}: column {column.name!r} looks like the wrong type: {n_bad:,} of "
                f"{n_present:,} non-empty values ({share:.0%}) are not {_KIND_EXPECTED[column.kind]}, "
                f"e.g. {_examples(original)}. Expected {_KIND_EXPECTED[column.kind]} "
                f"({column.description}). Fix the values (or the export's format), or rename the "
                f"column if it holds something else. {SEE_README}"
            )
        text = f"{column.name} {_KIND_UNPARSEABLE[column.kind]}: '" + original + "'"
        issues.add(np.flatnonzero(bad), text, f"unparseable {column.name}", index * 10 + _RANK["unparseable"])
    return typed


def _schema(
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
            text = _bound_text(column)
            check = pa.Check.ge if column.minimum_inclusive else pa.Check.gt
            checks.append(check(column.minimum, error=text))
            meaning[(column.name, text)] = (text, text, index * 10 + _RANK["bound"])
        if column.kind == "timestamp":
            early = f"{column.name} is before valid_from {_fmt_time(valid_from)}"
            if future:
                late, late_class = f"{column.name} is after {_fmt_time(valid_until)} (in the future)", "timestamp in the future"
            else:
                late, late_class = f"{column.name} is after valid_until {_fmt_time(valid_until)}", "timestamp after valid_until"
            checks += [pa.Check.ge(valid_from, error=early), pa.Check.le(valid_until, error=late)]
            meaning[(column.name, early)] = (early, "timestamp before valid_from", index * 10 + _RANK["time"])
            meaning[(column.name, late)] = (late, late_class, index * 10 + _RANK["time"])
        unique = column.name == table.key
        if unique:
            text = f"duplicate {column.name} (first occurrence kept)"
            meaning[(column.name, "field_uniqueness")] = (text, f"duplicate {column.name}", index * 10 + _RANK["duplicate"])
        meaning[(column.name, "not_nullable")] = (f"missing {column.name}", f"missing {column.name}", index * 10 + _RANK["missing"])
        columns[column.name] = pa.Column(
            nullable=column.nullable, checks=checks, unique=unique, report_duplicates="exclude_first"
        )
    return pa.DataFrameSchema(columns, strict=False, name=table.name), meaning


def _schema_issues(
    table: Table, typed: pd.DataFrame, issues: _Issues, schema: pa.DataFrameSchema,
    meaning: dict[tuple[str, str], tuple[str, str, int]],
) -> None:
    """Run the pandera schema lazily and turn its failure cases into row issues."""
    try:
        schema.validate(typed, lazy=True, inplace=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
    else:
        return
    unparseable = issues.mask()  # so far only unparseable values: their NaN is not "missing"
    for (column, check), group in cases.groupby(["column", "check"], sort=False):
        if (column, check) not in meaning or group["index"].isna().any():
            raise RuntimeError(f"unexpected pandera failure on {table.name}.{column}: {check}\n{group.head()}")
        text, reason_class, order = meaning[(column, check)]
        positions = group["index"].to_numpy(dtype="int64")
        if check == "not_nullable":
            positions = positions[~unparseable[positions]]
        issues.add(positions, text, reason_class, order)


# --------------------------------------------------------------------------------------------
# Cross-table checks (plain pandas)


def _cross_table_issues(checked: dict[str, _Checked]) -> None:
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
                f"unknown {key}",
                _CROSS_ORDER + offset,
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
                "session_id shared by several customers",
                "session_id shared by several customers",
                _CROSS_ORDER + 2,
            )


# --------------------------------------------------------------------------------------------
# The whole validation


def _finish_table(item: _Checked) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Split one table into clean rows and quarantine rows, and its report entry."""
    reason, counts = item.issues.reasons()
    bad_positions = reason.index.to_numpy(dtype="int64")
    bad = np.zeros(len(item.typed), dtype=bool)
    bad[bad_positions] = True

    clean = item.typed[~bad].reset_index(drop=True)
    for column in item.table.columns:
        # Required id columns have no missing values left: plain int64 when the entity is integer.
        if column.kind == "id" and not column.nullable and column.name in clean.columns:
            if clean[column.name].dtype == "Int64":
                clean[column.name] = clean[column.name].astype("int64")

    quarantine = item.raw.iloc[bad_positions].astype("string").reset_index(drop=True)
    quarantine["reason"] = reason.to_numpy(dtype=object)
    quarantine["reason"] = quarantine["reason"].astype("string")
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


def _value_counts(values: pd.Series) -> dict[str, int]:
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
    valid_from, valid_until = _to_naive_utc(valid_from), _to_naive_utc(valid_until)
    if valid_until < valid_from:
        raise ValueError(f"valid_until {valid_until} is before valid_from {valid_from}")
    # valid_until close to now: a later timestamp is "in the future"; otherwise name the bound.
    future = valid_until >= _to_naive_utc(pd.Timestamp.now(tz="UTC")) - pd.Timedelta(days=1)
    sources = {name: (sources or {}).get(name, f"{name} table") for name in raw}

    frames = {name: raw[name].reset_index(drop=True) for name in TABLES if name in raw}
    for name, frame in frames.items():
        _check_columns(TABLES[name], frame, sources[name])
    kinds = id_types(frames)

    checked: dict[str, _Checked] = {}
    for name, frame in frames.items():
        table = TABLES[name]
        issues = _Issues(len(frame))
        typed = _type_table(table, frame, kinds, max_bad_value_share, sources[name], issues)
        present = [c.name for c in table.columns if c.name in frame.columns]
        schema, meaning = _schema(table, present, valid_from, valid_until, future)
        _schema_issues(table, typed, issues, schema, meaning)
        checked[name] = _Checked(table, frame, typed, issues, sources[name])
    _cross_table_issues(checked)

    tables: dict[str, pd.DataFrame] = {}
    quarantine: dict[str, pd.DataFrame] = {}
    entries: dict[str, dict[str, Any]] = {}
    for name, item in checked.items():
        tables[name], quarantine[name], entries[name] = _finish_table(item)

    orders = tables["orders"]
    report: dict[str, Any] = {
        "tables_present": list(checked),
        "tables_missing": [name for name in TABLES if name not in checked],
        "not_read": [],
        "tables": entries,
        "id_types": kinds,
        "event_types": _value_counts(tables["events"]["event_type"]) if "events" in tables else {},
        "devices": (
            _value_counts(tables["events"]["device"])
            if "events" in tables and "device" in tables["events"].columns
            else {}
        ),
        "ordered_at_range": (
            [orders["ordered_at"].min().isoformat(), orders["ordered_at"].max().isoformat()]
            if len(orders)
            else None
        ),
    }
    return ValidationResult(tables=tables, quarantine=quarantine, report=report)


def quality_table(report: dict[str, Any]) -> pd.DataFrame:
    """The report's quarantine reasons as a tidy frame (table, reason, rows), largest first per table."""
    rows = [
        (name, reason, int(count))
        for name, entry in report.get("tables", {}).items()
        for reason, count in entry.get("reasons", {}).items()
    ]
    frame = pd.DataFrame(rows, columns=["table", "reason", "rows"])
    order = {name: i for i, name in enumerate(report.get("tables", {}))}
    frame = frame.sort_values(
        ["table", "rows", "reason"], key=lambda s: s.map(order) if s.name == "table" else s,
        ascending=[True, False, True], kind="stable",
    ).reset_index(drop=True)
    return frame.astype({"table": "string", "reason": "string", "rows": "int64"})


# --------------------------------------------------------------------------------------------
# A quarantine demonstration: known bad rows in a small copy of clean data, validated in memory

#: What `corrupt_sample` breaks: (table, problem, column it touches, a substring of the reason validate gives).
DEMO_PROBLEMS: tuple[tuple[str, str, str, str], ...] = (
    ("orders", "missing customer_id", "customer_id", "missing customer_id"),
    ("orders", "missing order_id", "order_id", "missing order_id"),
    ("orders", "negative amount", "amount", "amount is negative"),
    ("orders", "amount that is not a number", "amount", "amount is not a number"),
    ("orders", "duplicate order_id", "order_id", "duplicate order_id"),
    ("orders", "ordered_at after valid_until", "ordered_at", "ordered_at is after"),
    ("orders", "ordered_at before valid_from", "ordered_at", "ordered_at is before valid_from"),
    ("orders", "quantity of 0", "quantity", "quantity must be >= 1"),
    ("orders", "negative discount", "discount", "discount is negative"),
    ("orders", "unknown customer", "customer_id", "unknown customer_id"),
    ("customers", "missing customer_id", "customer_id", "missing customer_id"),
    ("customers", "duplicate customer_id", "customer_id", "duplicate customer_id"),
    ("customers", "signup_at after valid_until", "signup_at", "signup_at is after"),
)


def _with_missing(column: pd.Series) -> pd.Series:
    """The column in a dtype that can hold a missing value (int64 ids become Int64)."""
    return column.astype("Int64") if column.dtype == "int64" else column


def _unused_ids(used: pd.Series, count: int) -> list[Any]:
    if pd.api.types.is_integer_dtype(used.dtype):
        start = int(used.max()) + 1 if len(used) else 1
        return list(range(start, start + count))
    return [f"not-a-customer-{k}" for k in range(count)]


def corrupt_sample(
    tables: dict[str, pd.DataFrame], *, seed: int, orders: int, per_problem: int,
    valid_from: Any, valid_until: Any = None,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """A seeded small copy of validated `tables` with `per_problem` known bad rows per problem, and its manifest.

    The copy holds `orders` random orders and, when a customers table is given, their customers
    plus a few others (the rows the customer problems break, so no order loses its customer).
    Each problem of `DEMO_PROBLEMS` whose column exists hits rows of its own; a duplicate copies
    the id of an earlier, untouched row. `valid_until` None means now, as in the stage. Manifest
    columns: table, problem, expected_reason (a substring of the reason validate should give),
    positions (0-based rows of the copy).
    """
    if per_problem < 1 or orders < 1:
        raise ValueError(f"orders and per_problem must be positive, got {orders} and {per_problem}")
    rng = np.random.default_rng(seed)
    valid_from = _to_naive_utc(valid_from)
    valid_until = _to_naive_utc(pd.Timestamp.now(tz="UTC") if valid_until is None else valid_until)
    source = tables["orders"]
    sample = source.iloc[np.sort(rng.choice(len(source), min(orders, len(source)), replace=False))]
    copy = {"orders": sample.reset_index(drop=True)}
    customers = tables.get("customers")
    if customers is not None:
        referenced = customers["customer_id"].isin(copy["orders"]["customer_id"]).to_numpy()
        spare = np.flatnonzero(~referenced)
        extra = np.sort(rng.choice(spare, min(len(spare), 4 * per_problem), replace=False))
        # Customers of the sampled orders first, then the spare ones: only spare rows are broken.
        copy["customers"] = pd.concat([customers[referenced], customers.iloc[extra]], ignore_index=True)
    manifest = []
    for name, frame in copy.items():
        problems = [p for p in DEMO_PROBLEMS if p[0] == name and p[2] in frame.columns
                    and (p[1] != "unknown customer" or "customers" in copy)]
        if name == "customers":
            pool = np.arange(int(referenced.sum()), len(frame))  # spare customers: nobody's orders point at them
            earlier_pool = np.arange(int(referenced.sum()))
        else:
            pool, earlier_pool = np.arange(len(frame)), None
        # Orders also draw the untouched rows duplicates copy from; a duplicate customer copies a referenced one.
        needed = per_problem * (len(problems) + (name == "orders"))
        if len(pool) < needed:
            raise ValueError(f"{name}: {len(pool)} rows are too few for {needed} broken rows; lower per_problem or raise orders")
        drawn = rng.choice(pool, needed, replace=False)
        chosen = dict(zip((p[1] for p in problems), np.split(drawn[: per_problem * len(problems)], len(problems))))
        spare_rows = drawn[per_problem * len(problems):]  # the untouched rows duplicates copy from
        for _, problem, column, reason in problems:
            rows = np.sort(chosen[problem])
            if problem.startswith("missing"):
                frame[column] = _with_missing(frame[column])
                frame.loc[rows, column] = pd.NA
            elif problem == "negative amount":
                frame.loc[rows, column] = -np.round(rng.uniform(1, 100, len(rows)), 2)
            elif problem == "negative discount":
                frame.loc[rows, column] = -np.round(rng.uniform(1, 20, len(rows)), 2)
            elif problem == "amount that is not a number":
                frame[column] = frame[column].astype(object)
                frame.loc[rows, column] = rng.choice(["n/a", "12,50", "EUR 49.90"], len(rows))
            elif problem == "quantity of 0":
                frame.loc[rows, column] = 0
            elif problem.startswith("duplicate"):
                if earlier_pool is not None:
                    origin = rng.choice(earlier_pool, len(rows), replace=False)  # earlier rows by construction
                else:
                    origin, rows = np.sort(np.stack([spare_rows, rows]), axis=0)  # the later of each pair copies
                frame.loc[rows, column] = frame[column].to_numpy()[origin]
            elif problem.endswith("after valid_until"):
                later = pd.to_timedelta(rng.integers(1, 365 * 86_400, len(rows)), unit="s")
                frame.loc[rows, column] = (valid_until.ceil("D") + later).astype(frame[column].dtype)
            elif problem.endswith("before valid_from"):
                earlier = pd.to_timedelta(rng.integers(86_400, 3650 * 86_400, len(rows)), unit="s")
                frame.loc[rows, column] = (valid_from - earlier).astype(frame[column].dtype)
            elif problem == "unknown customer":
                frame.loc[rows, column] = _unused_ids(copy["customers"]["customer_id"], len(rows))
            manifest.append((name, problem, reason, tuple(int(r) for r in rows)))
    return copy, pd.DataFrame(manifest, columns=["table", "problem", "expected_reason", "positions"])


def quarantine_demo(
    tables: dict[str, pd.DataFrame], *, seed: int, orders: int, per_problem: int,
    valid_from: Any, valid_until: Any, max_bad_value_share: float,
) -> tuple[pd.DataFrame, ValidationResult]:
    """Break a small copy of clean tables on purpose (`corrupt_sample`), validate it in memory, and say what was caught.

    Returns one row per problem (table, problem, injected, quarantined: the injected rows sent to
    quarantine with the expected reason) plus, per table, a row for the untouched rows
    (quarantined there are false alarms and should be 0), and the ValidationResult itself.
    Nothing is written to disk.
    """
    corrupted, manifest = corrupt_sample(
        tables, seed=seed, orders=orders, per_problem=per_problem, valid_from=valid_from, valid_until=valid_until
    )
    result = validate_tables(
        corrupted, valid_from=valid_from,
        valid_until=pd.Timestamp.now(tz="UTC") if valid_until is None else valid_until,
        max_bad_value_share=max_bad_value_share,
    )
    rows = []
    for name, frame in corrupted.items():
        quarantine = result.quarantine[name]
        reasons = pd.Series(pd.NA, index=pd.RangeIndex(len(frame)), dtype="string")
        reasons.iloc[quarantine["source_row"].to_numpy() - 1] = quarantine["reason"].to_numpy()
        touched = np.zeros(len(frame), dtype=bool)
        for problem in manifest[manifest["table"] == name].itertuples(index=False):
            positions = list(problem.positions)
            touched[positions] = True
            found = reasons.iloc[positions].str.contains(problem.expected_reason, regex=False).fillna(False)
            rows.append((name, problem.problem, len(positions), int(found.sum())))
        rows.append((name, "none (untouched rows)", int((~touched).sum()), int(reasons[~touched].notna().sum())))
    check = pd.DataFrame(rows, columns=["table", "problem", "injected", "quarantined"])
    return check, result


# --------------------------------------------------------------------------------------------
# The DVC stage


def _summary(result: ValidationResult, folder: str) -> str:
    """A few lines for the terminal: rows per table and the top reasons."""
    report = result.report
    lines = [f"validate: {folder}"]
    for name, entry in report["tables"].items():
        lines.append(
            f"  {name:<10} {entry['rows_in']:>12,} in  {entry['rows_valid']:>12,} valid  "
            f"{entry['rows_quarantined']:>10,} quarantined"
        )
        for reason, count in list(entry["reasons"].items())[:3]:
            lines.append(f"      {count:>10,}  {reason}")
    if report["tables_missing"]:
        lines.append(f"  not given: {', '.join(report['tables_missing'])}")
    if report["not_read"]:
        lines.append(f"  not read: {', '.join(report['not_read'])}")
    return "\n".join(lines)


def run(params: dict[str, Any], root: Path) -> ValidationResult:
    """The `validate` stage: read data.path, validate, write validated/quarantine tables and metrics."""
    root = Path(root)
    source = get(params, "data.source")
    path = get(params, "data.path")
    if source not in ("simulate", "files"):
        raise ParamsError(f"params.yaml data.source must be 'simulate' or 'files', got {source!r}")
    if not isinstance(path, str) or not path.strip():
        raise ParamsError(f"params.yaml data.path must be a folder path, got {path!r}")
    if source == "simulate" and Path(path) != paths.SIMULATED_DIR:
        raise ParamsError(
            f"params.yaml has data.source=simulate but data.path={path!r}. The simulator writes to "
            f"{paths.SIMULATED_DIR}; to validate your own folder set data.source: files "
            f"(e.g. `dvc exp run -S data.source=files -S data.path={path}`)."
        )
    try:
        valid_from = _to_naive_utc(get(params, "validate.valid_from"))
        raw_until = get(params, "validate.valid_until")
        valid_until = _to_naive_utc(pd.Timestamp.now(tz="UTC") if raw_until is None else raw_until)
    except (TypeError, ValueError) as error:
        raise ParamsError(f"params.yaml validate.valid_from / valid_until must be dates: {error}") from None
    share = get(params, "validate.max_bad_value_share")
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise ParamsError(f"params.yaml validate.max_bad_value_share must be a number in [0, 1], got {share!r}")

    for folder in (root / paths.VALIDATED_DIR, root / paths.QUARANTINE_DIR):  # no table lingers from an earlier input
        if folder.is_dir():
            for stale in folder.glob("*.parquet"):
                stale.unlink()

    folder = root / path
    try:
        files = find_table_files(folder)
    except DataContractError as error:
        if source == "simulate":
            raise DataContractError(f"{error} With data.source=simulate, run the simulate stage first (dvc repro).") from None
        raise
    raw = read_tables(folder)
    sources = {name: str(Path(path) / file.name) for name, file in files.items()}
    result = validate_tables(
        raw, valid_from=valid_from, valid_until=valid_until, max_bad_value_share=float(share), sources=sources
    )
    result.report["not_read"] = not_read_files(folder, files)

    for name in result.tables:
        write_parquet(result.tables[name], root / paths.VALIDATED_DIR / f"{name}.parquet")
        write_parquet(result.quarantine[name], root / paths.QUARANTINE_DIR / f"{name}.parquet")
    write_json(result.report, root / paths.VALIDATE_METRICS)
    print(_summary(result, path))
    if result.report["tables"]["orders"]["rows_valid"] == 0:
        raise DataContractError(
            f"{sources['orders']}: no order passed validation (all {len(raw['orders']):,} rows "
            f"quarantined). See {paths.QUARANTINE_DIR / 'orders.parquet'} for the reasons. {SEE_README}"
        )
    return result


def load_validated(root: Path) -> dict[str, pd.DataFrame]:
    """The validated tables written by `run` (low-cardinality event columns as categoricals)."""
    tables = {}
    for path in sorted((Path(root) / paths.VALIDATED_DIR).glob("*.parquet")):
        tables[path.stem] = pd.read_parquet(path)
    if "orders" not in tables:
        raise DataContractError(f"no validated orders in {Path(root) / paths.VALIDATED_DIR}: run the validate stage first (dvc repro validate)")
    events = tables.get("events")
    if events is not None:
        for column in ("event_type", "device"):
            if column in events.columns:
                events[column] = events[column].astype("category")
    return tables
