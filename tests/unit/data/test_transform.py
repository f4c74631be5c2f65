"""Tests for atelier.transform (imputation, scaling, skops persistence) and atelier.prep (snapshots over
cutoffs, the training-only transformer, the stage's outputs)."""

from __future__ import annotations

import datetime
import json
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.impute import KNNImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from atelier.core import paths
from atelier.core.config import ParamsError
from atelier.core.io import read_json, read_parquet
from atelier.core.persist import load_skops, save_skops
from atelier.data import explore, prep, transform
from atelier.data.features import HEAVY_TAILED, FeatureSettings, purchase_label, sessions_table

SETTINGS = FeatureSettings()
CUTOFFS = [pd.Timestamp("2025-04-01"), pd.Timestamp("2025-05-01")]  # the tiny shop's data ends 2025-06-30
HORIZON = 30
FIT = dict(knn_neighbors=5, knn_fit_rows=500, iterative_max_iter=3, seed=0)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # IterativeImputer convergence notes
        yield


@pytest.fixture(scope="module")
def snapshots(tiny_tables) -> pd.DataFrame:
    return prep.build_snapshots(tiny_tables, CUTOFFS, HORIZON, SETTINGS)


@pytest.fixture(scope="module")
def fitted(snapshots):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prep.fit_transformer(snapshots, CUTOFFS, imputer="iterative", **FIT)


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
    transformer = prep.fit_transformer(snapshots, CUTOFFS, imputer=imputer, **FIT)
    prepared = transform.transform(transformer, snapshots)
    assert len(prepared) == len(snapshots)
    assert prepared.index.equals(snapshots.index)
    values = prepared.to_numpy(dtype=float)
    assert np.isfinite(values).all()
    numeric, _ = transform.split_columns(snapshots)
    train = _train(snapshots)
    with_gaps = [c for c in numeric if train[c].isna().any()]
    assert {"avg_order_value", "days_since_last_purchase", "cart_abandonment_rate"} <= set(with_gaps)
    indicators = sorted(c.removeprefix("missingindicator_") for c in prepared.columns if c.startswith("missingindicator_"))
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
        np.testing.assert_array_equal(prepared[one_hot].to_numpy(), pd.get_dummies(snapshots[column])[levels].to_numpy())
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
    transformer = prep.fit_transformer(frame, CUTOFFS, imputer="iterative", **FIT)
    prepared = transform.transform(transformer, frame)
    assert np.isfinite(prepared.to_numpy(dtype=float)).all()
    assert "share_tablet" in prepared and "missingindicator_share_tablet" in prepared
    assert prepared["share_tablet"].nunique() == 1 and prepared["missingindicator_share_tablet"].nunique() == 1


def _two_related_columns(rows: int = 400) -> pd.DataFrame:
    """Monetary is about 40 x frequency, with a fifth of each empty: iterative imputation settles in a few rounds."""
    rng = np.random.default_rng(3)
    frequency = rng.gamma(2.0, 2.0, size=rows)
    frame = pd.DataFrame({"frequency": frequency, "monetary": 40 * frequency * rng.lognormal(0, 0.1, size=rows),
                          "tenure_days": rng.integers(1, 900, size=rows)})  # complete and integer, as in snapshots
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
    assert transform.imputer_convergence(cut) == {"rounds": rounds - 1, "max_iter": rounds - 1, "converged": False, "tol": 1e-3}
    assert warned  # scikit-learn agrees: "Early stopping criterion not reached"


def test_imputer_convergence_is_none_for_one_pass_imputers(snapshots):
    for one_pass in ("knn", "median"):
        assert transform.imputer_convergence(prep.fit_transformer(snapshots, CUTOFFS, imputer=one_pass, **FIT)) is None


def test_unknown_imputer_names_the_parameter(snapshots):
    with pytest.raises(ValueError, match=r"params\.yaml prep\.imputer.*'mean'"):
        transform.build_transformer(["frequency"], [], imputer="mean")
    with pytest.raises(ValueError, match=r"params\.yaml prep\.imputer"):
        prep.fit_transformer(snapshots, CUTOFFS, imputer="simple", **FIT)


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
    base = prep.fit_transformer(snapshots, CUTOFFS, imputer=imputer, **FIT)
    changed_test = _perturb(snapshots, test_rows)
    refit = prep.fit_transformer(changed_test, CUTOFFS, imputer=imputer, **FIT)
    pd.testing.assert_frame_equal(transform.transform(refit, snapshots[train_rows]),
                                  transform.transform(base, snapshots[train_rows]), check_exact=True)
    # the check can fail: perturbing training rows does change the fit
    changed_train = _perturb(snapshots, train_rows)
    other = prep.fit_transformer(changed_train, CUTOFFS, imputer=imputer, **FIT)
    assert not transform.transform(other, snapshots[train_rows]).equals(transform.transform(base, snapshots[train_rows]))


