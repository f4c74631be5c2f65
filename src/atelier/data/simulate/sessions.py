"""Sessions: when customers visit (arrivals) and what they do once there (outcomes).

The two are separate on purpose. Arrivals depend only on a customer's hidden visit rate, the
calendar and churn. Outcomes depend on the session's context *and on what the shop showed*:
`session_outcomes` takes per-session multipliers on the cart and purchase chances, the hook the
real-time replay uses to close the loop (see `purchase_multiplier`, the response model). Every
random number is drawn for every view and session whatever the multipliers are, so two runs that
differ only in what was shown use the same draws (common random numbers: a cleaner A/B test).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from atelier.core.contract import KNOWN_EVENT_TYPES
from atelier.data.simulate.calendar import mobile_probability
from atelier.data.simulate.config import DEVICES, TIERS
from atelier.data.simulate.world import Population, World, _categorical_draw, pick_products

# Share of sessions starting in each hour of the day (quiet nights, lunch and evening peaks).
DIURNAL = np.array(
    [0.8, 0.5, 0.3, 0.2, 0.2, 0.3, 0.8, 1.8, 2.8, 3.4, 3.8, 4.2,
     5.0, 5.0, 4.4, 4.2, 4.4, 5.0, 6.0, 7.2, 7.8, 7.0, 5.0, 2.4]
)
DIURNAL = DIURNAL / DIURNAL.sum()
# Time spent adding an item to the cart and checking out (lognormal: log-mean, log-sd, seconds).
CART_DWELL = (np.log(6.0), 0.5)
CHECKOUT_DWELL = (np.log(45.0), 0.4)
MS_PER_DAY = 86_400_000


def purchase_multiplier(relevance: np.ndarray, baseline_relevance: float, strength: float) -> np.ndarray:
    """The response model: how what the shop showed changes the chance a cart becomes an order.

    `relevance` (0..1, per session) measures how well the banner and recommendations match the
    customer's true taste (`atelier.replay.world.ReplayWorld.relevance`); `baseline_relevance` is that of
    the default experience.
    The chance of buying is multiplied by exp(strength * (relevance - baseline)): showing the
    default changes nothing, more relevant content raises the chance, less relevant lowers it.
    """
    return np.exp(strength * (np.asarray(relevance, dtype=float) - baseline_relevance))


@dataclass(frozen=True)
class Sessions:
    """Session arrivals, ordered by start time. `customer_row` indexes the Population."""

    customer_row: np.ndarray
    day: np.ndarray  # days from config.start
    start_ms: np.ndarray  # milliseconds from config.start
    device: np.ndarray  # index into DEVICES

    def __len__(self) -> int:
        return len(self.customer_row)


def session_arrivals(
    world: World, population: Population, first_day: int, last_day: int, rng: np.random.Generator
) -> Sessions:
    """Every session between `first_day` and `last_day` (inclusive, day indices), by start time.

    Visits form a Poisson process with rate visit_rate x traffic(day) while the customer is
    active (from signup to churn), so the count in any window is Poisson and `truth` can give
    exact probabilities for it.
    """
    config = world.config
    cumulative = np.concatenate([[0.0], np.cumsum(world.traffic)])
    first = np.maximum(population.signup_day, first_day)
    last = np.minimum(population.churn_day - 1, min(last_day, config.n_days - 1))
    active = last >= first
    first_c, last_c = np.where(active, first, 0), np.where(active, last, 0)
    mass = np.where(active, cumulative[last_c + 1] - cumulative[first_c], 0.0)
    counts = rng.poisson(population.visit_rate * mass)
    rows = np.repeat(np.arange(len(population)), counts)
    position = cumulative[first_c[rows]] + rng.random(len(rows)) * mass[rows]
    day = np.clip(np.searchsorted(cumulative, position, side="right") - 1, first_c[rows], last_c[rows])
    hour = rng.choice(24, size=len(rows), p=DIURNAL)
    seconds = hour * 3600 + rng.random(len(rows)) * 3600
    # A session on the signup day starts after the signup itself.
    on_signup_day = day == population.signup_day[rows]
    signup_seconds = population.signup_seconds[rows]
    seconds = np.where(on_signup_day, signup_seconds + seconds * (86_400 - signup_seconds) / 86_400, seconds)
    persona = population.persona[rows]
    mobile_share = np.array([p.mobile_share for p in config.personas])[persona]
    is_mobile = rng.random(len(rows)) < mobile_probability(mobile_share, day, config.mobile_logit_per_year)
    is_tablet = rng.random(len(rows)) < config.tablet_share_of_non_mobile
    not_mobile = np.where(is_tablet, DEVICES.index("tablet"), DEVICES.index("desktop"))
    device = np.where(is_mobile, DEVICES.index("mobile"), not_mobile)
    start_ms = day.astype(np.int64) * MS_PER_DAY + (seconds * 1000).astype(np.int64)
    order = np.lexsort((rows, start_ms))
    return Sessions(
        customer_row=rows[order], day=day[order], start_ms=start_ms[order], device=device[order].astype(np.int8)
    )


@dataclass(frozen=True)
class Outcomes:
    """What the sessions produced: clickstream events, orders, and a per-session summary."""

    events: pd.DataFrame
    orders: pd.DataFrame
    sessions: pd.DataFrame  # session_id, customer_id, day, device, views, cart_adds, purchased


def view_discount(world: World, product_row: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Discount on a viewed product: the store-wide sale discount that day, or its clearance markdown."""
    clearance = world.column("clearance")[product_row] * world.config.clearance_discount
    return np.maximum(world.sale_discount[day], clearance)


