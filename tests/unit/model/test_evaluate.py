"""Out-of-time evaluation on hand-made scores: metrics, curves, deciles, bootstrap and paired intervals, interval
overlap, calibration checks and the drift verdict (every branch), and the ranking agreement of two scorings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from atelier.model import evaluate

from .model_shop import perfect, synthetic


def test_summary_of_perfect_and_reversed_rankings():
    y, p = perfect()
    metrics = evaluate.summary(y, p)
    assert metrics["roc_auc"] == 1.0 and metrics["pr_auc"] == pytest.approx(1.0)
    assert metrics["base_rate"] == pytest.approx(0.1)
    assert metrics["lift_top10"] == pytest.approx(1 / 0.1)
    assert evaluate.summary(y, p[::-1])["roc_auc"] == 0.0
    assert evaluate.summary(y, p[::-1])["lift_top10"] == 0.0


def test_summary_brier_and_log_loss_by_hand():
    y, p = np.array([1, 0, 1, 0]), np.array([0.8, 0.4, 0.5, 0.0])
    metrics = evaluate.summary(y, p)
    assert metrics["brier"] == pytest.approx((0.2**2 + 0.4**2 + 0.5**2 + 0.0) / 4)
    # log loss clips p = 0 to 1e-6 rather than returning infinity or NaN.
    assert metrics["log_loss"] == pytest.approx(-(np.log(0.8) + np.log(0.6) + np.log(0.5) + np.log(1 - 1e-6)) / 4)
    assert np.isfinite(evaluate.summary(np.array([1, 0]), np.array([0.0, 1.0]))["log_loss"])


def test_lift_at_by_hand():
    y, p = perfect(100, 10)
    assert evaluate.lift_at(y, p, 0.1) == pytest.approx(10.0)
    assert evaluate.lift_at(y, p, 0.2) == pytest.approx(5.0)  # all 10 buyers among the top 20
    assert evaluate.lift_at(y, p, 0.05) == pytest.approx(10.0)
    assert evaluate.lift_at(y, p, 1.0) == pytest.approx(1.0)  # everyone targeted: the base rate
    y2 = np.array([0, 1, 0, 0, 1, 0, 0, 0, 0, 0])
    p2 = np.arange(10, 0, -1) / 10  # the top 2 by score: rows 0 and 1, one buyer out of two
    assert evaluate.lift_at(y2, p2, 0.2) == pytest.approx(0.5 / 0.2)
    assert np.isnan(evaluate.lift_at(np.zeros(10, dtype=int), p2, 0.1))


def test_decile_table_ranks_by_score():
    rng = np.random.default_rng(3)
    p = rng.random(1000)
    y = (rng.random(1000) < p).astype(int)
    table = evaluate.decile_table(y, p)
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
    table = evaluate.decile_table(y, p)
    assert table.loc[1, "buyer_rate"] == 1.0 and table.loc[1, "lift"] == pytest.approx(10.0)
    assert (table.loc[2:, "buyers"] == 0).all()
    assert (table["cumulative_share_of_buyers"] == 1.0).all()
    sizes = evaluate.decile_table(*perfect(95, 9))["customers"]
    assert sizes.sum() == 95 and set(sizes) <= {9, 10} and len(sizes) == 10


def test_curves_shapes_and_ends():
    rng = np.random.default_rng(4)
    p = rng.random(5000)
    y = (rng.random(5000) < p).astype(int)
    curves = evaluate.curves(y, p)
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
    assert lift["lift"].iloc[0] > 1 > lift["lift"].iloc[-1]  # the top decile beats random, the bottom does not
    assert lift["cumulative_lift"].is_monotonic_decreasing and lift["cumulative_lift"].iloc[-1] == pytest.approx(1.0)


def test_lift_by_decile_by_hand():
    y, p = perfect(100, 10)  # all ten buyers in the top decile
    lift = evaluate.lift_by_decile(y, p)
    assert lift.loc[0, "lift"] == pytest.approx(10.0) and (lift.loc[1:, "lift"] == 0).all()
    # Cumulative lift down to decile d: 10 buyers among the top 10*d customers, over the base rate 0.1.
    assert np.allclose(lift["cumulative_lift"], [10 / (10 * d) / 0.1 for d in range(1, 11)])
    # Agrees with the decile table and with lift_at at the top 10 %.
    table = evaluate.decile_table(*synthetic(1000, 12))
    again = evaluate.lift_by_decile(*synthetic(1000, 12))
    assert np.allclose(again["lift"], table["lift"])
    y, p = synthetic(1000, 12)
    assert again.loc[0, "cumulative_lift"] == pytest.approx(evaluate.lift_at(y, p, 0.1))
    # Random scores give a lift near 1 in every decile.
    rng = np.random.default_rng(13)
    flat = evaluate.lift_by_decile((rng.random(20_000) < 0.2).astype(int), rng.random(20_000))
    assert (flat["lift"] - 1).abs().max() < 0.15


def test_model_curves_draws_a_lift_panel():
    import matplotlib.pyplot as plt

    from atelier.report import plots

    y, p = synthetic(2000, 14)
    figure = plots.model_curves({"model": evaluate.curves(y, p)}, oracle=evaluate.curves(y, p))
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["ROC", "Precision-recall", "Cumulative gains", "Lift by decile", "Calibration (deciles)"]
    lift_axis = figure.axes[3]
    lines = [line for line in lift_axis.get_lines() if line.get_label() in ("model", "oracle (true probability)")]
    assert len(lines) == 2 and list(lines[0].get_xdata()) == list(range(1, 11))
    assert np.allclose(lines[0].get_ydata(), evaluate.lift_by_decile(y, p)["lift"])
    plt.close(figure)


def test_calibration_curve_of_calibrated_scores_lies_on_the_diagonal():
    rng = np.random.default_rng(5)
    p = rng.uniform(0.01, 0.99, 20_000)
    y = (rng.random(p.size) < p).astype(int)
    calibration = evaluate.curves(y, p)["calibration"]
    assert len(calibration) == 10
    # 2,000 rows per bin: the standard error of an observed rate is at most 0.011.
    assert (calibration["observed"] - calibration["predicted"]).abs().max() < 0.05
    # The same outcomes against squared (overconfidently low) scores are far off the diagonal.
    skewed = evaluate.curves(y, p**2)["calibration"]
    assert (skewed["observed"] - skewed["predicted"]).abs().max() > 0.15


# --------------------------------------------------------------------------------------------
# Intervals
# --------------------------------------------------------------------------------------------
def test_bootstrap_interval_contains_the_estimate_and_is_seeded():
    y, p = synthetic(400, 6)
    point = roc_auc_score(y, p)
    low, high = evaluate.bootstrap_interval(y, p, roc_auc_score, 100, seed=7)
    assert low < point < high
    assert evaluate.bootstrap_interval(y, p, roc_auc_score, 100, seed=7) == (low, high)
    assert evaluate.bootstrap_interval(y, p, roc_auc_score, 100, seed=8) != (low, high)
    narrower = evaluate.bootstrap_interval(y, p, roc_auc_score, 100, seed=7, level=0.5)
    assert low <= narrower[0] <= narrower[1] <= high


def test_bootstrap_interval_narrows_with_more_data():
    small = evaluate.bootstrap_interval(*synthetic(200, 9), roc_auc_score, 100, seed=1)
    large = evaluate.bootstrap_interval(*synthetic(5000, 9), roc_auc_score, 100, seed=1)
    assert (large[1] - large[0]) < (small[1] - small[0]) / 2  # width ~ 1/sqrt(n): 5x narrower expected


def test_bootstrap_interval_skips_one_class_resamples():
    # Two rows, one buyer: half the resamples hold a single class and AUC is undefined there.
    y, p = np.array([1, 0]), np.array([0.9, 0.1])
    assert evaluate.bootstrap_interval(y, p, roc_auc_score, 50, seed=0) == (1.0, 1.0)


def test_paired_difference_tells_a_real_improvement_from_a_tie():
    y, truth = synthetic(3000, 20)
    blurred = np.clip(truth + np.random.default_rng(21).normal(0, 0.3, truth.size), 0, 1)
    better = evaluate.brier_difference(y, blurred, truth, 200, seed=0)  # truth has the lower Brier score
    assert better.change == pytest.approx(brier_score_loss(y, truth) - brier_score_loss(y, blurred))
    assert better.low <= better.change <= better.high < 0 and better.verdict == evaluate.LOWER
    worse = evaluate.brier_difference(y, truth, blurred, 200, seed=0)
    assert worse.verdict == evaluate.HIGHER and worse.low > 0
    nudged = evaluate.brier_difference(y, truth, np.clip(truth + 1e-4, 0, 1), 200, seed=0)
    assert nudged.verdict == evaluate.TIE and nudged.low <= 0 <= nudged.high


def test_intervals_overlap_compares_every_other_candidate_with_the_champion():
    intervals = pd.Series({"xgboost": (0.90, 0.92), "random_forest": (0.91, 0.93), "logistic_regression": (0.80, 0.89),
                           "touching": (0.92, 0.95)})
    assert evaluate.intervals_overlap(intervals, "xgboost") == {
        "random_forest": True, "logistic_regression": False, "touching": True}
    assert evaluate.intervals_overlap(intervals[["xgboost"]], "xgboost") == {}


def test_candidate_table_and_subset_aucs():
    y, truth = synthetic(2000, 22)
    noisy = np.clip(truth + np.random.default_rng(23).normal(0, 0.2, truth.size), 0, 1)
    scores = {"sharp": truth, "noisy": noisy}
    table = evaluate.candidate_table(y, scores, pd.Series({"noisy": 0.7, "sharp": 0.8}), 50, seed=0)
    assert list(table.index) == ["sharp", "noisy"] and table.at["sharp", "cv_auc"] == 0.8
    assert table.at["noisy", "roc_auc"] == pytest.approx(roc_auc_score(y, noisy))
    low, high = table.at["sharp", "roc_auc_95ci"]
    assert low < table.at["sharp", "roc_auc"] < high
    active = truth > 0.3
    subsets = evaluate.subset_aucs(y, scores, active, "active", oracle=truth)
    assert list(subsets.index) == ["sharp", "noisy", "oracle (true probability)"]
    assert list(subsets.columns) == ["all customers", "active"]
    assert subsets.at["noisy", "active"] == pytest.approx(roc_auc_score(y[active], noisy[active]))
    assert "oracle (true probability)" not in evaluate.subset_aucs(y, scores, active, "active").index
    oracle = evaluate.oracle_summary(y, truth, active, 50, seed=0)
    assert oracle["active_roc_auc"] == pytest.approx(subsets.at["oracle (true probability)", "active"])
    assert oracle["roc_auc"] == pytest.approx(roc_auc_score(y, truth)) and len(oracle["roc_auc_95ci"]) == 2


def test_calibration_table_has_one_row_per_variant():
    y, p = synthetic(500, 24)
    table = evaluate.calibration_table(y, {"raw": p, "squared": p**2})
    assert list(table.index) == ["raw", "squared"] and list(table.columns) == ["brier", "log_loss", "roc_auc"]
    assert table.at["squared", "roc_auc"] == pytest.approx(table.at["raw", "roc_auc"])  # same ranking
    assert table.at["squared", "brier"] > table.at["raw", "brier"]


# --------------------------------------------------------------------------------------------
# Calibration checks and the drift verdict
# --------------------------------------------------------------------------------------------
def calibrated_sample(n: int = 20_000, seed: int = 30, scale: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, scale, n)
    return (rng.random(n) < p).astype(int), p


def test_calibration_check_of_true_probabilities_is_on_the_diagonal():
    y, p = calibrated_sample()
    check = evaluate.calibration_check(y, p)
    assert check.direction == evaluate.MATCHES and check.on_diagonal and abs(check.z) < evaluate.Z_LIMIT
    assert check.observed_rate == pytest.approx(y.mean()) and check.mean_predicted == pytest.approx(p.mean())


def test_calibration_check_sees_under_and_over_prediction():
    y, p = calibrated_sample()
    low = evaluate.calibration_check(y, p * 0.7)
    assert low.direction == evaluate.UNDER and low.z > evaluate.Z_LIMIT and not low.on_diagonal
    high = evaluate.calibration_check(y, np.minimum(p * 1.4, 1))
    assert high.direction == evaluate.OVER and high.z < -evaluate.Z_LIMIT and not high.on_diagonal
    # Right on average, wrong decile by decile (pulled halfway to the mean): it matches in the large, yet it is
    # off the diagonal. A constant score at the base rate, by contrast, is calibrated: P(order | score) = score.
    timid = evaluate.calibration_check(y, p.mean() + 0.5 * (p - p.mean()))
    assert timid.direction == evaluate.MATCHES and not timid.on_diagonal
    assert evaluate.calibration_check(y, np.full(y.size, y.mean())).on_diagonal


def test_calibration_check_of_certain_scores():
    y = np.array([0, 0, 1, 1])
    assert evaluate.calibration_check(y, np.array([0.0, 0.0, 1.0, 1.0])).on_diagonal  # certain and right
    wrong = evaluate.calibration_check(y, np.array([0.0, 1.0, 1.0, 0.0]), bins=2)
    assert wrong.hosmer_lemeshow == np.inf and wrong.p_value == 0.0 and not wrong.on_diagonal
    assert evaluate.calibration_check(np.array([1, 0]), np.array([0.0, 0.0])).z == np.inf


def check(z: float, p_value: float = 0.5, observed: float = 0.05) -> evaluate.CalibrationCheck:
    return evaluate.CalibrationCheck(observed_rate=observed, mean_predicted=0.04, z=z, hosmer_lemeshow=1.0,
                                     p_value=p_value)


@pytest.mark.parametrize(("champion", "oracle", "training_rate", "verdict"), [
    (check(0.5), check(0.1), 0.03, evaluate.CALIBRATED),
    (check(0.5), None, 0.03, evaluate.CALIBRATED),
    (check(0.5, p_value=0.001), None, 0.03, evaluate.OFF_DIAGONAL),
    (check(0.5, p_value=0.001), check(0.1), 0.03, evaluate.OFF_DIAGONAL),
    (check(5.0), None, 0.03, evaluate.UNKNOWN),
    (check(5.0), check(0.1, p_value=0.001), 0.03, evaluate.ORACLE_OFF),
    (check(5.0), check(3.0), 0.03, evaluate.ORACLE_OFF),
    (check(5.0), check(0.1), 0.03, evaluate.DRIFT),    # under-predicts a rise
    (check(-5.0), check(0.1), 0.08, evaluate.DRIFT),   # over-predicts a fall
    (check(5.0), check(0.1), 0.08, evaluate.MISCALIBRATED),  # under-predicts, yet the rate fell
    (check(-5.0), check(0.1), 0.05, evaluate.MISCALIBRATED),  # the rate did not move
])
def test_drift_verdict(champion, oracle, training_rate, verdict):
    assert evaluate.drift_verdict(champion, oracle, training_rate) == verdict


# --------------------------------------------------------------------------------------------
# Do CV and the test month rank candidates alike?
# --------------------------------------------------------------------------------------------
def test_ranking_agreement():
    cv = pd.Series({"logistic_regression": 0.90, "random_forest": 0.91, "xgboost": 0.92})
    same = evaluate.ranking_agreement(cv, cv + 0.01)
    assert same["first_order"] == same["second_order"] == ["xgboost", "random_forest", "logistic_regression"]
    assert same["same_best"] and same["same_order"] and same["kendall_tau"] == pytest.approx(1.0)
    swapped = evaluate.ranking_agreement(cv, pd.Series({"xgboost": 0.93, "random_forest": 0.80,
                                                        "logistic_regression": 0.85}))
    assert swapped["same_best"] and not swapped["same_order"]
    flipped = evaluate.ranking_agreement(cv, pd.Series({"xgboost": 0.80, "random_forest": 0.85,
                                                        "logistic_regression": 0.90}))
    assert not flipped["same_best"] and flipped["kendall_tau"] == pytest.approx(-1.0)
    # Only the candidates both scorings have are compared.
    assert evaluate.ranking_agreement(cv, pd.Series({"xgboost": 0.5}))["first_order"] == ["xgboost"]
    with pytest.raises(ValueError, match="share no candidate"):
        evaluate.ranking_agreement(cv, pd.Series({"svm": 0.5}))
