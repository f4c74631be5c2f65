"""What the `recommend` stage reads and writes, and the metrics it records (metrics/recommend.json).

Reads: the validated events, customers and products, the segments and (simulated data) the simulator's truth.
Writes: the chosen recommender's arrays (models/recommend/<version>/, numpy .npz, no pickle) with its metadata
and the `champion` alias, every known customer's list at the test cutoff (data/recommend/), the plot data and
the metrics.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import time
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from atelier.core import parallel, paths
from atelier.core.config import ParamsError
from atelier.core.io import write_json, write_parquet
from atelier.core.parallel import deal, dealt_map, gather
from atelier.recommend import evaluate, methods
from atelier.recommend.interactions import EncodedEvents, Interactions, build, horizon_gains, unknown_share

LEARNED = ("als", "item_item")
SKIPPED = "no events or products table: nothing to learn from"
BASELINES = ("popularity", "recent_popularity", "category_rule")


@dataclass(frozen=True)
class RecommendSettings:
    """params.yaml `recommend` (and the page size, `replay.policy.recommendations`)."""

    k: int
    weights: dict[str, dict[str, float]]
    gains: dict[str, float]
    half_life_days: float
    factors: list[int]
    regularization: list[float]
    alpha: float
    iterations: int
    neighbours: list[int]
    bootstrap: int
    threads: int
    seed: int
    workers: int = 1

    @classmethod
    def from_params(cls, section: dict[str, Any], k: int, seed: int) -> RecommendSettings:
        """Settings; a ParamsError names the key at fault."""
        needed = ("weights", "gains", "half_life_days", "factors", "regularization", "alpha", "iterations",
                  "neighbours", "bootstrap", "threads", "workers")
        missing = [key for key in needed if key not in section]
        if missing:
            raise ParamsError(f"params.yaml recommend: missing keys {missing}; restore them from the project's "
                              "params.yaml")
        if not isinstance(section["weights"], dict) or not section["weights"]:
            raise ParamsError("params.yaml recommend.weights: must name at least one interaction weighting, "
                              "e.g. {balanced: {product_view: 1, add_to_cart: 3, purchase: 10}}")
        if int(k) < 1:
            raise ParamsError(f"params.yaml replay.policy.recommendations: must be 1 or more, got {k!r}")
        return cls(k=int(k), weights={str(n): {str(t): float(v) for t, v in w.items()}
                                      for n, w in section["weights"].items()},
                   gains={str(t): float(v) for t, v in section["gains"].items()},
                   half_life_days=float(section["half_life_days"]), factors=[int(f) for f in section["factors"]],
                   regularization=[float(r) for r in section["regularization"]], alpha=float(section["alpha"]),
                   iterations=int(section["iterations"]), neighbours=[int(n) for n in section["neighbours"]],
                   bootstrap=int(section["bootstrap"]), threads=int(section["threads"]), seed=int(seed),
                   workers=max(1, int(section["workers"])))


@dataclass
class RecommendInputs:
    """Validated tables as arrays, the two cutoffs and, for simulated data, what the truth needs."""

    events: EncodedEvents
    customers: pd.DataFrame  # customer_id, signup_at
    products: pd.DataFrame  # product_id, category
    segments: pd.Series  # segment name per customer id (test cutoff)
    validation_cutoff: pd.Timestamp
    test_cutoff: pd.Timestamp
    horizon_days: int
    unknown_product_share: float
    preference: Any = None  # callable(customer ids) -> (customers x products) true preference, or None
    missing: str | None = None  # why nothing can be learned (no events or products), else None

    @property
    def simulated(self) -> bool:
        return self.preference is not None


def load_inputs(root: Path, params: dict[str, Any], truth: bool = True) -> RecommendInputs:
    """Read the validated tables, the segments and (unless `truth` is False) the truth; the validation cutoff is the
    one before the test's."""
    root = Path(root)
    cutoffs = sorted(pd.Timestamp(c) for c in params["timeline"]["cutoffs"])
    if len(cutoffs) < 2:
        raise ParamsError("params.yaml timeline.cutoffs: the recommend stage needs two cutoffs (validation, test)")
    needed = {name: root / paths.VALIDATED_DIR / f"{name}.parquet" for name in ("events", "customers", "products")}
    missing = None if all(path.exists() for path in needed.values()) else SKIPPED
    if missing is None:
        events = pd.read_parquet(needed["events"], columns=["customer_id", "ts", "event_type", "product_id"])
        customers = pd.read_parquet(needed["customers"], columns=["customer_id", "signup_at"])
        products = pd.read_parquet(needed["products"], columns=["product_id", "category"])
        missing = None if len(events) and len(products) else SKIPPED
    if missing is not None:  # e.g. an orders-only retailer: every method needs views of products
        events = pd.DataFrame({"customer_id": pd.Series(dtype="int64"), "ts": pd.Series(dtype="datetime64[us]"),
                               "event_type": pd.Series(dtype="str"), "product_id": pd.Series(dtype="Int64")})
        customers = pd.DataFrame({"customer_id": pd.Series(dtype="int64"),
                                  "signup_at": pd.Series(dtype="datetime64[us]")})
        products = pd.DataFrame({"product_id": pd.Series(dtype="int64"), "category": pd.Series(dtype="str")})
    products = products.sort_values("product_id").reset_index(drop=True)
    products["category"] = products["category"].astype(str)
    segments = (pd.read_parquet(root / paths.SEGMENTS_FILE, columns=["customer_id", "segment_name"])
                if (root / paths.SEGMENTS_FILE).exists() else pd.DataFrame({"customer_id": [], "segment_name": []}))
    encoded = EncodedEvents.encode(events, customers["customer_id"].to_numpy(), products["product_id"].to_numpy())
    inputs = RecommendInputs(events=encoded, customers=customers, products=products,
                             segments=segments.set_index("customer_id")["segment_name"].astype(str),
                             validation_cutoff=cutoffs[-2], test_cutoff=cutoffs[-1],
                             horizon_days=int(params["timeline"]["horizon_days"]),
                             unknown_product_share=unknown_share(events, products["product_id"].to_numpy()),
                             missing=missing)
    truth_file = root / paths.TRUTH_CUSTOMERS
    if truth and params.get("data", {}).get("source") == "simulate" and truth_file.exists() and missing is None:
        inputs.preference = _truth_preference(params, truth_file, customers, products)
    return inputs


