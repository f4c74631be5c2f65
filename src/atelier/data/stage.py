"""The data phase's reading and writing: the `simulate`, `validate` and `prep` stages' inputs and outputs.

* simulate (`run_simulate`): params.yaml -> data/simulated/ (the contract tables), data/truth/ (what
  only the simulator knows), metrics/simulate.json.
* validate (`run_validate`): data.path -> data/validated/, data/quarantine/, metrics/validate.json;
  `load_validated` reads the validated tables back.
* prep (notebook 01, `write_prep`): data/features/ (snapshots, prepared), models/prep/ (transformer and
  feature spec), metrics/prep.json, plots/prep/daily_activity.csv; `load_feature_spec` reads the spec.

Everything else in the phase is pure functions on frames; every path comes from `atelier.core.paths`.
"""

from __future__ import annotations

import shutil
import sys
import time
import warnings
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from atelier.core import parallel, paths
from atelier.core import spark as spark_engine
from atelier.core.config import ParamsError, get
from atelier.core.contract import DataContractError
from atelier.core.io import read_json, write_json, write_parquet
from atelier.core.persist import save_skops
from atelier.data import spark as data_spark
from atelier.data.features import FeatureSettings
from atelier.data.simulate.config import SimulationConfig, config_from_params
from atelier.data.simulate.shop import check_timeline, chunks, shop_metrics
from atelier.data.simulate.world import build_world
from atelier.data.snapshots import (
    Timeline,
    build_snapshots,
    check_cutoffs,
    check_cutoffs_in_data,
    check_label_windows,
)
from atelier.data.validate import (
    SEE_README,
    ValidationResult,
    ValidationSettings,
    find_table_files,
    not_read_files,
    read_tables,
    summary_text,
    validate_tables,
)

if TYPE_CHECKING:  # scikit-learn and skops are not imported by the stages that fit nothing (simulate, validate)
    from sklearn.pipeline import Pipeline

    from atelier.data.transform import ImputerSettings

SKIPPED_NOTE = (
    "data.source is 'files': the pipeline reads your data from data.path, so nothing was simulated "
    "and there is no ground truth to compare against.\n"
)


