"""Where the gap to the oracle comes from: pair credit, the exact split of the gap over groups, the groupings of
the report, which group carries more than its size, and how the true probability moved between windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from atelier.model import attribution

from .model_shop import synthetic


def test_pair_credit_adds_up_to_the_auc_for_buyers_and_for_non_buyers():
    y, p = synthetic(500, 15)
    p = np.round(p, 1)  # many ties: they count half
    credit = attribution.pair_credit(y, p)
    assert credit[y == 1].sum() == pytest.approx(roc_auc_score(y, p))
    assert credit[y == 0].sum() == pytest.approx(roc_auc_score(y, p))
    assert (credit >= 0).all()
    # By hand: buyers score 0.9 and 0.4, non-buyers 0.5 and 0.4; four pairs.
    by_hand = attribution.pair_credit(np.array([1, 1, 0, 0]), np.array([0.9, 0.4, 0.5, 0.4]))
    assert np.allclose(by_hand, np.array([2, 0.5, 1, 1.5]) / 4)
    with pytest.raises(ValueError, match="at least one buyer and one non-buyer"):
        attribution.pair_credit(np.zeros(3, dtype=int), np.array([0.1, 0.2, 0.3]))


def test_gap_attribution_splits_the_gap_exactly_and_finds_where_it_is():
    rng = np.random.default_rng(16)
    n = 6000
    group = np.where(np.arange(n) < n // 2, "hard", "easy")
    oracle = rng.uniform(0.01, 0.6, n)
    y = (rng.random(n) < oracle).astype(int)
    # The model knows the truth for "easy" customers and only a noisy version of it for "hard" ones.
    model = np.where(group == "easy", oracle, np.clip(oracle + rng.normal(0, 0.3, n), 0, 1))
    table = attribution.gap_attribution(y, model, oracle, pd.Series(group, name="difficulty"))
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
    # The hard half carries more than its size, the easy half less.
    assert attribution.over_size(table).index.tolist() == ["hard", "easy"]
    assert attribution.over_size(table)["hard"] == pytest.approx(table.at["hard", "share_of_gap"] / 0.5)
    assert attribution.widest_gap_within(table) == "hard"


def test_gap_attribution_edge_cases():
    y, p = synthetic(400, 17)
    # A model equal to the oracle leaves no gap to share.
    same = attribution.gap_attribution(y, p, p, np.where(p > 0.5, "a", "b"))
    assert same.attrs["gap"] == 0 and (same["gap_points"] == 0).all() and same["share_of_gap"].isna().all()
    # A group without buyers has no within-group AUC, but still carries part of the gap.
    groups = np.where(y == 1, "buyers", "others")
    table = attribution.gap_attribution(y, p**3 + 0.2 * np.random.default_rng(0).random(400), p, groups)
    assert np.isnan(table.at["others", "model_auc"]) and np.isnan(table.at["buyers", "oracle_auc"])
    assert table["gap_points"].sum() == pytest.approx(table.attrs["gap"])
    assert attribution.widest_gap_within(table) is None  # no group has both AUCs
    # A model better than the "oracle" gives a negative gap; customers without a group are their own row.
    worse = attribution.gap_attribution(y, p, np.full(400, 0.5), np.where(np.arange(400) < 10, None, "known"))
    assert worse.attrs["gap"] < 0 and len(worse) == 2 and worse["customers"].sum() == 400
    with pytest.raises(ValueError, match="one entry per customer"):
        attribution.gap_attribution(y, p, p, ["a"] * 3)


def test_groupings_by_activity_history_and_persona():
    labels = attribution.GroupLabels(active_recency_days=90, short_history_days=60)
    test = pd.DataFrame({"recency_days": [10.0, 90.0, 91.0, np.nan], "tenure_days": [30.0, 60.0, 400.0, np.nan]})
    assert labels.active_mask(test).tolist() == [True, True, False, False]
    grouped = attribution.groupings(test, labels, None)
    assert set(grouped) == {"activity", "history"}  # no persona without the truth
    assert grouped["activity"].tolist() == ["active (seen in 90 days)"] * 2 + [attribution.DORMANT] * 2
    assert grouped["history"].tolist() == ["short (< 60 days)"] + ["longer (>= 60 days)"] * 3
    personas = pd.Series(["keen", "browser", "keen", "browser"])
    assert attribution.groupings(test, labels, personas)["persona"].tolist() == personas.tolist()


def test_gap_tables_split_the_same_gap_over_every_grouping():
    y, oracle = synthetic(1000, 18)
    model = np.clip(oracle + np.random.default_rng(19).normal(0, 0.2, 1000), 0, 1)
    grouped = {"halves": np.where(np.arange(1000) < 500, "first", "second"), "parity": np.arange(1000) % 2}
    tables = attribution.gap_tables(y, model, oracle, grouped)
    assert list(tables) == ["halves", "parity"] and tables["parity"].index.name == "parity"
    assert tables["halves"].attrs["gap"] == pytest.approx(tables["parity"].attrs["gap"])
    assert tables["parity"]["gap_points"].sum() == pytest.approx(tables["parity"].attrs["gap"])


def test_probability_rise_by_group():
    test = np.array([0.2, 0.2, 0.1, 0.1])
    training = np.array([0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    rise = attribution.probability_rise(test, pd.Series(["keen", "keen", "calm", "calm"]), training,
                                        np.array(["keen", "keen", "keen", "calm", "calm", "calm"]))
    assert rise.index.tolist() == ["keen", "all", "calm"]  # by ratio, largest first
    assert rise.at["keen", "ratio"] == pytest.approx(2.0) and rise.at["calm", "ratio"] == pytest.approx(1.0)
    assert rise.at["all", "test"] == pytest.approx(0.15) and rise.at["all", "ratio"] == pytest.approx(1.5)
