"""Seeded samples of rows."""

from __future__ import annotations

import numpy as np

from atelier.segment.sample import seeded_sample


def test_seeded_sample():
    rows = seeded_sample(1000, 50, seed=9)
    assert len(rows) == 50 == len(np.unique(rows)) and (np.diff(rows) > 0).all()
    assert rows.min() >= 0 and rows.max() < 1000
    np.testing.assert_array_equal(rows, seeded_sample(1000, 50, seed=9))
    assert not np.array_equal(rows, seeded_sample(1000, 50, seed=10))
    np.testing.assert_array_equal(seeded_sample(30, 50, seed=9), np.arange(30))
    np.testing.assert_array_equal(seeded_sample(30, 30, seed=9), np.arange(30))
