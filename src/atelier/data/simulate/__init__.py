"""A seeded, vectorized simulator of an online fashion retailer, and the DVC stage `simulate`.

It writes the four contract tables (customers, products, events, orders) to `data/simulated/` and,
apart from them, the ground truth to `data/truth/`: each customer's hidden persona and traits and
their exact probability of ordering within the label horizon after each cutoff. No model input
may read `data/truth/`; later phases use it only to score themselves against the truth.

Customers are generated in chunks of `simulate.chunk_customers`, each from its own random stream,
so memory stays bounded (a million customers fit in a few GB) and the same params give the same
bytes. Within a chunk, events are in time order; with the default size there is one chunk.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from atelier.core import config as config_module
from atelier.core import paths
from atelier.core.io import write_json, write_parquet
from atelier.data.simulate.config import SimulationConfig, config_from_params
from atelier.data.simulate.realism import label_check, realism_metrics, session_counts
from atelier.data.simulate.sessions import Sessions, purchase_multiplier, session_arrivals, session_outcomes
from atelier.data.simulate.truth import order_probability
from atelier.data.simulate.world import (
    STREAM_CUSTOMERS,
    STREAM_SESSIONS,
    Population,
    World,
    build_world,
    customers_table,
    draw_population,
    population_from_truth,
    stream,
    truth_table,
)

__all__ = [
    "SimulationConfig",
    "config_from_params",
    "build_world",
    "draw_population",
    "session_arrivals",
    "session_outcomes",
    "purchase_multiplier",
    "order_probability",
    "population_from_truth",
    "simulate",
    "run",
    "Population",
    "Sessions",
    "World",
]



def _log(message: str) -> None:
    print(f"[simulate] {message}", file=sys.stderr, flush=True)


def check_timeline(config: SimulationConfig, cutoffs: list[pd.Timestamp], horizon_days: int) -> None:
    """Every cutoff's label window must lie inside the simulated period."""
    for cutoff in cutoffs:
        if cutoff <= config.start or cutoff + pd.Timedelta(days=horizon_days) > config.end + pd.Timedelta(days=1):
            raise config_module.ParamsError(
                f"params.yaml timeline.cutoffs: {cutoff.date()} + {horizon_days} days is outside the simulated "
                f"period {config.start.date()}..{config.end.date()}; move the cutoff or change simulate.start/end"
            )


def simulate(
    config: SimulationConfig,
    seed: int,
    cutoffs: list[pd.Timestamp],
    horizon_days: int,
    data_dir: Path,
    truth_dir: Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate the shop's data and ground truth into `data_dir` and `truth_dir`; return the metrics."""
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
    next_session = next_event = next_order = 1
    writer: pq.ParquetWriter | None = None
    chunk_starts = range(0, config.n_customers, config.chunk_customers)
    for chunk, first in enumerate(tqdm(chunk_starts, desc="simulate: customer chunks", disable=not progress, file=sys.stderr)):
        size = min(config.chunk_customers, config.n_customers - first)
        population = draw_population(config, first, size, stream(seed, STREAM_CUSTOMERS, chunk))
        rng = stream(seed, STREAM_SESSIONS, chunk)
        sessions = session_arrivals(world, population, 0, config.n_days - 1, rng)
        outcome = session_outcomes(
            world, population, sessions, rng,
            first_session_id=next_session, first_event_id=next_event, first_order_id=next_order,
        )
        next_session += len(sessions)
        next_event += len(outcome.events)
        next_order += len(outcome.orders)
        table = pa.Table.from_pandas(outcome.events, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(data_dir / "events.parquet", table.schema, compression="zstd")
        writer.write_table(table)
        customers.append(customers_table(config, population))
        truths.append(truth_table(config, population))
        orders.append(outcome.orders)
        device_counts.append(session_counts(outcome.sessions))
        for cutoff in cutoffs:
            probabilities.append(
                pd.DataFrame(
                    {
                        "customer_id": population.customer_id,
                        "cutoff": cutoff,
                        "p_true": order_probability(world, population, config.day_index(cutoff), horizon_days),
                    }
                )
            )
    if writer is not None:
        writer.close()
    customers_frame = pd.concat(customers, ignore_index=True)
    orders_frame = pd.concat(orders, ignore_index=True)
    probability_frame = pd.concat(probabilities, ignore_index=True)
    probability_frame["cutoff"] = probability_frame["cutoff"].astype("datetime64[us]")
    write_parquet(customers_frame, data_dir / "customers.parquet")
    write_parquet(orders_frame, data_dir / "orders.parquet")
    write_parquet(pd.concat(truths, ignore_index=True), truth_dir / "customers.parquet")
    write_parquet(probability_frame, truth_dir / "order_probability.parquet")
    elapsed = time.perf_counter() - began
    n_events = next_event - 1
    _log(f"{config.n_customers:,} customers, {next_session - 1:,} sessions, {n_events:,} events, "
         f"{len(orders_frame):,} orders in {elapsed:.1f} s ({n_events / elapsed:,.0f} events/s)")

    totals = sum(device_counts[1:], device_counts[0])
    metrics = {
        "customers": config.n_customers,
        "products": config.n_products,
        "sessions": next_session - 1,
        "events": n_events,
        "orders": len(orders_frame),
        "period": {"start": config.start.date().isoformat(), "end": config.end.date().isoformat(), "days": config.n_days},
        "realism": realism_metrics(totals, orders_frame),
        "truth": {
            "persona_shares": pd.read_parquet(truth_dir / "customers.parquet", columns=["persona"])["persona"]
            .value_counts(normalize=True)
            .sort_index()
            .to_dict(),
            "labels": label_check(orders_frame, customers_frame, probability_frame, horizon_days),
        },
    }
    return metrics


def run(params: dict[str, Any], root: Path) -> dict[str, Any]:
    """The DVC stage: simulate with params.yaml's settings (or record that simulation is skipped)."""
    source = config_module.get(params, "data.source")
    data_dir, truth_dir, metrics_path = root / paths.SIMULATED_DIR, root / paths.TRUTH_DIR, root / "metrics" / "simulate.json"
    if source == "files":
        for folder in (data_dir, truth_dir):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            (folder / "SKIPPED.md").write_text(
                "data.source is 'files': the pipeline reads your data from data.path, so nothing was simulated "
                "and there is no ground truth to compare against.\n",
                encoding="utf-8",
            )
        metrics = {"skipped": True, "reason": "data.source is 'files'"}
        write_json(metrics, metrics_path)
        _log("data.source is 'files': skipped")
        return metrics
    if source != "simulate":
        raise config_module.ParamsError(f"params.yaml data.source: '{source}' is neither 'simulate' nor 'files'")
    config = config_from_params(config_module.get(params, "simulate"))
    cutoffs = [pd.Timestamp(c) for c in config_module.get(params, "timeline.cutoffs")]
    horizon = int(config_module.get(params, "timeline.horizon_days"))
    metrics = simulate(config, int(config_module.get(params, "seed")), cutoffs, horizon, data_dir, truth_dir)
    write_json(metrics, metrics_path)
    realism = metrics["realism"]
    _log(
        f"conversion {realism['session_conversion']:.2%}, cart abandonment {realism['cart_abandonment']:.1%}, "
        f"single-order buyers {realism['single_order_buyer_share']:.1%}, "
        f"mobile share {realism['devices']['mobile']['session_share']:.1%}"
    )
    return metrics
