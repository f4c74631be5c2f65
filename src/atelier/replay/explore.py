"""Exploration with logged propensities: an option of the policy, off unless asked for.

With it, a visit that the policy could personalize (a profile with viewed categories and a
score) gets one of a few candidate pages: with probability 1 - epsilon the page the policy
chose (or the `base` action, if set), otherwise one of the candidates drawn uniformly. Every
decision logs the action shown, its probability and the whole distribution over the candidates,
so off-policy evaluation (`atelier.ope`) can estimate any other policy over these candidates
from the logs. Other visits (no profile, no score) can only get the default page: probability 1.

The draw for a visit is a hash of the seed and its session id, so restarts and reruns agree.
The replay stage runs without exploration; the per-event fast path (`Personalizer.decide_one`)
never explores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from atelier.core.config import ParamsError
from atelier.replay.abtest import unit_draw
from atelier.replay.policy import (
    COMPLETE_THE_LOOK,
    DEFAULT_BANNER,
    Assortment,
    PolicySettings,
    shown_shares,
    top_categories,
)

#: The candidate pages: the bestsellers, the personalized page (the learned list when the replay has one, else the
#: favourite and runner-up categories), the favourite category only, and "discovery" (the category the customer
#: viewed least).
ACTIONS = ("default", "personalized", "favourite_only", "discovery")
DISCOVERY_BANNER = "discover_something_new"


@dataclass(frozen=True)
class Exploration:
    """Epsilon-greedy exploration over `ACTIONS`; `base` replaces the policy's own choice (None keeps it)."""

    epsilon: float
    base: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.epsilon, bool) or not isinstance(self.epsilon, (int, float)) or not 0 <= self.epsilon <= 1:
            raise ParamsError(f"exploration epsilon: must be a probability between 0 and 1, got {self.epsilon!r}")
        if self.base is not None and self.base not in ACTIONS:
            raise ParamsError(f"exploration base: must be one of {list(ACTIONS)} or null, got {self.base!r}")

    def distribution(self, base_action: np.ndarray, eligible: np.ndarray) -> np.ndarray:
        """Each visit's probability of every action (rows sum to 1): the base action with 1 - epsilon, plus
        epsilon spread evenly; a visit that is not eligible gets the default page for sure."""
        n, k = len(base_action), len(ACTIONS)
        base = np.full(len(base_action), ACTIONS.index(self.base)) if self.base is not None else base_action
        probability = np.full((n, k), self.epsilon / k)
        probability[np.arange(n), base] += 1.0 - self.epsilon
        probability[~eligible] = 0.0
        probability[~eligible, 0] = 1.0
        return probability

    def draw(self, probability: np.ndarray, session_ids: np.ndarray, seed: int) -> np.ndarray:
        """One action per visit from its distribution, by inverse CDF of a hash draw keyed by the session id."""
        u = np.fromiter((unit_draw(f"atelier-explore:{seed}:{s}") for s in session_ids.tolist()), dtype=float,
                        count=len(session_ids))
        return np.minimum((u[:, None] >= probability.cumsum(axis=1)).sum(axis=1), len(ACTIONS) - 1)


def _pages(profiles: pd.DataFrame, assortment: Assortment, n: int) -> tuple[np.ndarray, list[list[tuple]]]:
    """Favourite and, per visit, each candidate page as (products, banner category)."""
    first, second = top_categories(profiles, assortment.categories)
    columns = [f"affinity_{c}" for c in assortment.categories]
    if set(columns) <= set(profiles.columns):
        shares = profiles[columns].to_numpy(dtype=float)
        least = np.array(assortment.categories, dtype=object)[np.argmin(np.nan_to_num(shares, nan=np.inf), axis=1)]
    else:
        least = np.full(len(profiles), None, dtype=object)
    default = (assortment.top(n), None)
    pages = []
    for favourite, runner_up, rare in zip(first, second, least):
        if favourite is None:
            pages.append([default] * len(ACTIONS))
            continue
        pages.append([default, (assortment.recommend(favourite, runner_up, n), favourite),
                      (assortment.recommend(favourite, None, n), favourite), (assortment.top(n, rare), rare)])
    return first, pages


