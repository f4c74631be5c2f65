"""Tests for atelier.data.simulate: determinism, chunking, realism targets, the ground truth, event and order
semantics, the calendar, device drift, the response model, persona behaviour and config errors (the stage's
own behaviour, e.g. `data.source: files`, is in test_data_stage.py).

Statistical checks derive their expectation from the model (params.yaml and the documented targets in
`atelier.data.simulate.realism`) and allow a few standard errors; every random draw is seeded, so each test
is deterministic. One moderate simulation (default params, 5,000 customers, one chunk) is built once
per module and shared.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, tiny_params

from atelier.core.config import ParamsError, load_params
from atelier.data.simulate import (
    check_timeline,
    config_from_params,
    order_probability,
    population_from_truth,
    purchase_multiplier,
    session_arrivals,
    session_outcomes,
)
from atelier.data.simulate.calendar import black_friday, build_calendar, event_days, mobile_probability
from atelier.data.simulate.config import DAYS_PER_MONTH, DEVICES, SeasonalEvent
from atelier.data.simulate.world import STREAM_CUSTOMERS, build_world, draw_population, stream
from atelier.data.stage import run_simulate, simulate_shop

MODERATE_CUSTOMERS = 5000
DATA_FILES = {"customers.parquet", "products.parquet", "events.parquet", "orders.parquet"}
TRUTH_FILES = {"customers.parquet", "products.parquet", "calendar.parquet", "order_probability.parquet"}


# --------------------------------------------------------------------------------------------- helpers


def _params() -> dict:
    return copy.deepcopy(load_params(REPO / "params.yaml"))


def _section(**overrides) -> dict:
    """params.yaml's simulate section with top-level `overrides`."""
    section = _params()["simulate"]
    section.update(overrides)
    return section


