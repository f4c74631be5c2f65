"""The recommenders: three baselines (global popularity, recency-weighted popularity, the favourite-category
rule the policy used) and two learned ones from `implicit` (ALS and item-item cosine). Each returns the top-k
column positions (products) per customer row; customers without history get the recency-weighted list."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from implicit.als import AlternatingLeastSquares
from implicit.nearest_neighbours import CosineRecommender
from threadpoolctl import threadpool_limits

from atelier.recommend.interactions import Interactions


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Columns of the k highest scores per row, best first; ties go to the lower column (reproducible)."""
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")
    return order[:, :k]


def ranked(popularity: np.ndarray, k: int) -> np.ndarray:
    """The k most popular columns, ties broken by position."""
    return top_k(np.asarray(popularity, dtype=float)[None, :], k)[0]


def non_personal(popularity: np.ndarray, n_rows: int, k: int) -> np.ndarray:
    """The same k columns for every row."""
    return np.tile(ranked(popularity, k), (n_rows, 1))


def with_cold_start(lists: np.ndarray, has_history: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Rows without history get the fallback list."""
    return np.where(np.asarray(has_history)[:, None], lists, fallback[None, : lists.shape[1]])


def category_rule(data: Interactions, category: np.ndarray, k: int) -> np.ndarray:
    """The policy's rule: the most viewed products of the customer's favourite category, with a third of the
    page from the runner-up when they viewed one (as `atelier.replay.policy.Assortment.recommend`)."""
    names = np.unique(category)
    column_of = {c: i for i, c in enumerate(names)}
    member = sp.csr_matrix((np.ones(len(category)), (np.arange(len(category)), [column_of[c] for c in category])),
                           shape=(len(category), len(names)))
    shares = np.asarray((data.weighted > 0).astype(float) @ member.toarray())
    order = np.argsort(-shares, axis=1, kind="stable")
    popular = ranked(data.views, len(category))
    by_category = [popular[category[popular] == c] for c in names]
    fallback = ranked(data.views, k)
    lists = np.empty((len(shares), min(k, len(category))), dtype=np.int64)
    pages: dict[tuple[int, int], np.ndarray] = {}
    for row in range(len(shares)):
        first, second = order[row, 0], order[row, min(1, len(names) - 1)]
        if shares[row, first] == 0:
            lists[row] = fallback
            continue
        second = second if len(names) > 1 and shares[row, second] > 0 else -1
        if (first, second) not in pages:
            from_second = k // 3 if second >= 0 else 0
            page = np.concatenate([by_category[first][: k - from_second],
                                   by_category[second][:from_second] if second >= 0 else fallback[:0]])
            pages[first, second] = np.concatenate([page, fallback[~np.isin(fallback, page)]])[: lists.shape[1]]
        lists[row] = pages[first, second]
    return lists


@dataclass(frozen=True)
class AlsSettings:
    """One point of the ALS grid."""

    factors: int
    regularization: float
    alpha: float
    iterations: int


def fit_als(data: Interactions, settings: AlsSettings, seed: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """ALS on confidence = alpha x the weighted matrix (Hu, Koren & Volinsky); returns (user, item) factors."""
    model = AlternatingLeastSquares(factors=settings.factors, regularization=settings.regularization,
                                    alpha=settings.alpha, iterations=settings.iterations, num_threads=threads,
                                    random_state=seed, calculate_training_loss=False)
    with threadpool_limits(limits=1, user_api="blas"):  # implicit's own threads do the work; BLAS threads only race
        model.fit(data.weighted.astype(np.float32).tocsr(), show_progress=False)
    return np.asarray(model.user_factors), np.asarray(model.item_factors)


def als_lists(user_factors: np.ndarray, item_factors: np.ndarray, k: int) -> np.ndarray:
    """Top-k columns by the factor dot product."""
    return top_k(user_factors @ item_factors.T, k)


def fit_item_item(data: Interactions, neighbours: int, threads: int) -> sp.csr_matrix:
    """Item-item cosine similarities (each product's `neighbours` nearest), as a sparse product x product matrix."""
    model = CosineRecommender(K=neighbours, num_threads=threads)
    with warnings.catch_warnings():  # implicit converts its own transposed copy internally and warns about it
        warnings.filterwarnings("ignore", message="Method expects CSR input")
        model.fit(data.weighted.astype(np.float32).tocsr(), show_progress=False)
    return sp.csr_matrix(model.similarity, dtype=np.float64)


def item_item_lists(history: sp.csr_matrix, similarity: sp.csr_matrix, k: int) -> np.ndarray:
    """Top-k columns by history x similarity."""
    return top_k(np.asarray((history @ similarity).todense()), k)
