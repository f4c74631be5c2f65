"""The candidates: settings from params.yaml, grouped cross-validation, the grid search and the overfitting flag,
fitting and scoring, calibration, and behavioural tests of the fitted models (direction, invariance, no label)."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pandas as pd
import pytest
from conftest import REPO
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV

from atelier.core.config import ParamsError, load_params
from atelier.data import transform
from atelier.model import candidates
from atelier.model.split import TimeSplit, features_of, split_by_time, xy

from .model_shop import HORIZON, SETTINGS, medium_snapshots, scores_of

pytestmark = pytest.mark.filterwarnings("ignore")  # convergence and feature-name notes from scikit-learn, xgboost


@pytest.fixture(scope="module")
def searched(split, columns):
    return candidates.grid_search(split.train, *columns, SETTINGS)


@pytest.fixture(scope="module")
def models(searched, split, columns) -> dict:
    """Every family's best setting, refitted on all training snapshots."""
    return candidates.fit_best(candidates.best_table(searched, SETTINGS), split.train, *columns, SETTINGS)


# --------------------------------------------------------------------------------------------
# Settings from params.yaml
# --------------------------------------------------------------------------------------------
def real_model_section() -> tuple[dict, int]:
    params = load_params(REPO / "params.yaml")
    return copy.deepcopy(params["model"]), params["seed"]


def test_settings_from_the_real_params():
    section, seed = real_model_section()
    settings = candidates.ModelSettings.from_params(section, seed)
    assert settings.seed == seed and settings.cv_folds == section["cv_folds"]
    assert settings.families == [f for f in candidates.FAMILIES if f in section["grids"]]
    assert settings.calibration == section["calibration"]
    assert settings.grids == section["grids"] and settings.overfit_gap_warning == section["overfit_gap_warning"]


def test_settings_reject_an_unknown_candidate():
    section, seed = real_model_section()
    section["grids"]["svm"] = {"C": [1.0]}
    with pytest.raises(ParamsError, match=r"params\.yaml model.*svm"):
        candidates.ModelSettings.from_params(section, seed)


def test_settings_reject_no_candidate_at_all():
    section, seed = real_model_section()
    section["grids"] = {}
    with pytest.raises(ParamsError, match=r"params\.yaml model\.grids: no candidate"):
        candidates.ModelSettings.from_params(section, seed)


def test_settings_reject_a_bad_calibration_method():
    section, seed = real_model_section()
    section["calibration"] = "platt"
    with pytest.raises(ParamsError, match=r"params\.yaml model.*platt"):
        candidates.ModelSettings.from_params(section, seed)


@pytest.mark.parametrize("key", ["cv_folds", "grids", "lime_top_k", "lime_background", "lime_stability_customers",
                                 "short_history_days"])
def test_settings_report_a_missing_key(key):
    section, seed = real_model_section()
    del section[key]
    with pytest.raises(ParamsError, match=rf"params\.yaml model.*{key}"):
        candidates.ModelSettings.from_params(section, seed)


@pytest.mark.parametrize(("key", "value"), [("cv_folds", 1), ("lime_seeds", 1), ("bootstrap", 0), ("threads", 2.5),
                                            ("lime_top_k", True)])
def test_settings_reject_counts_that_mean_nothing(key, value):
    section, seed = real_model_section()
    section[key] = value
    with pytest.raises(ParamsError, match=rf"params\.yaml model\.{key}: .* whole number >= "):
        candidates.ModelSettings.from_params(section, seed)
    section[key] = candidates.MINIMUM_COUNTS[key]  # the least allowed value is accepted
    assert getattr(candidates.ModelSettings.from_params(section, seed), key) == candidates.MINIMUM_COUNTS[key]


# --------------------------------------------------------------------------------------------
# Cross-validation grouped by customer, stratified by label
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("folds", [2, 4])
def test_cv_splits_keep_each_customer_in_one_fold_and_are_stratified(split, columns, folds):
    _, y, groups = xy(split.train, *columns)
    assert pd.Series(groups).duplicated().any()  # customers do repeat across snapshots: grouping matters
    splits = candidates.cv_splits(y, groups, dataclasses.replace(SETTINGS, cv_folds=folds))
    assert len(splits) == folds
    validation_rows = np.concatenate([val for _, val in splits])
    assert sorted(validation_rows.tolist()) == list(range(len(y)))  # every row validated exactly once
    overall = y.mean()
    for train_rows, val_rows in splits:
        assert not set(groups[train_rows]) & set(groups[val_rows])
        assert len(train_rows) + len(val_rows) == len(y)
        # Stratified: within what one customer's rows (at most one per training snapshot) can shift.
        assert abs(y[val_rows].mean() - overall) <= len(split.train_cutoffs) / len(val_rows)


