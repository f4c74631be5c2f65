"""The closed loop's world: the simulated shop after the cutoff, visit by visit.

Arrivals for the whole replay period are drawn once (who visits when does not depend on what the
shop shows). What each visit *does* is simulated only after the shop has decided what to show:
the relevance of that to the customer's true per-product taste scales the chance of buying
(`atelier.data.simulate.sessions.purchase_multiplier`, the response model). Every random draw is
keyed by the window index, so a replay restarted from a checkpoint draws exactly what an
uninterrupted one does, and runs that differ only in what was shown share their random numbers
(a cleaner A/B test).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from atelier.data.simulate.config import SimulationConfig
from atelier.data.simulate.sessions import Outcomes, Sessions, purchase_multiplier, session_arrivals, session_outcomes
from atelier.data.simulate.truth import product_preference
from atelier.data.simulate.world import Population, World, build_world, population_from_truth, stream

STREAM_REPLAY = 4
EVENTS_PER_SESSION_LIMIT = 10_000  # event ids are session_id * this + position


@dataclass(frozen=True)
class NoiseSettings:
    """How the network mangles the stream (params.yaml `replay`)."""

    network_delay_seconds: float
    late_share: float
    duplicate_share: float
    malformed_share: float
    lateness_seconds: float  # watermark delay + allowed lateness: a late record is delayed beyond this


@dataclass
class ReplayWorld:
    """The shop after `start`: its customers' hidden traits and every visit's arrival."""

    world: World
    population: Population
    sessions: Sessions
    start: pd.Timestamp
    session_base: int
    order_base: int
    seed: int

    @classmethod
    def build(cls, config: SimulationConfig, seed: int, truth: pd.DataFrame, start: pd.Timestamp,
              customers: pd.DataFrame, id_floor: dict[str, int]) -> ReplayWorld:
        """The world of the simulate stage (same config, seed and hidden traits `truth`), from `start` to its end.

        `truth` is the simulator's customer table (data/truth/customers.parquet); `id_floor` holds the
        largest session and order ids already used, so replayed ids never collide.
        """
        world = build_world(config, seed)
        population = population_from_truth(config, truth, customers)
        first_day = config.day_index(start)
        sessions = session_arrivals(world, population, first_day, config.n_days - 1, stream(seed, STREAM_REPLAY, 0))
        return cls(world=world, population=population, sessions=sessions, start=start,
                   session_base=id_floor["session"] + 1, order_base=id_floor["order"] + 1, seed=seed)

    @property
    def categories(self) -> list[str]:
        return list(self.world.config.categories)

    def end(self) -> pd.Timestamp:
        return self.world.config.end + pd.Timedelta(days=1)

    def _ms(self, when: pd.Timestamp) -> int:
        return int((when - self.world.config.start) / pd.Timedelta(milliseconds=1))

    def visits_between(self, begin: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
        """Positions of the visits starting in [begin, end), in time order."""
        starts = self.sessions.start_ms
        return np.arange(np.searchsorted(starts, self._ms(begin)), np.searchsorted(starts, self._ms(end)))

    def visit_table(self, positions: np.ndarray) -> pd.DataFrame:
        """customer_id, session_id and start time of the visits at `positions`."""
        start = self.world.config.start + pd.to_timedelta(self.sessions.start_ms[positions], unit="ms")
        return pd.DataFrame({
            "customer_id": self.population.customer_id[self.sessions.customer_row[positions]],
            "session_id": self.session_base + positions,
            "ts": np.asarray(start, dtype="datetime64[us]"),
        })

    @cached_property
    def _product_index(self) -> pd.Index:
        return pd.Index(self.world.column("product_id"))

    def taste(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What `relevance` needs of the visitors at `positions`: each visit's customer row, its row in the
        preference table, and that table (distinct visitors x products, over each one's favourite product)."""
        rows = self.sessions.customer_row[positions]
        unique, local = np.unique(rows, return_inverse=True)
        preference = product_preference(self.world, self.population, unique)
        return rows, local, preference / preference.max(axis=1, keepdims=True)

    def relevance(self, positions: np.ndarray, products: list[np.ndarray], banner_category: np.ndarray,
                  taste: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """How well what each visit was shown matches the visitor's true taste (0..1): the mean over the shown items
        (each product, plus the banner's category if any) of the item's relevance. A product's relevance is the
        visitor's true preference for it (`product_preference`) over their favourite product's; a banner
        category's is its affinity over the favourite category's. A product the shop does not know counts 0;
        a visit shown nothing has relevance 0. `taste` is `self.taste(positions)`, if already computed."""
        rows, local, preference = self.taste(positions) if taste is None else taste
        lengths = np.fromiter((len(p) for p in products), dtype=np.int64, count=len(positions))
        flat = np.concatenate([np.asarray(p, dtype=np.int64) for p in products]) if lengths.sum() else np.zeros(0, int)
        columns = self._product_index.get_indexer(flat)
        visit = np.repeat(np.arange(len(positions)), lengths)
        item = np.where(columns >= 0, preference[local[visit], np.maximum(columns, 0)], 0.0)
        total = np.bincount(visit, weights=item, minlength=len(positions)).astype(float)
        category_index = {c: i for i, c in enumerate(self.categories)}
        banner = np.array([category_index.get(c, -1) if isinstance(c, str) else -1 for c in banner_category])
        affinity = self.population.affinity[rows]
        banner_relevance = np.take_along_axis(affinity, np.maximum(banner, 0)[:, None], axis=1)[:, 0]
        total += np.where(banner >= 0, banner_relevance / affinity.max(axis=1), 0.0)
        count = lengths + (banner >= 0)
        return np.where(count > 0, total / np.maximum(count, 1), 0.0)

    def play(self, positions: np.ndarray, products: list[np.ndarray], banner_category: np.ndarray,
             default_products: np.ndarray, strength: float, window: int) -> Outcomes:
        """Simulate the visits at `positions` given what each was shown (its products and banner category) and
        what the default experience (`default_products`, no banner category) would have shown."""
        taste = self.taste(positions)  # the same visitors in both: their preferences computed once
        relevance = self.relevance(positions, products, banner_category, taste)
        baseline = self.relevance(positions, [default_products] * len(positions), np.full(len(positions), None), taste)
        multiplier = purchase_multiplier(relevance, baseline, strength)
        subset = Sessions(customer_row=self.sessions.customer_row[positions], day=self.sessions.day[positions],
                          start_ms=self.sessions.start_ms[positions], device=self.sessions.device[positions])
        first = int(positions[0]) if len(positions) else 0
        outcome = session_outcomes(self.world, self.population, subset, stream(self.seed, STREAM_REPLAY, 1, window),
                                   first_session_id=self.session_base + first, buy_multiplier=multiplier)
        events, orders = outcome.events, outcome.orders
        # Ids that depend only on the visit, never on what came before: restarts and A/B reruns agree.
        position = position_in_group(events["session_id"].to_numpy())
        events["event_id"] = events["session_id"].to_numpy() * EVENTS_PER_SESSION_LIMIT + position
        orders["order_id"] = self.order_base + orders["session_id"].to_numpy() - self.session_base
        summary = outcome.sessions.assign(relevance=relevance, baseline_relevance=baseline, multiplier=multiplier)
        return Outcomes(events=events, orders=orders, sessions=summary)


def position_in_group(keys: np.ndarray) -> np.ndarray:
    """Each row's position among the earlier rows with the same key (`groupby(key).cumcount()`, without pandas)."""
    _, codes = np.unique(keys, return_inverse=True)
    order = np.argsort(codes, kind="stable")  # rows grouped by key, in row order within a group
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    first_of_group = np.repeat(starts, np.diff(np.r_[starts, len(codes)]))
    position = np.empty(len(codes), dtype=np.int64)
    position[order] = np.arange(len(codes)) - first_of_group
    return position


def arrivals(records: pd.DataFrame, noise: NoiseSettings, rng: np.random.Generator) -> pd.DataFrame:
    """The records as the network delivers them: delayed, some very late, some twice, some corrupted.

    Adds `arrival`; returns the records (duplicates included) sorted by arrival time.
    """
    n = len(records)
    delay = rng.exponential(noise.network_delay_seconds, n)
    late = rng.random(n) < noise.late_share
    delay = np.where(late, noise.lateness_seconds * (1.5 + rng.random(n)), delay)
    corrupt = rng.random(n) < noise.malformed_share
    delivered = records
    if corrupt.any():
        # A corrupted record loses its customer id in transit: it cannot be applied, so it is dead-lettered.
        delivered = records.copy()
        delivered["customer_id"] = delivered["customer_id"].astype(object)
        delivered.loc[corrupt, "customer_id"] = None
    arrival = delivered["ts"] + pd.to_timedelta(delay, unit="s")
    twice = rng.random(n) < noise.duplicate_share
    echo = pd.to_timedelta(rng.exponential(5.0, int(twice.sum())), unit="s")  # a copy comes a few seconds later
    # Every record, then the copies; in arrival order (stable): one take instead of a concat and a sort.
    arrivals = pd.Series(np.concatenate([arrival.to_numpy(), (arrival[twice] + echo).to_numpy()]))
    order = arrivals.sort_values(kind="stable").index.to_numpy()
    rows = np.concatenate([np.arange(n), np.flatnonzero(twice)])[order]
    return delivered.take(rows).reset_index(drop=True).assign(arrival=arrivals.to_numpy()[order])

