"""The simulator's settings, read from the `simulate` section of params.yaml and checked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from atelier.core.config import ParamsError

TIERS = ("budget", "mid", "premium")
DEVICES = ("mobile", "desktop", "tablet")
DAYS_PER_MONTH = 365.25 / 12


@dataclass(frozen=True)
class Persona:
    """A hidden customer type: the behaviour every customer of that type shares (before heterogeneity)."""

    name: str
    share: float
    joined_during_share: float
    sessions_per_month: float
    views_per_session: float
    cart_rate: float
    buy_rate: float
    basket_extra_units: float
    price_sensitivity: float
    discount_sensitivity: float
    tier_mix: tuple[float, ...]
    mobile_share: float
    affinity_concentration: float
    lifetime_months: float
    age_mix: tuple[float, ...]


@dataclass(frozen=True)
class SeasonalEvent:
    """A yearly event: extra traffic and, for sales, a store-wide discount."""

    name: str
    anchor: str
    offset_days: int
    days: int
    traffic: float
    discount: float


@dataclass(frozen=True)
class SimulationConfig:
    """Everything the simulator needs besides the seed and the timeline."""

    n_customers: int
    n_products: int
    start: pd.Timestamp
    end: pd.Timestamp
    signup_lookback_days: int
    visit_rate_shape: float
    chunk_customers: int
    dwell_log_mean: float
    dwell_log_sd: float
    tablet_share_of_non_mobile: float
    buy_multiplier: dict[str, float]
    mobile_logit_per_year: float
    weekly: tuple[float, ...]
    events: tuple[SeasonalEvent, ...]
    clearance_share: float
    clearance_discount: float
    categories: dict[str, float]
    tier_price_multiplier: dict[str, float]
    price_log_sd: float
    popularity_zipf: float
    style_dims: int
    style_strength: float
    age_bands: tuple[str, ...]
    genders: dict[str, float]
    regions: dict[str, float]
    personas: tuple[Persona, ...]

    @property
    def n_days(self) -> int:
        return int((self.end - self.start).days) + 1

    @property
    def persona_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.personas)

    def day_index(self, when: pd.Timestamp | str) -> int:
        """Days from `start` to `when` (0 for the first simulated day)."""
        return int((pd.Timestamp(when).normalize() - self.start).days)


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ParamsError(f"params.yaml simulate.{key}: {message}")


def _shares(values: Any, key: str, length: int | None = None) -> tuple[float, ...]:
    shares = tuple(float(v) for v in values)
    if length is not None:
        _require(len(shares) == length, key, f"needs {length} values, got {len(shares)}")
    _require(all(v >= 0 for v in shares), key, "shares cannot be negative")
    _require(abs(sum(shares) - 1) < 1e-6, key, f"shares must sum to 1 (they sum to {sum(shares):.4f})")
    return shares


def config_from_params(section: dict[str, Any]) -> SimulationConfig:
    """Build and check a SimulationConfig from params.yaml's `simulate` section."""
    try:
        devices = section["devices"]
        calendar = section["calendar"]
        catalog = section["catalog"]
        demographics = section["demographics"]
        age_bands = tuple(str(b) for b in demographics["age_bands"])
        personas = []
        for name, p in section["personas"].items():
            personas.append(
                Persona(
                    name=name,
                    share=float(p["share"]),
                    joined_during_share=float(p["joined_during_share"]),
                    sessions_per_month=float(p["sessions_per_month"]),
                    views_per_session=float(p["views_per_session"]),
                    cart_rate=float(p["cart_rate"]),
                    buy_rate=float(p["buy_rate"]),
                    basket_extra_units=float(p["basket_extra_units"]),
                    price_sensitivity=float(p["price_sensitivity"]),
                    discount_sensitivity=float(p["discount_sensitivity"]),
                    tier_mix=_shares(p["tier_mix"], f"personas.{name}.tier_mix", len(TIERS)),
                    mobile_share=float(p["mobile_share"]),
                    affinity_concentration=float(p["affinity_concentration"]),
                    lifetime_months=float(p["lifetime_months"]),
                    age_mix=_shares(p["age_mix"], f"personas.{name}.age_mix", len(age_bands)),
                )
            )
        events = tuple(
            SeasonalEvent(
                name=name,
                anchor=str(e["anchor"]),
                offset_days=int(e.get("offset_days", 0)),
                days=int(e["days"]),
                traffic=float(e["traffic"]),
                discount=float(e["discount"]),
            )
            for name, e in calendar["events"].items()
        )
        config = SimulationConfig(
            n_customers=int(section["n_customers"]),
            n_products=int(section["n_products"]),
            start=pd.Timestamp(section["start"]),
            end=pd.Timestamp(section["end"]),
            signup_lookback_days=int(section["signup_lookback_days"]),
            visit_rate_shape=float(section["visit_rate_shape"]),
            chunk_customers=int(section["chunk_customers"]),
            dwell_log_mean=float(section["dwell_log_mean"]),
            dwell_log_sd=float(section["dwell_log_sd"]),
            tablet_share_of_non_mobile=float(devices["tablet_share_of_non_mobile"]),
            buy_multiplier={d: float(devices["buy_multiplier"][d]) for d in DEVICES},
            mobile_logit_per_year=float(section["drift"]["mobile_logit_per_year"]),
            weekly=tuple(float(w) for w in calendar["weekly"]),
            events=events,
            clearance_share=float(calendar["clearance_share"]),
            clearance_discount=float(calendar["clearance_discount"]),
            categories={str(k): float(v) for k, v in catalog["categories"].items()},
            tier_price_multiplier={t: float(catalog["tier_price_multiplier"][t]) for t in TIERS},
            price_log_sd=float(catalog["price_log_sd"]),
            popularity_zipf=float(catalog["popularity_zipf"]),
            style_dims=int(catalog["style_dims"]),
            style_strength=float(catalog["style_strength"]),
            age_bands=age_bands,
            genders={str(k): float(v) for k, v in demographics["genders"].items()},
            regions={str(k): float(v) for k, v in demographics["regions"].items()},
            personas=tuple(personas),
        )
    except KeyError as missing:
        raise ParamsError(
            f"params.yaml simulate: missing key {missing}; restore it from the project's params.yaml"
        ) from None
    _check(config)
    return config


