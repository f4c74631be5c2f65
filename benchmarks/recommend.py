"""Benchmark: the recommender's fit time at default size and its latency (one customer's page, and a batch).

    python benchmarks/recommend.py

Needs the validated tables (`dvc repro validate`) and the recommend stage's output (`dvc repro recommend`).
Fit: ALS and item-item with the chosen settings on every event before the test cutoff, one thread. Latency on
one core: one customer's page from the saved ALS arrays (a dot product and a top-k), p50/p99 over 2,000
customers, and from the served lists (`ListRecommender.page`, with its bad-input checks); a batch of 10,000
customers scored at once. Targets (issue 14): fit <= 10 s, one customer's page <= 1 ms at p99.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from atelier.core import paths
from atelier.core.config import load_params
from atelier.recommend import methods, stage
from atelier.recommend.serve import ListRecommender

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    params = load_params(REPO / paths.PARAMS_FILE)
    settings = stage.RecommendSettings.from_params(params["recommend"], params["replay"]["policy"]["recommendations"],
                                                   params["seed"])
    champion = json.loads((REPO / paths.RECOMMEND_MODEL_DIR / "aliases.json").read_text())["champion"]
    folder = REPO / paths.RECOMMEND_MODEL_DIR / champion
    chosen = json.loads((folder / "model.json").read_text())
    inputs = stage.load_inputs(REPO, {**params, "data": {"source": "files"}})
    data = stage.build(inputs.events, inputs.test_cutoff, inputs.customers["customer_id"].to_numpy(),
                       inputs.products["product_id"].to_numpy(), settings.weights[chosen["als_weighting"]],
                       settings.half_life_days)
    als = methods.AlsSettings(**chosen["als"])
    began = time.perf_counter()
    methods.fit_als(data, als, settings.seed, 1)
    als_fit = time.perf_counter() - began
    began = time.perf_counter()
    methods.fit_item_item(data, chosen["item_item_neighbours"], 1)
    item_item_fit = time.perf_counter() - began

    arrays = np.load(folder / "als.npz", allow_pickle=False)
    users, items = arrays["user_factors"], arrays["item_factors"]
    rng = np.random.default_rng(0)
    sample = rng.integers(0, len(users), 2000)
    one = []
    for row in sample:
        began = time.perf_counter()
        scores = items @ users[row]
        top = np.argpartition(-scores, settings.k)[: settings.k]
        top[np.argsort(-scores[top], kind="stable")]
        one.append(time.perf_counter() - began)
    lists = pd.read_parquet(REPO / paths.RECOMMEND_LISTS)
    served = ListRecommender.from_frame(lists, fallback=arrays["fallback"])
    catalogue = inputs.products["product_id"].to_numpy()
    customers = lists["customer_id"].unique()[sample % lists["customer_id"].nunique()]
    page = []
    for customer in customers:
        began = time.perf_counter()
        served.page(customer, catalogue, settings.k)
        page.append(time.perf_counter() - began)
    batch_rows = rng.integers(0, len(users), 10_000)
    began = time.perf_counter()
    methods.als_lists(users[batch_rows], items, settings.k)
    batch = time.perf_counter() - began
    ms = lambda values, q: round(float(np.percentile(values, q)) * 1000, 4)  # noqa: E731
    print(json.dumps({
        "customers": len(data.customers), "products": len(data.products), "interactions": int(data.weighted.nnz),
        "als_fit_seconds": round(als_fit, 2), "item_item_fit_seconds": round(item_item_fit, 2),
        "als_page_ms": {"p50": ms(one, 50), "p99": ms(one, 99)},
        "served_page_ms": {"p50": ms(page, 50), "p99": ms(page, 99)},
        "batch_10k_seconds": round(batch, 3), "batch_customers_per_second": round(10_000 / batch),
    }))


if __name__ == "__main__":
    main()