def test_cv_splits_are_seeded(split, columns):
    _, y, groups = xy(split.train, *columns)
    first, again = candidates.cv_splits(y, groups, SETTINGS), candidates.cv_splits(y, groups, SETTINGS)
    assert all((a[1] == b[1]).all() for a, b in zip(first, again))
    other = candidates.cv_splits(y, groups, dataclasses.replace(SETTINGS, seed=SETTINGS.seed + 1))
    assert any(len(a[1]) != len(b[1]) or (a[1] != b[1]).any() for a, b in zip(first, other))


# --------------------------------------------------------------------------------------------
# Candidates and the grid search
# --------------------------------------------------------------------------------------------
def test_unknown_candidate_raises(columns):
    with pytest.raises(ParamsError, match="params.yaml model.grids"):
        candidates.candidate("svm", *columns, SETTINGS)


def test_tuned_sets_the_model_hyperparameters_and_model_params_reads_them_back(columns):
    pipeline = candidates.tuned("random_forest", {"n_estimators": 7, "max_depth": 3}, *columns, SETTINGS)
    model = pipeline.named_steps["model"]
    assert model.n_estimators == 7 and model.max_depth == 3 and model.random_state == SETTINGS.seed
    assert model.n_jobs == SETTINGS.threads
    params = candidates.model_params(pipeline)
    assert params["n_estimators"] == 7 and params["max_depth"] == 3 and "prepare" not in params
    assert candidates.model_params(candidates.tuned("random_forest", params, *columns, SETTINGS)) == params


def test_grid_search_table_covers_every_grid_point(searched):
    table = searched
    assert set(table["candidate"]) == set(SETTINGS.grids)
    for family, grid in SETTINGS.grids.items():
        assert (table["candidate"] == family).sum() == int(np.prod([len(v) for v in grid.values()]))
    assert np.allclose(table["gap"], table["train_auc"] - table["cv_auc"])
    assert table["cv_auc"].between(0, 1).all() and table["train_auc"].between(0, 1).all()


def test_grid_search_scores_on_the_grouped_folds(split, columns):
    """The CV AUC of a grid point equals the mean AUC over cv_splits' folds, refitting preprocessing in each."""
    numeric, categorical = columns
    settings = dataclasses.replace(SETTINGS, grids={"logistic_regression": {"C": [0.01, 1.0]}})
    table = candidates.grid_search(split.train, numeric, categorical, settings)
    assert set(table["candidate"]) == {"logistic_regression"} and len(table) == 2
    assert sorted(table["rank"]) == [1, 2]
    assert table.iloc[0]["cv_auc"] >= table.iloc[1]["cv_auc"]  # sorted by rank within the candidate
    X, y, groups = xy(split.train, numeric, categorical)
    for _, row in table.iterrows():
        pipeline = candidates.tuned("logistic_regression", row["params"], numeric, categorical, settings)
        aucs = []
        for train_rows, val_rows in candidates.cv_splits(y, groups, settings):
            fitted = candidates.fit(pipeline, split.train.iloc[train_rows], numeric, categorical)
            aucs.append(roc_auc_score(y[val_rows], fitted.predict_proba(X.iloc[val_rows])[:, 1]))
        assert row["cv_auc"] == pytest.approx(np.mean(aucs), abs=1e-9)


