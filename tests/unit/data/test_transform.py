"""Tests for atelier.data.transform: imputation and scaling, the transformer fitted on the training snapshots only,
its settings, skops persistence, and the facts the report states about imputation."""

from __future__ import annotations

import json
import warnings
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.impute import KNNImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from atelier.core.config import ParamsError
from atelier.core.persist import load_skops, save_skops
from atelier.data import transform
from atelier.data.features import HEAVY_TAILED, FeatureSettings
from atelier.data.snapshots import build_snapshots, training_rows
from atelier.data.transform import ImputerSettings

SETTINGS = FeatureSettings()
CUTOFFS = [pd.Timestamp("2025-04-01"), pd.Timestamp("2025-05-01")]  # the tiny shop's data ends 2025-06-30
HORIZON = 30
IMPUTE = ImputerSettings("iterative", knn_neighbors=5, knn_fit_rows=500, iterative_max_iter=3, seed=0)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # IterativeImputer convergence notes
        yield


@pytest.fixture(scope="module")
def snapshots(tiny_tables) -> pd.DataFrame:
    return build_snapshots(tiny_tables, CUTOFFS, HORIZON, SETTINGS)


@pytest.fixture(scope="module")
def fitted(snapshots):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return transform.fit_on_training(snapshots, CUTOFFS, replace(IMPUTE, imputer="iterative"))


def _train(snapshots: pd.DataFrame) -> pd.DataFrame:
    return snapshots[(snapshots["cutoff"] < CUTOFFS[-1]).to_numpy()]


# --------------------------------------------------------------------------------------------
# 6. What the transformer produces
# --------------------------------------------------------------------------------------------
def test_split_columns(snapshots):
    numeric, categorical = transform.split_columns(snapshots)
    assert categorical == ["age_band", "gender", "region"]
    assert "cutoff" not in numeric and "label" not in numeric
    assert numeric[:3] == ["recency_days", "frequency", "monetary"]


@pytest.mark.parametrize("imputer", ["iterative", "knn"])
def test_transformed_is_finite_with_indicators_and_one_hot(snapshots, imputer):
    transformer = transform.fit_on_training(snapshots, CUTOFFS, replace(IMPUTE, imputer=imputer))
    prepared = transform.transform(transformer, snapshots)
    assert len(prepared) == len(snapshots)
    assert prepared.index.equals(snapshots.index)
    values = prepared.to_numpy(dtype=float)
    assert np.isfinite(values).all()
    numeric, _ = transform.split_columns(snapshots)
    train = _train(snapshots)
    with_gaps = [c for c in numeric if train[c].isna().any()]
    assert {"avg_order_value", "days_since_last_purchase", "cart_abandonment_rate"} <= set(with_gaps)
    indicators = sorted(
        c.removeprefix("missingindicator_") for c in prepared.columns if c.startswith("missingindicator_")
    )
    assert indicators == sorted(with_gaps)
    for column in with_gaps:
        # indicators are scaled with the rest: two values, the higher one exactly where the raw value is empty
        indicator = prepared[f"missingindicator_{column}"].to_numpy(dtype=float)
        assert len(np.unique(indicator)) == 2
        np.testing.assert_array_equal(indicator == indicator.max(), snapshots[column].isna().to_numpy())
    for column in numeric:
        assert column in prepared
    # one column per value seen in training, exactly one of them set per row (no missing demographics here)
    for column in ("age_band", "gender", "region"):
        levels = sorted(train[column].dropna().unique())
        one_hot = [f"{column}_{level}" for level in levels]
        assert [c for c in prepared.columns if c.startswith(f"{column}_")] == one_hot
        np.testing.assert_array_equal(
            prepared[one_hot].to_numpy(), pd.get_dummies(snapshots[column])[levels].to_numpy()
        )
    assert "age_band" not in prepared and "cutoff" not in prepared and "label" not in prepared


