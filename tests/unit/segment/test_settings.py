"""SegmentSettings: built from params.yaml's whole `segmentation` section, with errors that name the key and the fix."""

from __future__ import annotations

import pandas as pd
import pytest

from atelier.core.config import ParamsError
from atelier.segment.settings import SegmentSettings, available_features

from .segment_shop import SECTION


def test_settings_from_the_real_params_section():
    settings = SegmentSettings.from_params(SECTION, seed=42)
    assert settings.features == tuple(SECTION["features"])
    assert settings.log1p == tuple(SECTION["log1p"])
    assert (settings.k, settings.k_min, settings.k_max) == (SECTION["k"], *SECTION["k_range"])
    assert settings.seed == 42
    assert settings.dbscan_eps is None or isinstance(settings.dbscan_eps, float)
    assert set(settings.log1p) <= set(settings.features)


@pytest.mark.parametrize(
    "change",
    [{"k": 11, "k_range": [2, 10]}, {"k": 1, "k_range": [1, 10]}, {"k": 5, "k_range": [6, 10]},
     {"k": 5, "k_range": [2, 4]}],
    ids=["k-above-range", "k-below-two", "k-below-range", "range-below-k"],
)
def test_settings_reject_k_outside_range(change):
    with pytest.raises(ParamsError, match=r"params.yaml segmentation: need 2 <= k_range\[0\] <= k <= k_range\[1\]"):
        SegmentSettings.from_params({**SECTION, **change}, seed=0)


def test_settings_reject_log1p_feature_not_in_features():
    section = {**SECTION, "log1p": [*SECTION["log1p"], "shoe_size"]}
    with pytest.raises(ParamsError, match="params.yaml segmentation.log1p") as error:
        SegmentSettings.from_params(section, seed=0)
    assert "shoe_size" in str(error.value) and "add them to features" in str(error.value)


def test_settings_name_a_missing_key_and_the_fix():
    section = {key: value for key, value in SECTION.items() if key != "n_init"}
    with pytest.raises(ParamsError, match="params.yaml segmentation: missing key 'n_init'; restore it"):
        SegmentSettings.from_params(section, seed=0)


@pytest.mark.parametrize("change", [{"k": "five"}, {"k_range": [2]}, {"dbscan_eps": "auto"}, {"threads": None}])
def test_settings_reject_values_of_the_wrong_type(change):
    with pytest.raises(ParamsError, match="params.yaml segmentation: .*integers"):
        SegmentSettings.from_params({**SECTION, **change}, seed=0)


def test_settings_nullable_values():
    settings = SegmentSettings.from_params({**SECTION, "silhouette_sample": None, "dbscan_eps": 0.5}, seed=1)
    assert settings.silhouette_sample is None and settings.dbscan_eps == 0.5


def test_available_features_lists_present_and_missing_in_configured_order():
    settings = SegmentSettings.from_params(SECTION, seed=0)
    snapshot = pd.DataFrame(columns=["monetary", "customer_id", "recency_days", "frequency"])
    present, missing = available_features(snapshot, settings)
    assert present == [f for f in settings.features if f in {"monetary", "recency_days", "frequency"}]
    assert missing == [f for f in settings.features if f not in {"monetary", "recency_days", "frequency"}]
    assert "customer_id" not in present + missing


@pytest.mark.parametrize("columns", [[], ["frequency"], ["frequency", "customer_id", "not_a_feature"]])
def test_available_features_needs_two(columns):
    settings = SegmentSettings.from_params(SECTION, seed=0)
    with pytest.raises(ParamsError, match=r"params.yaml segmentation.features.*at least two"):
        available_features(pd.DataFrame(columns=columns), settings)
