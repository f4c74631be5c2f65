"""The personalization policy: what the shop shows a customer when a visit starts.

Segment x propensity x category affinity decide a homepage banner and product recommendations.
Anyone in the control arm, a customer the shop knows nothing about (cold start), a profile the
model cannot score (missing features) or a model that failed to load all get the default
experience, and the reason is recorded so fallbacks are counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from atelier.core.config import ParamsError

DEFAULT_BANNER = "bestsellers"
COMPLETE_THE_LOOK = "complete_the_look"
#: Why a visit got what it got.
REASONS = ("personalized", "control", "cold_start", "missing_features", "model_unavailable")


@dataclass(frozen=True)
class PolicySettings:
    """The policy's tunables (params.yaml `replay.policy`)."""

    recommendations: int
    high_propensity: float
    banners: dict[str, str]

    @classmethod
    def from_params(cls, section: dict[str, Any]) -> PolicySettings:
        """Settings from params.yaml's `replay.policy`; a ParamsError names the key at fault and the fix."""
        missing = [key for key in ("recommendations", "high_propensity", "banners") if key not in section]
        if missing:
            raise ParamsError(f"params.yaml replay.policy: missing keys {missing}; "
                              "restore them from the project's params.yaml")
        recommendations, high, banners = section["recommendations"], section["high_propensity"], section["banners"]
        whole = isinstance(recommendations, (int, np.integer)) and not isinstance(recommendations, bool)
        if not whole or recommendations < 1:
            raise ParamsError("params.yaml replay.policy.recommendations: must be a whole number of products, "
                              f"1 or more, got {recommendations!r}")
        if isinstance(high, bool) or not isinstance(high, (int, float)) or not 0.0 <= high <= 1.0:
            raise ParamsError("params.yaml replay.policy.high_propensity: must be a probability between 0 and 1, "
                              f"got {high!r}")
        if not isinstance(banners, dict):
            raise ParamsError("params.yaml replay.policy.banners: must map segment names to banner themes "
                              f"(e.g. Lapsing: we_miss_you), got {banners!r}")
        return cls(recommendations=int(recommendations), high_propensity=float(high),
                   banners={str(k): str(v) for k, v in banners.items()})


@dataclass(frozen=True)
class Assortment:
    """What the shop can show: products with their category and popularity (views before the cutoff)."""

    product_id: np.ndarray
    category: np.ndarray
    popularity: np.ndarray
    _by_category: dict[str, np.ndarray] = field(init=False, repr=False, compare=False)
    _category_of: dict[Any, str] = field(init=False, repr=False, compare=False)
    _pages: dict[tuple, np.ndarray] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        # Looked up at every visit: computed once.
        object.__setattr__(self, "_by_category",
                           {c: self.product_id[self.category == c] for c in sorted(set(self.category))})
        object.__setattr__(self, "_category_of", dict(zip(self.product_id.tolist(), self.category.tolist())))

    @classmethod
    def from_tables(cls, products: pd.DataFrame, events: pd.DataFrame | None) -> Assortment:
        """Popularity = product views in the events (before the cutoff); ties broken by product id."""
        views = pd.Series(0.0, index=products["product_id"].to_numpy())
        if events is not None and "product_id" in events:
            counted = events.loc[(events["event_type"] == "product_view").to_numpy(), "product_id"].value_counts()
            views = views.add(counted.reindex(views.index).fillna(0), fill_value=0)
        order = np.lexsort((views.index.to_numpy(), -views.to_numpy()))
        return cls(product_id=views.index.to_numpy()[order],
                   category=products.set_index("product_id")["category"].astype(str).reindex(views.index).to_numpy()[order],
                   popularity=views.to_numpy()[order])

    @property
    def categories(self) -> list[str]:
        return list(self._by_category)

    def top(self, n: int, category: str | None = None) -> np.ndarray:
        """The `n` most popular products, overall or in one category."""
        ids = self.product_id if category is None else self._by_category.get(category, self.product_id[:0])
        return ids[:n]

    def recommend(self, favourite: str, runner_up: str | None, n: int) -> np.ndarray:
        """The personalized page's products: the favourite category's bestsellers, a third from the runner-up."""
        key = (favourite, runner_up, n)
        if key not in self._pages:
            from_second = n // 3 if runner_up is not None and runner_up != favourite else 0
            self._pages[key] = np.concatenate([self.top(n - from_second, favourite), self.top(from_second, runner_up)])
        return self._pages[key]

    def categories_of(self, product_ids: np.ndarray) -> list[str]:
        return [self._category_of[p] for p in np.asarray(product_ids).tolist()]


def default_experience(assortment: Assortment, settings: PolicySettings) -> dict[str, Any]:
    """The generic homepage: the bestsellers banner and the most popular products overall."""
    return {"banner": DEFAULT_BANNER, "banner_category": None, "products": assortment.top(settings.recommendations)}