def _log(message: str) -> None:
    print(f"[simulate] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# simulate


def simulate_shop(
    config: SimulationConfig, seed: int, cutoffs: list[pd.Timestamp], horizon_days: int, data_dir: Path,
    truth_dir: Path, progress: bool = True,
) -> dict[str, Any]:
    """Generate the shop's data into `data_dir` and its ground truth into `truth_dir` (both emptied first);
    return the metrics (`simulate.shop.shop_metrics`). Events are written chunk by chunk, so memory stays
    bounded."""
    check_timeline(config, cutoffs, horizon_days)
    for folder in (data_dir, truth_dir):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    began = time.perf_counter()
    world = build_world(config, seed)
    write_parquet(world.catalog[["product_id", "category", "price_tier", "price"]], data_dir / "products.parquet")
    write_parquet(world.catalog, truth_dir / "products.parquet")
    write_parquet(world.calendar, truth_dir / "calendar.parquet")

    customers, truths, orders, probabilities, device_counts = [], [], [], [], []
    sessions = events = 0
    writer: pq.ParquetWriter | None = None
    for chunk in chunks(config, world, seed, cutoffs, horizon_days, progress=progress):
        table = pa.Table.from_pandas(chunk.events, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(data_dir / "events.parquet", table.schema, compression="zstd")
        writer.write_table(table)
        customers.append(chunk.customers)
        truths.append(chunk.truth)
        orders.append(chunk.orders)
        probabilities.append(chunk.order_probability)
        device_counts.append(chunk.device_counts)
        sessions += chunk.sessions
        events += len(chunk.events)
    if writer is not None:
        writer.close()
    customers_frame = pd.concat(customers, ignore_index=True)
    orders_frame = pd.concat(orders, ignore_index=True)
    truth_frame = pd.concat(truths, ignore_index=True)
    probability_frame = pd.concat(probabilities, ignore_index=True)
    probability_frame["cutoff"] = probability_frame["cutoff"].astype("datetime64[us]")
    write_parquet(customers_frame, data_dir / "customers.parquet")
    write_parquet(orders_frame, data_dir / "orders.parquet")
    write_parquet(truth_frame, truth_dir / "customers.parquet")
    write_parquet(probability_frame, truth_dir / "order_probability.parquet")
    elapsed = time.perf_counter() - began
    _log(f"{config.n_customers:,} customers, {sessions:,} sessions, {events:,} events, "
         f"{len(orders_frame):,} orders in {elapsed:.1f} s ({events / elapsed:,.0f} events/s)")
    return shop_metrics(
        config, customers=customers_frame, orders=orders_frame, truth=truth_frame, probabilities=probability_frame,
        device_counts=sum(device_counts[1:], device_counts[0]), sessions=sessions, events=events,
        horizon_days=horizon_days,
    )


def checked_timeline(params: dict[str, Any]) -> Timeline:
    """params.yaml's timeline, checked as the later stages would check it (the model stage's leakage rule)."""
    timeline = Timeline.from_params(get(params, "timeline"))
    check_label_windows(timeline.cutoffs, timeline.horizon_days)
    return timeline


def run_simulate(params: dict[str, Any], root: Path) -> dict[str, Any]:
    """The `simulate` stage: simulate with params.yaml's settings (or record that simulation is skipped).

    It runs first, so it checks the timeline before any work (and the simulator checks the cutoffs against
    the simulated period); with data.source=files, the validate stage checks them against the data."""
    root = Path(root)
    checked_timeline(params)
    source = get(params, "data.source")
    data_dir, truth_dir = root / paths.SIMULATED_DIR, root / paths.TRUTH_DIR
    if source == "files":
        for folder in (data_dir, truth_dir):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            (folder / "SKIPPED.md").write_text(SKIPPED_NOTE, encoding="utf-8")
        metrics = {"skipped": True, "reason": "data.source is 'files'"}
        write_json(metrics, root / paths.SIMULATE_METRICS)
        _log("data.source is 'files': skipped")
        return metrics
    if source != "simulate":
        raise ParamsError(f"params.yaml data.source: '{source}' is neither 'simulate' nor 'files'")
    config = config_from_params(get(params, "simulate"))
    cutoffs = [pd.Timestamp(c) for c in get(params, "timeline.cutoffs")]
    horizon = int(get(params, "timeline.horizon_days"))
    metrics = simulate_shop(config, int(get(params, "seed")), cutoffs, horizon, data_dir, truth_dir)
    write_json(metrics, root / paths.SIMULATE_METRICS)
    realism = metrics["realism"]
    _log(
        f"conversion {realism['session_conversion']:.2%}, cart abandonment {realism['cart_abandonment']:.1%}, "
        f"single-order buyers {realism['single_order_buyer_share']:.1%}, "
        f"mobile share {realism['devices']['mobile']['session_share']:.1%}"
    )
    return metrics


# --------------------------------------------------------------------------------------------
# validate


def data_folder(params: dict[str, Any]) -> tuple[str, str]:
    """data.source and data.path from params, checked: the simulator's folder with source=simulate."""
    source, path = get(params, "data.source"), get(params, "data.path")
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
    return source, path


def write_quarantine(frame: pd.DataFrame, path: Path) -> Path:
    """A quarantine table as Parquet, with `reason_classes` typed list<string> even when no row was quarantined
    (pandas cannot tell the type of an empty column of lists)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    field = table.schema.get_field_index("reason_classes")
    table = table.set_column(field, "reason_classes", table.column(field).cast(pa.list_(pa.string())))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")
    return path


def run_validate(params: dict[str, Any], root: Path) -> ValidationResult:
    """The `validate` stage: read data.path, validate, write validated/quarantine tables and metrics."""
    root = Path(root)
    source, path = data_folder(params)
    settings = ValidationSettings.from_params(get(params, "validate"))
    timeline = checked_timeline(params)
    for folder in (root / paths.VALIDATED_DIR, root / paths.QUARANTINE_DIR):  # no table lingers from an earlier input
        if folder.is_dir():
            for stale in folder.glob("*.parquet"):
                stale.unlink()

    folder = root / path
    try:
        files = find_table_files(folder)
    except DataContractError as error:
        if source == "simulate":
            raise DataContractError(
                f"{error} With data.source=simulate, run the simulate stage first (dvc repro).") from None
        raise
    raw = read_tables(folder)
    sources = {name: str(Path(path) / file.name) for name, file in files.items()}
    result = validate_tables(
        raw, valid_from=settings.valid_from, valid_until=settings.valid_until,
        max_bad_value_share=settings.max_bad_value_share, sources=sources,
    )
    result.report["not_read"] = not_read_files(folder, files)

    for name in result.tables:
        write_parquet(result.tables[name], root / paths.VALIDATED_DIR / f"{name}.parquet")
        write_quarantine(result.quarantine[name], root / paths.QUARANTINE_DIR / f"{name}.parquet")
    write_json(result.report, root / paths.VALIDATE_METRICS)
    print(summary_text(result.report, path))
    if result.report["tables"]["orders"]["rows_valid"] == 0:
        raise DataContractError(
            f"{sources['orders']}: no order passed validation (all {len(raw['orders']):,} rows "
            f"quarantined). See {paths.QUARANTINE_DIR / 'orders.parquet'} for the reasons. {SEE_README}"
        )
    # Cutoffs the data cannot support would stop prep or the model stage minutes later: say so now.
    check_cutoffs_in_data(result.tables, timeline.cutoffs, timeline.horizon_days)
    return result


def load_validated(root: Path) -> dict[str, pd.DataFrame]:
    """The validated tables written by `run_validate` (low-cardinality event columns as categoricals)."""
    folder = Path(root) / paths.VALIDATED_DIR
    tables = {path.stem: pd.read_parquet(path) for path in sorted(folder.glob("*.parquet"))}
    if "orders" not in tables:
        raise DataContractError(f"no validated orders in {folder}: run the validate stage first (dvc repro validate)")
    events = tables.get("events")
    if events is not None:
        for column in ("event_type", "device"):
            if column in events.columns:
                events[column] = events[column].astype("category")
    return tables


def load_validation_report(root: Path) -> dict[str, Any]:
    """metrics/validate.json: what validate read, kept and quarantined (see `validate.tables.validate_tables`)."""
    return read_json(Path(root) / paths.VALIDATE_METRICS)


# --------------------------------------------------------------------------------------------
# prep


def write_prep(
    root: Path, snapshots: pd.DataFrame, prepared: pd.DataFrame, transformer: Pipeline,
    tables: dict[str, pd.DataFrame], cutoffs: list[pd.Timestamp], imputer: str, daily: pd.DataFrame,
) -> dict[str, Any]:
    """Write the prep stage's data, transformer, feature spec, plot data and metrics; return the metrics."""
    from atelier.data.prep_metrics import feature_spec, prep_metrics  # scikit-learn: not for simulate or validate

    root = Path(root)
    (root / paths.PREP_PLOTS).mkdir(parents=True, exist_ok=True)
    daily.reset_index().assign(day=lambda d: d["day"].dt.strftime("%Y-%m-%d")).to_csv(
        root / paths.PREP_PLOTS / "daily_activity.csv", index=False, float_format="%.2f")
    write_parquet(snapshots, root / paths.SNAPSHOTS_FILE)
    write_parquet(prepared.assign(cutoff=snapshots["cutoff"].to_numpy(), label=snapshots["label"].array),
                  root / paths.PREPARED_FILE)
    save_skops(transformer, root / paths.PREP_MODEL_DIR / "transformer.skops")
    spec = feature_spec(snapshots, prepared, tables, cutoffs, imputer)
    write_json(spec, root / paths.PREP_MODEL_DIR / "features.json")
    metrics = prep_metrics(snapshots, prepared, transformer, spec)
    write_json(metrics, root / paths.PREP_METRICS)
    return metrics


def load_feature_spec(root: Path) -> dict[str, Any]:
    """The feature spec written by the prep stage (models/prep/features.json)."""
    return read_json(Path(root) / paths.PREP_MODEL_DIR / "features.json")


# --------------------------------------------------------------------------------------------
# prep on Spark (params.yaml engine: spark)


def spark_tables(spark: Any, root: Path) -> tuple[dict[str, Any], dict[str, pd.DataFrame], pd.DataFrame | None]:
    """The validated tables for Spark: Spark DataFrames read from data/validated/, their pandas dtypes (empty
    frames from the Parquet schemas) and the small products table (read whole)."""
    folder = Path(root) / paths.VALIDATED_DIR
    frames, templates = {}, {}
    for name in ("orders", "events", "customers"):
        path = folder / f"{name}.parquet"
        if path.exists():
            frames[name] = spark.read.parquet(str(path))
            templates[name] = pq.read_schema(path).empty_table().to_pandas()
    if "orders" not in frames:
        raise DataContractError(f"no validated orders in {folder}: run the validate stage first (dvc repro validate)")
    products = folder / "products.parquet"
    return frames, templates, (pd.read_parquet(products) if products.exists() else None)


def compute_snapshots(root: Path, tables: dict[str, pd.DataFrame], cutoffs: list[pd.Timestamp], horizon_days: int,
                      settings: FeatureSettings, compute: dict[str, Any] | None) -> pd.DataFrame:
    """The prep snapshots with the engine params.yaml's `compute` section names: the embedded `build_snapshots` on
    `tables`, or the same kernels on Spark reading data/validated/ (`atelier.data.spark`); identical results."""
    if spark_engine.engine(compute) == "embedded":
        return build_snapshots(tables, cutoffs, horizon_days, settings)
    settings_spark = spark_engine.SparkSettings.from_params(compute.get("spark"))
    spark = spark_engine.build_session(settings_spark)
    frames, templates, products = spark_tables(spark, root)
    result, template = data_spark.snapshot_frame(frames, templates, products, cutoffs, horizon_days, settings,
                                                 settings_spark.shuffle_partitions)
    return data_spark.collect_snapshots(result, template)


# --------------------------------------------------------------------------------------------
# prep's longest chain on another core


def training_snapshots_and_transformer(
    root: Path, tables: dict[str, pd.DataFrame], timeline: Timeline, settings: FeatureSettings,
    compute: dict[str, Any] | None, imputation: ImputerSettings,
) -> tuple[pd.DataFrame, bytes, list[warnings.WarningMessage]]:
    """The training snapshots (every cutoff but the last, `compute_snapshots`), the transformer fitted on them
    (`transform.fit_on_training`) as skops bytes, and the warnings raised meanwhile (scikit-learn's
    ConvergenceWarning, for one): the prep stage's longest chain.

    The transformer travels as skops, not pickle: skops keeps which attributes share one object, so the file
    `write_prep` saves is byte for byte the one a fit in the notebook's own process gives (pickle would not).
    """
    import skops.io as sio

    from atelier.data.transform import fit_on_training

    with warnings.catch_warnings(record=True) as raised:
        warnings.simplefilter("default")
        training = compute_snapshots(root, tables, timeline.train_cutoffs, timeline.horizon_days, settings, compute)
        transformer = fit_on_training(training, timeline.cutoffs, imputation)
    return training, sio.dumps(transformer), [
        warnings.WarningMessage(str(w.message), w.category, w.filename, w.lineno) for w in raised]


def start_training(
    root: Path, tables: dict[str, pd.DataFrame], timeline: Timeline, settings: FeatureSettings,
    compute: dict[str, Any] | None, imputation: ImputerSettings,
) -> Future[tuple[pd.DataFrame, bytes, list[warnings.WarningMessage]]]:
    """Check the cutoffs against the data (`check_cutoffs`, a clear error now), then run
    `training_snapshots_and_transformer` on another process (`core.parallel.start`) while the caller goes on:
    the notebook builds the test snapshot and checks leakage meanwhile. `finish_training` collects it."""
    check_cutoffs(tables, timeline.cutoffs)
    return parallel.start(training_snapshots_and_transformer, root, tables, timeline, settings, compute, imputation)


def snapshot_at_test(root: Path, tables: dict[str, pd.DataFrame], timeline: Timeline, settings: FeatureSettings,
                     compute: dict[str, Any] | None) -> pd.DataFrame:
    """The snapshot at the test cutoff (the last), built while `start_training` builds the others; stacked after
    them (`pd.concat([training, test])`) it completes `compute_snapshots` over every cutoff."""
    return compute_snapshots(root, tables, timeline.cutoffs[-1:], timeline.horizon_days, settings, compute)


def finish_training(running: Future[tuple[pd.DataFrame, bytes, list[warnings.WarningMessage]]]
                    ) -> tuple[pd.DataFrame, Pipeline]:
    """Wait for `start_training`'s work: the training snapshots and the fitted transformer. Its warnings are raised
    again here, so the report still shows them."""
    import skops.io as sio

    training, transformer, raised = running.result()
    for caught in raised:
        warnings.warn_explicit(caught.message, caught.category, caught.filename, caught.lineno)
    # Bytes our own worker just wrote (no file a user could swap): every type in them is the fit's own.
    return training, sio.loads(transformer, trusted=sio.get_untrusted_types(data=transformer))