def test_best_table_flags_overfitting_exactly_above_the_threshold():
    settings = dataclasses.replace(SETTINGS, overfit_gap_warning=0.25)
    rows = [  # (candidate, cv_auc, train_auc, rank); dyadic numbers make the gaps exact in floating point
        ("logistic_regression", 0.5, 0.75, 1),     # gap 0.25 exactly: not above the threshold
        ("logistic_regression", 0.25, 0.9375, 2),  # worse rank: ignored even though it overfits
        ("random_forest", 0.625, 0.9375, 1),       # gap 0.3125: overfits
        ("xgboost", 0.75, 0.8125, 1),              # gap 0.0625
        ("xgboost", 0.5, 0.5, 2),
    ]
    table = pd.DataFrame(rows, columns=["candidate", "cv_auc", "train_auc", "rank"]).assign(
        params=[{"i": i} for i in range(len(rows))], cv_auc_sd=0.01, fit_seconds=0.1)
    table["gap"] = table["train_auc"] - table["cv_auc"]
    best = candidates.best_table(table, settings)
    assert list(best.index) == ["xgboost", "random_forest", "logistic_regression"]  # by CV AUC, best first
    assert best["overfitting"].to_dict() == {"xgboost": False, "random_forest": True, "logistic_regression": False}
    assert best.loc["logistic_regression", "params"] == {"i": 0} and best.loc["xgboost", "params"] == {"i": 3}
    assert list(best.columns) == ["params", "cv_auc", "cv_auc_sd", "train_auc", "gap", "overfitting"]
    # One step above the boundary flips the flag.
    looser = candidates.best_table(table, dataclasses.replace(settings, overfit_gap_warning=0.3125))
    assert not looser["overfitting"].any()
    stricter = candidates.best_table(table, dataclasses.replace(settings, overfit_gap_warning=0.0625 - 2**-10))
    assert stricter["overfitting"].all()


def test_best_table_on_a_real_grid_search_agrees_with_its_gaps(searched):
    table = searched
    best = candidates.best_table(table, SETTINGS)
    assert (best["overfitting"] == (best["train_auc"] - best["cv_auc"] > SETTINGS.overfit_gap_warning)).all()
    assert best["cv_auc"].is_monotonic_decreasing


def test_fit_best_refits_every_candidate_with_its_best_params(searched, models, split, columns):
    best = candidates.best_table(searched, SETTINGS)
    assert list(models) == list(best.index)
    for family, model in models.items():
        assert candidates.model_params(model).items() >= best.at[family, "params"].items()
        # The same setting fitted from scratch on the same rows: the same scores, bit for bit.
        again = candidates.fit(candidates.tuned(family, best.at[family, "params"], *columns, SETTINGS), split.train,
                               *columns)
        assert np.array_equal(scores_of(model, split.test, columns), scores_of(again, split.test, columns))


def test_fit_best_reuses_only_a_fit_with_the_same_params_and_columns(searched, models, split, columns):
    best = candidates.best_table(searched, SETTINGS)
    reused = candidates.fit_best(best, split.train, *columns, SETTINGS, reuse=models)
    assert all(reused[family] is models[family] for family in best.index)  # nothing fitted twice
    numeric, categorical = columns
    fewer = candidates.fit_best(best, split.train, numeric[1:], categorical, SETTINGS, reuse=models)
    assert not any(fewer[family] is models[family] for family in best.index)  # other columns: fitted anew
    assert all(list(fewer[f].feature_names_in_) == numeric[1:] + categorical for f in best.index)
    other = best.copy()
    other.at["xgboost", "params"] = {**other.at["xgboost", "params"], "max_depth": 7}
    refitted = candidates.fit_best(other, split.train, *columns, SETTINGS, reuse=models)
    assert refitted["xgboost"] is not models["xgboost"] and refitted["xgboost"][-1].max_depth == 7
    assert refitted["random_forest"] is models["random_forest"]


#: A grid with staged boosted trees (three n_estimators, the smaller ones read from the largest fit) and several
#: settings of every candidate, small enough for the tiny shop.
STAGED_GRIDS = {
    "logistic_regression": {"C": [0.01, 1.0]},
    "random_forest": {"n_estimators": [8], "max_depth": [3, 5], "min_samples_leaf": [5]},
    "xgboost": {"n_estimators": [15, 5, 30], "max_depth": [2, 3], "learning_rate": [0.1, 0.3]},
}


