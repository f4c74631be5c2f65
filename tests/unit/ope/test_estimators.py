"""The estimators on logs whose truth is known exactly (`atelier.ope.synthetic`): unbiased where theory says so,
intervals that hold the truth about as often as they claim, the variance ordering, clipping, ESS, and clear
refusals of logs they cannot use."""

from __future__ import annotations

import numpy as np
import pytest

from atelier.ope import estimators as E
from atelier.ope.synthetic import SyntheticBandit, repeated_estimates, summary

SEEDS, ROUNDS = 60, 2_000


@pytest.fixture(scope="module")
def bandit() -> SyntheticBandit:
    return SyntheticBandit.make(seed=3)


@pytest.fixture(scope="module")
def checked(bandit):
    return summary(repeated_estimates(bandit, ROUNDS, SEEDS, n_boot=150))


def test_the_truth_is_the_exact_sum(bandit):
    uniform = np.full_like(bandit.logger, 1 / bandit.logger.shape[1])
    assert bandit.value(uniform) == pytest.approx(bandit.reward_probability.mean())
    best = bandit.reward_probability.max(axis=1).mean()
    assert bandit.value(bandit.logger) < bandit.value(bandit.target) <= best


@pytest.mark.parametrize("method", ["ipw", "snipw", "dr", "dr_oracle"])
def test_weighted_estimators_are_unbiased_and_their_intervals_cover(checked, method):
    row = checked.loc[method]
    # The mean of SEEDS independent estimates sits within 3 standard errors of the truth.
    assert abs(row["bias"]) < 3 * row["spread"] / np.sqrt(SEEDS)
    # Percentile bootstrap intervals at 95 %: over 60 logs, 51 to 60 hits (binomial 95 % band is about 52-60).
    assert 0.85 <= row["coverage"] <= 1.0


def test_the_known_variance_ordering(checked):
    assert checked.loc["snipw", "spread"] < checked.loc["ipw", "spread"]
    assert checked.loc["dr_oracle", "spread"] < checked.loc["ipw", "spread"]
    assert checked.loc["dr", "spread"] < checked.loc["ipw", "spread"]
    # DM moves least of all, but its shrunk cell-means model makes it biased: it misses the truth.
    assert checked.loc["dm", "spread"] < checked.loc["dr", "spread"]
    assert abs(checked.loc["dm", "bias"]) > 3 * checked.loc["dm", "spread"] / np.sqrt(SEEDS)


def test_a_good_reward_model_removes_most_of_the_weights_variance():
    # With frequent rewards most of IPW's variance comes from the weights times the mean reward, which a good
    # model predicts: DR keeps only the reward noise.
    frequent = SyntheticBandit.make(seed=3, rates=(0.4, 0.9))
    checked = summary(repeated_estimates(frequent, ROUNDS, 30, n_boot=20))
    assert checked.loc["dr_oracle", "spread"] < 0.6 * checked.loc["ipw", "spread"]
    assert checked.loc["dr", "spread"] < 0.8 * checked.loc["ipw", "spread"]
    assert checked.loc["snipw", "spread"] < checked.loc["ipw", "spread"]


def test_dm_with_the_true_model_needs_no_weights(bandit):
    log, context = bandit.sample(ROUNDS, seed=1)
    exact = (bandit.target[context] * bandit.reward_probability[context]).sum(axis=1).mean()
    found = E.estimate("dm", log, bandit.target[context], bandit.reward_probability[context], n_boot=20)
    assert found.value == pytest.approx(exact) and found.max_weight == 0.0