def _truth_preference(params: dict[str, Any], truth_file: Path, customers: pd.DataFrame, products: pd.DataFrame):
    """A function giving the simulator's true preference of customers (ids) for the products (in `products` order)."""
    from atelier.data.simulate.config import config_from_params
    from atelier.data.simulate.world import build_world, population_from_truth

    config = config_from_params(params["simulate"])
    world = build_world(config, int(params["seed"]))
    truth_customers = pd.read_parquet(truth_file)
    everyone = truth_customers[["customer_id"]].merge(customers, on="customer_id", how="left")
    everyone = everyone.assign(age_band=None, gender=None, region=None)
    population = population_from_truth(config, truth_customers, everyone)
    row_of = pd.Index(population.customer_id)
    columns = pd.Index(world.catalog["product_id"]).get_indexer(products["product_id"])
    return partial(_preference, world, population, row_of, columns)  # a partial: worker processes can be sent it


def _preference(world: Any, population: Any, row_of: pd.Index, columns: np.ndarray,
                customer_ids: np.ndarray) -> np.ndarray:
    """The simulator's true preference of `customer_ids` for the catalog's products at `columns`."""
    from atelier.data.simulate.truth import product_preference

    return product_preference(world, population, row_of.get_indexer(customer_ids))[:, columns]


@dataclass
class Fitted:
    """Every method's lists for every customer row at one cutoff, and the learned models' arrays."""

    data: Interactions
    lists: dict[str, np.ndarray]
    als: tuple[np.ndarray, np.ndarray]
    similarity: Any
    fallback: np.ndarray
    seconds: dict[str, float]


