"""Ground truth: each customer's exact chance of ordering within a horizon after a cutoff.

Because sessions are a Poisson process and each session's outcome is independent given the day,
orders form a thinned Poisson process with daily rate

    visit_rate x traffic(day) x P(session has a cart | day) x E_device[buy_chance | day]

while the customer is active, so P(at least one order in the window) = 1 - exp(-sum of the rate).
Views pick products independently, so the per-view cart chance averages over the customer's
product mix (category affinity x persona tier mix x popularity x style match), one value per discount regime;
with 1 + Poisson(m - 1) views, P(no cart) = (1 - p) * exp(-(m - 1) * p).

This is the "oracle": the best any model could do knowing every hidden trait, churn included.
It counts an order on the day its session starts; labels use `ordered_at`, so a session that
crosses midnight at a window edge can move an order across it (about 0.3 % of orders; the
label check in metrics/simulate.json shows the agreement is within sampling error).
"""

from __future__ import annotations

import numpy as np

from atelier.data.simulate.calendar import mobile_probability
from atelier.data.simulate.config import DEVICES
from atelier.data.simulate.sessions import buy_chance, cart_chance
from atelier.data.simulate.world import PICK_BLOCK, Population, World, view_shares


def discount_regimes(world: World) -> tuple[np.ndarray, np.ndarray]:
    """The distinct store-wide discounts (0 = no sale) and each day's index into them."""
    levels, day_regime = np.unique(world.sale_discount, return_inverse=True)
    return levels, day_regime


def _cart_chances(world: World, levels: np.ndarray) -> np.ndarray:
    """cart_chance[persona, regime, product] of a view, at each store-wide discount level (clearance included)."""
    config, catalog = world.config, world.catalog
    product_rows = np.arange(len(catalog))
    clearance = world.column("clearance") * config.clearance_discount
    chances = np.zeros((len(config.personas), len(levels), len(catalog)))
    for persona in range(len(config.personas)):
        persona_of_product = np.full(len(catalog), persona)
        for regime, level in enumerate(levels):
            discount = np.maximum(level, clearance)
            chances[persona, regime] = cart_chance(world, persona_of_product, product_rows, discount)
    return chances


def session_cart_probability(world: World, population: Population) -> np.ndarray:
    """P(a session has at least one cart add), per customer (rows) and discount regime (columns)."""
    config = world.config
    levels, _ = discount_regimes(world)
    chances = _cart_chances(world, levels)
    per_view = np.zeros((len(population), len(levels)))
    for first in range(0, len(population), PICK_BLOCK):
        rows = np.arange(first, min(first + PICK_BLOCK, len(population)))
        shares = view_shares(world, population, rows)  # (block, products)
        per_view[rows] = np.einsum("np,nrp->nr", shares, chances[population.persona[rows]])
    views = np.array([p.views_per_session for p in config.personas])[population.persona][:, None]
    return 1 - (1 - per_view) * np.exp(-(views - 1) * per_view)


def product_preference(world: World, population: Population, rows: np.ndarray | None = None) -> np.ndarray:
    """Each customer's true preference for each product (customers at `rows` x catalog rows): the chance that
    one of their views lands on the product and goes to the cart, on a day without a sale. It covers
    category affinity, the tier mix, popularity, hidden style and price sensitivity; the oracle
    recommendation list is its top k."""
    rows = np.arange(len(population)) if rows is None else np.asarray(rows)
    chances = _cart_chances(world, np.zeros(1))[:, 0, :]  # (personas, products)
    return view_shares(world, population, rows) * chances[population.persona[rows]]


def device_buy_chance(world: World, persona: np.ndarray, day: np.ndarray) -> np.ndarray:
    """E[buy_chance] over the device mix, for each (persona, day) pair given as arrays of one shape."""
    config = world.config
    mobile_share = np.array([p.mobile_share for p in config.personas])[persona]
    p_mobile = mobile_probability(mobile_share, day, config.mobile_logit_per_year)
    p_tablet = (1 - p_mobile) * config.tablet_share_of_non_mobile
    p_desktop = 1 - p_mobile - p_tablet
    chance = {d: buy_chance(world, persona, np.full(persona.shape, DEVICES.index(d))) for d in DEVICES}
    return p_mobile * chance["mobile"] + p_desktop * chance["desktop"] + p_tablet * chance["tablet"]


def order_probability(world: World, population: Population, first_day: int, horizon_days: int) -> np.ndarray:
    """P(customer orders at least once in days [first_day, first_day + horizon_days)), default experience."""
    days = np.arange(first_day, first_day + horizon_days)
    if days.max() >= world.config.n_days or first_day < 0:
        raise ValueError(
            f"the label window (day {first_day} + {horizon_days} days) leaves the simulated period; "
            "extend simulate.end or move timeline.cutoffs earlier in params.yaml"
        )
    _, day_regime = discount_regimes(world)
    cart = session_cart_probability(world, population)  # (customers, regimes)
    active = (days[None, :] >= population.signup_day[:, None]) & (days[None, :] < population.churn_day[:, None])
    persona = np.repeat(population.persona[:, None], len(days), axis=1)
    buy = device_buy_chance(world, persona, np.broadcast_to(days, persona.shape))
    daily = world.traffic[days][None, :] * cart[:, day_regime[days]] * buy * active
    return 1 - np.exp(-population.visit_rate * daily.sum(axis=1))
