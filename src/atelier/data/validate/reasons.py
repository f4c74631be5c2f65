"""The words of validation: quarantine reasons, the classes metrics/validate.json counts them under, and the
hint every contract error ends with.

A quarantined row gets one reason text per problem (joined with "; ") and, beside it, the list of its
reason classes, so that counting problems never means parsing text.
"""

from __future__ import annotations

import pandas as pd

from atelier.core.contract import Column

SEE_README = "See README, 'Data contract'."
REASON_SEPARATOR = "; "
#: Columns validate adds to a quarantine table (an input column with one of these names is refused).
QUARANTINE_COLUMNS = ("reason", "reason_classes", "source_row")

#: What a value of each kind should look like, for messages.
KIND_EXPECTED = {
    "number": "a number (e.g. 49.90)",
    "integer": "a whole number (e.g. 3)",
    "timestamp": "an ISO 8601 timestamp (e.g. 2025-03-01T14:30:00Z)",
}
KIND_UNPARSEABLE = {
    "number": "is not a number",
    "integer": "is not a whole number",
    "timestamp": "is not an ISO 8601 timestamp",
}

#: Reason classes of timestamps outside [valid_from, valid_until].
BEFORE_VALID_FROM = "timestamp before valid_from"
IN_THE_FUTURE = "timestamp in the future"
AFTER_VALID_UNTIL = "timestamp after valid_until"
SHARED_SESSION = "session_id shared by several customers"


def format_time(value: pd.Timestamp) -> str:
    """A date if `value` is midnight, else date and time to the minute."""
    if value == value.normalize():
        return value.strftime("%Y-%m-%d")
    return value.strftime("%Y-%m-%d %H:%M")


def bound_text(column: Column) -> str:
    """The quarantine reason for a value below `column.minimum` (also its reason class)."""
    if column.minimum == 0:
        return f"{column.name} is negative" if column.minimum_inclusive else f"{column.name} must be > 0"
    operator = ">=" if column.minimum_inclusive else ">"
    return f"{column.name} must be {operator} {column.minimum:g}"


def unparseable_class(column: str) -> str:
    """The reason class of a value that does not parse as its column's kind."""
    return f"unparseable {column}"


def missing_text(column: str) -> str:
    """The reason (and class) of a missing required value."""
    return f"missing {column}"


def duplicate_class(column: str) -> str:
    """The reason class of a repeated key (its reason adds that the first occurrence is kept)."""
    return f"duplicate {column}"


def unknown_class(column: str) -> str:
    """The reason class of an id that the referenced table does not have."""
    return f"unknown {column}"


def examples(values: pd.Series, count: int = 3) -> str:
    """Up to `count` distinct values, quoted, for an error message."""
    return ", ".join(repr(str(value)) for value in pd.unique(values.to_numpy(dtype=object))[:count])