def fit_all(inputs: RecommendInputs, cutoff: pd.Timestamp, settings: RecommendSettings, weighting: str,
            als: methods.AlsSettings, neighbours: int, item_item_weighting: str | None = None) -> Fitted:
    """Fit every method on the events before `cutoff` and list k products for every customer. Item-item learns
    from the `item_item_weighting` matrix (default: `weighting`'s); customers without history there get the
    fallback of `weighting`'s matrix, as every method does."""
    data = build(inputs.events, cutoff, inputs.customers["customer_id"].to_numpy(),
                 inputs.products["product_id"].to_numpy(), settings.weights[weighting], settings.half_life_days)
    other = data if item_item_weighting in (None, weighting) else build(
        inputs.events, cutoff, data.customers, data.products, settings.weights[item_item_weighting],
        settings.half_life_days)
    k, n = settings.k, len(data.customers)
    fallback = methods.ranked(data.recent, k)
    seconds = {}
    began = time.perf_counter()
    factors = methods.fit_als(data, als, settings.seed, settings.threads)
    seconds["als_fit"] = time.perf_counter() - began
    began = time.perf_counter()
    similarity = methods.fit_item_item(other, neighbours, settings.threads)
    seconds["item_item_fit"] = time.perf_counter() - began
    lists = {
        "popularity": methods.non_personal(data.views, n, k),
        "recent_popularity": methods.non_personal(data.recent, n, k),
        "category_rule": methods.category_rule(data, inputs.products["category"].to_numpy(), k),
        "als": methods.with_cold_start(methods.als_lists(*factors, k), data.has_history, fallback),
        "item_item": methods.with_cold_start(methods.item_item_lists(other.weighted, similarity, k),
                                             other.has_history, fallback),
    }
    return Fitted(data=data, lists=lists, als=factors, similarity=similarity, fallback=fallback, seconds=seconds)


def targets(inputs: RecommendInputs, data: Interactions, settings: RecommendSettings) -> tuple[np.ndarray, Any]:
    """Rows of the customers known at the cutoff (signed up before it) who did something in the horizon, and their
    graded gains."""
    gains = horizon_gains(inputs.events, data.cutoff, inputs.horizon_days, data.weighted.shape, settings.gains)
    known = (inputs.customers["signup_at"] < data.cutoff).to_numpy()
    rows = np.flatnonzero(known & (np.diff(gains.indptr) > 0))
    return rows, gains[rows]


def score(fitted: Fitted, rows: np.ndarray, gains: Any) -> dict[str, pd.DataFrame]:
    """Per-customer metrics of every method on the target rows."""
    return {name: evaluate.per_customer(lists[rows], gains) for name, lists in fitted.lists.items()}


def _ndcg(lists: np.ndarray, has_history: np.ndarray, fallback: np.ndarray, target_rows: np.ndarray,
          gains: Any) -> float:
    return float(evaluate.per_customer(methods.with_cold_start(lists, has_history, fallback)[target_rows],
                                       gains)["ndcg"].mean())


def grid_search(inputs: RecommendInputs, settings: RecommendSettings,
                started: list[Future[list[list[tuple]]]] | None = None) -> pd.DataFrame:
    """NDCG@k on the validation cutoff for every grid point (ALS: weighting x factors x regularization; item-item:
    weighting x neighbours). The test cutoff is never looked at here.

    The weightings are independent: they run on `settings.workers` processes (implicit on `settings.threads`
    threads in each), with the same scores as one after another; `seconds` is each point's own fit and scoring.
    With `started` (`start_grid`'s processes, which read the inputs themselves), this process scores its share of
    the weightings and collects the rest from them.
    """
    weightings = list(settings.weights)
    if started is None:
        per_weighting = dealt_map(partial(_grid_rows, inputs=inputs, settings=settings), weightings, settings.workers)
    else:
        own = deal(weightings, len(started) + 1)[0]
        per_weighting = gather([[_grid_rows(weighting, inputs, settings) for weighting in own],
                                *(running.result() for running in started)])
    return pd.DataFrame([row for rows in per_weighting for row in rows],
                        columns=["method", "weighting", "factors", "regularization", "neighbours", "validation_ndcg",
                                 "seconds"])


def start_grid(root: Path, params: dict[str, Any], settings: RecommendSettings) -> list[Future[list[list[tuple]]]]:
    """Start the grid's weightings beyond this process's share on `settings.workers` - 1 other processes
    (`core.parallel.start`), each reading the inputs itself (no copy is sent) while this one reads them too; pass
    the list to `grid_search`, which scores every `settings.workers`-th weighting here. Empty with one worker."""
    hands = deal(list(settings.weights), settings.workers)
    return [parallel.start(_grid_group, root, params, settings, hand) for hand in hands[1:]]