def brute_force_table(frame: pd.DataFrame, columns, settings) -> pd.DataFrame:
    """The grid search as scikit-learn runs it: GridSearchCV per candidate, every grid point fitted."""
    X, y, groups = xy(frame, *columns)
    one_thread = dataclasses.replace(settings, threads=1)
    rows = []
    for family in settings.families:
        grid = {f"model__{k}": v for k, v in settings.grids[family].items()}
        search = GridSearchCV(candidates.candidate(family, *columns, one_thread), grid, scoring="roc_auc",
                              cv=candidates.cv_splits(y, groups, settings), refit=False, return_train_score=True,
                              n_jobs=1, error_score="raise").fit(X, y)
        for _, row in pd.DataFrame(search.cv_results_).iterrows():
            params = {k.removeprefix("model__"): v for k, v in row["params"].items()}
            rows.append({"candidate": family, "params": params,
                         "cv_auc": row["mean_test_score"], "cv_auc_sd": row["std_test_score"],
                         "train_auc": row["mean_train_score"], "rank": int(row["rank_test_score"])})
    return pd.DataFrame(rows).sort_values(["candidate", "rank"]).reset_index(drop=True)


def test_grid_search_with_staged_trees_equals_gridsearchcv_bit_for_bit(split, columns):
    """The shortcuts (staged n_estimators, one pool for all candidates) change no number of GridSearchCV's table."""
    settings = dataclasses.replace(SETTINGS, grids=STAGED_GRIDS, threads=2)
    table = candidates.grid_search(split.train, *columns, settings)
    expected = brute_force_table(split.train, columns, settings)
    pd.testing.assert_frame_equal(table[expected.columns], expected, check_exact=True)
    xgb = table[table["candidate"] == "xgboost"]
    assert len(xgb) == 12 and xgb["rank"].nunique() > 3  # staged points rank among the fitted ones
    staged = xgb["params"].map(lambda p: p["n_estimators"] < 30)
    assert (xgb.loc[staged, "fit_seconds"] == 0).all() and (xgb.loc[~staged, "fit_seconds"] > 0).all()
    assert (table.loc[table["candidate"] != "xgboost", "fit_seconds"] > 0).all()


@pytest.mark.parametrize(("depth", "rate"), [(2, 0.1), (4, 0.3)])
def test_first_trees_of_a_larger_booster_are_the_smaller_booster(split, columns, depth, rate):
    """What staging relies on: xgboost's first n trees of an N-tree fit predict exactly as an n-tree fit."""
    params = {"max_depth": depth, "learning_rate": rate}
    small, large = (candidates.fit(candidates.tuned("xgboost", {**params, "n_estimators": n}, *columns, SETTINGS),
                                   split.train, *columns) for n in (12, 30))
    X = transform.model_frame(split.test[columns[0] + columns[1]])
    first = large.predict_proba(X, iteration_range=(0, 12))[:, 1]
    assert np.array_equal(first, small.predict_proba(X)[:, 1])
    assert not np.array_equal(first, large.predict_proba(X)[:, 1])  # the later trees do change the scores


def test_fits_deal_the_slowest_first():
    settings = dataclasses.replace(SETTINGS, grids=STAGED_GRIDS)
    plan = candidates._fits(settings)
    sources = {family: fitted for family, _, fitted in plan}
    assert {params["n_estimators"] for params, _ in sources["xgboost"]} == {30}  # only the largest is fitted
    assert [stage for _, stage in sources["xgboost"]][:3] == [15, 5, None]  # ParameterGrid order: values as listed
    tasks = [candidates._Fit(family, params, 0) for family, _, fitted in plan for params, _ in fitted]
    order = [t.family for t in sorted(tasks, key=candidates._cost, reverse=True)]
    assert order == sorted(order, key=["random_forest", "xgboost", "logistic_regression"].index)
    deep, shallow = (candidates._Fit("random_forest", {"n_estimators": 8, "max_depth": d, "min_samples_leaf": 5}, 0)
                     for d in (5, 3))
    assert candidates._cost(deep) > candidates._cost(shallow)


# --------------------------------------------------------------------------------------------
# Behavioural tests of the fitted candidates
# --------------------------------------------------------------------------------------------
# "The same prediction" up to floating-point summation order: the random forest adds up its trees' votes in
# `threads` parallel workers, so its probabilities can differ in the last bit from call to call (see
# test_random_forest_predictions_repeat_bit_for_bit). Any real effect of a column or the label is far larger.
SAME = 1e-12