def test_clipping_caps_the_weights_trades_variance_for_bias(bandit):
    clipped = summary(repeated_estimates(bandit, ROUNDS, 30, n_boot=20, clip=1.0))
    plain = summary(repeated_estimates(bandit, ROUNDS, 30, n_boot=20))
    # Weights above 1 are where the target favours what the logger rarely did: capping them loses reward mass.
    assert clipped.loc["ipw", "bias"] < -3 * clipped.loc["ipw", "spread"] / np.sqrt(30)
    assert clipped.loc["ipw", "spread"] < plain.loc["ipw", "spread"]
    log, context = bandit.sample(ROUNDS, seed=2)
    raw, _ = E.weights(log, bandit.target[context])
    capped, count = E.weights(log, bandit.target[context], clip=2.0)
    assert capped.max() == 2.0 and count == int((raw > 2.0).sum()) > 0
    assert np.array_equal(E.weights(log, bandit.target[context], clip=raw.max())[0], raw)
    with pytest.raises(ValueError, match="positive weight cap"):
        E.weights(log, bandit.target[context], clip=0)


def test_effective_sample_size():
    assert E.effective_sample_size(np.ones(50)) == pytest.approx(50)
    assert E.effective_sample_size(np.r_[1000.0, np.full(99, 0.001)]) == pytest.approx(1.0, abs=0.01)
    assert E.effective_sample_size(np.zeros(5)) == 0.0
    w = np.array([1.0, 2.0, 3.0])
    assert E.effective_sample_size(w) == pytest.approx(36 / 14)


def _tiny_log(**changes) -> E.BanditLog:
    fields = dict(action=np.array([0, 1, 0, 1]), reward=np.array([1.0, 0.0, 0.0, 1.0]),
                  propensity=np.array([0.5, 0.5, 0.5, 0.5]), logger=np.full((4, 2), 0.5))
    return E.BanditLog(**{**fields, **changes})


@pytest.mark.parametrize(("change", "message"), [
    ({"propensity": np.array([0.5, np.nan, 0.5, 0.5])}, "propensity is missing in 1 of 4"),
    ({"propensity": np.array([0.5, 0.0, 0.5, 0.5])}, r"must lie in \(0, 1\]"),
    ({"propensity": np.array([0.5, 1.5, 0.5, 0.5])}, r"must lie in \(0, 1\]"),
    ({"reward": np.array([1.0, np.nan, 0.0, 0.0])}, "reward has missing values"),
    ({"action": np.array([0, 1, 2, 0])}, "column indices 0..1"),
    ({"reward": np.array([1.0, 0.0])}, "reward has 2 rows"),
])
def test_a_log_without_what_ope_needs_is_refused(change, message):
    with pytest.raises(ValueError, match=message):
        E.estimate("ipw", _tiny_log(**change), np.full((4, 2), 0.5))


def test_an_empty_log_and_a_misshapen_policy_are_refused():
    with pytest.raises(ValueError, match="no logged rounds"):
        E.estimate("ipw", E.BanditLog(np.array([], dtype=int), np.array([]), np.array([])), np.zeros((0, 2)))
    with pytest.raises(ValueError, match="one row per round"):
        E.estimate("dr", _tiny_log(), np.full((4, 2), 0.5), q=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="needs a reward model"):
        E.estimate("dr", _tiny_log(), np.full((4, 2), 0.5))
    with pytest.raises(ValueError, match="method must be one of"):
        E.estimate("magic", _tiny_log(), np.full((4, 2), 0.5))


def test_a_policy_going_where_the_logger_never_went_is_refused_but_dm_can_still_answer():
    logger = np.array([[1.0, 0.0]] * 4)  # the logger only ever took action 0
    log = _tiny_log(action=np.zeros(4, dtype=int), propensity=np.ones(4), logger=logger)
    target = np.array([[0.0, 1.0]] * 2 + [[1.0, 0.0]] * 2)
    assert E.overlap(log, target) == {"checked": 1, "rounds_without_support": 2, "mass_without_support": 0.5}
    for method in ("ipw", "snipw", "dr"):
        with pytest.raises(E.OverlapError, match="in 2 of 4 rounds"):
            E.estimate(method, log, target, q=np.full((4, 2), 0.3))
    assert E.estimate("dm", log, target, q=np.full((4, 2), 0.3), n_boot=10).value == pytest.approx(0.3)
    # Without the logger's distribution the check cannot run, and says so.
    assert E.overlap(_tiny_log(logger=None), target)["checked"] == 0