def _grid_group(root: Path, params: dict[str, Any], settings: RecommendSettings, weightings: list[str]
                ) -> list[list[tuple]]:
    """`_grid_rows` of each of `weightings`, on inputs read here (none when there is nothing to learn)."""
    inputs = load_inputs(root, params, truth=False)
    return [] if inputs.missing else [_grid_rows(weighting, inputs, settings) for weighting in weightings]


def _grid_rows(weighting: str, inputs: RecommendInputs, settings: RecommendSettings) -> list[tuple]:
    """The grid's rows for one interaction weighting: every ALS point, then every item-item point."""
    rows = []
    customers, products = inputs.customers["customer_id"].to_numpy(), inputs.products["product_id"].to_numpy()
    data = build(inputs.events, inputs.validation_cutoff, customers, products, settings.weights[weighting],
                 settings.half_life_days)
    target_rows, gains = targets(inputs, data, settings)
    fallback = methods.ranked(data.recent, settings.k)
    for factors, regularization in itertools.product(settings.factors, settings.regularization):
        began = time.perf_counter()
        point = methods.AlsSettings(factors, regularization, settings.alpha, settings.iterations)
        lists = methods.als_lists(*methods.fit_als(data, point, settings.seed, settings.threads), settings.k)
        rows.append(("als", weighting, factors, regularization, None,
                     _ndcg(lists, data.has_history, fallback, target_rows, gains), time.perf_counter() - began))
    for neighbours in settings.neighbours:
        began = time.perf_counter()
        similarity = methods.fit_item_item(data, neighbours, settings.threads)
        lists = methods.item_item_lists(data.weighted, similarity, settings.k)
        rows.append(("item_item", weighting, None, None, neighbours,
                     _ndcg(lists, data.has_history, fallback, target_rows, gains), time.perf_counter() - began))
    return rows


@dataclass(frozen=True)
class Choice:
    """The grid's winners: ALS settings and weighting, item-item neighbours and weighting, and the learned method
    the policy uses (the better of the two on validation)."""

    als: methods.AlsSettings
    als_weighting: str
    neighbours: int
    item_item_weighting: str
    learned: str


def choose(grid: pd.DataFrame, settings: RecommendSettings) -> Choice:
    """Best validation NDCG per learned method (ties: the earlier grid point, i.e. the simpler model)."""
    best = {m: grid[grid["method"] == m].sort_values("validation_ndcg", ascending=False, kind="stable").iloc[0]
            for m in LEARNED}
    learned = max(LEARNED, key=lambda m: (best[m]["validation_ndcg"], m == "als"))
    return Choice(als=methods.AlsSettings(int(best["als"]["factors"]), float(best["als"]["regularization"]),
                                          settings.alpha, settings.iterations),
                  als_weighting=str(best["als"]["weighting"]), neighbours=int(best["item_item"]["neighbours"]),
                  item_item_weighting=str(best["item_item"]["weighting"]), learned=learned)


@dataclass
class TestResult:
    """Out-of-time evaluation at the test cutoff."""

    fitted: Fitted
    rows: np.ndarray  # target customer rows
    scores: dict[str, pd.DataFrame]
    table: pd.DataFrame  # method x metric with intervals
    truth: pd.DataFrame | None  # per target customer and method: share of the oracle's true preference
    extras: pd.DataFrame  # per method: coverage, popularity percentile
    indices: np.ndarray