@pytest.mark.parametrize("family", candidates.FAMILIES)
def test_direction_more_recent_activity_does_not_lower_the_score(models, split, columns, family):
    test = split.test
    assert test["recency_days"].notna().all() and (test["recency_days"] > 0).any()
    base = scores_of(models[family], test, columns)
    recent = scores_of(models[family], test.assign(recency_days=test["recency_days"] / 2), columns)
    assert recent.mean() >= base.mean()
    if family == "logistic_regression":
        # recency_days enters linearly (not log-transformed): every row moves the same way, so none goes down.
        assert (recent >= base - 1e-12).all()


@pytest.mark.parametrize("family", candidates.FAMILIES)
def test_pipeline_selects_its_columns_by_name_so_extra_columns_and_column_order_are_ignored(models, split, columns,
                                                                                           family):
    """A plumbing check, not a behavioural one: columns the model was not trained on never reach it.

    (Whether an irrelevant *input* leaves the score alone is
    test_invariance_to_a_noise_feature_the_model_was_trained_on.)
    """
    model = models[family]
    base = scores_of(model, split.test, columns)
    noisy = split.test.assign(shoe_size=np.random.default_rng(0).normal(size=len(split.test)), note="irrelevant")
    assert np.allclose(scores_of(model, noisy, columns), base, rtol=0, atol=SAME)
    # The pipeline itself selects its columns by name: extra and reordered columns make no difference.
    X = transform.model_frame(split.test[columns[0] + columns[1]])
    shuffled = X.assign(shoe_size=1.0)[["shoe_size"] + list(X.columns[::-1])]
    assert np.allclose(model.predict_proba(shuffled)[:, 1], base, rtol=0, atol=SAME)


def mean_score_change(model, frame: pd.DataFrame, columns, column: str, repeats: int = 3) -> float:
    """Mean absolute change of the scores when `column` is shuffled across rows (averaged over seeded shuffles)."""
    base = scores_of(model, frame, columns)
    changes = []
    for repeat in range(repeats):
        shuffled = frame.assign(**{column: np.random.default_rng(repeat).permutation(frame[column].to_numpy())})
        changes.append(np.abs(scores_of(model, shuffled, columns) - base).mean())
    return float(np.mean(changes))


#: Shuffling an irrelevant input may move a score by less than this share of the mean score.
NOISE_TOLERANCE = 0.1


@pytest.fixture(scope="module")
def noisy_medium_split(tmp_path_factory) -> TimeSplit:
    """The medium shop split out of time, every snapshot (training and test) with a pure-noise column."""
    snapshots = medium_snapshots(tmp_path_factory.mktemp("medium_shop"))
    noisy = snapshots.assign(noise=np.random.default_rng(0).normal(size=len(snapshots)))
    return split_by_time(noisy, HORIZON)


@pytest.mark.parametrize("family", candidates.FAMILIES)
def test_invariance_to_a_noise_feature_the_model_was_trained_on(noisy_medium_split, family):
    """Made-With-ML invariance, for real: pure noise is a model input, yet shuffling it barely moves the scores.

    The control shows the test can fail: shuffling a strong feature (the time-decayed engagement score) in the
    same way moves the scores by more than the tolerance, and by far more than the noise does.
    """
    split = noisy_medium_split
    numeric, categorical = features_of(split.train)
    assert "noise" in numeric  # the noise is an input of the model, not an extra column it ignores
    grid = {name: values[0] for name, values in SETTINGS.grids[family].items()}
    model = candidates.fit(candidates.tuned(family, grid, numeric, categorical, SETTINGS), split.train, numeric,
                           categorical)
    tolerance = NOISE_TOLERANCE * scores_of(model, split.test, (numeric, categorical)).mean()
    noise = mean_score_change(model, split.test, (numeric, categorical), "noise")
    strong = mean_score_change(model, split.test, (numeric, categorical), "engagement_score")
    assert noise < tolerance
    assert strong > tolerance and strong > 5 * noise


@pytest.mark.parametrize("family", candidates.FAMILIES)
def test_invariance_to_row_order(models, split, columns, family):
    base = scores_of(models[family], split.test, columns)
    order = np.random.default_rng(1).permutation(len(split.test))
    permuted = scores_of(models[family], split.test.iloc[order], columns)
    assert np.allclose(permuted, base[order], rtol=0, atol=SAME)