def test_training_rows(snapshots):
    rows = prep.training_rows(snapshots, CUTOFFS)
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
    pd.testing.assert_frame_equal(transform.transform(loaded, snapshots), transform.transform(fitted, snapshots),
                                  check_exact=True)


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
        "__class__": "exec", "__module__": "builtins", "__loader__": "ConstructorFromReduceNode",
        "content": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
                    "content": [{"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode",
                                 "content": json.dumps(code), "is_json": True}]},
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
    n_train = int(prep.training_rows(snapshots, CUTOFFS).sum())
    assert n_train > 100
    capped = prep.fit_transformer(snapshots, CUTOFFS, imputer="knn", **{**FIT, "knn_fit_rows": 100, "knn_neighbors": 3})
    assert fitted_rows == [100]
    assert isinstance(_knn(capped), KNNImputer) and _knn(capped).n_neighbors == 3
    uncapped = prep.fit_transformer(snapshots, CUTOFFS, imputer="knn", **{**FIT, "knn_fit_rows": 10_000})
    assert fitted_rows == [100, n_train]
    for transformer in (capped, uncapped):
        assert np.isfinite(transform.transform(transformer, snapshots).to_numpy(dtype=float)).all()
    # the sample is seeded: same seed, same fit
    again = prep.fit_transformer(snapshots, CUTOFFS, imputer="knn", **{**FIT, "knn_fit_rows": 100, "knn_neighbors": 3})
    pd.testing.assert_frame_equal(transform.transform(again, snapshots), transform.transform(capped, snapshots))


def test_knn_sample_comes_from_training_rows_only(snapshots):
    test_rows = (snapshots["cutoff"] == CUTOFFS[-1]).to_numpy()
    marked = snapshots.copy()
    marked.loc[test_rows, "tenure_days"] = -1.0  # impossible in real data
    transformer = prep.fit_transformer(marked, CUTOFFS, imputer="knn", **{**FIT, "knn_fit_rows": 200})
    fitted_x = _knn(transformer)._fit_X
    names = list(transformer.named_steps["columns"].named_transformers_["numeric"].named_steps["log_heavy"]
                 .get_feature_names_out())
    assert fitted_x.shape[0] == 200
    assert (fitted_x[:, names.index("tenure_days")] >= 0).all()


# --------------------------------------------------------------------------------------------
# 10. Cutoffs, snapshots over cutoffs, and the stage's outputs
# --------------------------------------------------------------------------------------------
def test_parse_cutoffs_sorts_and_dedups():
    parsed = prep.parse_cutoffs(["2025-05-01", "2025-04-01", "2025-05-01", datetime.date(2025, 4, 1)])
    assert parsed == [pd.Timestamp("2025-04-01"), pd.Timestamp("2025-05-01")]
    assert all(isinstance(c, pd.Timestamp) for c in parsed)
    with pytest.raises(ParamsError, match="at least two"):
        prep.parse_cutoffs(["2025-04-01", "2025-04-01"])
    with pytest.raises(ParamsError, match="timeline.cutoffs"):
        prep.parse_cutoffs(["2025-04-01"])


def test_check_cutoffs(tiny_tables):
    orders = tiny_tables["orders"]["ordered_at"]
    first, last = orders.min(), orders.max()
    prep.check_cutoffs(tiny_tables, CUTOFFS)  # fine
    prep.check_cutoffs(tiny_tables, [first + pd.Timedelta(microseconds=1), pd.Timestamp("2030-01-01")])
    with pytest.raises(ParamsError) as error:
        prep.check_cutoffs(tiny_tables, [pd.Timestamp("2024-06-01"), *CUTOFFS])
    message = str(error.value)
    assert "2024-06-01" in message and "2025-04-01" not in message
    assert first.date().isoformat() in message and last.date().isoformat() in message
    with pytest.raises(ParamsError):
        prep.check_cutoffs(tiny_tables, [first, *CUTOFFS])  # an order at the cutoff is not before it


