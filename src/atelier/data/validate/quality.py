"""What validation found, for people: the quality table of a report, rows per reason class of a quarantine,
and the stage's terminal summary."""

from __future__ import annotations

from typing import Any

import pandas as pd


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


def row_counts(report: dict[str, Any]) -> pd.DataFrame:
    """Rows read, valid and quarantined per table of a validation report (index: table)."""
    columns = ["rows_in", "rows_valid", "rows_quarantined"]
    rows = {name: [int(entry[column]) for column in columns] for name, entry in report.get("tables", {}).items()}
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns).rename_axis("table")


def class_counts(reason_classes: pd.Series) -> pd.Series:
    """Rows per reason class of a quarantine's `reason_classes` column (a row with several classes counts once
    for each; missing entries, rows not quarantined, are skipped), largest first, ties by name."""
    classes = reason_classes.dropna().explode().dropna().astype(object)
    counts = classes.value_counts().sort_index()
    return counts.sort_values(ascending=False, kind="stable").astype("int64").rename("rows")


def summary_text(report: dict[str, Any], folder: str) -> str:
    """A few lines for the terminal: rows per table and the top reasons."""
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