def cart_chance(world: World, persona: np.ndarray, product_row: np.ndarray, discount: np.ndarray) -> np.ndarray:
    """Chance a view of a product ends in the cart: the persona's rate, scaled by price and discount."""
    personas = world.config.personas
    rate = np.array([p.cart_rate for p in personas])[persona]
    price_sensitivity = np.array([p.price_sensitivity for p in personas])[persona]
    discount_sensitivity = np.array([p.discount_sensitivity for p in personas])[persona]
    relative_price = world.column("log_relative_price")[product_row]
    return np.minimum(1.0, rate * np.exp(-price_sensitivity * relative_price + discount_sensitivity * discount))


def buy_chance(world: World, persona: np.ndarray, device: np.ndarray) -> np.ndarray:
    """Chance a session with something in the cart ends in an order (default experience)."""
    config = world.config
    rate = np.array([p.buy_rate for p in config.personas])[persona]
    device_multiplier = np.array([config.buy_multiplier[d] for d in DEVICES])[device]
    return np.minimum(1.0, rate * device_multiplier)


def session_outcomes(
    world: World,
    population: Population,
    sessions: Sessions,
    rng: np.random.Generator,
    *,
    first_session_id: int = 1,
    first_event_id: int = 1,
    first_order_id: int = 1,
    cart_multiplier: np.ndarray | None = None,
    buy_multiplier: np.ndarray | None = None,
) -> Outcomes:
    """Simulate what happens in each session: product views, cart adds, and maybe an order.

    A session views 1 + Poisson(views_per_session - 1) products, each picked by the customer's
    category affinity, the persona's price-tier mix and, within that group, product popularity times the
    match of the customer's and the product's hidden style (`world.style_weights`). Each view goes to the
    cart with `cart_chance`; a session with a cart becomes an order with `buy_chance` x
    `buy_multiplier`, buying everything in the cart. Basket size is the persona's: each item in the
    cart is bought in 1 + Poisson(basket_extra_units) units (a second size or colour, a multipack),
    so an order's quantity is the items bought plus their extra units, and its amount and discount
    count every unit. Ids continue from the `first_*` arguments.
    """
    config = world.config
    n_sessions = len(sessions)
    cart_multiplier = np.ones(n_sessions) if cart_multiplier is None else np.asarray(cart_multiplier, float)
    buy_multiplier = np.ones(n_sessions) if buy_multiplier is None else np.asarray(buy_multiplier, float)
    persona = population.persona[sessions.customer_row]
    views_per_session = np.array([p.views_per_session for p in config.personas])[persona]
    views = 1 + rng.poisson(views_per_session - 1)
    view_session = np.repeat(np.arange(n_sessions), views)
    view_customer = sessions.customer_row[view_session]
    view_persona = persona[view_session]
    view_day = sessions.day[view_session]

    # Which product: category by affinity, tier by persona, product by popularity within the group.
    category = _categorical_draw(population.affinity[view_customer], rng)
    tier_mix = np.array([p.tier_mix for p in config.personas])
    tier = _categorical_draw(tier_mix[view_persona], rng)
    group = category * len(TIERS) + tier
    product_row = pick_products(world, population, view_customer, group, rng.random(len(group)))

    discount = view_discount(world, product_row, view_day)
    carted = rng.random(len(product_row)) < np.minimum(
        1.0, cart_chance(world, view_persona, product_row, discount) * cart_multiplier[view_session]
    )
    cart_adds = np.bincount(view_session, weights=carted, minlength=n_sessions).astype(np.int64)
    buy_draw = rng.random(n_sessions)
    purchased = (cart_adds > 0) & (
        buy_draw < np.minimum(1.0, buy_chance(world, persona, sessions.device) * buy_multiplier)
    )

    # Timing: views one after another; a cart add follows its view; checkout ends the session.
    view_dwell = rng.lognormal(config.dwell_log_mean, config.dwell_log_sd, len(product_row))
    cart_dwell = rng.lognormal(*CART_DWELL, len(product_row))
    checkout_dwell = rng.lognormal(*CHECKOUT_DWELL, n_sessions)
    # Units of each item if bought, drawn last and for every view with a rate set by the persona alone,
    # so the multipliers never shift the random stream (and the draws before this one are unchanged).
    extra_units = np.array([p.basket_extra_units for p in config.personas])[view_persona]
    units = 1 + rng.poisson(extra_units)
    block = view_dwell + np.where(carted, cart_dwell, 0.0)
    elapsed = np.cumsum(block) - block
    session_first_view = np.concatenate([[0], np.cumsum(views)[:-1]]).astype(np.int64)
    offset = elapsed - elapsed[session_first_view][view_session] if len(block) else elapsed
    view_ms = sessions.start_ms[view_session] + np.round(offset * 1000).astype(np.int64)
    cart_ms = view_ms + np.round(view_dwell * 1000).astype(np.int64)
    browse_seconds = np.bincount(view_session, weights=block, minlength=n_sessions)
    checkout_ms = sessions.start_ms + np.round((browse_seconds + checkout_dwell) * 1000).astype(np.int64)
    position = np.arange(len(product_row)) - session_first_view[view_session]

    bought = carted & purchased[view_session]
    session_id = first_session_id + np.arange(n_sessions, dtype=np.int64)
    view_type, cart_type, purchase_type = (
        KNOWN_EVENT_TYPES.index(t) for t in ("product_view", "add_to_cart", "purchase")
    )
    parts = {
        "session": (view_session, view_session[carted], view_session[bought]),
        "ms": (view_ms, cart_ms[carted], checkout_ms[view_session[bought]]),
        "type": (
            np.full(len(view_ms), view_type), np.full(carted.sum(), cart_type), np.full(bought.sum(), purchase_type)
        ),
        "product_row": (product_row, product_row[carted], product_row[bought]),
        "dwell": (
            view_dwell,
            cart_dwell[carted],
            (checkout_dwell / np.maximum(cart_adds, 1))[view_session[bought]],
        ),
        "sequence": (2 * position, 2 * position[carted] + 1, 2 * views.max(initial=0) + position[bought]),
    }
    columns = {name: np.concatenate(values) for name, values in parts.items()}
    order = np.lexsort((columns["sequence"], columns["session"], columns["ms"]))
    columns = {name: values[order] for name, values in columns.items()}
    event_session = columns["session"]
    product_ids = world.column("product_id")
    events = pd.DataFrame(
        {
            "event_id": first_event_id + np.arange(len(event_session), dtype=np.int64),
            "customer_id": population.customer_id[sessions.customer_row[event_session]],
            "session_id": session_id[event_session],
            "ts": _timestamps(world, columns["ms"]),
            "event_type": pd.Categorical.from_codes(columns["type"], list(KNOWN_EVENT_TYPES)),
            "product_id": product_ids[columns["product_row"]],
            "device": pd.Categorical.from_codes(sessions.device[event_session], list(DEVICES)),
            "dwell_seconds": np.round(columns["dwell"], 1),
        }
    )

    # Orders: one per purchasing session, every unit of everything in the cart, at the discounted price.
    price = world.column("price")[product_row]
    bought_units = np.where(bought, units, 0)
    paid = np.bincount(view_session, weights=bought_units * price * (1 - discount), minlength=n_sessions)
    saved = np.bincount(view_session, weights=bought_units * price * discount, minlength=n_sessions)
    quantity = np.bincount(view_session, weights=bought_units, minlength=n_sessions).astype(np.int64)
    buying = np.flatnonzero(purchased)
    buying = buying[np.argsort(checkout_ms[buying], kind="stable")]
    orders = pd.DataFrame(
        {
            "order_id": first_order_id + np.arange(len(buying), dtype=np.int64),
            "customer_id": population.customer_id[sessions.customer_row[buying]],
            "ordered_at": _timestamps(world, checkout_ms[buying]),
            "amount": np.round(paid[buying], 2),
            "quantity": quantity[buying],
            "discount": np.round(saved[buying], 2),
            "session_id": session_id[buying],
        }
    )
    summary = pd.DataFrame(
        {
            "session_id": session_id,
            "customer_id": population.customer_id[sessions.customer_row],
            "day": sessions.day,
            "device": pd.Categorical.from_codes(sessions.device, list(DEVICES)),
            "views": views,
            "cart_adds": cart_adds,
            "purchased": purchased,
        }
    )
    return Outcomes(events=events, orders=orders, sessions=summary)


def _timestamps(world: World, ms_from_start: np.ndarray) -> np.ndarray:
    """Milliseconds after the simulation's first day, as datetime64[us]."""
    origin = np.datetime64(world.config.start.to_datetime64(), "ms")
    return (origin + ms_from_start.astype("timedelta64[ms]")).astype("datetime64[us]")
