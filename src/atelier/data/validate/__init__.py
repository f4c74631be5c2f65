"""Validate input tables against the data contract: type them, quarantine bad rows, report.

The `validate` stage (`atelier.data.stage.run_validate`) reads the folder named by `data.path`
(orders required; events, customers, products optional), checks every table against
`atelier.core.contract`, and splits each one into

* a clean table (contract columns typed, extra columns kept as read) in ``data/validated/``,
* a quarantine table (the bad rows' original values as text, plus ``reason``, ``reason_classes``
  and ``source_row``) in ``data/quarantine/``,
* a JSON report in ``metrics/validate.json``.

Two levels of problems:

* **Column-level** problems stop the stage with a `DataContractError` naming the file, the column
  and the fix: missing ``orders``, a missing required column, a column that looks like the wrong
  type (more than ``validate.max_bad_value_share`` of its non-empty values fail to parse), an
  empty ``orders`` table, a file that cannot be read.
* **Row-level** problems send the row to quarantine with a human reason (several problems are
  joined with "; ") and the list of their classes: a missing value, an unparseable value, a value
  below its minimum, a duplicate key (first occurrence kept), a timestamp outside
  [valid_from, valid_until], an unknown customer or product, a session shared by several
  customers. Nothing is silently dropped.

The modules, one job each: `files` (find and read), `parse` (values and ids), `checks` (the
contract's checks), `issues` (row problems joined into reasons), `tables` (the whole validation),
`quality` (what it found, for people), `reasons` (the words).
"""

from __future__ import annotations

from atelier.core.contract import DataContractError
from atelier.data.validate.files import find_table_files, not_read_files, read_tables
from atelier.data.validate.parse import id_types
from atelier.data.validate.quality import class_counts, quality_table, row_counts, summary_text
from atelier.data.validate.reasons import QUARANTINE_COLUMNS, SEE_README
from atelier.data.validate.tables import ValidationResult, ValidationSettings, validate_tables

__all__ = [
    "DataContractError",
    "QUARANTINE_COLUMNS",
    "SEE_README",
    "ValidationResult",
    "ValidationSettings",
    "class_counts",
    "find_table_files",
    "id_types",
    "not_read_files",
    "quality_table",
    "read_tables",
    "row_counts",
    "summary_text",
    "validate_tables",
]
