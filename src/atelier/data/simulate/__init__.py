"""A seeded, vectorized simulator of an online fashion retailer.

It makes the four contract tables (customers, products, events, orders) and, apart from them, the
ground truth: each customer's hidden persona and traits and their exact probability of ordering
within the label horizon after each cutoff. No model input may read the truth; later phases use it
only to score themselves against it. The `simulate` stage (`atelier.data.stage.run_simulate`) writes
the tables to `data/simulated/` and the truth to `data/truth/`.

The modules: `config` (params.yaml `simulate`), `calendar` (seasons and sales), `world` (catalog and
customers), `sessions` (visits, events and orders), `truth` (the exact chance of ordering), `shop`
(the whole shop chunk by chunk, and its metrics), `realism` (is it believable?).
"""

from __future__ import annotations

from atelier.data.simulate.config import SimulationConfig, config_from_params
from atelier.data.simulate.sessions import Sessions, purchase_multiplier, session_arrivals, session_outcomes
from atelier.data.simulate.shop import check_timeline
from atelier.data.simulate.truth import order_probability
from atelier.data.simulate.world import Population, World, build_world, draw_population, population_from_truth

__all__ = [
    "SimulationConfig",
    "config_from_params",
    "build_world",
    "check_timeline",
    "draw_population",
    "session_arrivals",
    "session_outcomes",
    "purchase_multiplier",
    "order_probability",
    "population_from_truth",
    "Population",
    "Sessions",
    "World",
]
