"""Tables as the reports print them: counts stay integers, whatever display.float_format says."""

from __future__ import annotations

import pandas as pd


def describe(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame.describe()` with one row per column; its `count` is an integer (pandas gives it as a float)."""
    described = frame.describe().T
    return described.astype({"count": "int64"})
