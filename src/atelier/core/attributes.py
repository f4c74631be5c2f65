"""The user-attribute database (SQLite): what the pipeline knows about each customer, where an application reads it.

The case study stores segment labels "as user attributes in your database"; Atelier keeps one
schema, declared here, and each stage writes its own copy (DVC outputs must not overlap):

- segment:  `customer_segments` (one row per customer) and `segment_models`;
- model:    that copy plus `customer_propensity` and the view `customer_attributes` (segment and
            propensity per customer);
- replay:   that copy plus `customer_live_profile` (the last decision of each customer's visits).

Customer ids are stored as text, so integer and string ids round-trip the same way.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd

SEGMENTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS customer_segments (
    customer_id   TEXT PRIMARY KEY,
    segment_id    INTEGER NOT NULL,
    segment_name  TEXT NOT NULL,
    model_version TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS segment_models (
    model_version TEXT PRIMARY KEY,
    fitted_on     TEXT NOT NULL,
    k             INTEGER NOT NULL,
    features      TEXT NOT NULL,
    silhouette    REAL,
    davies_bouldin REAL
);
"""

PROPENSITY_SCHEMA = """
CREATE TABLE customer_propensity (
    customer_id   TEXT PRIMARY KEY,
    propensity    REAL NOT NULL,
    model_version TEXT NOT NULL,
    scored_at     TEXT NOT NULL
);
CREATE VIEW customer_attributes AS
    SELECT p.customer_id, s.segment_id, s.segment_name, s.model_version AS segment_model,
           p.propensity, p.model_version AS propensity_model, p.scored_at
    FROM customer_propensity p LEFT JOIN customer_segments s USING (customer_id);
"""

LIVE_PROFILE_SCHEMA = """
CREATE TABLE customer_live_profile (
    customer_id     TEXT PRIMARY KEY,
    last_visit      TEXT,
    last_propensity REAL,
    last_banner     TEXT,
    last_experience TEXT,
    arm             TEXT,
    updated_at      TEXT
);
"""


def _connect(database: Path) -> sqlite3.Connection:
    database = Path(database)
    database.parent.mkdir(parents=True, exist_ok=True)
    return sqlite3.connect(database)


def _fresh_copy(source: Path, target: Path) -> Path:
    """Start `target` from a copy of `source` (or empty when there is none)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    if Path(source).exists():
        shutil.copyfile(source, target)
    return target


def write_segments(database: Path, assignments: pd.DataFrame, model: dict[str, Any]) -> Path:
    """Replace the segment attributes: one row per customer, plus the model's row.

    `assignments` has customer_id, segment_id, segment_name; `model` has model_version, fitted_on
    (the snapshot's cutoff, also each row's updated_at), k, features, silhouette, davies_bouldin.
    """
    connection = _connect(database)
    with connection:
        connection.executescript(SEGMENTS_SCHEMA)
        connection.execute("DELETE FROM customer_segments")
        rows = assignments.sort_values("customer_id")
        connection.executemany(
            "INSERT INTO customer_segments VALUES (?, ?, ?, ?, ?)",
            zip(
                rows["customer_id"].astype(str),
                rows["segment_id"].astype(int).tolist(),
                rows["segment_name"].astype(str),
                [model["model_version"]] * len(rows),
                [model["fitted_on"]] * len(rows),
            ),
        )
        connection.execute(
            "INSERT OR REPLACE INTO segment_models VALUES (?, ?, ?, ?, ?, ?)",
            (
                model["model_version"],
                model["fitted_on"],
                int(model["k"]),
                ",".join(model["features"]),
                model.get("silhouette"),
                model.get("davies_bouldin"),
            ),
        )
    connection.close()
    return Path(database)


def write_propensity(source: Path, target: Path, scores: pd.DataFrame) -> Path:
    """`target` = the segment database at `source` (if any) plus `customer_propensity` and the view
    `customer_attributes`.

    `scores` has customer_id, propensity, model_version, scored_at.
    """
    target = _fresh_copy(source, target)
    connection = _connect(target)
    with connection:
        connection.executescript(SEGMENTS_SCHEMA)  # the view joins it even when there are no segments
        connection.executescript(PROPENSITY_SCHEMA)
        rows = scores.sort_values("customer_id")
        connection.executemany(
            "INSERT INTO customer_propensity VALUES (?, ?, ?, ?)",
            zip(
                rows["customer_id"].astype(str),
                rows["propensity"].astype(float),
                rows["model_version"],
                rows["scored_at"],
            ),
        )
    connection.close()
    return target


def write_live_profiles(source: Path, target: Path, latest: pd.DataFrame, as_of: pd.Timestamp) -> Path:
    """`target` = the database at `source` (if any) plus `customer_live_profile`.

    `latest` has one row per customer: customer_id, ts, propensity, banner, experience, arm.
    """
    target = _fresh_copy(source, target)
    connection = _connect(target)
    with connection:
        connection.executescript(LIVE_PROFILE_SCHEMA)
        connection.executemany(
            "INSERT INTO customer_live_profile VALUES (?, ?, ?, ?, ?, ?, ?)",
            zip(
                latest["customer_id"].astype(str),
                latest["ts"].astype(str),
                latest["propensity"].astype(float),
                latest["banner"].astype(str),
                latest["experience"].astype(str),
                latest["arm"].astype(str),
                [as_of.isoformat()] * len(latest),
            ),
        )
    connection.close()
    return target


def read_table(database: Path, table: str) -> pd.DataFrame:
    """One table or view of the attribute database (customer_segments, customer_attributes, ...), by customer id."""
    if table not in (
        "customer_segments",
        "segment_models",
        "customer_propensity",
        "customer_attributes",
        "customer_live_profile",
    ):
        raise ValueError(f"{table!r} is not a table of the attribute database")
    order = "model_version" if table == "segment_models" else "customer_id"
    connection = sqlite3.connect(database)
    with connection:
        frame = pd.read_sql_query(f"SELECT * FROM {table} ORDER BY {order}", connection)  # noqa: S608 - table is checked above
    connection.close()
    return frame
