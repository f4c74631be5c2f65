"""The simulated shop: its catalog, its calendar, and its customers' hidden traits."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from atelier.data.simulate.calendar import build_calendar
from atelier.data.simulate.config import DAYS_PER_MONTH, TIERS, SimulationConfig

# Random streams: each part of the world draws from its own child of the one seed, so changing
# how much of one part is generated never shifts another.
STREAM_CATALOG = 1
STREAM_CUSTOMERS = 2
STREAM_SESSIONS = 3


def stream(seed: int, *path: int) -> np.random.Generator:
    """A generator for the random stream at `path` under `seed` (same seed and path, same draws)."""
    return np.random.default_rng(np.random.SeedSequence([seed, *path]))


@dataclass(frozen=True)
class World:
    """What stays fixed while customers come and go: config, calendar and catalog, as arrays."""

    config: SimulationConfig
    calendar: pd.DataFrame
    catalog: pd.DataFrame

    @property
    def traffic(self) -> np.ndarray:
        return self.calendar["traffic"].to_numpy()

    @property
    def sale_discount(self) -> np.ndarray:
        return self.calendar["sale_discount"].to_numpy()

    @cached_property
    def _catalog_arrays(self) -> dict[str, np.ndarray]:
        return {str(column): self.catalog[column].to_numpy() for column in self.catalog.columns}

    def column(self, name: str) -> np.ndarray:
        """A catalog column as an array, read once (the catalog never changes; the replay asks every window)."""
        return self._catalog_arrays[name]

    @cached_property
    def product_style(self) -> np.ndarray:
        """The products' hidden style vectors (products x style_dims), read once."""
        return self.catalog[[f"style_{d}" for d in range(self.config.style_dims)]].to_numpy()