def favourite_categories(shares: np.ndarray, names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Favourite and second-favourite category per row of view shares (None where a row has no views)."""
    if shares.shape[1] == 0:
        return np.full(len(shares), None, dtype=object), np.full(len(shares), None, dtype=object)
    known = ~np.isnan(shares).all(axis=1)
    order = np.argsort(-np.nan_to_num(shares, nan=-1.0), axis=1, kind="stable")
    second_column = order[:, min(1, shares.shape[1] - 1)]
    second_share = np.nan_to_num(np.take_along_axis(shares, second_column[:, None], axis=1)[:, 0])
    first = np.where(known, names[order[:, 0]], None)
    # A runner-up only if the customer actually viewed it.
    second = np.where(known & (shares.shape[1] > 1) & (second_share > 0), names[second_column], None)
    return first, second


def top_categories(profiles: pd.DataFrame, categories: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each profile's favourite and second-favourite category by share of product views (None if no views)."""
    columns = [f"affinity_{c}" for c in categories if f"affinity_{c}" in profiles]
    names = np.array([c.removeprefix("affinity_") for c in columns], dtype=object)
    # Column by column: selecting a list of columns costs more than the rest of the decision on a window's visits.
    shares = np.empty((len(profiles), len(columns)))
    for position, column in enumerate(columns):
        shares[:, position] = profiles[column].to_numpy(dtype=float)
    return favourite_categories(shares, names)


def choose(*, arm: str, known: bool, favourite: str | None, runner_up: str | None, propensity: float | None,
           segment: str | None, assortment: Assortment, settings: PolicySettings) -> dict[str, Any]:
    """The decision for one visit: experience, reason, banner, banner category, products, propensity.

    `propensity` is None when the model is unavailable and NaN when the profile could not be scored.
    """
    score = np.nan if propensity is None else float(propensity)
    if arm != "treatment":
        reason = "control"
    elif not known or favourite is None:
        reason = "cold_start"
    elif propensity is None:
        reason = "model_unavailable"
    elif np.isnan(score):
        reason = "missing_features"
    else:
        reason = "personalized"
    if reason != "personalized":
        return {"experience": "default", "reason": reason, "banner": DEFAULT_BANNER, "banner_category": None,
                "products": assortment.top(settings.recommendations), "propensity": score}
    segment_banner = settings.banners.get(str(segment), DEFAULT_BANNER)
    banner = COMPLETE_THE_LOOK if score >= settings.high_propensity else segment_banner
    return {"experience": "personalized", "reason": reason, "banner": banner, "banner_category": favourite,
            "products": assortment.recommend(favourite, runner_up, settings.recommendations), "propensity": score}


def decide(profiles: pd.DataFrame, *, arm: np.ndarray, propensity: np.ndarray | None, segments: np.ndarray,
           known: np.ndarray, assortment: Assortment, settings: PolicySettings) -> pd.DataFrame:
    """One decision per profile row, vectorized: the same rules as `choose` (tests hold them equal)."""
    first, second = top_categories(profiles, assortment.categories)
    n = len(profiles)
    arm = np.asarray(arm, dtype=object)
    score = np.full(n, np.nan) if propensity is None else np.asarray(propensity, dtype=float)
    treated = arm == "treatment"
    no_profile = ~np.asarray(known, dtype=bool) | np.equal(first, None)
    reason = np.select(
        [~treated, no_profile, np.full(n, propensity is None), np.isnan(score)],
        ["control", "cold_start", "model_unavailable", "missing_features"], default="personalized").astype(object)
    personalized = reason == "personalized"
    segment_banner = np.array([settings.banners.get(str(s), DEFAULT_BANNER) for s in segments], dtype=object)
    banner = np.where(personalized, np.where(score >= settings.high_propensity, COMPLETE_THE_LOOK, segment_banner),
                      DEFAULT_BANNER)
    default_products = assortment.top(settings.recommendations)
    products = [assortment.recommend(f, s, settings.recommendations) if p else default_products
                for f, s, p in zip(first, second, personalized)]
    return pd.DataFrame({
        "arm": arm, "segment": segments, "experience": np.where(personalized, "personalized", "default").astype(object),
        "reason": reason, "banner": banner.astype(object), "banner_category": np.where(personalized, first, None),
        "products": products, "propensity": score,
    }, index=profiles.index)


def shown_shares(decisions: pd.DataFrame, assortment: Assortment, categories: list[str]) -> np.ndarray:
    """Share of each category in what a decision showed (its products, plus the banner's category)."""
    index = {c: i for i, c in enumerate(categories)}
    shares = np.zeros((len(decisions), len(categories)))
    for row, (products, banner_category) in enumerate(zip(decisions["products"], decisions["banner_category"])):
        for category in assortment.categories_of(np.asarray(products)):
            shares[row, index[category]] += 1
        if isinstance(banner_category, str):  # the default experience has none (pandas may hold it as NA)
            shares[row, index[banner_category]] += 1
    return shares / shares.sum(axis=1, keepdims=True)