def test_heavy_tails_are_logged_then_standardized(snapshots, fitted):
    prepared = transform.transform(fitted, snapshots)
    train = _train(snapshots)
    for column, logged in (("frequency", True), ("engagement_score", True), ("tenure_days", False)):
        assert train[column].notna().all()  # observed everywhere: the imputer leaves it alone
        assert (column in HEAVY_TAILED) == logged
        raw = np.log1p(train[column]) if logged else train[column]
        mean, std = raw.mean(), raw.std(ddof=0)
        x = np.log1p(snapshots[column]) if logged else snapshots[column]
        np.testing.assert_allclose(prepared[column].to_numpy(), ((x - mean) / std).to_numpy(), rtol=1e-9, atol=1e-9)
    train_prepared = prepared[(snapshots["cutoff"] < CUTOFFS[-1]).to_numpy()]
    np.testing.assert_allclose(train_prepared[["frequency", "tenure_days"]].mean(), 0, atol=1e-9)


def test_unknown_category_and_new_gaps_at_transform_time(snapshots, fitted):
    rows = snapshots.iloc[:4].copy()
    rows["age_band"] = pd.array(["99+", None, "25-34", "25-34"], dtype="string")
    rows["frequency"] = [np.nan, 1.0, 2.0, 3.0]  # no gaps in training: no indicator for it
    rows["tenure_days"] = np.nan
    prepared = transform.transform(fitted, rows)
    assert np.isfinite(prepared.to_numpy(dtype=float)).all()
    assert list(prepared.columns) == list(transform.transform(fitted, snapshots).columns)
    age = [c for c in prepared.columns if c.startswith("age_band_")]
    assert prepared[age].iloc[0].sum() == 0  # unknown level: all zeros
    assert prepared[age].iloc[1].sum() == 0  # missing level unseen in training: all zeros
    assert prepared["age_band_25-34"].iloc[2] == 1


def test_all_empty_training_column_is_kept_and_filled(snapshots):
    frame = snapshots.assign(share_tablet=np.nan)
    transformer = transform.fit_on_training(frame, CUTOFFS, replace(IMPUTE, imputer="iterative"))
    prepared = transform.transform(transformer, frame)
    assert np.isfinite(prepared.to_numpy(dtype=float)).all()
    assert "share_tablet" in prepared and "missingindicator_share_tablet" in prepared
    assert prepared["share_tablet"].nunique() == 1 and prepared["missingindicator_share_tablet"].nunique() == 1


def _two_related_columns(rows: int = 400) -> pd.DataFrame:
    """Monetary is about 40 x frequency, with a fifth of each empty: iterative imputation settles in a few rounds."""
    rng = np.random.default_rng(3)
    frequency = rng.gamma(2.0, 2.0, size=rows)
    frame = pd.DataFrame(
        {
            "frequency": frequency,
            "monetary": 40 * frequency * rng.lognormal(0, 0.1, size=rows),
            "tenure_days": rng.integers(1, 900, size=rows),
        }
    )  # complete and integer, as in snapshots
    frame.loc[rng.random(rows) < 0.2, "frequency"] = np.nan
    frame.loc[rng.random(rows) < 0.2, "monetary"] = np.nan
    return frame