def evaluate_test(inputs: RecommendInputs, settings: RecommendSettings, choice: Choice) -> TestResult:
    """Refit with the chosen settings on everything before the test cutoff; score every method and the oracle."""
    fitted = fit_all(inputs, inputs.test_cutoff, settings, choice.als_weighting, choice.als, choice.neighbours,
                     choice.item_item_weighting)
    rows, gains = targets(inputs, fitted.data, settings)
    truth = None
    if inputs.simulated:
        preference = inputs.preference(fitted.data.customers[rows])
        oracle = np.full((len(fitted.data.customers), settings.k), -1, dtype=np.int64)
        oracle[rows] = methods.top_k(preference, settings.k)
        fitted.lists["oracle"] = oracle
        truth = pd.DataFrame({name: evaluate.truth_share(lists[rows], preference)
                              for name, lists in fitted.lists.items()})
    scores = score(fitted, rows, gains)
    indices = evaluate.bootstrap_indices(len(rows), settings.bootstrap, settings.seed)
    table = evaluate.summary(scores, indices)
    if truth is not None:
        table = pd.concat([table, evaluate.summary({m: truth[[m]].set_axis(["truth_share"], axis=1)
                                                    for m in truth.columns}, indices)], ignore_index=True)
    extras = pd.DataFrame({
        "coverage": {m: evaluate.coverage(lists[rows], len(fitted.data.products)) for m, lists in fitted.lists.items()},
        "popularity_percentile": {m: evaluate.popularity_percentile(lists[rows], fitted.data.views)
                                  for m, lists in fitted.lists.items()},
    })
    return TestResult(fitted=fitted, rows=rows, scores=scores, table=table, truth=truth, extras=extras,
                      indices=indices)


def wide(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One metric's mean and interval per method (rows in the order of `table`)."""
    part = table[table["metric"] == metric].set_index("method")[["mean", "ci_low", "ci_high"]]
    return part.rename(columns={"mean": metric})


def segment_table(inputs: RecommendInputs, result: TestResult, seed: int, metric: str = "ndcg") -> pd.DataFrame:
    """`metric` per segment (and cold starts) for each method, with bootstrap intervals."""
    customers = result.fitted.data.customers[result.rows]
    group = inputs.segments.reindex(customers).fillna("no segment").to_numpy().astype(object)
    cold = ~result.fitted.data.has_history[result.rows]
    group = np.where(cold, "cold start", group)
    values = pd.DataFrame({m: frame[metric].to_numpy() for m, frame in result.scores.items()})
    return evaluate.by_group(values, group, metric, seed, len(result.indices))


def learned_gain(result: TestResult, learned: str, baseline: str = "category_rule", metric: str = "ndcg") -> dict:
    """The learned method minus the baseline on the same customers (paired bootstrap interval)."""
    mean, low, high = evaluate.paired_difference(result.scores[learned][metric], result.scores[baseline][metric],
                                                 result.indices)
    return {"metric": metric, "learned": learned, "baseline": baseline, "difference": mean, "ci_low": low,
            "ci_high": high}


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def save_model(root: Path, result: TestResult, choice: Choice, settings: RecommendSettings) -> str:
    """Write the learned models' arrays (.npz, loaded with allow_pickle=False) into a content-addressed version
    folder under models/recommend/, point the `champion` alias at it, and return the version."""
    fitted = result.fitted
    similarity = fitted.similarity.tocsr()
    als = _npz_bytes(user_factors=fitted.als[0], item_factors=fitted.als[1], customer_id=fitted.data.customers,
                     product_id=fitted.data.products, fallback=fitted.data.products[fitted.fallback])
    item_item = _npz_bytes(data=similarity.data, indices=similarity.indices, indptr=similarity.indptr,
                           shape=np.array(similarity.shape), product_id=fitted.data.products)
    version = "rec-" + hashlib.sha256(als + item_item).hexdigest()[:12]
    folder = Path(root) / paths.RECOMMEND_MODEL_DIR / version
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "als.npz").write_bytes(als)
    (folder / "item_item.npz").write_bytes(item_item)
    write_json({"version": version, "learned": choice.learned, "trained_before": str(fitted.data.cutoff.date()),
                "als": vars(choice.als), "als_weighting": choice.als_weighting,
                "weights": settings.weights, "half_life_days": settings.half_life_days,
                "item_item_neighbours": choice.neighbours, "item_item_weighting": choice.item_item_weighting,
                "k": settings.k, "files": {"als.npz": hashlib.sha256(als).hexdigest(),
                                           "item_item.npz": hashlib.sha256(item_item).hexdigest()}},
               folder / "model.json")
    write_json({"champion": version}, Path(root) / paths.RECOMMEND_MODEL_DIR / "aliases.json")
    return version


def lists_frame(result: TestResult, method: str, version: str) -> pd.DataFrame:
    """Every customer's list from `method` at the test cutoff (customers without history: the fallback)."""
    fitted = result.fitted
    lists = fitted.lists[method]
    return pd.DataFrame({
        "customer_id": np.repeat(fitted.data.customers, lists.shape[1]),
        "rank": np.tile(np.arange(1, lists.shape[1] + 1), len(lists)),
        "product_id": fitted.data.products[lists.ravel()],
        "model_version": version,
    })