def _check(config: SimulationConfig) -> None:
    _require(config.n_customers > 0, "n_customers", "must be positive")
    _require(config.chunk_customers > 0, "chunk_customers", "must be positive")
    _require(config.end > config.start, "end", "must be after simulate.start")
    _require(len(config.weekly) == 7, "calendar.weekly", "needs 7 values, Monday..Sunday")
    n_groups = len(config.categories) * len(TIERS)
    _require(
        config.n_products >= n_groups,
        "n_products",
        f"needs at least one product per category and tier ({n_groups})",
    )
    _require(config.style_dims >= 1, "catalog.style_dims", "must be >= 1 (the length of the style vectors)")
    _require(
        np.isfinite(config.style_strength) and config.style_strength >= 0,
        "catalog.style_strength", "must be >= 0 (0: style plays no part in which product of a group is viewed)",
    )
    _shares([p.share for p in config.personas], "personas.*.share")
    _shares(list(config.genders.values()), "demographics.genders")
    _shares(list(config.regions.values()), "demographics.regions")
    for p in config.personas:
        key = f"personas.{p.name}"
        _require(0 < p.mobile_share < 1, f"{key}.mobile_share", "must be strictly between 0 and 1")
        _require(p.views_per_session >= 1, f"{key}.views_per_session", "must be at least 1")
        _require(0 <= p.joined_during_share <= 1, f"{key}.joined_during_share", "must be in [0, 1]")
        for field in ("cart_rate", "buy_rate"):
            _require(0 < getattr(p, field) <= 1, f"{key}.{field}", "must be in (0, 1]")
        _require(p.lifetime_months > 0 and p.sessions_per_month > 0, key, "rates must be positive")
        _require(
            np.isfinite(p.basket_extra_units) and p.basket_extra_units >= 0,
            f"{key}.basket_extra_units", "must be >= 0 (the mean extra units of each item bought)",
        )
    for event in config.events:
        if event.anchor != "black_friday":
            try:
                pd.Timestamp(f"2001-{event.anchor}")
            except ValueError:
                raise ParamsError(
                    f"params.yaml simulate.calendar.events.{event.name}.anchor: '{event.anchor}' is "
                    "neither 'black_friday' nor a month-day like '06-20'"
                ) from None
    _require(
        np.isfinite(config.dwell_log_mean) and config.dwell_log_sd >= 0, "dwell_log_sd", "must be >= 0"
    )
