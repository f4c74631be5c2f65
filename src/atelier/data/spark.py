"""Point-in-time snapshots on Apache Spark, with the very same feature kernels as the embedded path.

Spark spreads the customers over partitions (`pmod(xxhash64(customer_id), partitions)`); each
partition's orders, events and customers arrive at one Python worker
(`groupBy(...).applyInPandas`), which runs the project's own `snapshots.stack_snapshots` —
`customer_state` then `finalize` — on them. Every feature is a function of one customer's rows,
so the union over partitions is the embedded result; the one global fact, whether a cutoff's label
window is complete, is computed by Spark over all the data first and handed to every partition.

Within a partition the rows are put back in their file order before the kernel runs, so even sums
that depend on the order of addition (the decayed engagement) are identical, not just close.
Spark sees the tables as DataFrames (read from Parquet by the caller); `pandas_dtypes` restores
the pandas dtypes on the way back, so the columns, dtypes and values equal `build_snapshots`'.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from atelier.data.features import DAY, FeatureSettings
from atelier.data.snapshots import stack_snapshots

TABLES = ("orders", "events", "customers")
TABLE_COLUMN, ROW_COLUMN, PART_COLUMN = "_table", "_row", "_part"
TIME_COLUMNS = {"orders": "ordered_at", "events": "ts"}


def spark_type(dtype: Any) -> str:
    """The Spark SQL type (DDL) holding a pandas dtype without loss."""
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return {1: "tinyint", 2: "smallint", 4: "int"}.get(np.dtype(str(dtype).lower()).itemsize, "bigint")
    if pd.api.types.is_float_dtype(dtype):
        return "double"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "timestamp"
    return "string"


def output_template(templates: dict[str, pd.DataFrame], products: pd.DataFrame | None, cutoffs: list[pd.Timestamp],
                    horizon_days: int, settings: FeatureSettings) -> pd.DataFrame:
    """The empty snapshot frame the kernel gives for tables with these columns: the output's columns and dtypes."""
    tables = {name: frame.head(0) for name, frame in templates.items()}
    if products is not None:
        tables["products"] = products
    empty = stack_snapshots(tables, cutoffs, horizon_days, settings, [True] * len(cutoffs))
    return empty.reset_index()


def restore(frame: pd.DataFrame, template: pd.DataFrame) -> pd.DataFrame:
    """A frame from Spark with the template's column order and pandas dtypes."""
    frame = frame[list(template.columns)]
    dtypes = {column: ("string" if isinstance(dtype, pd.CategoricalDtype) else dtype)
              for column, dtype in template.dtypes.items()}  # categories are rebuilt from the values
    return frame.astype(dtypes)


def partition_kernel(templates: dict[str, pd.DataFrame], products: pd.DataFrame | None, cutoffs: list[pd.Timestamp],
                     horizon_days: int, settings: FeatureSettings, complete: list[bool], output: pd.DataFrame):
    """The function `applyInPandas` runs per partition: the tables back in file order and dtypes -> snapshots."""
    def kernel(rows: pd.DataFrame) -> pd.DataFrame:
        tables: dict[str, pd.DataFrame] = {}
        for name, template in templates.items():
            part = rows[rows[TABLE_COLUMN] == name].sort_values(ROW_COLUMN, kind="stable")
            tables[name] = restore(part[list(template.columns)].reset_index(drop=True), template)
        if products is not None:
            tables["products"] = products
        if "events" in tables:
            for column in ("event_type", "device"):  # as `load_validated` gives them
                if column in tables["events"]:
                    tables["events"][column] = tables["events"][column].astype("category")
        if not len(tables["orders"]) and not len(tables.get("customers", [])) and not len(tables.get("events", [])):
            return output.head(0)
        snapshots = stack_snapshots(tables, cutoffs, horizon_days, settings, complete).reset_index()
        return to_spark_pandas(snapshots[list(output.columns)])
    return kernel


def to_spark_pandas(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as Python objects: PySpark's Arrow writer does not take pandas 3's Arrow-backed strings."""
    text = [c for c in frame.columns if pd.api.types.is_string_dtype(frame[c].dtype)
            and not pd.api.types.is_object_dtype(frame[c].dtype)]
    return frame.astype({c: object for c in text}) if text else frame


def label_windows_complete(frames: dict[str, Any], cutoffs: list[pd.Timestamp], horizon_days: int) -> list[bool]:
    """`features.label_window_complete` for every cutoff, over all the data (one Spark aggregation per table)."""
    from pyspark.sql import functions as F

    lasts = []
    for name, column in TIME_COLUMNS.items():
        if name in frames:
            value = frames[name].agg(F.max(column)).collect()[0][0]
            if value is not None:
                lasts.append(pd.Timestamp(value))
    last = max(lasts)
    return [bool(last >= cutoff + (horizon_days - 1) * DAY) for cutoff in cutoffs]


def snapshot_frame(frames: dict[str, Any], templates: dict[str, pd.DataFrame], products: pd.DataFrame | None,
                   cutoffs: list[pd.Timestamp], horizon_days: int, settings: FeatureSettings, partitions: int
                   ) -> tuple[Any, pd.DataFrame]:
    """The snapshots as a Spark DataFrame (customer_id a column), and the pandas template of its dtypes.

    `frames`: Spark DataFrames of the validated orders, events and customers (events and customers
    optional); `templates`: the same tables as (empty) pandas frames with their dtypes; `products`:
    the small products table, shipped to every partition.
    """
    from pyspark.sql import functions as F

    complete = label_windows_complete(frames, cutoffs, horizon_days)
    output = output_template(templates, products, cutoffs, horizon_days, settings)
    tagged = None
    for name in TABLES:
        if name not in frames:
            continue
        frame = (frames[name].withColumn(TABLE_COLUMN, F.lit(name))
                 .withColumn(ROW_COLUMN, F.monotonically_increasing_id())
                 .withColumn(PART_COLUMN, F.pmod(F.xxhash64("customer_id"), F.lit(partitions))))
        tagged = frame if tagged is None else tagged.unionByName(frame, allowMissingColumns=True)
    schema = ", ".join(f"`{column}` {spark_type(output[column].dtype)}" for column in output.columns)
    kernel = partition_kernel({k: v for k, v in templates.items() if k in frames}, products, cutoffs, horizon_days,
                              settings, complete, output)
    result = tagged.repartition(partitions, PART_COLUMN).groupBy(PART_COLUMN).applyInPandas(kernel, schema=schema)
    return result, output


def collect_snapshots(result: Any, template: pd.DataFrame) -> pd.DataFrame:
    """The Spark snapshots as `build_snapshots` returns them: index customer_id, rows by cutoff then customer."""
    frame = restore(result.toPandas(), template)
    frame = frame.sort_values(["cutoff", "customer_id"], kind="stable").set_index("customer_id")
    return frame