@pytest.mark.parametrize("family", candidates.FAMILIES)
def test_model_cannot_see_the_label(models, split, columns, family):
    base = scores_of(models[family], split.test, columns)
    without = scores_of(models[family], split.test.drop(columns="label"), columns)
    flipped = scores_of(models[family], split.test.assign(label=(1 - split.test["label"]).astype("Int8")), columns)
    assert np.allclose(base, without, rtol=0, atol=SAME) and np.allclose(base, flipped, rtol=0, atol=SAME)


def test_predict_scores_a_snapshot_with_censored_labels(models, split, columns):
    censored = split.test.assign(label=pd.array([pd.NA] * len(split.test), dtype="Int8"))
    expected = scores_of(models["logistic_regression"], split.test.drop(columns="label"), columns)
    assert np.array_equal(scores_of(models["logistic_regression"], censored, columns), expected)


def test_random_forest_predictions_repeat_bit_for_bit(models, split, columns):
    assert SETTINGS.threads > 1
    first = scores_of(models["random_forest"], split.test, columns)
    repeats = [scores_of(models["random_forest"], split.test, columns) for _ in range(5)]
    assert all(np.array_equal(first, again) for again in repeats)


def test_other_families_predict_bit_for_bit_and_forest_with_one_thread(models, split, columns):
    for family in ("logistic_regression", "xgboost"):
        first = scores_of(models[family], split.test, columns)
        assert all(np.array_equal(first, scores_of(models[family], split.test, columns)) for _ in range(3))
    single = copy.deepcopy(models["random_forest"]).set_params(model__n_jobs=1)
    first = scores_of(single, split.test, columns)
    assert all(np.array_equal(first, scores_of(single, split.test, columns)) for _ in range(5))


def test_fit_returns_a_fresh_copy(split, columns):
    pipeline = candidates.tuned("logistic_regression", {"C": 0.1}, *columns, SETTINGS)
    fitted = candidates.fit(pipeline, split.train, *columns)
    assert fitted is not pipeline and not hasattr(pipeline.named_steps["model"], "coef_")
    p = scores_of(fitted, split.test, columns)
    assert p.shape == (len(split.test),) and ((p >= 0) & (p <= 1)).all()
    assert roc_auc_score(split.test["label"].astype(int), p) > 0.5  # it learned something usable


# --------------------------------------------------------------------------------------------
# Calibration of a candidate
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibrated_wraps_a_fitted_calibrator(split, columns, models, method):
    numeric, categorical = columns
    settings = dataclasses.replace(SETTINGS, calibration=method)
    pipeline = candidates.tuned("xgboost", {"n_estimators": 20, "max_depth": 2, "learning_rate": 0.1},
                                numeric, categorical, settings)
    model = candidates.calibrated(pipeline, split.train, numeric, categorical, settings)
    assert isinstance(model, CalibratedClassifierCV) and model.method == method
    assert len(model.calibrated_classifiers_) == settings.cv_folds
    p = candidates.predict(model, split.test, numeric, categorical)
    assert p.shape == (len(split.test),) and ((p >= 0) & (p <= 1)).all()
    uncalibrated = scores_of(models["xgboost"], split.test, columns)
    assert not np.allclose(p, uncalibrated)
    assert roc_auc_score(split.test["label"].astype(int), p) > 0.5


# --------------------------------------------------------------------------------------------
# The calibration the notebook starts in a worker process (core.parallel.start) while it refits the candidates
# --------------------------------------------------------------------------------------------
def test_calibration_started_in_a_worker_process_equals_the_calibration_fitted_here(searched, split, columns):
    from atelier.core.parallel import start

    numeric, categorical = columns
    settings = dataclasses.replace(SETTINGS, threads=2)  # the stage's thread count: boosters on two
    best = candidates.best_table(searched, settings)
    leader = best.index[0]
    pipeline = candidates.tuned(leader, best.at[leader, "params"], numeric, categorical, settings)
    calibrating = start(candidates.calibrated, pipeline, split.train, numeric, categorical, settings)
    here = candidates.calibrated(pipeline, split.train, numeric, categorical, settings)
    there = calibrating.result()
    assert len(there.calibrated_classifiers_) == settings.cv_folds
    np.testing.assert_array_equal(candidates.predict(there, split.test, numeric, categorical),
                                  candidates.predict(here, split.test, numeric, categorical))
