"""Tests for atelier.trust: LIME against exact contributions, per customer, and when not to trust it.

The model is one whose behaviour we plant: P(order) falls steeply with recency_days (the dominant
feature), rises moderately with frequency and sessions_90d, and does not depend on share_mobile or
region. It is built the way `candidates.tuned` builds the xgboost candidate (ordinal demographics,
no imputation), shallow enough on 2,000 customers that it does not learn much noise.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_params

from atelier.core.config import ParamsError
from atelier.core.io import read_json, write_json
from atelier.data import transform
from atelier.model import candidates, explain
from atelier.model.champion import Champion
from atelier.model.explain import TabularExplainer
from atelier.robustness import trust

NUMERIC = ["recency_days", "frequency", "sessions_90d", "share_mobile"]
CATEGORICAL = ["region"]
SEEDS = [0, 1, 2]
SAMPLES = 300
TOP_K = 3


def synthetic_features(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "recency_days": rng.exponential(60, n),
            "frequency": rng.poisson(1.0, n).astype(float),
            "sessions_90d": rng.poisson(3.0, n).astype(float),
            "share_mobile": np.where(rng.random(n) < 0.2, np.nan, rng.random(n)),
            "region": pd.array(rng.choice(["north", "south", "east"], n), dtype="string"),
        },
        index=pd.Index(np.arange(n), name="customer_id"),
    )
    logit = (
        -(frame["recency_days"].to_numpy() - 40) / 10
        + 1.0 * (frame["frequency"].to_numpy() - 1)
        + 0.5 * (frame["sessions_90d"].to_numpy() - 3)
    )
    frame["label"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int8")
    return frame


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return synthetic_features()


@pytest.fixture(scope="module")
def pipeline(features):
    settings = dataclasses.replace(candidates.ModelSettings.from_params(tiny_params()["model"], 0), threads=1)
    candidate = candidates.tuned(
        "xgboost", {"n_estimators": 60, "max_depth": 2, "learning_rate": 0.2}, NUMERIC, CATEGORICAL, settings
    )
    return candidates.fit(candidate, features, NUMERIC, CATEGORICAL)


@pytest.fixture(scope="module")
def explainer(features, pipeline) -> TabularExplainer:
    def predict(frame: pd.DataFrame) -> np.ndarray:
        return pipeline.predict_proba(transform.model_frame(frame))

    return TabularExplainer(features.sample(300, random_state=0), NUMERIC, CATEGORICAL, predict, num_samples=SAMPLES)


@pytest.fixture(scope="module")
def review(features, pipeline, explainer) -> pd.DataFrame:
    return trust.explanation_review(explainer, pipeline, features.iloc[:8], seeds=SEEDS, num_features=TOP_K)


# --------------------------------------------------------------------------------------------
# The review
# --------------------------------------------------------------------------------------------
def test_review_has_one_row_per_customer_with_bounded_checks(features, review):
    assert list(review.index) == list(features.index[:8])
    assert list(review.columns) == ["lime_score", *trust.AGREEMENT, "prediction", "verdict", "reasons"]
    shares = review[["sign_agreement", "top_k_overlap_with_exact", "seed_stability"]]
    assert ((shares >= 0) & (shares <= 1)).all().all()
    assert review["rank_correlation"].dropna().between(-1, 1).all()
    assert review["lime_score"].le(1).all() and review["prediction"].between(0, 1).all()
    assert set(review["verdict"]) <= set(trust.VERDICTS)
    assert (review["reasons"] == "").eq(review["verdict"] == "trust").all()


def test_same_seeds_give_an_identical_review(features, pipeline, explainer, review):
    again = trust.explanation_review(explainer, pipeline, features.iloc[:8], seeds=SEEDS, num_features=TOP_K)
    pd.testing.assert_frame_equal(review, again)


def test_the_planted_dominant_feature_agrees_with_the_exact_contributions(review):
    # Measured: sign agreement 0.81-0.99 on average, median rank correlation 0.83-1.0 for data seeds 0-2.
    # A customer whose frequency is average gets a near-zero contribution from it, whose sign LIME may miss.
    assert review["sign_agreement"].mean() >= 0.75
    assert review["rank_correlation"].median() >= 0.6
    assert review["top_k_overlap_with_exact"].median() >= 0.6


def test_agreement_measures_follow_their_definitions(features, pipeline):
    """An 'explainer' that returns the exact contributions (scaled) agrees fully; negated, every sign is wrong."""
    rows = features.iloc[:4]
    exact = explain.xgboost_contributions(pipeline, transform.model_frame(rows)).drop(columns="bias")

    class Scripted:
        columns, num_samples = NUMERIC + CATEGORICAL, 1

        def __init__(self, scale: float) -> None:
            self.scale = scale

        def explain(self, row: pd.Series, *, seed: int, num_features: int) -> pd.DataFrame:
            top = exact.loc[row.name].abs().sort_values(ascending=False).index[:num_features]
            table = pd.DataFrame({"feature": top, "weight": self.scale * exact.loc[row.name, top].to_numpy()})
            table.attrs = {"score": 0.9, "prediction": 0.5}
            return table

    agreeing = trust.explanation_review(Scripted(0.1), pipeline, rows, seeds=[0, 1], num_features=TOP_K)
    assert (
        (agreeing[["sign_agreement", "rank_correlation", "top_k_overlap_with_exact", "seed_stability"]] == 1)
        .all()
        .all()
    )
    assert (agreeing["verdict"] == "trust").all()
    opposed = trust.explanation_review(Scripted(-0.1), pipeline, rows, seeds=[0, 1], num_features=TOP_K)
    assert (opposed["sign_agreement"] == 0).all() and (opposed["rank_correlation"] == 1).all()
    assert (opposed["verdict"] == "caution").all()


def test_num_samples_overrides_for_the_review_only(features, pipeline, explainer):
    trust.explanation_review(explainer, pipeline, features.iloc[:1], seeds=[0, 1], num_features=2, num_samples=100)
    assert explainer.num_samples == SAMPLES


def test_clear_errors_for_no_rows_or_too_few_seeds(features, pipeline, explainer):
    with pytest.raises(ValueError, match="no rows"):
        trust.explanation_review(explainer, pipeline, features.iloc[:0], seeds=SEEDS, num_features=TOP_K)
    for seeds in ([], [3], [3, 3]):
        with pytest.raises(ValueError, match="two different seeds"):
            trust.explanation_review(explainer, pipeline, features.iloc[:2], seeds=seeds, num_features=TOP_K)


# --------------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------------
def test_verdict_thresholds_are_applied_as_documented():
    review = pd.DataFrame(
        {
            "lime_score": [0.6, 0.4, 0.6, 0.6, 0.4, 0.1, np.nan, 0.5, 0.6, 0.4],
            "seed_stability": [0.9, 0.9, 0.5, 0.9, 0.5, 0.2, 0.9, 0.6, 0.9, 0.9],
            "sign_agreement": [1.0, 1.0, 1.0, 0.6, 1.0, 0.4, 1.0, 0.8, 1.0, 1.0],
            "top_k_overlap_with_exact": [1.0, 1.0, 1.0, 1.0, 1.0, 0.1, 1.0, 0.6, 0.5, 0.5],
        },
        index=list("abcdefghij"),
    )
    thresholds = trust.Thresholds(
        min_lime_score=0.5, min_seed_stability=0.6, min_sign_agreement=0.8, min_top_k_overlap=0.6
    )
    judged = trust.verdicts(review, thresholds)
    assert judged["verdict"].tolist() == [
        "trust",
        "caution",
        "caution",
        "caution",
        "do not trust",
        "do not trust",
        "caution",
        "trust",  # h: at the thresholds
        "caution",
        "do not trust",  # i: top-k overlap alone; j: with the surrogate fit
    ]
    assert judged.loc["b", "reasons"] == "surrogate R² 0.40 < 0.5"
    assert judged.loc["f", "reasons"].count(";") == 3 and "sign agreement 0.40 < 0.8" in judged.loc["f", "reasons"]
    assert judged.loc["i", "reasons"] == "top-k overlap 0.50 < 0.6"
    assert "surrogate R² nan" in judged.loc["g", "reasons"]  # undefined fails
    lenient = trust.verdicts(
        review,
        trust.Thresholds(min_lime_score=0.0, min_seed_stability=0.0, min_sign_agreement=0.0, min_top_k_overlap=0.0),
    )
    assert lenient["verdict"].tolist() == ["trust"] * 6 + ["caution"] + ["trust"] * 3
    with pytest.raises(ValueError, match="seed_stability"):
        trust.verdicts(review.drop(columns="seed_stability"))
    with pytest.raises(ValueError, match="top_k_overlap_with_exact"):
        trust.verdicts(review.drop(columns="top_k_overlap_with_exact"))


def test_check_pass_rates_say_which_check_fails():
    review = pd.DataFrame(
        {
            "lime_score": [0.2, 0.3, 0.6, 0.1],
            "seed_stability": [0.9, 0.9, 0.9, 0.4],
            "sign_agreement": [1.0, 1.0, 1.0, 1.0],
            "top_k_overlap_with_exact": [0.8, 0.4, 0.7, 0.8],
        }
    )
    rates = trust.check_pass_rates(review, trust.Thresholds())
    assert rates.index.tolist() == [label for _, label, _, _ in trust.CHECKS]
    assert rates["passed"].tolist() == [1, 3, 4, 3]
    assert rates["pass_rate"].tolist() == [0.25, 0.75, 1.0, 0.75]
    assert rates["threshold"].tolist() == [0.5, 0.6, 0.8, 0.6]
    assert rates.at["surrogate R²", "median"] == pytest.approx(0.25)
    # Row 0 fails the surrogate fit only; rows 1 and 3 fail two checks; row 2 passes everything.
    assert rates["only_failure"].tolist() == [1, 0, 0, 0]
    verdicts = trust.verdicts(review)["verdict"]
    assert verdicts.tolist() == ["caution", "do not trust", "trust", "do not trust"]
    assert rates["only_failure"].sum() == (verdicts == "caution").sum()
    with pytest.raises(ValueError, match="empty"):
        trust.check_pass_rates(review.iloc[:0])


def test_chance_overlap_is_the_hypergeometric_expectation():
    # 5 of 8: shares 2 (10/56), 3 (30/56), 4 (15/56) or 5 (1/56) features; Jaccard s / (10 - s).
    assert trust.chance_overlap(8, 5) == pytest.approx((10 * 2 / 8 + 30 * 3 / 7 + 15 * 4 / 6 + 1) / 56)
    assert trust.chance_overlap(5, 5) == 1.0 and trust.chance_overlap(6, 9) == 1.0  # every feature is picked
    assert trust.chance_overlap(10, 1) == pytest.approx(0.1)
    rng = np.random.default_rng(0)
    draws = [len(set(rng.choice(8, 3, replace=False)) & {0, 1, 2}) for _ in range(20_000)]
    assert trust.chance_overlap(8, 3) == pytest.approx(np.mean([s / (6 - s) for s in draws]), abs=0.01)
    with pytest.raises(ValueError, match="1 or more"):
        trust.chance_overlap(0, 3)


def test_surrogate_ceiling_fits_at_least_as_well_as_the_top_k(features, explainer, review):
    rows = features.iloc[:4][NUMERIC + CATEGORICAL]
    ceiling = trust.surrogate_ceiling(explainer, rows, seed=SEEDS[0])
    assert list(ceiling.index) == list(rows.index) and ceiling.le(1).all()
    top_k = [
        explainer.explain(rows.iloc[i], seed=SEEDS[0], num_features=TOP_K).attrs["score"] for i in range(len(rows))
    ]
    assert (ceiling.to_numpy() >= np.asarray(top_k) - 1e-9).all()  # more features never fit worse (same perturbations)
    assert explainer.num_samples == SAMPLES
    with pytest.raises(ValueError, match="no rows"):
        trust.surrogate_ceiling(explainer, rows.iloc[:0], seed=0)


# --------------------------------------------------------------------------------------------
# Correlated features, summaries
# --------------------------------------------------------------------------------------------
def test_correlated_pairs_finds_duplicated_and_monotone_columns(features):
    frame = features.assign(recency_copy=features["recency_days"], log_sessions=np.log1p(features["sessions_90d"]))
    pairs = trust.correlated_pairs(frame, threshold=0.8)
    found = {frozenset(p) for p in zip(pairs["feature_a"], pairs["feature_b"])}
    assert found == {frozenset({"recency_days", "recency_copy"}), frozenset({"sessions_90d", "log_sessions"})}
    assert np.allclose(pairs["spearman"], 1.0)
    negative = trust.correlated_pairs(features.assign(minus=-features["frequency"]))
    assert negative["spearman"].tolist() == [pytest.approx(-1.0)]
    assert trust.correlated_pairs(features[NUMERIC]).empty
    with pytest.raises(ValueError, match="threshold"):
        trust.correlated_pairs(features, threshold=1.5)


def test_agreement_by_confidence_bins_and_groups(review):
    table = trust.agreement_by_confidence(review, bins=2)
    assert table["customers"].sum() == len(review) and len(table) == 2
    assert (table["lime_score_min"] <= table["lime_score_max"]).all()
    assert table["lime_score_max"].iloc[0] <= table["lime_score_min"].iloc[1]  # bins ordered by surrogate R²
    assert set(table.attrs["spearman_with_lime_score"]) == set(trust.AGREEMENT)
    by_verdict = trust.agreement_by_confidence(review, by="verdict")
    assert set(by_verdict.index) == set(review["verdict"]) and by_verdict["customers"].sum() == len(review)


def test_summary_is_json_serializable(review, tmp_path):
    summary = trust.review_summary(review)
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary
    assert set(summary["verdict_shares"]) == set(trust.VERDICTS)
    assert sum(summary["verdict_shares"].values()) == pytest.approx(1.0)
    assert summary["customers"] == len(review)
    assert list(summary["checks"]) == [key for key, _, _, _ in trust.CHECKS]
    rates = trust.check_pass_rates(review)
    assert [c["pass_rate"] for c in summary["checks"].values()] == rates["pass_rate"].tolist()
    strict = trust.review_summary(review, trust.Thresholds(min_lime_score=1.01))
    assert (
        strict["checks"]["surrogate_fit"]["threshold"] == 1.01 and strict["checks"]["surrogate_fit"]["pass_rate"] == 0.0
    )
    undefined = trust.review_summary(review.assign(rank_correlation=np.nan))
    assert np.isnan(undefined["median_rank_correlation"])  # the metrics file writes it as null
    assert read_json(write_json(undefined, tmp_path / "summary.json"))["median_rank_correlation"] is None


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------
def test_settings_from_params_and_their_errors():
    section = tiny_params()["robustness"]["explainability"]
    settings = trust.ExplainSettings.from_params(section)
    assert (settings.customers, settings.seeds, settings.correlation_threshold) == (
        4,
        2,
        section["correlation_threshold"],
    )
    assert settings.thresholds == trust.Thresholds(
        section["min_lime_score"],
        section["min_seed_stability"],
        section["min_sign_agreement"],
        section["min_top_k_overlap"],
    )
    with pytest.raises(ParamsError, match="explainability: missing key 'min_top_k_overlap'"):
        trust.Thresholds.from_params({k: v for k, v in section.items() if k != "min_top_k_overlap"})
    with pytest.raises(ParamsError, match="explainability.min_lime_score: a number between 0 and 1"):
        trust.ExplainSettings.from_params({**section, "min_lime_score": 1.5})
    with pytest.raises(ParamsError, match="explainability.seeds: a number 2 or more"):
        trust.ExplainSettings.from_params({**section, "seeds": 1})
    with pytest.raises(ParamsError, match="whole numbers"):
        trust.ExplainSettings.from_params({**section, "customers": 2.5})


# --------------------------------------------------------------------------------------------
# The champion's review and its reading
# --------------------------------------------------------------------------------------------
def test_review_champion_explains_a_seeded_sample_of_the_test_customers(features, pipeline):
    champion = Champion(pipeline, version="v1", metadata={"name": "xgboost", "features": NUMERIC + CATEGORICAL})
    settings = trust.ExplainSettings(customers=3, seeds=2, thresholds=trust.Thresholds(), correlation_threshold=0.8)
    result = trust.review_champion(
        champion,
        features.iloc[:1000],
        features.iloc[1000:],
        settings,
        seed=0,
        top_k=TOP_K,
        num_samples=SAMPLES,
        background=200,
    )
    assert len(result.review) == 3 and result.review.index.isin(features.index[1000:]).all()
    assert result.ceiling.index.equals(result.review.index) and (result.features, result.top_k) == (5, TOP_K)
    assert result.chance == pytest.approx(trust.chance_overlap(5, TOP_K))
    assert result.check_rates.equals(trust.check_pass_rates(result.review))
    again = trust.review_champion(
        champion,
        features.iloc[:1000],
        features.iloc[1000:],
        settings,
        seed=0,
        top_k=TOP_K,
        num_samples=SAMPLES,
        background=200,
    )
    pd.testing.assert_frame_equal(result.review, again.review)
    forest = Champion(pipeline, version="v1", metadata={"name": "random_forest", "features": NUMERIC + CATEGORICAL})
    with pytest.raises(ValueError, match="exact contributions need one of"):
        trust.review_champion(forest, features, features, settings, seed=0, top_k=TOP_K, num_samples=SAMPLES)


def test_chance_correlation_and_association():
    assert trust.chance_correlation(30) == pytest.approx(1.959964 / np.sqrt(29), rel=1e-5)
    assert trust.chance_correlation(2) == np.inf
    assert trust.association(0.45, 30) == "more" and trust.association(-0.45, 30) == "less"
    assert trust.association(0.16, 30) == "hardly" and trust.association(0.16, 400) == "more"
    assert trust.association(np.nan, 30) == "hardly" and trust.association(0.9, 2) == "hardly"


def planted_review(
    *,
    lime: list[float],
    ceiling: list[float],
    overlap: list[float],
    stability: list[float],
    signs: list[float],
    chance: float = 0.4,
) -> trust.ChampionReview:
    """A review with the columns the reading uses, its ceiling and yardsticks planted."""
    frame = pd.DataFrame(
        {
            "lime_score": lime,
            "sign_agreement": signs,
            "rank_correlation": 0.5,
            "top_k_overlap_with_exact": overlap,
            "seed_stability": stability,
            "prediction": 0.1,
        }
    )
    frame = frame.join(trust.verdicts(frame))
    return trust.ChampionReview(
        review=frame,
        ceiling=pd.Series(ceiling, index=frame.index),
        chance=chance,
        check_rates=trust.check_pass_rates(frame),
        features=9,
        top_k=5,
    )


UP, DOWN, FLAT = list(np.linspace(0.1, 1.0, 10)), list(np.linspace(1.0, 0.1, 10)), [0.7, 0.6] * 5


@pytest.mark.parametrize(
    ("overlap", "stability", "signs", "tells"),
    [
        (UP, FLAT, FLAT, "which features"),
        (FLAT, UP, DOWN, "which features"),
        (FLAT, FLAT, UP, "direction"),
        (UP, UP, UP, "both"),
        (FLAT, FLAT, FLAT, "neither"),
        (DOWN, DOWN, FLAT, "neither"),
    ],
)
def test_review_reading_says_what_a_better_fit_goes_with(overlap, stability, signs, tells):
    lime = list(np.linspace(0.1, 0.4, 10))
    reading = trust.review_reading(
        planted_review(lime=lime, ceiling=lime, overlap=overlap, stability=stability, signs=signs)
    )
    assert reading["fit_tells"] == tells
    assert reading["chance_spearman"] == pytest.approx(trust.chance_correlation(10))


def test_review_reading_says_why_the_fit_fails_and_whether_the_bar_can_be_reached():
    low = [0.2] * 10
    shape = trust.review_reading(planted_review(lime=low, ceiling=[0.22] * 10, overlap=UP, stability=UP, signs=UP))
    assert (
        shape["fit_cause"] == "model shape" and shape["fit_gap"] == pytest.approx(0.02) and shape["fit_reachable"] == 0
    )
    assert shape["weakest"] == "surrogate R²" and shape["chance_below_bar"] is True
    few = trust.review_reading(
        planted_review(lime=low, ceiling=[0.3] * 5 + [0.6] * 5, overlap=UP, stability=UP, signs=UP, chance=0.7)
    )
    assert few["fit_cause"] == "too few features" and few["fit_reachable"] == 0.5 and few["chance_below_bar"] is False
