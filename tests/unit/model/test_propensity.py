"""Tests for atelier.propensity: the out-of-time split and its leakage rule, grouped cross-validation,
the candidates and the grid search, feature pruning, behavioural model tests, the evaluation helpers,
calibration, the oracle probability and the stage's outputs (attribute database, plot data, metrics)."""

from __future__ import annotations

import copy
import dataclasses
import json
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, tiny_params
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import roc_auc_score

from atelier.core import attributes, paths
from atelier.core.config import ParamsError, load_params
from atelier.data import prep, simulate, transform, validate
from atelier.data.features import FeatureSettings, build_features, build_snapshot
from atelier.model import propensity

FEATURES = FeatureSettings()
HORIZON = 30
CUTOFFS = [pd.Timestamp(c) for c in tiny_params()["timeline"]["cutoffs"]]  # 03-01, 04-01, 05-01; data ends 06-30
SETTINGS = propensity.ModelSettings.from_params(tiny_params()["model"], tiny_params()["seed"])


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence / feature-name notes from scikit-learn and xgboost
        yield


# --------------------------------------------------------------------------------------------
# Shared, module-scoped fixtures: the tiny shop's snapshots and the candidates fitted on them
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def snapshots(tiny_tables) -> pd.DataFrame:
    return prep.build_snapshots(tiny_tables, CUTOFFS, HORIZON, FEATURES)


@pytest.fixture(scope="module")
def split(snapshots) -> propensity.TimeSplit:
    return propensity.split_by_time(snapshots, HORIZON)


@pytest.fixture(scope="module")
def columns(split) -> tuple[list[str], list[str]]:
    return propensity.features_of(split.train)


@pytest.fixture(scope="module")
def searched(split, columns):
    numeric, categorical = columns
    return propensity.grid_search(split.train, numeric, categorical, SETTINGS)


@pytest.fixture(scope="module")
def models(searched) -> dict:
    """Every family's best estimator, refitted on all training snapshots by the grid search."""
    return {family: search.best_estimator_ for family, search in searched[1].items()}


def scores_of(model, frame: pd.DataFrame, columns) -> np.ndarray:
    numeric, categorical = columns
    return propensity.predict(model, frame, numeric, categorical)


# --------------------------------------------------------------------------------------------
# 1. The time split and the leakage rule
# --------------------------------------------------------------------------------------------
def test_split_trains_on_every_earlier_cutoff_and_tests_on_the_last(snapshots, split):
    assert split.test_cutoff == CUTOFFS[-1]
    assert split.train_cutoffs == CUTOFFS[:-1]
    assert set(split.train["cutoff"]) == set(CUTOFFS[:-1])
    assert set(split.test["cutoff"]) == {CUTOFFS[-1]}
    # A partition of the snapshots: nothing lost, nothing duplicated.
    assert len(split.train) + len(split.test) == len(snapshots)
    for cutoff in CUTOFFS[:-1]:
        assert (split.train["cutoff"] == cutoff).sum() == (snapshots["cutoff"] == cutoff).sum()
    assert (split.test["cutoff"] == CUTOFFS[-1]).sum() == (snapshots["cutoff"] == CUTOFFS[-1]).sum()


def test_split_does_not_depend_on_row_order(snapshots, split):
    shuffled = propensity.split_by_time(snapshots.sample(frac=1.0, random_state=0), HORIZON)
    assert shuffled.test_cutoff == split.test_cutoff and shuffled.train_cutoffs == split.train_cutoffs
    assert len(shuffled.train) == len(split.train) and len(shuffled.test) == len(split.test)


def test_label_window_reaching_exactly_the_test_cutoff_is_allowed_one_day_more_is_not(snapshots):
    # 2025-04-01 + 30 days = 2025-05-01, the test cutoff: the window [cutoff, cutoff + 30 d) ends in time.
    propensity.split_by_time(snapshots, 30)
    with pytest.raises(ParamsError) as error:
        propensity.split_by_time(snapshots, 31)
    message = str(error.value)
    assert "timeline.cutoffs" in message and "horizon_days" in message
    assert "2025-04-01" in message  # the offending training snapshot is named


def test_training_cutoff_too_close_to_the_test_cutoff_raises(tiny_tables):
    close = [pd.Timestamp("2025-03-01"), pd.Timestamp("2025-04-01"), pd.Timestamp("2025-04-15")]
    snapshots = prep.build_snapshots(tiny_tables, close, HORIZON, FEATURES)
    assert snapshots["label"].notna().all()  # the labels are complete: only the overlap is wrong
    with pytest.raises(ParamsError, match=r"timeline\.cutoffs.*horizon_days"):
        propensity.split_by_time(snapshots, HORIZON)


def test_censored_labels_raise(tiny_tables):
    # The data ends 2025-06-30: a 30-day window after 2025-06-15 is not observed to its end.
    late = [pd.Timestamp("2025-03-01"), pd.Timestamp("2025-04-01"), pd.Timestamp("2025-06-15")]
    snapshots = prep.build_snapshots(tiny_tables, late, HORIZON, FEATURES)
    assert snapshots.loc[snapshots["cutoff"] == late[-1], "label"].isna().all()
    with pytest.raises(ParamsError) as error:
        propensity.split_by_time(snapshots, HORIZON)
    message = str(error.value)
    assert "timeline.cutoffs" in message and "horizon_days" in message and "2025-06-15" in message