def _fit_iterative(frame: pd.DataFrame, max_iter: int):
    from sklearn.exceptions import ConvergenceWarning

    unfitted = transform.build_transformer(list(frame.columns), [], imputer="iterative", iterative_max_iter=max_iter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = transform.fit_transformer(unfitted, frame)
    return fitted, any(issubclass(w.category, ConvergenceWarning) for w in caught)


def test_imputer_convergence_reports_rounds_against_the_cap():
    frame = _two_related_columns()
    roomy, warned = _fit_iterative(frame, 100)
    converged = transform.imputer_convergence(roomy)
    rounds = converged["rounds"]
    assert converged == {"rounds": rounds, "max_iter": 100, "converged": True, "tol": 1e-3} and 1 < rounds < 100
    assert not warned  # scikit-learn agrees: stopped early
    cut, warned = _fit_iterative(frame, rounds - 1)
    assert transform.imputer_convergence(cut) == {
        "rounds": rounds - 1,
        "max_iter": rounds - 1,
        "converged": False,
        "tol": 1e-3,
    }
    assert warned  # scikit-learn agrees: "Early stopping criterion not reached"


def test_imputer_convergence_is_none_for_one_pass_imputers(snapshots):
    for one_pass in ("knn", "median"):
        assert (
            transform.imputer_convergence(
                transform.fit_on_training(snapshots, CUTOFFS, replace(IMPUTE, imputer=one_pass))
            )
            is None
        )


def test_unknown_imputer_names_the_parameter(snapshots):
    with pytest.raises(ValueError, match=r"params\.yaml prep\.imputer.*'mean'"):
        transform.build_transformer(["frequency"], [], imputer="mean")
    with pytest.raises(ValueError, match=r"params\.yaml prep\.imputer"):
        transform.fit_on_training(snapshots, CUTOFFS, replace(IMPUTE, imputer="simple"))


# --------------------------------------------------------------------------------------------
# 7. Fitted on the training cutoffs only
# --------------------------------------------------------------------------------------------
def _perturb(snapshots: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    changed = snapshots.copy()
    numeric, categorical = transform.split_columns(snapshots)
    positions = np.flatnonzero(rows)
    for column in numeric:
        values = changed[column].to_numpy(dtype=float, copy=True)
        values[positions] = values[positions] * 7 + 100  # NaN stays NaN
        changed[column] = values
    for column in categorical:
        values = changed[column].astype(object).to_numpy(copy=True)
        values[positions] = "zzz"
        changed[column] = pd.array(values, dtype="string")
    return changed


@pytest.mark.parametrize("imputer", ["iterative", "knn"])
def test_transformer_ignores_the_test_snapshot(snapshots, imputer):
    test_rows = (snapshots["cutoff"] == CUTOFFS[-1]).to_numpy()
    train_rows = ~test_rows
    assert test_rows.sum() > 0 and train_rows.sum() > 0
    base = transform.fit_on_training(snapshots, CUTOFFS, replace(IMPUTE, imputer=imputer))
    changed_test = _perturb(snapshots, test_rows)
    refit = transform.fit_on_training(changed_test, CUTOFFS, replace(IMPUTE, imputer=imputer))
    pd.testing.assert_frame_equal(
        transform.transform(refit, snapshots[train_rows]),
        transform.transform(base, snapshots[train_rows]),
        check_exact=True,
    )
    # the check can fail: perturbing training rows does change the fit
    changed_train = _perturb(snapshots, train_rows)
    other = transform.fit_on_training(changed_train, CUTOFFS, replace(IMPUTE, imputer=imputer))
    assert not transform.transform(other, snapshots[train_rows]).equals(
        transform.transform(base, snapshots[train_rows])
    )


def test_training_rows(snapshots):
    rows = training_rows(snapshots, CUTOFFS)
    assert rows.sum() == (snapshots["cutoff"] == CUTOFFS[0]).sum()
    assert not rows[(snapshots["cutoff"] == CUTOFFS[-1]).to_numpy()].any()


# --------------------------------------------------------------------------------------------
# 8. Saving and loading with skops
# --------------------------------------------------------------------------------------------
def test_skops_round_trip(snapshots, fitted, tmp_path):
    path = save_skops(fitted, tmp_path / "nested" / "transformer.skops")
    assert path.is_file() and zipfile.is_zipfile(path)
    loaded = load_skops(path)
    assert isinstance(loaded, Pipeline)
    pd.testing.assert_frame_equal(
        transform.transform(loaded, snapshots), transform.transform(fitted, snapshots), check_exact=True
    )


def custom_shift(x):
    """A module-level function: not a scikit-learn or numpy type."""
    return x + 1


def test_load_refuses_untrusted_types(tmp_path):
    pipeline = Pipeline([("shift", FunctionTransformer(custom_shift))]).fit(np.ones((3, 2)))
    path = tmp_path / "untrusted.skops"
    sio.dump(pipeline, path)
    untrusted = [t for t in sio.get_untrusted_types(file=path) if t.endswith("custom_shift")]
    assert len(untrusted) == 1
    with pytest.raises(ValueError, match="does not trust") as error:
        load_skops(path)
    assert untrusted[0] in str(error.value) and "dvc repro" in str(error.value)


def _inject(source: Path, target: Path, payload: dict) -> None:
    """Copy a skops file, putting `payload` (a schema node) in place of the Pipeline's `memory` attribute."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "schema.json":
                schema = json.loads(data)
                schema["content"]["content"]["memory"] = payload
                data = json.dumps(schema).encode()
            zout.writestr(name, data)


def test_load_refuses_builtin_callables_that_run_code(fitted, tmp_path):
    source = save_skops(fitted, tmp_path / "good.skops")
    marker = tmp_path / "code_ran"
    code = f"open({str(marker)!r}, 'w').write('x')"
    payload = {
        "__class__": "exec",
        "__module__": "builtins",
        "__loader__": "ConstructorFromReduceNode",
        "content": {
            "__class__": "tuple",
            "__module__": "builtins",
            "__loader__": "TupleNode",
            "content": [
                {
                    "__class__": "str",
                    "__module__": "builtins",
                    "__loader__": "JsonNode",
                    "content": json.dumps(code),
                    "is_json": True,
                }
            ],
        },
    }
    evil = tmp_path / "evil.skops"
    _inject(source, evil, payload)
    assert "builtins.exec" in sio.get_untrusted_types(file=evil)
    try:
        with pytest.raises(ValueError, match="does not trust"):
            load_skops(evil)
    finally:
        assert not marker.exists(), "loading the transformer executed code from the file"


# --------------------------------------------------------------------------------------------
# 9. KNN imputation on a capped sample
# --------------------------------------------------------------------------------------------
def _record_knn_fits(monkeypatch) -> list[int]:
    fitted_rows: list[int] = []
    original = KNNImputer.fit

    def fit(self, X, y=None):
        fitted_rows.append(len(X))
        return original(self, X, y)

    monkeypatch.setattr(KNNImputer, "fit", fit)
    return fitted_rows


def _knn(transformer: Pipeline) -> KNNImputer:
    return transformer.named_steps["columns"].named_transformers_["numeric"].named_steps["impute"]


def test_knn_fit_rows_caps_the_training_sample(snapshots, monkeypatch):
    fitted_rows = _record_knn_fits(monkeypatch)
    n_train = int(training_rows(snapshots, CUTOFFS).sum())
    assert n_train > 100
    capped = transform.fit_on_training(
        snapshots, CUTOFFS, replace(IMPUTE, imputer="knn", knn_fit_rows=100, knn_neighbors=3)
    )
    assert fitted_rows == [100]
    assert isinstance(_knn(capped), KNNImputer) and _knn(capped).n_neighbors == 3
    uncapped = transform.fit_on_training(snapshots, CUTOFFS, replace(IMPUTE, imputer="knn", knn_fit_rows=10_000))
    assert fitted_rows == [100, n_train]
    for transformer in (capped, uncapped):
        assert np.isfinite(transform.transform(transformer, snapshots).to_numpy(dtype=float)).all()
    # the sample is seeded: same seed, same fit
    again = transform.fit_on_training(
        snapshots, CUTOFFS, replace(IMPUTE, imputer="knn", knn_fit_rows=100, knn_neighbors=3)
    )
    pd.testing.assert_frame_equal(transform.transform(again, snapshots), transform.transform(capped, snapshots))


def test_knn_sample_comes_from_training_rows_only(snapshots):
    test_rows = (snapshots["cutoff"] == CUTOFFS[-1]).to_numpy()
    marked = snapshots.copy()
    marked.loc[test_rows, "tenure_days"] = -1.0  # impossible in real data
    transformer = transform.fit_on_training(marked, CUTOFFS, replace(IMPUTE, imputer="knn", knn_fit_rows=200))
    fitted_x = _knn(transformer)._fit_X
    names = list(
        transformer.named_steps["columns"]
        .named_transformers_["numeric"]
        .named_steps["log_heavy"]
        .get_feature_names_out()
    )
    assert fitted_x.shape[0] == 200
    assert (fitted_x[:, names.index("tenure_days")] >= 0).all()


def test_saved_transformer_is_byte_for_byte_repeatable(fitted, tmp_path):
    import time

    first = save_skops(fitted, tmp_path / "first.skops")
    reloaded = load_skops(first)  # new objects, new id()s: what another process would hold
    time.sleep(2.1)  # zip timestamps have 2-second resolution: a clock-dependent file would differ
    second = save_skops(reloaded, tmp_path / "second.skops")
    assert first.read_bytes() == second.read_bytes()


def test_imputer_settings_from_params():
    section = {"imputer": "knn", "knn_neighbors": 7, "knn_fit_rows": 300, "iterative_max_iter": 4, "half_life_days": 14}
    assert ImputerSettings.from_params(section, seed=9) == ImputerSettings("knn", 7, 300, 4, 9)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"imputer": "mean"}, "prep.imputer: 'mean'"),
        ({"knn_neighbors": 0}, "prep.knn_neighbors must be a whole number >= 1"),
        ({"knn_fit_rows": 2.5}, "prep.knn_fit_rows"),
        ({"iterative_max_iter": True}, "prep.iterative_max_iter"),
    ],
)
def test_imputer_settings_name_the_bad_key(change, fragment):
    section = {"imputer": "iterative", "knn_neighbors": 5, "knn_fit_rows": 500, "iterative_max_iter": 3} | change
    with pytest.raises(ParamsError, match="params.yaml") as caught:
        ImputerSettings.from_params(section, seed=0)
    assert fragment in str(caught.value)
    with pytest.raises(ParamsError, match=r"missing \['iterative_max_iter'\]"):
        ImputerSettings.from_params({"imputer": "knn", "knn_neighbors": 5, "knn_fit_rows": 5}, seed=0)


def test_convergence_verdict_covers_every_ending():
    assert transform.convergence_verdict(None) == "one pass"
    assert transform.convergence_verdict({"rounds": 4, "max_iter": 20, "converged": True, "tol": 1e-3}) == "converged"
    assert transform.convergence_verdict({"rounds": 20, "max_iter": 20, "converged": False, "tol": 1e-3}) == (
        "stopped at cap"
    )


def _filled(values_raw, values_prepared) -> dict:
    raw = pd.DataFrame({"x": values_raw})
    prepared = pd.DataFrame({"x": values_prepared})
    return transform.imputed_versus_observed(raw, prepared, "x")


def test_imputed_versus_observed_places_the_filled_values():
    observed = [1.0, 2.0, 3.0, 4.0]
    below = _filled([np.nan, np.nan, *observed], [-5.0, -4.0, *observed])
    assert below["position"] == "below" and below["share_missing"] == pytest.approx(1 / 3)
    assert below["filled_median"] == -4.5 and below["observed_median"] == 2.5
    assert _filled([np.nan, *observed], [2.5, *observed])["position"] == "within"
    assert _filled([np.nan, *observed], [9.0, *observed])["position"] == "above"
    assert _filled(observed, observed) == {"column": "x", "share_missing": 0.0, "position": "none"}  # no gap
    assert _filled([np.nan, np.nan], [0.0, 0.0])["position"] == "none"  # nothing observed
    assert (
        transform.imputed_versus_observed(pd.DataFrame({"y": [1.0]}), pd.DataFrame({"y": [1.0]}), "x")["position"]
        == "none"
    )  # absent


def test_the_tiny_shop_fills_no_order_with_small_average_order_values(snapshots, fitted):
    """The data, not only the code: no orders goes with little spend, and the imputer learns it."""
    fact = transform.imputed_versus_observed(snapshots, transform.transform(fitted, snapshots), "avg_order_value")
    assert fact["share_missing"] > 0.5 and fact["position"] == "below"