def test_build_snapshots_labels_and_censoring(tiny_tables):
    cutoffs = [*CUTOFFS, pd.Timestamp("2025-06-15")]  # 06-15 + 30 days runs past the data's end (06-30)
    snapshots = prep.build_snapshots(tiny_tables, cutoffs, HORIZON, SETTINGS)
    assert str(snapshots["label"].dtype) == "Int8"
    assert list(snapshots["cutoff"].unique()) == cutoffs
    for cutoff in CUTOFFS:
        part = snapshots[snapshots["cutoff"] == cutoff]
        buyers = purchase_label(tiny_tables["orders"], cutoff, HORIZON)
        expected = buyers.reindex(part.index, fill_value=0)
        assert part["label"].notna().all()
        np.testing.assert_array_equal(part["label"].to_numpy(dtype=int), expected.to_numpy(dtype=int))
    censored = snapshots[snapshots["cutoff"] == cutoffs[-1]]
    assert len(censored) > 0 and censored["label"].isna().all()

    summary = prep.cutoff_summary(snapshots)
    assert list(summary.index) == ["2025-04-01", "2025-05-01", "2025-06-15"]
    assert summary["label_complete"].tolist() == [True, True, False]
    assert summary["customers"].tolist() == [int((snapshots["cutoff"] == c).sum()) for c in cutoffs]
    for cutoff in CUTOFFS:
        part = snapshots[snapshots["cutoff"] == cutoff]
        key = cutoff.date().isoformat()
        assert summary.at[key, "buyers_in_window"] == int(part["label"].sum())
        assert summary.at[key, "label_rate"] == pytest.approx(part["label"].astype(float).mean())
    assert pd.isna(summary.at["2025-06-15", "label_rate"]) and pd.isna(summary.at["2025-06-15", "buyers_in_window"])