def write_outputs(root: Path, *, result: TestResult, choice: Choice, settings: RecommendSettings,
                  grid: pd.DataFrame, segments: pd.DataFrame, metrics: dict[str, Any]) -> str:
    """Model, lists, plot data and metrics; returns the model version."""
    root = Path(root)
    version = save_model(root, result, choice, settings)
    write_parquet(lists_frame(result, choice.learned, version), root / paths.RECOMMEND_LISTS)
    ndcg = wide(result.table, "ndcg").reset_index()
    (root / paths.RECOMMEND_PLOTS).mkdir(parents=True, exist_ok=True)
    ndcg.to_csv(root / paths.RECOMMEND_PLOTS / "methods.csv", index=False)
    segments.to_csv(root / paths.RECOMMEND_PLOTS / "segments.csv", index=False)
    grid.drop(columns="seconds").to_csv(root / paths.RECOMMEND_PLOTS / "grid.csv", index=False)  # no timings
    write_json({**metrics, "model_version": version}, root / paths.RECOMMEND_METRICS)
    return version


def metrics(inputs: RecommendInputs, result: TestResult, choice: Choice, grid: pd.DataFrame) -> dict[str, Any]:
    """metrics/recommend.json: the offline table, the learned gain over the rule, coverage and the choice."""
    table = {m: {row.metric: {"mean": round(row.mean, 5), "ci": [round(row.ci_low, 5), round(row.ci_high, 5)]}
                 for row in result.table[result.table["method"] == m].itertuples()}
             for m in result.table["method"].unique()}
    return {
        "validation_cutoff": str(inputs.validation_cutoff.date()), "test_cutoff": str(inputs.test_cutoff.date()),
        "customers_evaluated": int(len(result.rows)),
        "cold_start_share": round(float((~result.fitted.data.has_history[result.rows]).mean()), 5),
        "unknown_product_share": round(inputs.unknown_product_share, 6),
        "methods": table,
        "coverage": {m: round(v, 5) for m, v in result.extras["coverage"].items()},
        "popularity_percentile": {m: round(v, 5) for m, v in result.extras["popularity_percentile"].items()},
        "learned": choice.learned,
        "gain_over_rule": {key: round(v, 5) if isinstance(v, float) else v
                           for key, v in learned_gain(result, choice.learned).items()},
        "chosen": {"als": {"factors": choice.als.factors, "regularization": choice.als.regularization,
                           "weighting": choice.als_weighting},
                   "item_item": {"neighbours": choice.neighbours, "weighting": choice.item_item_weighting}},
        "grid_points": int(len(grid)),
    }


def write_skipped(root: Path, reason: str) -> None:
    """The outputs when nothing can be learned: empty lists and plot data, metrics saying why (no model version,
    so the replay's treatment arm shows the category rule's pages)."""
    root = Path(root)
    (root / paths.RECOMMEND_MODEL_DIR).mkdir(parents=True, exist_ok=True)
    (root / paths.RECOMMEND_MODEL_DIR / "aliases.json").unlink(missing_ok=True)  # no champion: the rule's pages
    write_parquet(pd.DataFrame({"customer_id": pd.Series(dtype="int64"), "rank": pd.Series(dtype="int64"),
                                "product_id": pd.Series(dtype="int64"), "model_version": pd.Series(dtype="str")}),
                  root / paths.RECOMMEND_LISTS)
    (root / paths.RECOMMEND_PLOTS).mkdir(parents=True, exist_ok=True)
    for name, columns in (("methods", ["method", "ndcg", "ci_low", "ci_high"]),
                          ("segments", ["group", "method", "customers", "ndcg", "ci_low", "ci_high"]),
                          ("grid", ["method", "weighting", "factors", "regularization", "neighbours",
                                    "validation_ndcg"])):
        pd.DataFrame(columns=columns).to_csv(root / paths.RECOMMEND_PLOTS / f"{name}.csv", index=False)
    write_json({"skipped": reason}, root / paths.RECOMMEND_METRICS)
