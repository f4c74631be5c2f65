"""Fixtures shared by the model phase's tests: the tiny shop's out-of-time split and its feature columns."""

from __future__ import annotations

import pytest

from atelier.model.split import TimeSplit, features_of, split_by_time

from .model_shop import HORIZON, tiny_snapshots


@pytest.fixture(scope="module")
def split(tiny_tables) -> TimeSplit:
    return split_by_time(tiny_snapshots(tiny_tables), HORIZON)


@pytest.fixture(scope="module")
def columns(split) -> tuple[list[str], list[str]]:
    return features_of(split.train)