@pytest.fixture(scope="module")
def written(tiny_tables, tmp_path_factory):
    """write_outputs on the tiny shop with a third, censored cutoff (the test snapshot)."""
    cutoffs = [*CUTOFFS, pd.Timestamp("2025-06-15")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshots = prep.build_snapshots(tiny_tables, cutoffs, HORIZON, SETTINGS)
        transformer = prep.fit_transformer(snapshots, cutoffs, imputer="iterative", **FIT)
        prepared = transform.transform(transformer, snapshots)
    daily = explore.daily_activity(tiny_tables["orders"], sessions_table(tiny_tables["events"]))
    root = tmp_path_factory.mktemp("prep_outputs")
    metrics = prep.write_outputs(root, snapshots, prepared, transformer, tiny_tables, cutoffs, "iterative", daily)
    return {"root": root, "metrics": metrics, "snapshots": snapshots, "prepared": prepared, "cutoffs": cutoffs,
            "daily": daily}


def test_write_outputs_snapshots_and_prepared(written):
    root, snapshots, prepared = written["root"], written["snapshots"], written["prepared"]
    back = read_parquet(root / paths.FEATURES_DIR / "snapshots.parquet")
    pd.testing.assert_frame_equal(back, snapshots, check_exact=True)
    back_prepared = read_parquet(root / paths.FEATURES_DIR / "prepared.parquet")
    assert list(back_prepared.columns) == [*prepared.columns, "cutoff", "label"]
    pd.testing.assert_frame_equal(back_prepared[list(prepared.columns)], prepared, check_exact=True)
    np.testing.assert_array_equal(back_prepared["cutoff"].to_numpy(), snapshots["cutoff"].to_numpy())
    # label values survive (empty where censored)
    np.testing.assert_array_equal(back_prepared["label"].to_numpy(dtype=float, na_value=np.nan),
                                  snapshots["label"].to_numpy(dtype=float, na_value=np.nan))


def test_write_outputs_prepared_label_keeps_its_dtype(written):
    back_prepared = read_parquet(written["root"] / paths.FEATURES_DIR / "prepared.parquet")
    assert back_prepared["label"].dtype == written["snapshots"]["label"].dtype  # Int8, as in snapshots.parquet


def test_write_outputs_transformer_file(written):
    loaded = load_skops(written["root"] / paths.PREP_MODEL_DIR / "transformer.skops")
    pd.testing.assert_frame_equal(transform.transform(loaded, written["snapshots"]), written["prepared"],
                                  check_exact=True)


def test_write_outputs_feature_spec(written):
    spec = prep.load_spec(written["root"])
    numeric, categorical = transform.split_columns(written["snapshots"])
    assert spec["train_cutoffs"] == ["2025-04-01", "2025-05-01"]
    assert spec["test_cutoff"] == "2025-06-15"
    assert spec["numeric"] == numeric and spec["categorical"] == categorical
    assert spec["prepared_columns"] == list(written["prepared"].columns)
    assert spec["imputer"] == "iterative"
    assert spec["skipped"] == {} and all(spec["groups"].values())


def test_write_outputs_metrics(written):
    root, snapshots, metrics = written["root"], written["snapshots"], written["metrics"]
    on_disk = read_json(root / paths.PREP_METRICS)
    assert set(on_disk["cutoffs"]) == {"2025-04-01", "2025-05-01", "2025-06-15"}
    for cutoff in written["cutoffs"]:
        entry = on_disk["cutoffs"][cutoff.date().isoformat()]
        labels = snapshots.loc[(snapshots["cutoff"] == cutoff).to_numpy(), "label"]
        assert entry["customers"] == len(labels)
        if labels.notna().all():
            assert entry["label_complete"] is True
            assert entry["label_rate"] == pytest.approx(float(labels.astype(float).mean()), abs=1e-6)
            assert entry["buyers_in_window"] == int(labels.sum())
        else:
            assert entry["label_complete"] is False
            assert entry["label_rate"] is None and entry["buyers_in_window"] is None
    numeric, categorical = transform.split_columns(snapshots)
    assert on_disk["features"] == {"numeric": len(numeric), "categorical": len(categorical),
                                   "prepared": written["prepared"].shape[1]}
    assert on_disk["prepared_all_finite"] is True and on_disk["skipped_groups"] == []
    # FIT caps the iterative imputer at 3 rounds: too few on this data, and the metrics say so
    assert on_disk["imputer"] == {"name": "iterative", "rounds": 3, "max_iter": 3, "converged": False, "tol": 1e-3}
    gaps = snapshots[numeric].isna().mean()
    assert set(on_disk["missing_share"]) == set(gaps[gaps > 0].index)
    for column, share in on_disk["missing_share"].items():
        assert share == pytest.approx(gaps[column], abs=1e-6)
    assert json.loads(json.dumps(metrics, default=str))["features"] == on_disk["features"]


def test_write_outputs_daily_activity(written):
    daily = pd.read_csv(written["root"] / paths.PREP_PLOTS / "daily_activity.csv")
    assert list(daily.columns) == ["day", "orders", "revenue", "sessions"]
    assert len(daily) == len(written["daily"])
    assert daily["day"].iloc[0] == written["daily"].index[0].strftime("%Y-%m-%d")
    assert daily["orders"].sum() == written["daily"]["orders"].sum()


def test_write_outputs_orders_only_lists_skipped_groups(tiny_tables, tmp_path):
    tables = {"orders": tiny_tables["orders"]}
    snapshots = prep.build_snapshots(tables, CUTOFFS, HORIZON, SETTINGS)
    transformer = prep.fit_transformer(snapshots, CUTOFFS, imputer="iterative", **FIT)
    prepared = transform.transform(transformer, snapshots)
    metrics = prep.write_outputs(tmp_path, snapshots, prepared, transformer, tables, CUTOFFS, "iterative",
                                 explore.daily_activity(tables["orders"]))
    assert metrics["skipped_groups"] == ["categories", "demographics", "device", "dwell", "events"]
    spec = prep.load_spec(tmp_path)
    assert spec["categorical"] == [] and "events" in spec["skipped"]
    assert metrics["prepared_all_finite"] is True


def test_saved_transformer_is_byte_for_byte_repeatable(fitted, tmp_path):
    import time

    first = save_skops(fitted, tmp_path / "first.skops")
    reloaded = load_skops(first)  # new objects, new id()s: what another process would hold
    time.sleep(2.1)  # zip timestamps have 2-second resolution: a clock-dependent file would differ
    second = save_skops(reloaded, tmp_path / "second.skops")
    assert first.read_bytes() == second.read_bytes()


def test_transform_save_and_load_are_the_shared_persistence():
    from atelier.core import persist

    assert transform.save is persist.save_skops and transform.load is persist.load_skops