def _hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under data/simulated and data/truth, by path relative to `root`."""
    hashes = {}
    for folder in (root / "data" / "simulated", root / "data" / "truth"):
        for path in sorted(folder.iterdir()):
            hashes[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def _load(data_dir: Path, truth_dir: Path) -> SimpleNamespace:
    return SimpleNamespace(
        customers=pd.read_parquet(data_dir / "customers.parquet"),
        products=pd.read_parquet(data_dir / "products.parquet"),
        events=pd.read_parquet(data_dir / "events.parquet"),
        orders=pd.read_parquet(data_dir / "orders.parquet"),
        truth=pd.read_parquet(truth_dir / "customers.parquet"),
        calendar=pd.read_parquet(truth_dir / "calendar.parquet"),
        p_true=pd.read_parquet(truth_dir / "order_probability.parquet"),
    )


def _session_summary(events: pd.DataFrame) -> pd.DataFrame:
    """One row per session, rebuilt from the events table alone."""
    kind = events["event_type"].astype(str)
    frame = pd.DataFrame(
        {
            "session_id": events["session_id"].to_numpy(),
            "customer_id": events["customer_id"].to_numpy(),
            "ts": events["ts"].to_numpy(),
            "device": events["device"].astype(str).to_numpy(),
            "view": (kind == "product_view").to_numpy(),
            "cart": (kind == "add_to_cart").to_numpy(),
            "purchase": (kind == "purchase").to_numpy(),
        }
    )
    grouped = frame.groupby("session_id", sort=True)
    summary = grouped.agg(
        customer_id=("customer_id", "first"),
        customers=("customer_id", "nunique"),
        start=("ts", "min"),
        end=("ts", "max"),
        device=("device", "first"),
        devices=("device", "nunique"),
        views=("view", "sum"),
        carts=("cart", "sum"),
        purchases=("purchase", "sum"),
    )
    summary["day"] = summary["start"].dt.normalize()
    return summary


def _expected_daily_sessions(config, truth: pd.DataFrame, traffic: np.ndarray) -> np.ndarray:
    """E[sessions per day] under the model: sum of active customers' visit rates x the day's traffic."""
    rate = truth["visit_rate_per_month"].to_numpy() / DAYS_PER_MONTH
    first = np.clip(truth["signup_day"].to_numpy(), 0, config.n_days)
    stop = np.clip(truth["churn_day"].to_numpy(), 0, config.n_days)
    keep = stop > first
    delta = np.zeros(config.n_days + 1)
    np.add.at(delta, first[keep], rate[keep])
    np.add.at(delta, stop[keep], -rate[keep])
    return np.cumsum(delta)[:-1] * traffic


def _expected_orders(world, population) -> np.ndarray:
    """E[orders over the whole period] per customer: order_probability = 1 - exp(-rate), so rate = -log(1-p)."""
    p = order_probability(world, population, 0, world.config.n_days)
    return -np.log1p(-p)


# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def moderate(tmp_path_factory) -> SimpleNamespace:
    """Default params.yaml simulate section with 5,000 customers (one chunk), simulated once."""
    params = _params()
    config = config_from_params(_section(n_customers=MODERATE_CUSTOMERS))
    cutoffs = [pd.Timestamp(c) for c in params["timeline"]["cutoffs"]]
    horizon = int(params["timeline"]["horizon_days"])
    root = tmp_path_factory.mktemp("moderate")
    data_dir, truth_dir = root / "simulated", root / "truth"
    metrics = simulate_shop(config, int(params["seed"]), cutoffs, horizon, data_dir, truth_dir, progress=False)
    shop = _load(data_dir, truth_dir)
    shop.config, shop.seed, shop.cutoffs, shop.horizon = config, int(params["seed"]), cutoffs, horizon
    shop.metrics = metrics
    shop.world = build_world(config, shop.seed)
    shop.population = population_from_truth(config, shop.truth, shop.customers)
    shop.sessions = _session_summary(shop.events)
    shop.sessions["persona"] = shop.sessions["customer_id"].map(shop.truth.set_index("customer_id")["persona"])
    return shop


@pytest.fixture(scope="module")
def tiny_world():
    config = config_from_params(tiny_params()["simulate"])
    world = build_world(config, 7)
    population = draw_population(config, 0, config.n_customers, stream(7, STREAM_CUSTOMERS, 0))
    return world, population


# ---------------------------------------------------------------------------------------- 1. determinism


def test_same_params_and_seed_give_identical_bytes_and_another_seed_different_events(tmp_path):
    params = tiny_params()
    first = run_simulate(params, tmp_path / "a")
    second = run_simulate(params, tmp_path / "b")
    hashes_a, hashes_b = _hashes(tmp_path / "a"), _hashes(tmp_path / "b")
    assert {Path(p).name for p in hashes_a if "simulated" in p} == DATA_FILES
    assert {Path(p).name for p in hashes_a if "truth" in p} == TRUTH_FILES
    assert hashes_a == hashes_b
    assert (tmp_path / "a/metrics/simulate.json").read_bytes() == (tmp_path / "b/metrics/simulate.json").read_bytes()
    assert first == second

    other = copy.deepcopy(params)
    other["seed"] = params["seed"] + 1
    run_simulate(other, tmp_path / "c")
    hashes_c = _hashes(tmp_path / "c")
    events = "data/simulated/events.parquet"
    assert hashes_c[events] != hashes_a[events]
    events_a = pd.read_parquet(tmp_path / "a" / events)
    events_c = pd.read_parquet(tmp_path / "c" / events)
    assert len(events_a) != len(events_c) or not events_a.equals(events_c)
    # The calendar depends on params only, not on the seed.
    calendar = "data/truth/calendar.parquet"
    assert hashes_c[calendar] == hashes_a[calendar]


# ------------------------------------------------------------------------------------------ 2. chunking


def test_chunked_run_has_unique_contiguous_ids_and_consistent_references(tmp_path):
    n = 600
    chunked, single = tiny_params(), tiny_params()
    chunked["simulate"].update(n_customers=n, chunk_customers=200)  # three chunks
    single["simulate"].update(n_customers=n, chunk_customers=n)
    metrics = run_simulate(chunked, tmp_path / "chunked")
    metrics_single = run_simulate(single, tmp_path / "single")
    shop = _load(tmp_path / "chunked/data/simulated", tmp_path / "chunked/data/truth")
    events, orders = shop.events, shop.orders

    def contiguous(values) -> bool:
        values = np.sort(np.asarray(values))
        return len(values) > 0 and values[0] == 1 and np.array_equal(values, np.arange(1, len(values) + 1))

    assert contiguous(shop.customers["customer_id"]) and len(shop.customers) == n
    assert contiguous(shop.truth["customer_id"])
    assert contiguous(events["event_id"]) and metrics["events"] == len(events)
    assert contiguous(events["session_id"].unique()) and metrics["sessions"] == events["session_id"].nunique()
    assert contiguous(orders["order_id"]) and metrics["orders"] == len(orders)
    assert orders["session_id"].is_unique
    assert events["customer_id"].isin(shop.customers["customer_id"]).all()
    assert orders["session_id"].isin(events["session_id"]).all()
    # every session belongs to one customer, and an order's customer is its session's customer
    session_customer = events.groupby("session_id")["customer_id"].agg(["first", "nunique"])
    assert (session_customer["nunique"] == 1).all()
    assert (orders["session_id"].map(session_customer["first"]) == orders["customer_id"]).all()
    # customers of all three chunks have activity
    chunk_of_active = (events["customer_id"].unique() - 1) // 200
    assert set(chunk_of_active) == {0, 1, 2}
    assert (shop.p_true.groupby("cutoff").size() == n).all()

    # The catalog and calendar come from their own streams: chunking does not change them.
    hashes, hashes_single = _hashes(tmp_path / "chunked"), _hashes(tmp_path / "single")
    for name in ("data/simulated/products.parquet", "data/truth/products.parquet", "data/truth/calendar.parquet"):
        assert hashes[name] == hashes_single[name]

    # Totals: not the same draws, but each run agrees with its own model expectation (Poisson given
    # the population), and the two runs are of the same order of magnitude.
    for root, m in ((tmp_path / "chunked", metrics), (tmp_path / "single", metrics_single)):
        tables = _load(root / "data/simulated", root / "data/truth")
        config = config_from_params(chunked["simulate"] if m is metrics else single["simulate"])
        world = build_world(config, chunked["seed"])
        expected_sessions = _expected_daily_sessions(config, tables.truth, world.traffic).sum()
        assert abs(m["sessions"] - expected_sessions) <= 4 * np.sqrt(expected_sessions)
        population = population_from_truth(config, tables.truth, tables.customers)
        expected_orders = _expected_orders(world, population).sum()
        assert abs(m["orders"] - expected_orders) <= 4 * np.sqrt(expected_orders)
    for key in ("sessions", "events", "orders"):
        assert 0.5 < metrics[key] / metrics_single[key] < 2.0


# -------------------------------------------------------------------------------------- 3. realism


def test_the_committed_default_run_meets_the_realism_targets():
    """metrics/simulate.json is the pipeline's own run at the full default size (20,000 customers):
    the targets hold there too, not only on the 5,000-customer run below."""
    metrics = json.loads((REPO / "metrics" / "simulate.json").read_text(encoding="utf-8"))
    assert metrics["customers"] == _params()["simulate"]["n_customers"], (
        "metrics/simulate.json is stale: run `dvc repro`"
    )
    realism = metrics["realism"]
    assert 0.015 <= realism["session_conversion"] <= 0.04
    assert 0.60 <= realism["cart_abandonment"] <= 0.80
    assert 0.40 <= realism["single_order_buyer_share"] <= 0.60
    assert realism["spend_top_decile_share"] >= 0.35 and realism["spend_mean_over_median"] > 1.5
    devices = realism["devices"]
    assert devices["mobile"]["session_share"] > devices["desktop"]["session_share"]
    assert devices["mobile"]["conversion"] < devices["desktop"]["conversion"]


def test_realism_targets_at_default_params(moderate):
    sessions, orders = moderate.sessions, moderate.orders
    n_sessions = len(sessions)
    purchasing = sessions["purchases"] > 0
    with_cart = sessions["carts"] > 0
    conversion = purchasing.sum() / n_sessions
    abandonment = 1 - purchasing.sum() / with_cart.sum()
    orders_per_buyer = orders.groupby("customer_id").size()
    single_share = (orders_per_buyer == 1).mean()
    spend = np.sort(orders.groupby("customer_id")["amount"].sum().to_numpy())[::-1]
    top_decile_share = spend[: len(spend) // 10].sum() / spend.sum()

    assert 0.015 <= conversion <= 0.04
    assert 0.60 <= abandonment <= 0.80
    assert 0.40 <= single_share <= 0.60
    assert top_decile_share >= 0.35
    assert spend.mean() / np.median(spend) > 1.5

    by_device = sessions.groupby("device").agg(
        sessions=("views", "size"), purchased=("purchases", lambda s: (s > 0).sum())
    )
    assert by_device.loc["mobile", "sessions"] > by_device.loc["desktop", "sessions"]
    mobile_conv = by_device.loc["mobile", "purchased"] / by_device.loc["mobile", "sessions"]
    desktop_conv = by_device.loc["desktop", "purchased"] / by_device.loc["desktop", "sessions"]
    assert mobile_conv < desktop_conv

    # The reported metrics agree with the figures rebuilt from the tables.
    realism = moderate.metrics["realism"]
    assert realism["session_conversion"] == pytest.approx(conversion, rel=1e-9)
    assert realism["cart_abandonment"] == pytest.approx(abandonment, rel=1e-9)
    assert realism["single_order_buyer_share"] == pytest.approx(single_share, rel=1e-9)
    assert realism["spend_top_decile_share"] == pytest.approx(top_decile_share, rel=1e-9)
    assert realism["devices"]["mobile"]["conversion"] == pytest.approx(mobile_conv, rel=1e-9)
    assert moderate.metrics["sessions"] == n_sessions
    assert moderate.metrics["orders"] == len(orders) == purchasing.sum()


# ------------------------------------------------------------------------------------------ 4. truth


def test_label_shares_match_true_probabilities_within_sampling_error(moderate):
    labels = moderate.metrics["truth"]["labels"]
    assert set(labels) == {c.date().isoformat() for c in moderate.cutoffs}
    signup = moderate.customers.set_index("customer_id")["signup_at"]
    for cutoff in moderate.cutoffs:
        # recomputed from the tables, independently of realism.label_check
        group = moderate.p_true[moderate.p_true["cutoff"] == cutoff]
        known = group[group["customer_id"].map(signup).lt(cutoff).to_numpy()]
        window = moderate.orders[
            moderate.orders["ordered_at"].ge(cutoff)
            & moderate.orders["ordered_at"].lt(cutoff + pd.Timedelta(days=moderate.horizon))
        ]
        ordered_share = known["customer_id"].isin(window["customer_id"]).mean()
        p = known["p_true"].to_numpy()
        se = np.sqrt((p * (1 - p)).sum()) / len(p)
        assert abs(ordered_share - p.mean()) <= 4 * se, cutoff
        reported = labels[cutoff.date().isoformat()]
        assert reported["customers"] == len(known)
        assert reported["ordered_share"] == pytest.approx(ordered_share)
        assert reported["true_probability_mean"] == pytest.approx(p.mean())
        assert abs(reported["ordered_share"] - reported["true_probability_mean"]) <= 4 * reported["standard_error"]


def test_persona_shares_match_params(moderate):
    shares = moderate.metrics["truth"]["persona_shares"]
    personas = moderate.config.personas
    assert set(shares) == {p.name for p in personas}
    observed = moderate.truth["persona"].value_counts(normalize=True)
    for p in personas:
        se = np.sqrt(p.share * (1 - p.share) / MODERATE_CUSTOMERS)
        assert abs(shares[p.name] - p.share) <= 4 * se, p.name
        assert shares[p.name] == pytest.approx(observed[p.name])


def test_true_probabilities_are_valid_and_zero_outside_the_active_period(moderate):
    p_true, truth, config = moderate.p_true, moderate.truth.set_index("customer_id"), moderate.config
    assert p_true["p_true"].between(0, 1).all()
    assert len(p_true) == MODERATE_CUSTOMERS * len(moderate.cutoffs)
    for cutoff in moderate.cutoffs:
        group = p_true[p_true["cutoff"] == cutoff].set_index("customer_id")["p_true"]
        churn_at = truth.loc[group.index, "churn_at"]
        churned = churn_at <= cutoff
        assert churned.any() and (group[churned] == 0).all()
        first_day = config.day_index(cutoff)
        joins_later = truth.loc[group.index, "signup_day"] >= first_day + moderate.horizon
        assert (group[joins_later] == 0).all()
        active_throughout = (truth.loc[group.index, "signup_day"] < first_day) & (
            truth.loc[group.index, "churn_day"] >= first_day + moderate.horizon
        )
        assert active_throughout.any() and (group[active_throughout] > 0).all()


def test_population_round_trips_through_the_truth_tables(moderate):
    """population_from_truth rebuilds the drawn population; order_probability then gives the stored p_true."""
    drawn = draw_population(moderate.config, 0, MODERATE_CUSTOMERS, stream(moderate.seed, STREAM_CUSTOMERS, 0))
    rebuilt = moderate.population
    for name in ("customer_id", "persona", "signup_day", "churn_day", "signup_seconds", "age_band", "gender", "region"):
        assert np.array_equal(getattr(drawn, name), getattr(rebuilt, name)), name
    assert np.allclose(drawn.visit_rate, rebuilt.visit_rate, rtol=1e-12)
    assert np.allclose(drawn.affinity, rebuilt.affinity, rtol=1e-12)
    cutoff = moderate.cutoffs[-1]
    stored = moderate.p_true[moderate.p_true["cutoff"] == cutoff]["p_true"].to_numpy()
    recomputed = order_probability(moderate.world, rebuilt, moderate.config.day_index(cutoff), moderate.horizon)
    assert np.allclose(stored, recomputed, rtol=1e-9, atol=1e-12)


def test_order_probability_matches_monte_carlo_resimulation_of_the_label_window(moderate):
    """Re-simulate the label window (arrivals + outcomes on the window's days only) many times for a few
    customers; each customer's ordering frequency must match p_true within binomial error."""
    config, world, population = moderate.config, moderate.world, moderate.population
    cutoff = moderate.cutoffs[-1]  # this window includes the Black Friday sale (a second discount regime)
    first_day = config.day_index(cutoff)
    last_day = first_day + moderate.horizon - 1
    p = order_probability(world, population, first_day, moderate.horizon)
    persona, signup, churn = population.persona, population.signup_day, population.churn_day
    whole = (signup < first_day) & (churn > last_day)
    picks = [
        int(np.flatnonzero(whole & (persona == k))[np.argmax(p[whole & (persona == k)])])
        for k in range(len(config.personas))
    ]
    churns_inside = (signup < first_day) & (churn > first_day) & (churn <= last_day)
    joins_inside = (signup > first_day) & (signup <= last_day)
    for condition in (churns_inside, joins_inside):
        assert condition.any()
        picks.append(int(np.flatnonzero(condition)[np.argmax(p[condition])]))
    # Includes a customer for whom P(order) is modest, to check the low end too.
    moderate_p = whole & (p > 0.05) & (p < 0.2)
    picks.append(int(np.flatnonzero(moderate_p)[0]))
    picks = np.array(picks)
    assert p[picks].max() > 0.3

    replicas, seeds = 500, range(4)
    rows = np.repeat(picks, replicas)
    clones = dataclasses.replace(population.take(rows), customer_id=np.arange(1, len(rows) + 1, dtype=np.int64))
    hits = np.zeros(len(picks))
    for seed in seeds:
        rng = np.random.default_rng([2024, seed])
        sessions = session_arrivals(world, clones, first_day, last_day, rng)
        assert sessions.day.min() >= first_day and sessions.day.max() <= last_day
        outcome = session_outcomes(world, clones, sessions, rng)
        ordered = np.zeros(len(rows), dtype=bool)
        ordered[outcome.orders["customer_id"].to_numpy() - 1] = True
        hits += ordered.reshape(len(picks), replicas).sum(axis=1)
    n = replicas * len(seeds)
    frequency = hits / n
    se = np.sqrt(p[picks] * (1 - p[picks]) / n)
    assert np.all(np.abs(frequency - p[picks]) <= 4 * se), list(zip(frequency, p[picks]))
    # pooled over the customers
    assert abs(frequency.sum() - p[picks].sum()) <= 4 * np.sqrt((se**2).sum())


def test_expected_order_count_from_truth_matches_the_data(moderate):
    """order_probability's rate over the whole period (-log(1-p)) is the expected number of orders."""
    expected = _expected_orders(moderate.world, moderate.population)
    total = expected.sum()
    assert abs(len(moderate.orders) - total) <= 4 * np.sqrt(total)
    counts = moderate.orders.groupby("customer_id").size().reindex(moderate.population.customer_id, fill_value=0)
    for k, persona in enumerate(moderate.config.personas):
        mask = moderate.population.persona == k
        e = expected[mask].sum()
        assert abs(counts.to_numpy()[mask].sum() - e) <= 4 * np.sqrt(e), persona.name


# -------------------------------------------------------------------------- 5. structure and semantics


def test_events_are_time_ordered_with_contiguous_ids_in_a_single_chunk(moderate):
    assert moderate.config.chunk_customers >= moderate.config.n_customers  # one chunk
    events = moderate.events
    assert events["ts"].is_monotonic_increasing
    assert np.array_equal(events["event_id"].to_numpy(), np.arange(1, len(events) + 1))
    assert set(events["event_type"].astype(str).unique()) == {"product_view", "add_to_cart", "purchase"}
    assert set(events["device"].astype(str).unique()) == set(DEVICES)
    assert events["product_id"].isin(moderate.products["product_id"]).all()
    assert (events["dwell_seconds"] >= 0).all()
    sessions = moderate.sessions
    assert (sessions["customers"] == 1).all() and (sessions["devices"] == 1).all()
    assert (sessions["views"] >= 1).all()


def test_cart_adds_follow_a_view_of_the_same_product_and_purchases_buy_the_cart(moderate):
    events = moderate.events.sort_values(["session_id", "event_id"], kind="stable")
    kind = events["event_type"].astype(str).to_numpy()
    session = events["session_id"].to_numpy()
    product = events["product_id"].to_numpy()
    ts = events["ts"].to_numpy()
    cart = np.flatnonzero(kind == "add_to_cart")
    assert len(cart) > 0 and cart.min() > 0
    previous = cart - 1
    assert np.all(session[previous] == session[cart])
    assert np.all(kind[previous] == "product_view")
    assert np.all(product[previous] == product[cart])
    assert np.all(ts[previous] < ts[cart])

    sessions = moderate.sessions
    assert (sessions.loc[sessions["purchases"] > 0, "carts"] > 0).all()
    buying = sessions.index[sessions["purchases"] > 0]
    in_buying = np.isin(session, buying)
    carted = pd.DataFrame(
        {"s": session[in_buying & (kind == "add_to_cart")], "p": product[in_buying & (kind == "add_to_cart")]}
    )
    bought = pd.DataFrame({"s": session[kind == "purchase"], "p": product[kind == "purchase"]})
    carted = carted.sort_values(["s", "p"]).to_numpy()
    bought = bought.sort_values(["s", "p"]).to_numpy()
    assert np.array_equal(carted, bought)
    # a purchase ends its session: all its purchase events share one timestamp, after everything else
    purchase = (
        pd.DataFrame({"s": session[kind == "purchase"], "ts": ts[kind == "purchase"]})
        .groupby("s")["ts"]
        .agg(["min", "max"])
    )
    assert (purchase["min"] == purchase["max"]).all()
    other = pd.DataFrame({"s": session[kind != "purchase"], "ts": ts[kind != "purchase"]}).groupby("s")["ts"].max()
    assert (purchase["min"] > other.loc[purchase.index]).all()


def test_orders_match_their_sessions_purchase_events(moderate):
    orders, events, sessions = moderate.orders, moderate.events, moderate.sessions
    purchases = events[events["event_type"] == "purchase"]
    per_session = purchases.groupby("session_id").agg(
        n=("event_id", "size"), ts=("ts", "first"), customer=("customer_id", "first")
    )
    assert set(orders["session_id"]) == set(per_session.index)
    assert orders["session_id"].is_unique
    indexed = orders.set_index("session_id")
    matched = per_session.loc[indexed.index]
    # one purchase event per item bought; quantity counts units, so it is at least that
    assert (indexed["quantity"].to_numpy() >= matched["n"].to_numpy()).all()
    assert (indexed["quantity"].to_numpy() > matched["n"].to_numpy()).any()
    assert (indexed["ordered_at"].to_numpy() == matched["ts"].to_numpy()).all()
    assert (indexed["customer_id"].to_numpy() == matched["customer"].to_numpy()).all()
    assert (orders["amount"] >= 0).all() and (orders["discount"] >= 0).all()
    assert (orders["quantity"] >= 1).all()

    # amount + discount is the list price of every unit bought: exactly units x price for a single item,
    # at least one unit of each item otherwise
    price = moderate.products.set_index("product_id")["price"]
    list_price = purchases.assign(price=purchases["product_id"].map(price)).groupby("session_id")["price"].sum()
    list_price = list_price.loc[indexed.index].to_numpy()
    total = indexed["amount"] + indexed["discount"]
    single = matched["n"].to_numpy() == 1
    assert single.mean() > 0.8
    expected = list_price[single] * indexed["quantity"].to_numpy()[single]
    assert np.allclose(total.to_numpy()[single], expected, atol=0.011)
    assert np.all(total.to_numpy() >= list_price - 0.011)

    # the discount share: at least the store-wide sale discount on sale days, at most clearance otherwise
    calendar = moderate.calendar.set_index("day")["sale_discount"]
    sale = sessions.loc[indexed.index, "day"].map(calendar).to_numpy()
    share = (indexed["discount"] / total).to_numpy()
    ceiling = np.maximum(sale, moderate.config.clearance_discount)
    tolerance = 0.01 / total.to_numpy() + 1e-9
    assert np.all(share >= sale - tolerance)
    assert np.all(share <= ceiling + tolerance)
    assert (sale > 0).any() and (sale == 0).any()


def test_no_activity_before_signup_or_sessions_after_churn(moderate):
    sessions = moderate.sessions
    signup = moderate.customers.set_index("customer_id")["signup_at"]
    first_event = moderate.events.groupby("customer_id")["ts"].min()
    assert (first_event >= signup.loc[first_event.index]).all()
    churn = moderate.truth.set_index("customer_id")["churn_at"]
    assert (sessions["start"] < sessions["customer_id"].map(churn)).all()
    # there are customers who churned inside the period, so the check has teeth
    assert (churn < moderate.config.end).sum() > 100
    assert sessions["start"].min() >= moderate.config.start
    assert sessions["start"].max() < moderate.config.end + pd.Timedelta(days=1)


def test_daily_traffic_follows_the_calendar(moderate):
    """Daily session counts are Poisson with the model's mean: active visit rates x calendar traffic."""
    config, calendar = moderate.config, moderate.calendar
    expected = _expected_daily_sessions(config, moderate.truth, calendar["traffic"].to_numpy())
    observed = moderate.sessions.groupby("day").size().reindex(calendar["day"], fill_value=0).to_numpy()
    assert abs(observed.sum() - expected.sum()) <= 4 * np.sqrt(expected.sum())
    chi2 = ((observed - expected) ** 2 / expected).sum()
    dof = config.n_days
    assert chi2 < dof + 6 * np.sqrt(2 * dof)

    # sale days see more traffic than the average day
    sale = calendar["sale_discount"].to_numpy() > 0
    assert sale.sum() > 0
    assert observed[sale].mean() > observed.mean()
    assert observed[sale].sum() / expected[sale].sum() == pytest.approx(1, abs=4 / np.sqrt(expected[sale].sum()))

    # weekly cycle: Saturday busier than Tuesday, in the ratio the weekly multipliers give
    weekday = calendar["day"].dt.day_of_week.to_numpy()
    plain = calendar["event"].to_numpy() == ""
    saturday, tuesday = plain & (weekday == 5), plain & (weekday == 1)
    assert observed[saturday].mean() > observed[tuesday].mean()
    ratio = (observed[saturday].sum() / expected[saturday].sum()) / (observed[tuesday].sum() / expected[tuesday].sum())
    se = np.sqrt(1 / expected[saturday].sum() + 1 / expected[tuesday].sum())
    assert abs(ratio - 1) <= 4 * se


# ------------------------------------------------------------------------------------------ 6. calendar


def test_black_friday_is_the_friday_after_the_fourth_thursday():
    assert black_friday(2024) == pd.Timestamp("2024-11-29")
    assert black_friday(2025) == pd.Timestamp("2025-11-28")
    assert black_friday(2026) == pd.Timestamp("2026-11-27")
    for year in range(2015, 2035):
        day = black_friday(year)
        assert day.day_of_week == 4 and day.month == 11 and 23 <= day.day <= 29


def test_event_days_respect_offset_and_length_in_every_year():
    start, end = pd.Timestamp("2024-10-01"), pd.Timestamp("2025-12-31")
    black = SeasonalEvent("black_friday", "black_friday", -3, 7, 2.2, 0.3)
    expected = pd.date_range("2024-11-26", "2024-12-02").append(pd.date_range("2025-11-25", "2025-12-01"))
    assert list(event_days(black, start, end)) == list(expected)
    summer = SeasonalEvent("summer", "06-20", 2, 5, 1.3, 0.2)
    assert list(event_days(summer, start, end)) == list(pd.date_range("2025-06-22", "2025-06-26"))
    # an event running over New Year and clipped to the period at both ends
    winter = SeasonalEvent("winter", "12-26", 0, 14, 1.35, 0.25)
    got = event_days(winter, pd.Timestamp("2025-01-01"), end)
    assert list(got) == list(pd.date_range("2025-01-01", "2025-01-08")) + list(
        pd.date_range("2025-12-26", "2025-12-31")
    )


def test_event_days_include_days_of_an_event_anchored_in_the_following_year():
    new_year = SeasonalEvent("new_year", "01-02", -5, 5, 1.5, 0.1)  # Dec 28 .. Jan 1 every year
    days = event_days(new_year, pd.Timestamp("2024-10-01"), pd.Timestamp("2025-12-31"))
    expected = pd.date_range("2024-12-28", "2025-01-01").append(pd.date_range("2025-12-28", "2025-12-31"))
    assert list(days) == list(expected)


def test_calendar_combines_weekly_cycle_and_overlapping_events():
    config = config_from_params(_section())
    calendar = build_calendar(config).set_index("day")
    assert len(calendar) == config.n_days
    weekly = np.asarray(config.weekly)
    plain_day = pd.Timestamp("2025-03-04")  # a Tuesday with no event
    assert calendar.loc[plain_day, "traffic"] == pytest.approx(weekly[1])
    assert calendar.loc[plain_day, "sale_discount"] == 0 and calendar.loc[plain_day, "event"] == ""
    events = {e.name: e for e in config.events}
    # 2025-12-01 is both the last Black Friday week day and the first day of the Christmas season
    overlap = pd.Timestamp("2025-12-01")
    assert calendar.loc[overlap, "traffic"] == pytest.approx(
        weekly[overlap.day_of_week] * events["black_friday"].traffic * events["christmas"].traffic
    )
    assert calendar.loc[overlap, "sale_discount"] == max(events["black_friday"].discount, events["christmas"].discount)
    assert set(calendar.loc[overlap, "event"].split("+")) == {"black_friday", "christmas"}
    summer_day = pd.Timestamp("2025-06-25")
    assert calendar.loc[summer_day, "sale_discount"] == events["summer_sale"].discount
    assert calendar.loc[summer_day, "traffic"] == pytest.approx(
        weekly[summer_day.day_of_week] * events["summer_sale"].traffic
    )


# --------------------------------------------------------------------------------------------- 7. drift


def _mobile_by_month(drift: float, n: int = 6000):
    """Mobile share of sessions in the first and last 30 days, observed and expected given the sessions."""
    section = _section(n_customers=n)
    section["drift"] = {"mobile_logit_per_year": drift}
    config = config_from_params(section)
    world = build_world(config, 11)
    population = draw_population(config, 0, n, stream(11, STREAM_CUSTOMERS, 0))
    sessions = session_arrivals(world, population, 0, config.n_days - 1, np.random.default_rng(11))
    base = np.array([p.mobile_share for p in config.personas])[population.persona[sessions.customer_row]]
    is_mobile = sessions.device == DEVICES.index("mobile")
    result = {}
    for name, mask in (("first", sessions.day < 30), ("last", sessions.day >= config.n_days - 30)):
        chance = mobile_probability(base[mask], sessions.day[mask], drift)
        no_drift = base[mask]
        result[name] = SimpleNamespace(
            observed=is_mobile[mask].mean(),
            expected=chance.mean(),
            expected_without_drift=no_drift.mean(),
            se=np.sqrt((chance * (1 - chance)).sum()) / mask.sum(),
        )
    return result


def test_mobile_share_drifts_up_with_positive_drift_and_not_without():
    drift = 0.6
    months = _mobile_by_month(drift)
    first, last = months["first"], months["last"]
    for month in (first, last):
        assert abs(month.observed - month.expected) <= 4 * month.se
    se_diff = np.hypot(first.se, last.se)
    increase = last.observed - first.observed
    assert increase > 4 * se_diff
    # beyond what the changing persona mix alone would give, by the amount the drift implies
    composition = last.expected_without_drift - first.expected_without_drift
    drift_effect = (last.expected - first.expected) - composition
    assert drift_effect > 0.05
    assert abs((increase - composition) - drift_effect) <= 4 * se_diff

    flat = _mobile_by_month(0.0)
    first, last = flat["first"], flat["last"]
    se_diff = np.hypot(first.se, last.se)
    composition = last.expected_without_drift - first.expected_without_drift
    assert (last.observed - first.observed) - composition <= 4 * se_diff
    for month in (first, last):
        assert abs(month.observed - month.expected_without_drift) <= 4 * month.se


# ------------------------------------------------------------------------------------ 8. response model


def test_purchase_multiplier_is_one_at_baseline_and_rises_with_relevance():
    relevance = np.linspace(0, 1, 11)
    assert np.array_equal(purchase_multiplier(np.array([0.4]), 0.4, 2.0), np.array([1.0]))
    rising = purchase_multiplier(relevance, 0.4, 2.0)
    assert np.all(np.diff(rising) > 0)
    assert np.all(rising[relevance < 0.4] < 1) and np.all(rising[relevance > 0.4] > 1)
    assert np.all(np.diff(purchase_multiplier(relevance, 0.4, -2.0)) < 0)
    assert np.allclose(purchase_multiplier(relevance, 0.4, 0.0), 1.0)
    # symmetric in log space: as much up for +d as down for -d
    assert np.allclose(
        purchase_multiplier(0.4 + relevance / 2, 0.4, 3.0) * purchase_multiplier(0.4 - relevance / 2, 0.4, 3.0), 1.0
    )


def _views(outcome) -> pd.DataFrame:
    """The events of an outcome that are not purchases: what a buy multiplier must leave alone."""
    return outcome.events.loc[outcome.events["event_type"] != "purchase", ["session_id", "product_id", "event_type"]]


def _product_views(outcome) -> np.ndarray:
    """(session, product) of every product view, sorted: what a cart multiplier must leave alone."""
    views = outcome.events.loc[outcome.events["event_type"] == "product_view", ["session_id", "product_id"]]
    return views.sort_values(["session_id", "product_id"]).to_numpy()


def _outcomes(world, population, sessions, seed, **kwargs):
    return session_outcomes(world, population, sessions, np.random.default_rng(seed), **kwargs)


def test_buy_multiplier_uses_common_random_numbers(tiny_world):
    world, population = tiny_world
    sessions = session_arrivals(world, population, 0, world.config.n_days - 1, np.random.default_rng(3))
    n = len(sessions)
    base = _outcomes(world, population, sessions, 5)
    more = _outcomes(world, population, sessions, 5, buy_multiplier=np.full(n, 1.6))
    less = _outcomes(world, population, sessions, 5, buy_multiplier=np.full(n, 0.5))
    for other in (more, less):
        assert np.array_equal(base.sessions["views"], other.sessions["views"])
        assert np.array_equal(base.sessions["cart_adds"], other.sessions["cart_adds"])
        assert _views(base).reset_index(drop=True).equals(_views(other).reset_index(drop=True))
    bought, bought_more, bought_less = (o.sessions["purchased"].to_numpy() for o in (base, more, less))
    assert np.all(bought_more >= bought) and bought_more.sum() > bought.sum()
    assert np.all(bought_less <= bought) and bought_less.sum() < bought.sum()
    # a session buys only with something in the cart, whatever the multiplier
    everything = _outcomes(world, population, sessions, 5, buy_multiplier=np.full(n, 1e9))
    assert np.array_equal(everything.sessions["purchased"].to_numpy(), base.sessions["cart_adds"].to_numpy() > 0)
    nothing = _outcomes(world, population, sessions, 5, buy_multiplier=np.zeros(n))
    assert len(nothing.orders) == 0 and (nothing.events["event_type"] == "purchase").sum() == 0
    # the units bought are drawn whatever the multiplier: an order placed in both runs has the same basket
    both = base.orders.merge(more.orders, on="session_id", suffixes=("", "_more"))
    assert len(both) == len(base.orders)
    assert np.array_equal(both["quantity"], both["quantity_more"]) and np.allclose(both["amount"], both["amount_more"])


def test_buy_multiplier_shifts_purchases_by_the_expected_amount_on_average(tiny_world):
    """Across seeds: E[purchases | carts] scales with min(1, buy_chance x multiplier)."""
    from atelier.data.simulate.sessions import buy_chance

    world, population = tiny_world
    gains, losses = [], []
    for seed in range(5):
        sessions = session_arrivals(world, population, 0, world.config.n_days - 1, np.random.default_rng(100 + seed))
        n = len(sessions)
        base = _outcomes(world, population, sessions, seed)
        chance = buy_chance(world, population.persona[sessions.customer_row], sessions.device)
        has_cart = base.sessions["cart_adds"].to_numpy() > 0
        for multiplier, bucket in ((1.5, gains), (0.6, losses)):
            other = _outcomes(world, population, sessions, seed, buy_multiplier=np.full(n, multiplier))
            expected = (np.minimum(1, chance * multiplier) - chance)[has_cart].sum()
            bucket.append(
                (
                    other.sessions["purchased"].sum() - base.sessions["purchased"].sum(),
                    expected,
                    (
                        np.abs(np.minimum(1, chance * multiplier) - chance)
                        * (1 - np.abs(np.minimum(1, chance * multiplier) - chance))
                    )[has_cart].sum(),
                )
            )
    for bucket, sign in ((gains, 1), (losses, -1)):
        diff, expected, var = (np.sum([b[i] for b in bucket]) for i in range(3))
        assert sign * diff > 0 and sign * expected > 0
        assert abs(diff - expected) <= 4 * np.sqrt(var)


def test_cart_multiplier_keeps_the_views_and_adds_to_the_cart(tiny_world):
    world, population = tiny_world
    sessions = session_arrivals(world, population, 0, world.config.n_days - 1, np.random.default_rng(3))
    base = _outcomes(world, population, sessions, 9)
    more = _outcomes(world, population, sessions, 9, cart_multiplier=np.full(len(sessions), 2.0))
    assert np.array_equal(base.sessions["views"], more.sessions["views"])
    assert np.array_equal(_product_views(base), _product_views(more))
    assert np.all(more.sessions["cart_adds"].to_numpy() >= base.sessions["cart_adds"].to_numpy())
    assert more.sessions["cart_adds"].sum() > base.sessions["cart_adds"].sum()


# ------------------------------------------------------------------------------------------ 9. personas


def test_personas_behave_as_parametrised(moderate):
    truth, orders, sessions = moderate.truth, moderate.orders, moderate.sessions
    persona = orders["customer_id"].map(truth.set_index("customer_id")["persona"])
    orders_per_customer = persona.value_counts() / truth["persona"].value_counts()
    order_value = orders.groupby(persona)["amount"].mean()
    assert orders_per_customer["loyal_high_value"] > orders_per_customer["window_browser"]
    assert order_value["loyal_high_value"] > order_value["window_browser"]

    views = sessions.groupby("persona")["views"].agg(["mean", "size"])
    assert views["mean"].idxmax() == "window_browser"
    assert views.loc["window_browser", "mean"] > views.loc["new_visitor", "mean"]
    # views per session are 1 + Poisson(m - 1): mean m
    for p in moderate.config.personas:
        se = np.sqrt(max(p.views_per_session - 1, 1e-9) / views.loc[p.name, "size"])
        assert abs(views.loc[p.name, "mean"] - p.views_per_session) <= 4 * se, p.name


# ------------------------------------------------------------------------------------- 10. config errors


def _units_per_item(orders: pd.DataFrame, events: pd.DataFrame, persona: pd.Series) -> pd.DataFrame:
    """Per persona: orders, items bought (purchase events), units (quantity) and units per item."""
    items = events[events["event_type"] == "purchase"].groupby("session_id").size()
    frame = pd.DataFrame(
        {
            "persona": orders["customer_id"].map(persona).to_numpy(),
            "items": orders["session_id"].map(items).to_numpy(),
            "units": orders["quantity"].to_numpy(),
        }
    )
    per_persona = frame.groupby("persona").agg(orders=("units", "size"), items=("items", "sum"), units=("units", "sum"))
    per_persona["units_per_item"] = per_persona["units"] / per_persona["items"]
    return per_persona


def test_basket_size_follows_each_personas_configured_extra_units(moderate):
    per_persona = _units_per_item(moderate.orders, moderate.events, moderate.truth.set_index("customer_id")["persona"])
    for p in moderate.config.personas:
        # units of an item are 1 + Poisson(extra): mean 1 + extra, variance extra per item
        row = per_persona.loc[p.name]
        se = np.sqrt(max(p.basket_extra_units, 1e-3) / row["items"])
        assert abs(row["units_per_item"] - (1 + p.basket_extra_units)) <= 4 * se, p.name
    quantity = moderate.orders.groupby(
        moderate.orders["customer_id"].map(moderate.truth.set_index("customer_id")["persona"])
    )["quantity"].mean()
    assert quantity["loyal_high_value"] > quantity["lapsing"] > quantity["window_browser"]


def test_basket_size_orders_personas_as_configured(moderate):
    """Spread the personas' extra units far apart: the mean basket ranks the personas in that order."""
    world, population = moderate.world, moderate.population
    extra = dict(zip(world.config.persona_names, (0.0, 2.5, 0.5, 1.5, 1.0)))
    personas = tuple(dataclasses.replace(p, basket_extra_units=extra[p.name]) for p in world.config.personas)
    world = dataclasses.replace(world, config=dataclasses.replace(world.config, personas=personas))
    sessions = session_arrivals(world, population, 0, world.config.n_days - 1, np.random.default_rng(11))
    outcome = _outcomes(
        world, population, sessions, 12, buy_multiplier=np.full(len(sessions), 1e9)
    )  # every cart is bought
    names = np.array(world.config.persona_names)
    persona = pd.Series(names[population.persona], index=population.customer_id)
    per_persona = _units_per_item(outcome.orders, outcome.events, persona)
    assert per_persona["items"].min() >= 200, per_persona  # enough that 0.5 apart is several standard errors
    ranked = per_persona["units_per_item"].sort_values().index.tolist()
    assert ranked == sorted(extra, key=extra.get)
    quantity = outcome.orders.groupby(outcome.orders["customer_id"].map(persona))["quantity"].mean()
    assert quantity.sort_values().index.tolist() == ranked
    assert per_persona.loc[names[np.argmin(list(extra.values()))], "units_per_item"] == 1.0  # no extra units: one each


def test_negative_basket_extra_units_is_rejected():
    section = _section()
    section["personas"]["bargain_hunter"]["basket_extra_units"] = -0.5
    with pytest.raises(ParamsError, match=r"personas\.bargain_hunter\.basket_extra_units: must be >= 0"):
        config_from_params(section)


def test_persona_shares_must_sum_to_one():
    section = _section()
    section["personas"]["loyal_high_value"]["share"] = 0.5
    with pytest.raises(ParamsError, match=r"simulate\.personas\.\*\.share: shares must sum to 1"):
        config_from_params(section)


def test_tier_mix_needs_one_share_per_tier():
    section = _section()
    section["personas"]["lapsing"]["tier_mix"] = [0.5, 0.5]
    with pytest.raises(ParamsError, match=r"personas\.lapsing\.tier_mix: needs 3 values, got 2"):
        config_from_params(section)


@pytest.mark.parametrize("anchor", ["13-45", "not-a-day", "02-30"])
def test_bad_calendar_anchor_is_rejected(anchor):
    section = _section()
    section["calendar"]["events"]["summer_sale"]["anchor"] = anchor
    with pytest.raises(ParamsError, match=rf"calendar\.events\.summer_sale\.anchor: '{anchor}' is neither"):
        config_from_params(section)


def test_missing_key_is_reported():
    section = _section()
    del section["dwell_log_sd"]
    with pytest.raises(ParamsError, match="missing key 'dwell_log_sd'"):
        config_from_params(section)


def test_check_timeline_boundaries_agree_with_order_probability(tiny_world):
    world, population = tiny_world
    config = world.config
    last_ok = config.end + pd.Timedelta(days=1) - pd.Timedelta(days=30)  # window ends on the last simulated day
    check_timeline(config, [last_ok], 30)
    assert order_probability(world, population, config.day_index(last_ok), 30).shape == (len(population),)
    too_late = last_ok + pd.Timedelta(days=1)
    with pytest.raises(ParamsError, match="outside the simulated period"):
        check_timeline(config, [too_late], 30)
    with pytest.raises(ValueError):
        order_probability(world, population, config.day_index(too_late), 30)
    for early in (config.start, config.start - pd.Timedelta(days=10)):
        with pytest.raises(ParamsError, match="outside the simulated period"):
            check_timeline(config, [early], 30)