def test_a_cluster_bootstrap_is_wider_when_rounds_are_copies_of_each_other(bandit):
    log, context = bandit.sample(400, seed=4)
    copies = 5  # every round logged five times: one customer, five identical visits
    repeated = E.BanditLog(action=np.repeat(log.action, copies), reward=np.repeat(log.reward, copies),
                           propensity=np.repeat(log.propensity, copies))
    target = np.repeat(bandit.target[context], copies, axis=0)
    clustered = E.BanditLog(**{**repeated.__dict__, "cluster": np.repeat(np.arange(400), copies)})
    naive, honest = (E.estimate("ipw", x, target, n_boot=300, seed=0) for x in (repeated, clustered))
    assert naive.value == pytest.approx(honest.value)
    assert honest.ci_high - honest.ci_low > 1.8 * (naive.ci_high - naive.ci_low)


def test_dm_refits_widen_the_interval_a_fixed_model_would_give(bandit):
    log, context = bandit.sample(1_000, seed=5)
    n_contexts, n_actions = bandit.reward_probability.shape

    def fit(rows):
        return E.cell_means(log, context, rows, n_contexts, n_actions)[context]

    target = bandit.target[context]
    draws = E.refit_dm_draws(log, [target], fit, 100, seed=0)[0]
    fixed = E.estimate("dm", log, target, fit(np.arange(len(log))), n_boot=100)
    refitted = E.estimate("dm", log, target, fit(np.arange(len(log))), n_boot=100, dm_draws=draws)
    assert refitted.value == fixed.value
    assert refitted.ci_high - refitted.ci_low > 2 * (fixed.ci_high - fixed.ci_low)


def test_crossfit_never_predicts_a_round_from_its_own_reward():
    # Every round is alone in its context: a model that saw it would predict its own reward exactly.
    n = 200
    log = E.BanditLog(action=np.zeros(n, dtype=int), reward=np.tile([0.0, 1.0], n // 2), propensity=np.ones(n))
    context = np.arange(n)
    q = E.crossfit_cell_means(log, context, n, 1, prior=1.0)
    own = E.cell_means(log, context, np.arange(n), n, 1, prior=1.0)[context]
    assert np.abs(q[:, 0] - log.reward).min() > 0.3  # out of fold: only the shrunk overall mean
    assert np.abs(own[:, 0] - log.reward).max() < 0.3  # in fold: pulled towards its own reward


def test_relative_difference_of_a_policy_with_itself_is_zero(bandit):
    log, context = bandit.sample(1_000, seed=6)
    same = E.relative_difference("ipw", log, bandit.target[context], bandit.target[context], n_boot=50)
    assert same == {"relative": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    better = E.relative_difference("snipw", log, bandit.target[context], bandit.logger[context], n_boot=200)
    truth = bandit.value(bandit.target) / bandit.value(bandit.logger) - 1
    assert better["ci_low"] <= truth <= better["ci_high"]
    with pytest.raises(ValueError, match="weighted estimators"):
        E.relative_difference("dm", log, bandit.target[context], bandit.logger[context])


def test_rounds_needed_scale_with_the_inverse_square_of_the_half_width(bandit):
    log, context = bandit.sample(5_000, seed=7)
    wide = E.rounds_for_half_width(log, bandit.target[context], 0.02)
    narrow = E.rounds_for_half_width(log, bandit.target[context], 0.01)
    assert narrow == pytest.approx(4 * wide, rel=0.01)
    # The normal interval for this many rounds really has about that half-width.
    found = E.estimate("ipw", log, bandit.target[context], n_boot=300)
    implied = E.rounds_for_half_width(log, bandit.target[context], (found.ci_high - found.ci_low) / 2)
    assert implied == pytest.approx(len(log), rel=0.2)
    with pytest.raises(ValueError, match="positive"):
        E.rounds_for_half_width(log, bandit.target[context], 0.0)
