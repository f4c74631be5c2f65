"""Tests for atelier.explain: LIME on the raw feature frame, xgboost contributions, comparisons, sentences.

The model is one whose behaviour we control: P(order) depends steeply on recency_days, a little on
the rest, and not at all on `ignored` (the pipeline drops that column before the model sees it).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

from atelier.model import explain
from atelier.model.explain import MISSING, TabularExplainer

NUMERIC = ["recency_days", "frequency", "avg_order_value", "cart_abandonment_rate", "ignored"]
CATEGORICAL = ["gender", "region"]
USED = NUMERIC[:-1]  # the model never sees `ignored`
SAMPLES = 500


def synthetic_features(n: int = 800, seed: int = 0) -> pd.DataFrame:
    """Shaped like the real snapshots: NaN where undefined, string demographics with gaps, bookkeeping columns."""
    rng = np.random.default_rng(seed)
    frequency = rng.poisson(0.6, n).astype(float)
    frame = pd.DataFrame(
        {
            "cutoff": pd.Timestamp("2025-05-01"),
            "recency_days": rng.exponential(60, n),
            "frequency": frequency,
            "avg_order_value": np.where(frequency > 0, rng.gamma(2, 40, n), np.nan),
            "cart_abandonment_rate": np.where(rng.random(n) < 0.5, np.nan, rng.random(n)),
            "ignored": rng.random(n),
            "gender": pd.array(rng.choice(["female", "male", "unspecified"], n), dtype="string"),
            "region": pd.array(rng.choice(["north", "south", "east"], n), dtype="string"),
        },
        index=pd.Index(np.arange(1000, 1000 + n), name="customer_id"),
    )
    frame.loc[frame.index[::17], "gender"] = pd.NA
    chance = 1 / (1 + np.exp((frame["recency_days"].to_numpy() - 30) / 8))
    frame["label"] = (rng.random(n) < chance).astype("int8")
    return frame


def model_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """What scikit-learn wants (as atelier.transform does): categoricals as objects with NaN for gaps."""
    out = frame[NUMERIC + CATEGORICAL].copy()
    for column in CATEGORICAL:
        out[column] = out[column].astype(object).where(out[column].notna(), np.nan)
    return out


def fit_pipeline(frame: pd.DataFrame, encoder) -> Pipeline:
    columns = ColumnTransformer([("numeric", "passthrough", USED), ("categorical", encoder, CATEGORICAL)])
    model = xgboost.XGBClassifier(n_estimators=60, max_depth=3, learning_rate=0.2, n_jobs=1, random_state=0)
    return Pipeline([("columns", columns), ("model", model)]).fit(model_frame(frame), frame["label"])


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return synthetic_features()


@pytest.fixture(scope="module")
def pipeline(features) -> Pipeline:
    return fit_pipeline(features, OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1))


def proba_of(pipeline: Pipeline):
    return lambda frame: pipeline.predict_proba(model_frame(frame))


@pytest.fixture(scope="module")
def explainer(features, pipeline) -> TabularExplainer:
    training = features.sample(300, random_state=0)
    return TabularExplainer(training, NUMERIC, CATEGORICAL, proba_of(pipeline), num_samples=SAMPLES)


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------
def test_encode_decode_round_trip_keeps_undefined_and_missing(features, explainer):
    frame = features[explainer.columns]
    encoded = explainer.encode(frame)
    assert encoded.shape == (len(frame), len(NUMERIC) + len(CATEGORICAL)) and not np.isnan(encoded).any()
    aov = explainer.columns.index("avg_order_value")
    assert (encoded[frame["avg_order_value"].isna().to_numpy(), aov] == explain.UNDEFINED).all()
    gender = explainer.columns.index("gender")
    assert explainer.categories["gender"] == ["female", "male", "unspecified", MISSING]  # sorted, then missing
    assert (encoded[frame["gender"].isna().to_numpy(), gender] == 3).all()

    decoded = explainer.decode(encoded)
    pd.testing.assert_frame_equal(decoded, frame.reset_index(drop=True))
    assert decoded["gender"].isna().sum() == frame["gender"].isna().sum() > 0
    assert decoded["avg_order_value"].isna().sum() == frame["avg_order_value"].isna().sum() > 0


def test_decode_maps_off_grid_values_to_the_nearest_meaning(explainer):
    """Continuous-mode perturbations: undefined only where a feature can be undefined."""
    encoded = explainer.encode(explainer.decode(np.zeros((1, len(explainer.columns)))))
    encoded = np.repeat(encoded, 3, axis=0)
    aov, recency = explainer.columns.index("avg_order_value"), explainer.columns.index("recency_days")
    encoded[:, aov] = encoded[:, recency] = [-1.0, -0.7, -0.2]
    decoded = explainer.decode(encoded)
    assert decoded["avg_order_value"].isna().tolist() == [True, True, False]
    assert decoded["recency_days"].isna().tolist() == [True, False, False]  # -1 is still exactly "undefined"
    assert (decoded[["avg_order_value", "recency_days"]].fillna(0) >= 0).all().all()


def test_encode_rejects_negative_values(features, explainer):
    bad = features.head(3).copy()
    bad.loc[bad.index[0], "frequency"] = -2.0
    with pytest.raises(ValueError, match="frequency"):
        explainer.encode(bad)


def test_discretizer_gives_undefined_its_own_region(explainer):
    discretizer = explainer.lime.discretizer
    aov = explainer.columns.index("avg_order_value")
    names = discretizer.names[aov]
    assert names[0] == "avg_order_value is undefined" and names[1].startswith("avg_order_value <= ")
    assert len(names) == 5  # undefined + four quartile regions of the defined values
    regions = np.repeat(np.arange(len(names)), 200)
    values = discretizer.get_undiscretize_values(aov, regions)
    assert (values[regions == 0] == explain.UNDEFINED).all()  # stock LIME would give 0 here
    assert (values[regions > 0] >= 0).all()
    recoded = discretizer.lambdas[aov](values)
    assert (recoded == regions).all()  # every sampled value falls back into its own region


def test_perturbations_are_realistic_rows(features, pipeline):
    """What the model is asked about: undefined values appear (as NaN), real values stay >= 0, known categories."""
    asked: list[pd.DataFrame] = []

    def recording(frame: pd.DataFrame) -> np.ndarray:
        asked.append(frame)
        return pipeline.predict_proba(model_frame(frame))

    explainer = TabularExplainer(features.sample(300, random_state=1), NUMERIC, CATEGORICAL, recording,
                                 num_samples=SAMPLES)
    row = features[features["avg_order_value"].notna()].iloc[0]
    explainer.explain(row, seed=0)
    perturbed = asked[-1]
    assert len(perturbed) == SAMPLES and list(perturbed.columns) == explainer.columns
    assert 0.3 < perturbed["avg_order_value"].isna().mean() < 0.95  # sampled like the training share undefined
    assert perturbed["recency_days"].notna().all()  # never undefined in training, never undefined here
    assert (perturbed[NUMERIC].fillna(0) >= 0).all().all()
    assert perturbed["gender"].dtype == features["gender"].dtype
    assert set(perturbed["gender"].dropna()) <= {"female", "male", "unspecified"} and perturbed["gender"].isna().any()
    pd.testing.assert_series_equal(  # row 0 is the customer as is
        perturbed.iloc[0], row[explainer.columns].rename(0), check_dtype=False, check_names=False
    )


# --------------------------------------------------------------------------------------------
# Explanations
# --------------------------------------------------------------------------------------------
def test_explanation_table(features, pipeline, explainer):
    row = features[features["avg_order_value"].isna() & features["gender"].isna()].iloc[0]
    table = explainer.explain(row, seed=3)
    assert list(table.columns) == ["feature", "condition", "value", "weight"]
    assert set(table["feature"]) == set(NUMERIC + CATEGORICAL)  # 7 features, num_features=8
    assert (np.diff(table["weight"].abs().to_numpy()) <= 0).all()
    assert all(feature in condition for feature, condition in zip(table["feature"], table["condition"]))
    by_feature = table.set_index("feature")
    assert np.isnan(by_feature.loc["avg_order_value", "value"])
    assert by_feature.loc["avg_order_value", "condition"] == "avg_order_value is undefined"
    assert np.isnan(by_feature.loc["gender", "value"]) and by_feature.loc["gender", "condition"] == f"gender={MISSING}"
    assert by_feature.loc["recency_days", "value"] == pytest.approx(row["recency_days"])
    expected = pipeline.predict_proba(model_frame(row.to_frame().T.astype(features.dtypes.to_dict())))[0, 1]
    assert table.attrs["prediction"] == pytest.approx(expected, abs=1e-6)
    assert set(table.attrs) == {"prediction", "local_prediction", "intercept", "score", "seconds"}
    assert table.attrs["score"] <= 1 and table.attrs["seconds"] > 0
    assert table.attrs["local_prediction"] == pytest.approx(
        table.attrs["intercept"] + table["weight"].sum(), abs=1e-9
    )  # discretized: every feature of the row itself is "on"


def test_same_seed_same_explanation(features, explainer):
    row = features.iloc[5]
    first, second = explainer.explain(row, seed=11), explainer.explain(row, seed=11)
    pd.testing.assert_frame_equal(first, second)
    assert {k: v for k, v in first.attrs.items() if k != "seconds"} == {
        k: v for k, v in second.attrs.items() if k != "seconds"
    }


def test_different_seeds_differ_but_the_dominant_feature_stays_first(features, explainer):
    row = features.iloc[5]
    tables = [explainer.explain(row, seed=seed) for seed in range(5)]
    weights = [t.set_index("feature")["weight"].sort_index() for t in tables]
    assert any(not np.allclose(a, b) for a, b in itertools.combinations(weights, 2))
    assert all(t["feature"].iloc[0] == "recency_days" for t in tables)


def test_importance_ranks_the_dominant_feature_first_and_the_ignored_near_zero(features, pipeline, explainer):
    rows = features.iloc[:10]
    importance = explainer.importance(rows, seed=0)
    assert set(importance.index) == set(NUMERIC + CATEGORICAL)
    assert importance.index[0] == "recency_days"
    assert (np.diff(importance.to_numpy()) <= 0).all()
    # A feature the model never sees gets LIME's noise floor, not 0: ~0.035 at 500 samples, about
    # as much as the weakly used features (it can even rank 2nd), ~0.016 at 2000.
    assert importance["ignored"] < 0.15 * importance["recency_days"]
    finer = TabularExplainer(features.sample(300, random_state=0), NUMERIC, CATEGORICAL, proba_of(pipeline),
                             num_samples=2000)
    fine = finer.importance(rows, seed=0)
    assert fine.index[0] == "recency_days" and fine["ignored"] < 0.06 * fine["recency_days"]
    sparse = explainer.importance(rows.iloc[:2], seed=0, num_features=2)
    assert len(sparse) == 7 and (sparse > 0).sum() <= 4 and (sparse == 0).sum() >= 3  # unpicked features count 0
    assert sparse.index[0] == "recency_days"


def test_stability(features, explainer):
    rows = features.iloc[:4]
    top1 = explainer.stability(rows, seeds=[0, 1, 2, 3], top_k=1)
    assert list(top1.index) == list(rows.index)
    assert (top1["mean_jaccard"] >= 0.9).all() and (top1["top1_agreement"] >= 0.9).all()
    top3 = explainer.stability(rows, seeds=[0, 1, 2], top_k=3)
    scores = top3[["mean_jaccard", "min_jaccard", "top1_agreement"]]
    assert ((scores >= 0) & (scores <= 1)).all().all()
    assert (top3["min_jaccard"] <= top3["mean_jaccard"]).all()
    with pytest.raises(ValueError):
        explainer.stability(rows, seeds=[0])


def test_unseen_category_does_not_crash(features, pipeline):
    explainer = TabularExplainer(features.sample(200, random_state=2), NUMERIC, CATEGORICAL, proba_of(pipeline),
                                 num_samples=SAMPLES)
    row = features.iloc[0].copy()
    row["region"] = "west"  # no "west" in training
    table = explainer.explain(row, seed=0)
    assert "region=west" in set(table["condition"])
    assert explainer.decode(explainer.encode(row.to_frame().T))["region"].iloc[0] == "west"
    expected = pipeline.predict_proba(model_frame(row.to_frame().T))[0, 1]
    assert table.attrs["prediction"] == pytest.approx(expected, abs=1e-6)


def test_continuous_mode_works(features, pipeline):
    explainer = TabularExplainer(
        features.sample(200, random_state=3), NUMERIC, CATEGORICAL, proba_of(pipeline), num_samples=SAMPLES,
        discretize=False,
    )
    table = explainer.explain(features.iloc[7], seed=0)
    assert table["feature"].iloc[0] == "recency_days" and table["condition"].iloc[0] == "recency_days"


# --------------------------------------------------------------------------------------------
# xgboost contributions
# --------------------------------------------------------------------------------------------
def margin(pipeline: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    return pipeline[-1].predict(pipeline[:-1].transform(frame), output_margin=True)


def test_xgboost_contributions_sum_to_the_margin(features, pipeline):
    frame = model_frame(features)
    contributions = explain.xgboost_contributions(pipeline, frame)
    assert list(contributions.columns) == USED + CATEGORICAL + ["bias"]  # source names; `ignored` unused
    assert contributions.index.equals(frame.index)
    np.testing.assert_allclose(contributions.sum(axis=1), margin(pipeline, frame), atol=1e-4)
    mean_abs = contributions.drop(columns="bias").abs().mean()
    assert mean_abs.idxmax() == "recency_days" and mean_abs["recency_days"] > 3 * mean_abs.drop("recency_days").max()


def test_xgboost_contributions_sum_one_hot_columns_into_their_source(features):
    pipeline = fit_pipeline(features, OneHotEncoder(handle_unknown="ignore", sparse_output=False))
    frame = model_frame(features)
    assert "categorical__gender_female" in pipeline[:-1].get_feature_names_out()
    contributions = explain.xgboost_contributions(pipeline, frame)
    assert list(contributions.columns) == USED + CATEGORICAL + ["bias"]
    np.testing.assert_allclose(contributions.sum(axis=1), margin(pipeline, frame), atol=1e-4)


def test_source_feature_maps_transformer_names_back():
    sources = ["recency_days", "share", "share_mobile", "sessions_7d", "sessions_total", "gender", "avg_order_value"]
    assert explain.source_feature("numeric__recency_days", sources) == "recency_days"
    assert explain.source_feature("categorical__gender_female", sources) == "gender"
    assert explain.source_feature("gender_missing", sources) == "gender"
    assert explain.source_feature("missingindicator_avg_order_value", sources) == "avg_order_value"
    assert explain.source_feature("outer__inner__sessions_7d", sources) == "sessions_7d"
    assert explain.source_feature("sessions_total", sources) == "sessions_total"
    assert explain.source_feature("share_mobile", sources) == "share_mobile"  # exact beats prefix
    assert explain.source_feature("share_mobile_x", sources) == "share_mobile"  # longest prefix wins
    assert explain.source_feature("tenure_days", sources) is None


def test_xgboost_contributions_rejects_other_models(features):
    from sklearn.linear_model import LogisticRegression

    pipeline = Pipeline([("model", LogisticRegression())])
    with pytest.raises(TypeError):
        explain.xgboost_contributions(pipeline, model_frame(features))


# --------------------------------------------------------------------------------------------
# Comparing and reporting
# --------------------------------------------------------------------------------------------
def test_compare_importances_ranks_and_spearman():
    lime = pd.Series({"a": 0.5, "b": 0.3, "c": 0.1, "d": 0.05})
    same = pd.Series({"d": 1.0, "c": 2.0, "b": 3.0, "a": 4.0})  # same order, other scale
    reverse = pd.Series({"a": 0.0, "b": 1.0, "c": 2.0, "d": 3.0, "e": 4.0})
    partial = pd.Series({"a": 2.0, "e": 1.0})  # lacks b, c, d; has e
    table = explain.compare_importances({"lime": lime, "same": same, "reverse": reverse, "partial": partial})
    assert list(table.columns) == ["lime", "same", "reverse", "partial"]
    assert list(table.index) == ["a", "b", "c", "d", "e"]  # union, ordered by the first method
    assert table.loc["a", "lime"] == 1 and table.loc["e", "lime"] == 5  # missing counts as 0: last
    assert (table["lime"] == table["same"]).all()
    assert table.loc["a", "reverse"] == 5 and table.loc["e", "reverse"] == 1
    assert table.loc["a", "partial"] == 1 and table.loc["e", "partial"] == 2
    assert table.loc["b", "partial"] == 3  # ties: min
    rho = table.attrs["spearman"]
    assert list(rho) == ["same", "reverse", "partial"]  # LIME against itself (always 1) is no check: left out
    assert rho["same"] == pytest.approx(1.0) and rho["reverse"] == pytest.approx(-1.0)
    # partial over the union a..e is (2, 0, 0, 0, 1) against LIME's (0.5, 0.3, 0.1, 0.05, 0): ranks (5, 2, 2, 2, 4)
    # against (5, 4, 3, 2, 1), ties sharing their mean rank; by hand rho = 2 / sqrt(10 * 8).
    assert rho["partial"] == pytest.approx(2 / np.sqrt(80))


def test_readable_sentence(features, explainer):
    table = explainer.explain(features.iloc[5], seed=0)
    sentence = explain.readable(table)
    assert 0.005 < table.attrs["prediction"] < 0.995
    assert sentence.startswith(f"P(order) = {table.attrs['prediction']:.2f}. ")
    assert table["condition"].iloc[0] in sentence and "recency_days" in sentence
    assert "Pushing it up:" in sentence and "pulling it down:" in sentence

    handmade = pd.DataFrame(
        {"feature": ["x", "y", "z"], "condition": ["x <= 1", "y > 2", "z=a"], "value": [0.5, 3.0, "a"],
         "weight": [0.2, -0.1, 0.001]}
    )
    handmade.attrs["prediction"] = 0.314
    assert explain.readable(handmade) == (
        "P(order) = 0.31. Pushing it up: x <= 1 (+0.20); pulling it down: y > 2 (-0.10).")
    assert explain.readable(handmade, top=1) == (
        "P(order) = 0.31. Pushing it up: x <= 1 (+0.20); pulling it down: nothing.")
    handmade.attrs["prediction"] = 0.0013
    assert explain.readable(handmade).startswith("P(order) < 0.01. ")  # not "0.00"


# --------------------------------------------------------------------------------------------
# What the report explains, and against what
# --------------------------------------------------------------------------------------------
def test_showcase_picks_the_highest_middle_and_lowest_scores():
    scores = pd.Series([0.3, 0.9, 0.1, 0.5, 0.7], index=[10, 11, 12, 13, 14])
    assert explain.showcase(scores) == {"highest score": 11, "middle": 13, "lowest score": 12}


def test_exact_contributions_source():
    assert explain.exact_contributions_source("xgboost", ["xgboost"]) == explain.EXACT_OF_CHAMPION
    assert explain.exact_contributions_source("random_forest", {"xgboost": None}) == explain.EXACT_OF_CANDIDATE
    assert explain.exact_contributions_source("random_forest", ["random_forest"]) is None


def test_agreement_methods_label_whose_exact_contributions_they_are(features, pipeline):
    columns = NUMERIC + CATEGORICAL
    lime = pd.Series(1.0, index=columns)
    permutation = pd.Series(np.linspace(0.02, -0.01, len(columns)), index=columns[::-1])
    methods, exact_of = explain.agreement_methods(lime, permutation, columns, "xgboost", pipeline, {}, features)
    assert exact_of == explain.EXACT_OF_CHAMPION
    assert list(methods) == [explain.LIME_COLUMN, explain.PERMUTATION_COLUMN, explain.EXACT_COLUMNS[exact_of]]
    permuted = methods[explain.PERMUTATION_COLUMN]
    assert list(permuted.index) == columns and (permuted >= 0).all() and (permuted == 0).any()  # clipped at 0
    exact = explain.xgboost_contributions(pipeline, model_frame(features[columns]))
    assert np.allclose(methods[explain.EXACT_COLUMNS[exact_of]], exact.drop(columns="bias").abs().mean())
    other, of = explain.agreement_methods(lime, permutation, columns, "random_forest", None, {"xgboost": pipeline},
                                          features)
    assert of == explain.EXACT_OF_CANDIDATE and explain.EXACT_COLUMNS[of] in other
    alone, nobody = explain.agreement_methods(lime, permutation, columns, "random_forest", None, {}, features)
    assert nobody is None and list(alone) == [explain.LIME_COLUMN, explain.PERMUTATION_COLUMN]