def test_a_single_cutoff_cannot_be_split(snapshots):
    with pytest.raises(ParamsError, match="timeline.cutoffs"):
        propensity.split_by_time(snapshots[snapshots["cutoff"] == CUTOFFS[0]], HORIZON)


def _append_after(tables: dict[str, pd.DataFrame], cutoff: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """The tables plus orders, events and customers at and after `cutoff` (copies of earlier activity shifted past it)."""
    grown = dict(tables)
    orders, events, customers = tables["orders"], tables["events"], tables["customers"]
    # Orders: copies of the 40 latest orders before the cutoff, moved to [cutoff, cutoff + 10 d], the first exactly at it.
    recent = orders[orders["ordered_at"] < cutoff].nlargest(40, "ordered_at").copy()
    recent["ordered_at"] = cutoff + pd.to_timedelta(np.arange(len(recent)) * 6, unit="h")
    recent["order_id"] = orders["order_id"].max() + 1 + np.arange(len(recent))
    recent["amount"] = recent["amount"] * 10
    grown["orders"] = pd.concat([orders, recent], ignore_index=True)
    # Events: the week before the cutoff replayed in the week after it (starting exactly at the cutoff).
    week = events[(events["ts"] >= cutoff - pd.Timedelta(days=7)) & (events["ts"] < cutoff)].copy()
    week["ts"] = week["ts"] - week["ts"].min() + cutoff
    week["event_id"] = events["event_id"].max() + 1 + np.arange(len(week))
    week["session_id"] = week["session_id"] + events["session_id"].max()
    grown["events"] = pd.concat([events, week], ignore_index=True)
    # Customers: two who sign up at and after the cutoff.
    new = customers.iloc[:2].copy()
    new["customer_id"] = customers["customer_id"].max() + 1 + np.arange(2)
    new["signup_at"] = [cutoff, cutoff + pd.Timedelta(days=3)]
    grown["customers"] = pd.concat([customers, new], ignore_index=True)
    return grown


def test_training_features_ignore_data_appended_after_their_cutoff(tiny_tables):
    cutoff = CUTOFFS[1]  # a training snapshot
    before = build_snapshot(tiny_tables, cutoff, HORIZON, FEATURES)
    after = build_snapshot(_append_after(tiny_tables, cutoff), cutoff, HORIZON, FEATURES)
    pd.testing.assert_frame_equal(before.drop(columns="label"), after.drop(columns="label"))
    # The appended orders did land in the label window (so the test is not vacuous): only the label saw them.
    assert (after["label"] >= before["label"]).all()
    assert (after["label"] > before["label"]).sum() > 0


def test_training_features_equal_features_from_data_cut_at_the_cutoff(tiny_tables, snapshots):
    for cutoff in CUTOFFS[:-1]:
        cut = dict(tiny_tables)
        cut["orders"] = tiny_tables["orders"][tiny_tables["orders"]["ordered_at"] < cutoff]
        cut["events"] = tiny_tables["events"][tiny_tables["events"]["ts"] < cutoff]
        cut["customers"] = tiny_tables["customers"][~(tiny_tables["customers"]["signup_at"] >= cutoff)]
        known_then = build_features(cut, cutoff, FEATURES)
        stored = snapshots[snapshots["cutoff"] == cutoff].drop(columns=["cutoff", "label"])
        pd.testing.assert_frame_equal(stored, known_then)


# --------------------------------------------------------------------------------------------
# Feature columns and model input
# --------------------------------------------------------------------------------------------
def test_features_of_excludes_bookkeeping_and_respects_keep(split, columns):
    numeric, categorical = columns
    assert not {"cutoff", "label", "customer_id"} & set(numeric + categorical)
    assert set(categorical) == {"age_band", "gender", "region"}
    assert all(pd.api.types.is_numeric_dtype(split.train[c]) for c in numeric)
    keep = ["region", "frequency", "recency_days", "not_a_feature"]
    kept_numeric, kept_categorical = propensity.features_of(split.train, keep)
    assert kept_numeric == [c for c in numeric if c in keep] == ["recency_days", "frequency"]  # original order kept
    assert kept_categorical == ["region"]


def test_xy_gives_model_frame_labels_and_customer_groups(split, columns):
    numeric, categorical = columns
    X, y, groups = propensity.xy(split.train, numeric, categorical)
    assert list(X.columns) == numeric + categorical and len(X) == len(split.train)
    assert y.tolist() == split.train["label"].astype(int).tolist() and set(np.unique(y)) == {0, 1}
    assert (groups == split.train.index.to_numpy()).all()
    assert all(X[c].dtype == object for c in categorical)


# --------------------------------------------------------------------------------------------
# 2. Cross-validation grouped by customer, stratified by label
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("folds", [2, 4])
def test_cv_splits_keep_each_customer_in_one_fold_and_are_stratified(split, columns, folds):
    _, y, groups = propensity.xy(split.train, *columns)
    assert pd.Series(groups).duplicated().any()  # customers do repeat across snapshots: grouping matters
    splits = propensity.cv_splits(y, groups, dataclasses.replace(SETTINGS, cv_folds=folds))
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
    _, y, groups = propensity.xy(split.train, *columns)
    first, again = propensity.cv_splits(y, groups, SETTINGS), propensity.cv_splits(y, groups, SETTINGS)
    assert all((a[1] == b[1]).all() for a, b in zip(first, again))
    other = propensity.cv_splits(y, groups, dataclasses.replace(SETTINGS, seed=SETTINGS.seed + 1))
    assert any(len(a[1]) != len(b[1]) or (a[1] != b[1]).any() for a, b in zip(first, other))


# --------------------------------------------------------------------------------------------
# Candidates and the grid search
# --------------------------------------------------------------------------------------------
def test_unknown_candidate_raises(columns):
    with pytest.raises(ParamsError, match="params.yaml model.grids"):
        propensity.candidate("svm", *columns, SETTINGS)


def test_tuned_sets_the_model_hyperparameters(columns):
    pipeline = propensity.tuned("random_forest", {"n_estimators": 7, "max_depth": 3}, *columns, SETTINGS)
    model = pipeline.named_steps["model"]
    assert model.n_estimators == 7 and model.max_depth == 3 and model.random_state == SETTINGS.seed
    assert model.n_jobs == SETTINGS.threads


def test_grid_search_table_covers_every_grid_point(searched):
    table, searches = searched
    assert set(searches) == set(SETTINGS.grids) == set(table["candidate"])
    for family, grid in SETTINGS.grids.items():
        assert (table["candidate"] == family).sum() == int(np.prod([len(v) for v in grid.values()]))
    assert np.allclose(table["gap"], table["train_auc"] - table["cv_auc"])
    assert table["cv_auc"].between(0, 1).all() and table["train_auc"].between(0, 1).all()


def test_grid_search_scores_on_the_grouped_folds(split, columns):
    """The CV AUC of a grid point equals the mean AUC over cv_splits' folds, refitting preprocessing in each."""
    numeric, categorical = columns
    settings = dataclasses.replace(SETTINGS, grids={"logistic_regression": {"C": [0.01, 1.0]}})
    table, searches = propensity.grid_search(split.train, numeric, categorical, settings)
    assert list(searches) == ["logistic_regression"] and len(table) == 2
    assert sorted(table["rank"]) == [1, 2]
    assert table.iloc[0]["cv_auc"] >= table.iloc[1]["cv_auc"]  # sorted by rank within the candidate
    X, y, groups = propensity.xy(split.train, numeric, categorical)
    for _, row in table.iterrows():
        pipeline = propensity.tuned("logistic_regression", row["params"], numeric, categorical, settings)
        aucs = []
        for train_rows, val_rows in propensity.cv_splits(y, groups, settings):
            fitted = propensity.fit(pipeline, split.train.iloc[train_rows], numeric, categorical)
            aucs.append(roc_auc_score(y[val_rows], fitted.predict_proba(X.iloc[val_rows])[:, 1]))
        assert row["cv_auc"] == pytest.approx(np.mean(aucs), abs=1e-9)


# --------------------------------------------------------------------------------------------
# 5. The best setting per candidate and the overfitting flag
# --------------------------------------------------------------------------------------------
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
    best = propensity.best_table(table, settings)
    assert list(best.index) == ["xgboost", "random_forest", "logistic_regression"]  # by CV AUC, best first
    assert best["overfitting"].to_dict() == {"xgboost": False, "random_forest": True, "logistic_regression": False}
    assert best.loc["logistic_regression", "params"] == {"i": 0} and best.loc["xgboost", "params"] == {"i": 3}
    assert list(best.columns) == ["params", "cv_auc", "cv_auc_sd", "train_auc", "gap", "overfitting"]
    # One step above the boundary flips the flag.
    looser = propensity.best_table(table, dataclasses.replace(settings, overfit_gap_warning=0.3125))
    assert not looser["overfitting"].any()
    stricter = propensity.best_table(table, dataclasses.replace(settings, overfit_gap_warning=0.0625 - 2**-10))
    assert stricter["overfitting"].all()


def test_best_table_on_a_real_grid_search_agrees_with_its_gaps(searched):
    table, _ = searched
    best = propensity.best_table(table, SETTINGS)
    assert (best["overfitting"] == (best["train_auc"] - best["cv_auc"] > SETTINGS.overfit_gap_warning)).all()
    assert best["cv_auc"].is_monotonic_decreasing


# --------------------------------------------------------------------------------------------
# 3. Behavioural tests of the fitted candidates
# --------------------------------------------------------------------------------------------
# "The same prediction" up to floating-point summation order: the random forest adds up its trees' votes in
# `threads` parallel workers, so its probabilities can differ in the last bit from call to call (see
# test_random_forest_predictions_repeat_bit_for_bit). Any real effect of a column or the label is far larger.
SAME = 1e-12


@pytest.mark.parametrize("family", propensity.FAMILIES)
def test_direction_more_recent_activity_does_not_lower_the_score(models, split, columns, family):
    test = split.test
    assert test["recency_days"].notna().all() and (test["recency_days"] > 0).any()
    base = scores_of(models[family], test, columns)
    recent = scores_of(models[family], test.assign(recency_days=test["recency_days"] / 2), columns)
    assert recent.mean() >= base.mean()
    if family == "logistic_regression":
        # recency_days enters linearly (not log-transformed): every row moves the same way, so none goes down.
        assert (recent >= base - 1e-12).all()


@pytest.mark.parametrize("family", propensity.FAMILIES)
def test_pipeline_selects_its_columns_by_name_so_extra_columns_and_column_order_are_ignored(models, split, columns, family):
    """A plumbing check, not a behavioural one: columns the model was not trained on never reach it.

    (Whether an irrelevant *input* leaves the score alone is test_invariance_to_a_noise_feature_the_model_was_trained_on.)
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


@pytest.mark.parametrize("family", propensity.FAMILIES)
def test_invariance_to_a_noise_feature_the_model_was_trained_on(noisy_medium_split, family):
    """Made-With-ML invariance, for real: pure noise is a model input, yet shuffling it barely moves the scores.

    The control shows the test can fail: shuffling a strong feature (the time-decayed engagement score) in the
    same way moves the scores by more than the tolerance, and by far more than the noise does.
    """
    split = noisy_medium_split
    numeric, categorical = propensity.features_of(split.train)
    assert "noise" in numeric  # the noise is an input of the model, not an extra column it ignores
    grid = {name: values[0] for name, values in SETTINGS.grids[family].items()}
    model = propensity.fit(propensity.tuned(family, grid, numeric, categorical, SETTINGS), split.train, numeric, categorical)
    tolerance = NOISE_TOLERANCE * scores_of(model, split.test, (numeric, categorical)).mean()
    noise = mean_score_change(model, split.test, (numeric, categorical), "noise")
    strong = mean_score_change(model, split.test, (numeric, categorical), "engagement_score")
    assert noise < tolerance
    assert strong > tolerance and strong > 5 * noise


@pytest.mark.parametrize("family", propensity.FAMILIES)
def test_invariance_to_row_order(models, split, columns, family):
    base = scores_of(models[family], split.test, columns)
    order = np.random.default_rng(1).permutation(len(split.test))
    permuted = scores_of(models[family], split.test.iloc[order], columns)
    assert np.allclose(permuted, base[order], rtol=0, atol=SAME)


@pytest.mark.parametrize("family", propensity.FAMILIES)
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
    pipeline = propensity.tuned("logistic_regression", {"C": 0.1}, *columns, SETTINGS)
    fitted = propensity.fit(pipeline, split.train, *columns)
    assert fitted is not pipeline and not hasattr(pipeline.named_steps["model"], "coef_")
    p = scores_of(fitted, split.test, columns)
    assert p.shape == (len(split.test),) and ((p >= 0) & (p <= 1)).all()
    assert roc_auc_score(split.test["label"].astype(int), p) > 0.5  # it learned something usable


# --------------------------------------------------------------------------------------------
# 8. Forest importance summed back onto the source features
# --------------------------------------------------------------------------------------------
def test_forest_importance_sums_preprocessed_columns_into_source_features(models, columns):
    numeric, categorical = columns
    forest = models["random_forest"]
    names = list(forest.named_steps["prepare"].get_feature_names_out())
    indicators = [n for n in names if n.startswith("missingindicator_")]
    assert indicators and len(names) > len(numeric + categorical)  # more output columns than sources
    importance = propensity.forest_importance(forest, numeric + categorical)
    assert set(importance.index) <= set(numeric + categorical)
    assert importance.sum() == pytest.approx(1.0)
    assert importance.is_monotonic_decreasing
    raw = pd.Series(forest.named_steps["model"].feature_importances_, index=names)
    source = indicators[0].removeprefix("missingindicator_")
    assert importance.get(source, 0.0) == pytest.approx(raw[source] + raw[indicators[0]])


# --------------------------------------------------------------------------------------------
# 6. Pruning by permutation importance
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def medium_snapshots(tmp_path_factory) -> pd.DataFrame:
    """Snapshots of a 2,000-customer version of the tiny shop.

    The tiny shop's validation snapshot has ~16 buyers, too few for a permutation importance as small as
    prune_below to be distinguishable from chance; here it has ~90.
    """
    params = tiny_params()
    params["simulate"].update(n_customers=2000, chunk_customers=2000)
    root = tmp_path_factory.mktemp("medium_shop")
    simulate.run(params, root)
    validate.run(params, root)
    return prep.build_snapshots(validate.load_validated(root), CUTOFFS, HORIZON, FEATURES)


@pytest.fixture(scope="module")
def medium_train(medium_snapshots) -> pd.DataFrame:
    """The medium shop's training snapshots plus a pure-noise column."""
    train = propensity.split_by_time(medium_snapshots, HORIZON).train
    return train.assign(noise=np.random.default_rng(0).normal(size=len(train)))


@pytest.fixture(scope="module")
def noisy_medium_split(medium_snapshots) -> propensity.TimeSplit:
    """The medium shop split out of time, every snapshot (training and test) with a pure-noise column."""
    noisy = medium_snapshots.assign(noise=np.random.default_rng(0).normal(size=len(medium_snapshots)))
    return propensity.split_by_time(noisy, HORIZON)


def test_prune_drops_a_pure_noise_column(medium_train):
    numeric, categorical = propensity.features_of(medium_train)
    assert "noise" in numeric
    best = propensity.tuned("logistic_regression", {"C": 0.1}, numeric, categorical, SETTINGS)
    pruning, importance = propensity.prune(best, "logistic_regression", medium_train, numeric, categorical, SETTINGS)
    assert set(importance.index) == set(numeric + categorical)
    assert abs(importance.loc["noise", "importance"]) < 0.005  # ~0: shuffling noise costs no AUC
    assert importance["importance"].max() > 10 * SETTINGS.prune_below  # while real signals do matter
    assert pruning.applied
    assert "noise" in pruning.dropped and "noise" not in pruning.kept
    # The contract: exactly the features below the threshold are dropped, the rest kept, in order.
    below = set(importance.index[importance["importance"] < SETTINGS.prune_below])
    assert set(pruning.dropped) == below
    assert pruning.kept == [f for f in numeric + categorical if f not in below]
    assert pruning.auc_pruned >= pruning.auc_all - SETTINGS.prune_tolerance


def test_prune_keeps_everything_when_dropping_costs_too_much(split, columns):
    """A tolerance below any possible AUC change (negative) means nothing may be dropped."""
    numeric, categorical = columns
    settings = dataclasses.replace(SETTINGS, prune_tolerance=-1.0)
    best = propensity.tuned("logistic_regression", {"C": 0.1}, numeric, categorical, settings)
    pruning, importance = propensity.prune(best, "logistic_regression", split.train, numeric, categorical, settings)
    assert not pruning.applied and pruning.dropped == [] and pruning.kept == numeric + categorical
    assert 0.5 < pruning.auc_all <= 1 and 0 <= pruning.auc_pruned <= 1
    assert (importance["importance"] < settings.prune_below).any()  # there were candidates to drop


def test_prune_with_a_single_training_snapshot_keeps_everything(split, columns):
    numeric, categorical = columns
    one = split.train[split.train["cutoff"] == split.train_cutoffs[-1]]
    best = propensity.tuned("xgboost", {"n_estimators": 5}, numeric, categorical, SETTINGS)
    pruning, importance = propensity.prune(best, "xgboost", one, numeric, categorical, SETTINGS)
    assert not pruning.applied
    assert pruning.kept == numeric + categorical and pruning.dropped == []
    assert np.isnan(pruning.auc_all) and np.isnan(pruning.auc_pruned)
    assert list(importance.index) == numeric + categorical and (importance["importance"] == 0).all()


def test_validation_split_holds_out_the_last_training_cutoff(split):
    early, validation = propensity.validation_split(split.train)
    assert set(validation["cutoff"]) == {split.train_cutoffs[-1]}
    assert set(early["cutoff"]) == set(split.train_cutoffs[:-1])
    assert len(early) + len(validation) == len(split.train)


# --------------------------------------------------------------------------------------------
# 4. Evaluation on hand-made scores
# --------------------------------------------------------------------------------------------
def perfect(n: int = 100, buyers: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Buyers first with the highest scores: a perfect ranking."""
    y = np.r_[np.ones(buyers, dtype=int), np.zeros(n - buyers, dtype=int)]
    return y, np.linspace(0.99, 0.01, n)


def test_evaluate_perfect_and_reversed_rankings():
    y, p = perfect()
    metrics = propensity.evaluate(y, p)
    assert metrics["roc_auc"] == 1.0 and metrics["pr_auc"] == pytest.approx(1.0)
    assert metrics["base_rate"] == pytest.approx(0.1)
    assert metrics["lift_top10"] == pytest.approx(1 / 0.1)
    assert propensity.evaluate(y, p[::-1])["roc_auc"] == 0.0
    assert propensity.evaluate(y, p[::-1])["lift_top10"] == 0.0


def test_evaluate_brier_and_log_loss_by_hand():
    y, p = np.array([1, 0, 1, 0]), np.array([0.8, 0.4, 0.5, 0.0])
    metrics = propensity.evaluate(y, p)
    assert metrics["brier"] == pytest.approx((0.2**2 + 0.4**2 + 0.5**2 + 0.0) / 4)
    # log loss clips p = 0 to 1e-6 rather than returning infinity or NaN.
    assert metrics["log_loss"] == pytest.approx(-(np.log(0.8) + np.log(0.6) + np.log(0.5) + np.log(1 - 1e-6)) / 4)
    assert np.isfinite(propensity.evaluate(np.array([1, 0]), np.array([0.0, 1.0]))["log_loss"])


def test_lift_at_by_hand():
    y, p = perfect(100, 10)
    assert propensity.lift_at(y, p, 0.1) == pytest.approx(10.0)
    assert propensity.lift_at(y, p, 0.2) == pytest.approx(5.0)  # all 10 buyers among the top 20
    assert propensity.lift_at(y, p, 0.05) == pytest.approx(10.0)
    assert propensity.lift_at(y, p, 1.0) == pytest.approx(1.0)  # everyone targeted: the base rate
    y2 = np.array([0, 1, 0, 0, 1, 0, 0, 0, 0, 0])
    p2 = np.arange(10, 0, -1) / 10  # the top 2 by score: rows 0 and 1, one buyer out of two
    assert propensity.lift_at(y2, p2, 0.2) == pytest.approx(0.5 / 0.2)
    assert np.isnan(propensity.lift_at(np.zeros(10, dtype=int), p2, 0.1))


def test_decile_table_ranks_by_score():
    rng = np.random.default_rng(3)
    p = rng.random(1000)
    y = (rng.random(1000) < p).astype(int)
    table = propensity.decile_table(y, p)
    assert list(table.index) == list(range(1, 11))
    assert (table["customers"] == 100).all() and table["buyers"].sum() == y.sum()
    assert table["mean_score"].is_monotonic_decreasing and table["mean_score"].iloc[0] == table["mean_score"].max()
    assert table["mean_score"].iloc[0] > 0.85 and table["mean_score"].iloc[-1] < 0.15
    assert np.allclose(table["lift"], table["buyer_rate"] / y.mean())
    share = table["cumulative_share_of_buyers"]
    assert share.is_monotonic_increasing and share.iloc[-1] == pytest.approx(1.0)
    assert (table["buyer_rate"] == table["buyers"] / table["customers"]).all()


def test_decile_table_of_a_perfect_ranking_and_uneven_sizes():
    y, p = perfect(100, 10)
    table = propensity.decile_table(y, p)
    assert table.loc[1, "buyer_rate"] == 1.0 and table.loc[1, "lift"] == pytest.approx(10.0)
    assert (table.loc[2:, "buyers"] == 0).all()
    assert (table["cumulative_share_of_buyers"] == 1.0).all()
    sizes = propensity.decile_table(*perfect(95, 9))["customers"]
    assert sizes.sum() == 95 and set(sizes) <= {9, 10} and len(sizes) == 10


def test_curves_shapes_and_ends():
    rng = np.random.default_rng(4)
    p = rng.random(5000)
    y = (rng.random(5000) < p).astype(int)
    curves = propensity.curves(y, p)
    assert set(curves) == {"roc", "pr", "gains", "lift", "calibration"}
    roc = curves["roc"]
    assert list(roc.columns) == ["fpr", "tpr"]
    assert (roc.iloc[0].tolist(), roc.iloc[-1].tolist()) == ([0.0, 0.0], [1.0, 1.0])
    assert roc["fpr"].is_monotonic_increasing and roc["tpr"].is_monotonic_increasing
    assert list(curves["pr"].columns) == ["recall", "precision"]
    assert curves["pr"].stack().between(0, 1).all()
    gains = curves["gains"]
    assert list(gains.columns) == ["share_targeted", "share_of_buyers"]
    assert gains["share_of_buyers"].is_monotonic_increasing and gains["share_targeted"].is_monotonic_increasing
    assert gains.iloc[-1].tolist() == [1.0, 1.0]
    assert len(gains) <= 202  # thinned for plotting
    # Targeting by a useful score finds buyers faster than at random.
    assert (gains["share_of_buyers"] >= gains["share_targeted"] - 0.02).all()
    assert list(curves["calibration"].columns) == ["predicted", "observed"]
    lift = curves["lift"]
    assert list(lift.columns) == ["decile", "lift", "cumulative_lift"] and lift["decile"].tolist() == list(range(1, 11))
    assert lift["lift"].iloc[0] > 1 > lift["lift"].iloc[-1]  # a useful score: the top decile beats random, the bottom does not
    assert lift["cumulative_lift"].is_monotonic_decreasing and lift["cumulative_lift"].iloc[-1] == pytest.approx(1.0)


def test_lift_by_decile_by_hand():
    y, p = perfect(100, 10)  # all ten buyers in the top decile
    lift = propensity.lift_by_decile(y, p)
    assert lift.loc[0, "lift"] == pytest.approx(10.0) and (lift.loc[1:, "lift"] == 0).all()
    # Cumulative lift down to decile d: 10 buyers among the top 10*d customers, over the base rate 0.1.
    assert np.allclose(lift["cumulative_lift"], [10 / (10 * d) / 0.1 for d in range(1, 11)])
    # Agrees with the decile table and with lift_at at the top 10 %.
    table = propensity.decile_table(*synthetic(1000, 12))
    again = propensity.lift_by_decile(*synthetic(1000, 12))
    assert np.allclose(again["lift"], table["lift"])
    y, p = synthetic(1000, 12)
    assert again.loc[0, "cumulative_lift"] == pytest.approx(propensity.lift_at(y, p, 0.1))
    # Random scores give a lift near 1 in every decile.
    rng = np.random.default_rng(13)
    flat = propensity.lift_by_decile((rng.random(20_000) < 0.2).astype(int), rng.random(20_000))
    assert (flat["lift"] - 1).abs().max() < 0.15


def test_model_curves_draws_a_lift_panel():
    import matplotlib.pyplot as plt

    from atelier.report import plots

    y, p = synthetic(2000, 14)
    figure = plots.model_curves({"model": propensity.curves(y, p)}, oracle=propensity.curves(y, p))
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["ROC", "Precision-recall", "Cumulative gains", "Lift by decile", "Calibration (deciles)"]
    lift_axis = figure.axes[3]
    lines = [line for line in lift_axis.get_lines() if line.get_label() in ("model", "oracle (true probability)")]
    assert len(lines) == 2 and list(lines[0].get_xdata()) == list(range(1, 11))
    assert np.allclose(lines[0].get_ydata(), propensity.lift_by_decile(y, p)["lift"])
    plt.close(figure)


def test_calibration_curve_of_calibrated_scores_lies_on_the_diagonal():
    rng = np.random.default_rng(5)
    p = rng.uniform(0.01, 0.99, 20_000)
    y = (rng.random(p.size) < p).astype(int)
    calibration = propensity.curves(y, p)["calibration"]
    assert len(calibration) == 10
    # 2,000 rows per bin: the standard error of an observed rate is at most 0.011.
    assert (calibration["observed"] - calibration["predicted"]).abs().max() < 0.05
    # The same outcomes against squared (overconfidently low) scores are far off the diagonal.
    skewed = propensity.curves(y, p**2)["calibration"]
    assert (skewed["observed"] - skewed["predicted"]).abs().max() > 0.15


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    return (rng.random(n) < p).astype(int), p


def test_bootstrap_interval_contains_the_estimate_and_is_seeded():
    y, p = synthetic(400, 6)
    point = roc_auc_score(y, p)
    low, high = propensity.bootstrap_interval(y, p, roc_auc_score, 100, seed=7)
    assert low < point < high
    assert propensity.bootstrap_interval(y, p, roc_auc_score, 100, seed=7) == (low, high)
    assert propensity.bootstrap_interval(y, p, roc_auc_score, 100, seed=8) != (low, high)
    narrower = propensity.bootstrap_interval(y, p, roc_auc_score, 100, seed=7, level=0.5)
    assert low <= narrower[0] <= narrower[1] <= high


def test_bootstrap_interval_narrows_with_more_data():
    small = propensity.bootstrap_interval(*synthetic(200, 9), roc_auc_score, 100, seed=1)
    large = propensity.bootstrap_interval(*synthetic(5000, 9), roc_auc_score, 100, seed=1)
    assert (large[1] - large[0]) < (small[1] - small[0]) / 2  # width ~ 1/sqrt(n): 5x narrower expected


def test_bootstrap_interval_skips_one_class_resamples():
    # Two rows, one buyer: half the resamples hold a single class and AUC is undefined there.
    y, p = np.array([1, 0]), np.array([0.9, 0.1])
    assert propensity.bootstrap_interval(y, p, roc_auc_score, 50, seed=0) == (1.0, 1.0)


# --------------------------------------------------------------------------------------------
# 12. Where the gap to the oracle comes from; do CV and the test month rank candidates alike?
# --------------------------------------------------------------------------------------------
def test_pair_credit_adds_up_to_the_auc_for_buyers_and_for_non_buyers():
    y, p = synthetic(500, 15)
    p = np.round(p, 1)  # many ties: they count half
    credit = propensity.pair_credit(y, p)
    assert credit[y == 1].sum() == pytest.approx(roc_auc_score(y, p))
    assert credit[y == 0].sum() == pytest.approx(roc_auc_score(y, p))
    assert (credit >= 0).all()
    # By hand: buyers score 0.9 and 0.4, non-buyers 0.5 and 0.4; four pairs.
    by_hand = propensity.pair_credit(np.array([1, 1, 0, 0]), np.array([0.9, 0.4, 0.5, 0.4]))
    assert np.allclose(by_hand, np.array([2, 0.5, 1, 1.5]) / 4)
    with pytest.raises(ValueError, match="at least one buyer and one non-buyer"):
        propensity.pair_credit(np.zeros(3, dtype=int), np.array([0.1, 0.2, 0.3]))


def test_gap_attribution_splits_the_gap_exactly_and_finds_where_it_is():
    rng = np.random.default_rng(16)
    n = 6000
    group = np.where(np.arange(n) < n // 2, "hard", "easy")
    oracle = rng.uniform(0.01, 0.6, n)
    y = (rng.random(n) < oracle).astype(int)
    # The model knows the truth for "easy" customers and only a noisy version of it for "hard" ones.
    model = np.where(group == "easy", oracle, np.clip(oracle + rng.normal(0, 0.3, n), 0, 1))
    table = propensity.gap_attribution(y, model, oracle, pd.Series(group, name="difficulty"))
    assert table.index.name == "difficulty" and list(table.index) == ["easy", "hard"]
    assert table.attrs["gap"] == pytest.approx(roc_auc_score(y, oracle) - roc_auc_score(y, model))
    assert table["gap_points"].sum() == pytest.approx(table.attrs["gap"])
    assert table["share_of_gap"].sum() == pytest.approx(1.0)
    assert table["share_of_customers"].sum() == pytest.approx(1.0) and table["customers"].sum() == n
    assert table.at["hard", "share_of_gap"] > 0.6  # the hard half carries most of it...
    assert table.at["easy", "share_of_gap"] < 0.4  # ...the easy half only through its pairs with hard customers
    easy = group == "easy"
    assert table.at["easy", "model_auc"] == pytest.approx(roc_auc_score(y[easy], oracle[easy]))
    assert table.at["hard", "oracle_auc"] > table.at["hard", "model_auc"] + 0.05
    assert table.at["hard", "buyers"] == y[~easy].sum()


def test_gap_attribution_edge_cases():
    y, p = synthetic(400, 17)
    # A model equal to the oracle leaves no gap to share.
    same = propensity.gap_attribution(y, p, p, np.where(p > 0.5, "a", "b"))
    assert same.attrs["gap"] == 0 and (same["gap_points"] == 0).all() and same["share_of_gap"].isna().all()
    # A group without buyers has no within-group AUC, but still carries part of the gap.
    groups = np.where(y == 1, "buyers", "others")
    table = propensity.gap_attribution(y, p**3 + 0.2 * np.random.default_rng(0).random(400), p, groups)
    assert np.isnan(table.at["others", "model_auc"]) and np.isnan(table.at["buyers", "oracle_auc"])
    assert table["gap_points"].sum() == pytest.approx(table.attrs["gap"])
    # A model better than the "oracle" gives a negative gap; customers without a group are their own row.
    worse = propensity.gap_attribution(y, p, np.full(400, 0.5), np.where(np.arange(400) < 10, None, "known"))
    assert worse.attrs["gap"] < 0 and len(worse) == 2 and worse["customers"].sum() == 400
    with pytest.raises(ValueError, match="one entry per customer"):
        propensity.gap_attribution(y, p, p, ["a"] * 3)


def test_ranking_agreement():
    cv = pd.Series({"logistic_regression": 0.90, "random_forest": 0.91, "xgboost": 0.92})
    same = propensity.ranking_agreement(cv, cv + 0.01)
    assert same["first_order"] == same["second_order"] == ["xgboost", "random_forest", "logistic_regression"]
    assert same["same_best"] and same["same_order"] and same["kendall_tau"] == pytest.approx(1.0)
    swapped = propensity.ranking_agreement(cv, pd.Series({"xgboost": 0.93, "random_forest": 0.80, "logistic_regression": 0.85}))
    assert swapped["same_best"] and not swapped["same_order"]
    flipped = propensity.ranking_agreement(cv, pd.Series({"xgboost": 0.80, "random_forest": 0.85, "logistic_regression": 0.90}))
    assert not flipped["same_best"] and flipped["kendall_tau"] == pytest.approx(-1.0)
    # Only the candidates both scorings have are compared.
    assert propensity.ranking_agreement(cv, pd.Series({"xgboost": 0.5}))["first_order"] == ["xgboost"]
    with pytest.raises(ValueError, match="share no candidate"):
        propensity.ranking_agreement(cv, pd.Series({"svm": 0.5}))


# --------------------------------------------------------------------------------------------
# 11. Calibration of a candidate
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibrated_wraps_a_fitted_calibrator(split, columns, models, method):
    numeric, categorical = columns
    settings = dataclasses.replace(SETTINGS, calibration=method)
    pipeline = propensity.tuned("xgboost", {"n_estimators": 20, "max_depth": 2, "learning_rate": 0.1},
                                numeric, categorical, settings)
    model = propensity.calibrated(pipeline, split.train, numeric, categorical, settings)
    assert isinstance(model, CalibratedClassifierCV) and model.method == method
    assert len(model.calibrated_classifiers_) == settings.cv_folds
    X = transform.model_frame(split.test[numeric + categorical])
    p = model.predict_proba(X)[:, 1]
    assert p.shape == (len(split.test),) and ((p >= 0) & (p <= 1)).all()
    uncalibrated = models["xgboost"].predict_proba(X)[:, 1]
    assert not np.allclose(p, uncalibrated)
    assert roc_auc_score(split.test["label"].astype(int), p) > 0.5


# --------------------------------------------------------------------------------------------
# 7. Settings from params.yaml
# --------------------------------------------------------------------------------------------
def real_model_section() -> tuple[dict, int]:
    params = load_params(REPO / "params.yaml")
    return copy.deepcopy(params["model"]), params["seed"]


def test_settings_from_the_real_params():
    section, seed = real_model_section()
    settings = propensity.ModelSettings.from_params(section, seed)
    assert settings.seed == seed and settings.cv_folds == section["cv_folds"]
    assert set(settings.grids) <= set(propensity.FAMILIES)
    assert settings.calibration in ("isotonic", "sigmoid")
    assert settings.grids == section["grids"] and settings.overfit_gap_warning == section["overfit_gap_warning"]


def test_settings_reject_an_unknown_candidate():
    section, seed = real_model_section()
    section["grids"]["svm"] = {"C": [1.0]}
    with pytest.raises(ParamsError, match=r"params\.yaml model.*svm"):
        propensity.ModelSettings.from_params(section, seed)


def test_settings_reject_a_bad_calibration_method():
    section, seed = real_model_section()
    section["calibration"] = "platt"
    with pytest.raises(ParamsError, match=r"params\.yaml model.*platt"):
        propensity.ModelSettings.from_params(section, seed)


@pytest.mark.parametrize("key", ["cv_folds", "grids", "lime_top_k", "lime_background", "lime_stability_customers", "short_history_days"])
def test_settings_report_a_missing_key(key):
    section, seed = real_model_section()
    del section[key]
    with pytest.raises(ParamsError, match=rf"params\.yaml model.*{key}"):
        propensity.ModelSettings.from_params(section, seed)


# --------------------------------------------------------------------------------------------
# 9. The simulator's true probability (the oracle)
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# 10. The attribute database and the stage's outputs
# --------------------------------------------------------------------------------------------


def scores_frame(ids) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": ids, "propensity": np.linspace(0.9, 0.1, len(ids)),
                         "model_version": "m-1", "scored_at": "2025-05-01T00:00:00"})


def test_write_outputs_writes_scores_plots_and_metrics(tmp_path):
    y, p = synthetic(500, 11)
    curves = propensity.curves(y, p)
    scores = scores_frame(list(range(1, 501))).assign(propensity=p)
    metrics = {"champion": {"name": "xgboost", "version": "m-1"}, "test": propensity.evaluate(y, p),
               "roc_auc_95ci": list(propensity.bootstrap_interval(y, p, roc_auc_score, 20, seed=0))}
    returned = propensity.write_outputs(tmp_path, scores=scores, champion_curves=curves, metrics=metrics)
    assert returned == metrics
    stored = pd.read_parquet(tmp_path / paths.PROPENSITY_DIR / "scores.parquet")
    assert len(stored) == 500 and np.allclose(stored["propensity"], p)
    view = attributes.read_table(tmp_path / paths.PROPENSITY_ATTRIBUTES, "customer_attributes")
    assert len(view) == 500 and view["customer_id"].is_unique
    expected_columns = {"roc": ["fpr", "tpr"], "pr": ["recall", "precision"],
                        "gains": ["share_targeted", "share_of_buyers"], "lift": ["decile", "lift", "cumulative_lift"],
                        "calibration": ["predicted", "observed"]}
    for name, wanted in expected_columns.items():
        csv = pd.read_csv(tmp_path / paths.MODEL_PLOTS / f"{name}.csv")
        assert list(csv.columns) == wanted and len(csv) == len(curves[name])
        assert np.allclose(csv.to_numpy(), curves[name].to_numpy(), atol=1e-6)
    written = json.loads((tmp_path / paths.MODEL_METRICS).read_text())
    assert written["champion"] == {"name": "xgboost", "version": "m-1"}
    assert written["test"]["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert written["test"]["base_rate"] == pytest.approx(y.mean())
    assert len(written["roc_auc_95ci"]) == 2