def _page_shares(pages: list[list[tuple]], assortment: Assortment) -> np.ndarray:
    """Category shares of every candidate page (visits x actions x categories), each distinct page computed once."""
    cache: dict[tuple, np.ndarray] = {}
    shares = np.zeros((len(pages), len(ACTIONS), len(assortment.categories)))
    for row, candidates in enumerate(pages):
        for a, (products, category) in enumerate(candidates):
            key = (category, tuple(np.asarray(products).tolist()))
            if key not in cache:
                cache[key] = shown_shares(pd.DataFrame({"products": [products], "banner_category": [category]}),
                                          assortment, assortment.categories)[0]
            shares[row, a] = cache[key]
    return shares


def explore(decisions: pd.DataFrame, profiles: pd.DataFrame, session_ids: np.ndarray, exploration: Exploration,
            assortment: Assortment, settings: PolicySettings, seed: int,
            learned: list[np.ndarray] | None = None) -> pd.DataFrame:
    """The decisions with exploration applied: what was shown may change, and each row logs `action`,
    `action_probability` (of the action shown), `eligible`, `p_<action>` for every candidate and `match_<action>`
    (how well each candidate page matches the profile's viewed categories, what a reward model may use).

    `learned` (one list per visit) makes the personalized candidate the learned recommendations, as the replay's
    treatment arm shows them; without it the personalized candidate is the favourite-category rule's page."""
    n = settings.recommendations
    first, pages = _pages(profiles, assortment, n)
    if learned is not None:
        for row, favourite in enumerate(first):
            if favourite is not None:
                pages[row][1] = (np.asarray(learned[row]), favourite)
    score = decisions["propensity"].to_numpy(dtype=float)
    eligible = np.not_equal(first, None) & np.isfinite(score)
    base = np.where(decisions["experience"].to_numpy() == "personalized", 1, 0)
    probability = exploration.distribution(base, eligible)
    action = exploration.draw(probability, np.asarray(session_ids), seed)
    rows = np.arange(len(decisions))
    segment_banner = np.array([settings.banners.get(str(s), DEFAULT_BANNER) for s in decisions["segment"]],
                              dtype=object)
    banner_of = {0: np.full(len(decisions), DEFAULT_BANNER, dtype=object),
                 1: np.where(score >= settings.high_propensity, COMPLETE_THE_LOOK, segment_banner),
                 3: np.full(len(decisions), DISCOVERY_BANNER, dtype=object)}
    banner_of[2] = banner_of[1]
    explored = decisions.copy()
    explored["products"] = [pages[row][a][0] for row, a in enumerate(action)]
    explored["banner"] = np.select([action == a for a in range(len(ACTIONS))], [banner_of[a] for a in
                                                                                range(len(ACTIONS))]).astype(object)
    explored["banner_category"] = np.array([pages[row][a][1] for row, a in enumerate(action)], dtype=object)
    explored["experience"] = np.where(action == 0, "default", "personalized").astype(object)
    explored["action"] = np.array(ACTIONS, dtype=object)[action]
    explored["action_probability"] = probability[rows, action]
    explored["eligible"] = eligible
    match = (_page_shares(pages, assortment) * _affinity_shares(profiles, assortment)[:, None, :]).sum(axis=2)
    for a, name in enumerate(ACTIONS):
        explored[f"p_{name}"] = probability[:, a]
        explored[f"match_{name}"] = match[:, a]
    return explored


def _affinity_shares(profiles: pd.DataFrame, assortment: Assortment) -> np.ndarray:
    """The profile's share of views per category (zeros where unknown)."""
    columns = [f"affinity_{c}" for c in assortment.categories]
    if not set(columns) <= set(profiles.columns):
        return np.zeros((len(profiles), len(columns)))
    return np.nan_to_num(profiles[columns].to_numpy(dtype=float))


def from_params(section: dict[str, Any] | None) -> Exploration | None:
    """An Exploration from a params section {epsilon, base} (None or epsilon null: exploration off)."""
    if section is None or section.get("epsilon") is None:
        return None
    unknown = sorted(set(section) - {"epsilon", "base"})
    if unknown:
        raise ParamsError(f"exploration: unknown keys {unknown}; only epsilon and base are read")
    return Exploration(epsilon=section["epsilon"], base=section.get("base"))
