"""The simulated shop, one chunk of customers at a time, and the figures metrics/simulate.json holds.

Customers are generated in chunks of `simulate.chunk_customers`, each from its own random stream,
so memory stays bounded (a million customers fit in a few GB) and the same params give the same
bytes. Within a chunk, events are in time order; with the default size there is one chunk. Ids
continue from chunk to chunk. Writing the chunks is the stage's job (`atelier.data.stage`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
from tqdm import tqdm

from atelier.core.config import ParamsError
from atelier.data.simulate.config import SimulationConfig
from atelier.data.simulate.realism import label_check, realism_metrics, session_counts
from atelier.data.simulate.sessions import session_arrivals, session_outcomes
from atelier.data.simulate.truth import order_probability
from atelier.data.simulate.world import (
    STREAM_CUSTOMERS,
    STREAM_SESSIONS,
    World,
    customers_table,
    draw_population,
    stream,
    truth_table,
)


@dataclass(frozen=True)
class Chunk:
    """The tables of one chunk of customers: observable (customers, events, orders) and truth (hidden traits,
    the exact chance of ordering after each cutoff), plus the sessions per device for the realism figures."""

    customers: pd.DataFrame
    truth: pd.DataFrame
    events: pd.DataFrame
    orders: pd.DataFrame
    order_probability: pd.DataFrame
    device_counts: pd.DataFrame
    sessions: int


def check_timeline(config: SimulationConfig, cutoffs: list[pd.Timestamp], horizon_days: int) -> None:
    """Every cutoff's label window must lie inside the simulated period."""
    for cutoff in cutoffs:
        if cutoff <= config.start or cutoff + pd.Timedelta(days=horizon_days) > config.end + pd.Timedelta(days=1):
            raise ParamsError(
                f"params.yaml timeline.cutoffs: {cutoff.date()} + {horizon_days} days is outside the simulated "
                f"period {config.start.date()}..{config.end.date()}; move the cutoff or change simulate.start/end"
            )


def chunks(
    config: SimulationConfig, world: World, seed: int, cutoffs: list[pd.Timestamp], horizon_days: int,
    progress: bool = True,
) -> Iterator[Chunk]:
    """The shop's customers chunk by chunk, each from its own random stream (session, event and order ids
    continue across chunks)."""
    next_session = next_event = next_order = 1
    chunk_starts = range(0, config.n_customers, config.chunk_customers)
    for chunk, first in enumerate(tqdm(chunk_starts, desc="simulate: customer chunks", disable=not progress,
                                       file=sys.stderr)):
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
        probability = pd.concat(
            [
                pd.DataFrame({
                    "customer_id": population.customer_id,
                    "cutoff": cutoff,
                    "p_true": order_probability(world, population, config.day_index(cutoff), horizon_days),
                })
                for cutoff in cutoffs
            ],
            ignore_index=True,
        )
        yield Chunk(
            customers=customers_table(config, population),
            truth=truth_table(config, population),
            events=outcome.events,
            orders=outcome.orders,
            order_probability=probability,
            device_counts=session_counts(outcome.sessions),
            sessions=len(sessions),
        )


def shop_metrics(
    config: SimulationConfig, *, customers: pd.DataFrame, orders: pd.DataFrame, truth: pd.DataFrame,
    probabilities: pd.DataFrame, device_counts: pd.DataFrame, sessions: int, events: int, horizon_days: int,
) -> dict[str, Any]:
    """metrics/simulate.json: sizes, the period, the realism figures and the truth's checks (persona shares,
    the label rate against the mean true chance per cutoff)."""
    return {
        "customers": config.n_customers,
        "products": config.n_products,
        "sessions": sessions,
        "events": events,
        "orders": len(orders),
        "period": {
            "start": config.start.date().isoformat(), "end": config.end.date().isoformat(), "days": config.n_days
        },
        "realism": realism_metrics(device_counts, orders),
        "truth": {
            "persona_shares": truth["persona"].value_counts(normalize=True).sort_index().to_dict(),
            "labels": label_check(orders, customers, probabilities, horizon_days),
        },
    }
