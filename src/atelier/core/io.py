"""Writing and reading stage outputs: Parquet tables and JSON metrics, byte-for-byte repeatable."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def write_parquet(frame: pd.DataFrame, path: Path | str) -> Path:
    """Write `frame` to Parquet (zstd, no pandas index unless it is named); same frame, same bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keep_index = any(name is not None for name in frame.index.names)
    table = pa.Table.from_pandas(frame, preserve_index=keep_index)
    pq.write_table(table, path, compression="zstd")
    return path


def read_parquet(path: Path | str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet file (or a folder of Parquet parts) written by Atelier."""
    return pd.read_parquet(path, columns=columns)


def python_scalar(value: Any) -> Any:
    """A numpy scalar as the plain Python value (int, float, bool, str); anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def _plain(value: Any) -> Any:
    """Turn numpy/pandas scalars into JSON-friendly Python values; NaN becomes None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return None if math.isnan(value) or math.isinf(value) else round(value, 6)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (pd.Timestamp,)):
        return value.isoformat()
    return value


def write_json(obj: Any, path: Path | str) -> Path:
    """Write metrics or a report as JSON with sorted keys and floats rounded to 6 places."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_plain(obj), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_json(path: Path | str) -> Any:
    """Read a JSON file written by `write_json`."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