def build_catalog(config: SimulationConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Products spread evenly over category x tier, with prices, popularity and clearance flags.

    Rows are ordered by (category, tier) so each group is a contiguous block; `popularity` sums to
    1 within a group (Zipf over a random rank) and `log_relative_price` is log(price / category base).
    `style_0..` are the product's hidden style vector (drawn last, so the other columns do not depend on it).
    """
    categories = list(config.categories)
    n_groups = len(categories) * len(TIERS)
    per_group = np.full(n_groups, config.n_products // n_groups)
    per_group[: config.n_products % n_groups] += 1
    group = np.repeat(np.arange(n_groups), per_group)
    category_index = group // len(TIERS)
    tier_index = group % len(TIERS)
    base = np.array([config.categories[c] for c in categories])[category_index]
    tier_multiplier = np.array([config.tier_price_multiplier[t] for t in TIERS])[tier_index]
    price = np.round(base * tier_multiplier * rng.lognormal(0, config.price_log_sd, len(group)), 2)
    price = np.maximum(price, 1.0)
    rank = np.concatenate([rng.permutation(n) + 1 for n in per_group])
    weight = rank.astype(float) ** -config.popularity_zipf
    popularity = weight / np.bincount(group, weights=weight)[group]
    clearance = rng.random(len(group)) < config.clearance_share
    style = rng.standard_normal((len(group), config.style_dims)) / np.sqrt(config.style_dims)
    frame = pd.DataFrame(
        {
            "product_id": np.arange(1, len(group) + 1, dtype=np.int64),
            "category": pd.Categorical.from_codes(category_index, categories),
            "price_tier": pd.Categorical.from_codes(tier_index, list(TIERS)),
            "price": price,
            "group": group,
            "popularity": popularity,
            "log_relative_price": np.log(price / base),
            "clearance": clearance,
        }
    )
    for dim in range(config.style_dims):
        frame[f"style_{dim}"] = style[:, dim]
    return frame


def build_world(config: SimulationConfig, seed: int) -> World:
    """The calendar and catalog for `config`, drawn from `seed`."""
    catalog = build_catalog(config, stream(seed, STREAM_CATALOG))
    return World(config=config, calendar=build_calendar(config), catalog=catalog)


@dataclass(frozen=True)
class Population:
    """Customers' observable attributes and hidden traits, one array entry per customer."""

    customer_id: np.ndarray  # int64
    persona: np.ndarray  # index into config.personas
    signup_day: np.ndarray  # days from config.start (negative: joined before the simulated period)
    churn_day: np.ndarray  # first day no longer active (may be after config.end)
    visit_rate: np.ndarray  # sessions per day at traffic 1
    affinity: np.ndarray  # (customers, categories), rows sum to 1
    style: np.ndarray  # (customers, style dims): hidden taste, matched against the products' style vectors
    signup_seconds: np.ndarray  # seconds after midnight of the signup day
    age_band: np.ndarray
    gender: np.ndarray
    region: np.ndarray

    def __len__(self) -> int:
        return len(self.customer_id)

    def take(self, rows: np.ndarray) -> Population:
        """The customers at positions `rows`."""
        return Population(**{name: getattr(self, name)[rows] for name in self.__dataclass_fields__})


def _categorical_draw(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One category index per row of `probabilities` (rows sum to 1)."""
    cumulative = np.cumsum(probabilities, axis=1)
    cumulative[:, -1] = 1.0
    return (rng.random(len(probabilities))[:, None] > cumulative).sum(axis=1)


def draw_population(config: SimulationConfig, first_index: int, n: int, rng: np.random.Generator) -> Population:
    """`n` customers with ids first_index+1.., their persona, signup, churn and preferences."""
    personas = config.personas
    persona = rng.choice(len(personas), size=n, p=[p.share for p in personas])
    joined_during = rng.random(n) < np.array([p.joined_during_share for p in personas])[persona]
    signup_day = np.where(
        joined_during,
        rng.integers(0, config.n_days, n),
        -rng.integers(1, config.signup_lookback_days + 1, n),
    )
    lifetime_days = rng.exponential(np.array([p.lifetime_months for p in personas])[persona] * DAYS_PER_MONTH)
    churn_day = np.maximum(signup_day, 0) + np.ceil(lifetime_days).astype(np.int64)
    heterogeneity = rng.gamma(config.visit_rate_shape, 1 / config.visit_rate_shape, n)
    visit_rate = np.array([p.sessions_per_month for p in personas])[persona] / DAYS_PER_MONTH * heterogeneity
    concentration = np.array([p.affinity_concentration for p in personas])[persona]
    n_categories = len(config.categories)
    affinity = rng.gamma(np.repeat(concentration[:, None], n_categories, axis=1))
    affinity = np.maximum(affinity, 1e-12)
    affinity /= affinity.sum(axis=1, keepdims=True)
    age_mix = np.array([p.age_mix for p in personas])[persona]
    age_band = np.asarray(config.age_bands)[_categorical_draw(age_mix, rng)]
    gender = rng.choice(list(config.genders), size=n, p=list(config.genders.values()))
    region = rng.choice(list(config.regions), size=n, p=list(config.regions.values()))
    signup_seconds = rng.integers(0, 86_400, n)
    style = rng.standard_normal((n, config.style_dims))  # drawn last: the traits above keep their draws
    return Population(
        customer_id=np.arange(first_index + 1, first_index + n + 1, dtype=np.int64),
        persona=persona.astype(np.int64),
        signup_day=signup_day.astype(np.int64),
        churn_day=churn_day,
        visit_rate=visit_rate,
        affinity=affinity,
        style=style,
        signup_seconds=signup_seconds,
        age_band=age_band,
        gender=gender,
        region=region,
    )


def customers_table(config: SimulationConfig, population: Population) -> pd.DataFrame:
    """The observable customers table (the contract's columns; no hidden traits)."""
    signup_at = config.start + pd.to_timedelta(population.signup_day, unit="D") + pd.to_timedelta(
        population.signup_seconds, unit="s"
    )
    return pd.DataFrame(
        {
            "customer_id": population.customer_id,
            "signup_at": signup_at.astype("datetime64[us]"),
            "age_band": population.age_band,
            "gender": population.gender,
            "region": population.region,
        }
    )


def truth_table(config: SimulationConfig, population: Population) -> pd.DataFrame:
    """The hidden traits, for checking models against the truth. Never a model input."""
    frame = pd.DataFrame(
        {
            "customer_id": population.customer_id,
            "persona": np.asarray(config.persona_names)[population.persona],
            "signup_day": population.signup_day,
            "churn_day": population.churn_day,
            "churn_at": config.start + pd.to_timedelta(population.churn_day, unit="D"),
            "visit_rate_per_month": population.visit_rate * DAYS_PER_MONTH,
        }
    )
    for index, category in enumerate(config.categories):
        frame[f"affinity_{category}"] = population.affinity[:, index]
    for dim in range(config.style_dims):
        frame[f"style_{dim}"] = population.style[:, dim]
    return frame


def population_from_truth(config: SimulationConfig, truth: pd.DataFrame, customers: pd.DataFrame) -> Population:
    """Rebuild a Population from the truth and customers tables (e.g. to continue after a cutoff)."""
    merged = truth.merge(customers, on="customer_id", how="left", validate="one_to_one")
    persona_index = {name: i for i, name in enumerate(config.persona_names)}
    signup_at = pd.to_datetime(merged["signup_at"])
    return Population(
        customer_id=merged["customer_id"].to_numpy(np.int64),
        persona=merged["persona"].map(persona_index).to_numpy(np.int64),
        signup_day=merged["signup_day"].to_numpy(np.int64),
        churn_day=merged["churn_day"].to_numpy(np.int64),
        visit_rate=merged["visit_rate_per_month"].to_numpy(float) / DAYS_PER_MONTH,
        affinity=merged[[f"affinity_{c}" for c in config.categories]].to_numpy(float),
        style=merged[[f"style_{d}" for d in range(config.style_dims)]].to_numpy(float),
        signup_seconds=(signup_at - signup_at.dt.normalize()).dt.total_seconds().to_numpy(np.int64),
        age_band=merged["age_band"].to_numpy(),
        gender=merged["gender"].to_numpy(),
        region=merged["region"].to_numpy(),
    )


def style_weights(world: World, style: np.ndarray) -> np.ndarray:
    """Within-group view shares (customers x products): popularity x exp(strength x style . product style),
    normalized so each customer's shares sum to 1 within every (category, tier) group."""
    group = world.column("group")
    logits = world.config.style_strength * (np.asarray(style, dtype=float) @ world.product_style.T)
    weight = world.column("popularity")[None, :] * np.exp(logits - logits.max(axis=1, keepdims=True))
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])  # groups are contiguous blocks
    return weight / np.add.reduceat(weight, starts, axis=1)[:, group]


def view_shares(world: World, population: Population, rows: np.ndarray) -> np.ndarray:
    """Each customer's (at `rows`) chance that a view lands on each product: category affinity x the persona's
    tier mix x the within-group style-and-popularity share (customers x products; rows sum to 1)."""
    config = world.config
    group = world.column("group")
    category, tier = group // len(TIERS), group % len(TIERS)
    tier_mix = np.array([p.tier_mix for p in config.personas])
    return (population.affinity[rows][:, category] * tier_mix[population.persona[rows]][:, tier]
            * style_weights(world, population.style[rows]))


#: Customers whose within-group shares are computed together when drawing products (bounds memory).
PICK_BLOCK = 4096


def pick_products(world: World, population: Population, customer_row: np.ndarray, group: np.ndarray,
                  uniform: np.ndarray) -> np.ndarray:
    """The catalog row of each view, given its customer, its (category, tier) group and a uniform draw:
    inverse-CDF sampling of the customer's within-group shares (`style_weights`)."""
    catalog_group = world.column("group")
    n_products, n_groups = len(catalog_group), int(catalog_group.max()) + 1
    starts = np.flatnonzero(np.r_[True, catalog_group[1:] != catalog_group[:-1]])
    last_in_group = np.r_[catalog_group[1:] != catalog_group[:-1], True]
    product_row = np.zeros(len(customer_row), dtype=np.int64)
    customers, local = np.unique(customer_row, return_inverse=True)
    for first in range(0, len(customers), PICK_BLOCK):
        block = customers[first:first + PICK_BLOCK]
        in_block = (local >= first) & (local < first + len(block))
        within = style_weights(world, population.style[block])
        cumulative = np.cumsum(within, axis=1)
        before = np.concatenate([np.zeros((len(block), 1)), cumulative[:, starts[1:] - 1]], axis=1)
        key = cumulative - before[:, catalog_group]
        key[:, last_in_group] = 1.0
        key += catalog_group[None, :] + (np.arange(len(block)) * n_groups)[:, None]
        row = local[in_block] - first
        found = np.searchsorted(key.ravel(), row * n_groups + group[in_block] + uniform[in_block], side="right")
        product_row[in_block] = np.minimum(found - row * n_products, n_products - 1)
    return product_row
