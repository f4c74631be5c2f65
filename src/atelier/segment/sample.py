"""Seeded row samples: the density methods and t-SNE run on a fixed subset of customers."""

from __future__ import annotations

import numpy as np


def seeded_sample(n_rows: int, size: int, seed: int) -> np.ndarray:
    """Sorted positions of a seeded sample of `size` rows (all rows if there are fewer)."""
    if size >= n_rows:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=size, replace=False))
