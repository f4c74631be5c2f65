"""Re-clustering with stable names: matching new clusters to old ones, inherited names, and who moved."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from atelier.core.persist import load_skops, save_skops
from atelier.segment import cluster, recluster

from .segment_shop import FAST, fitted_blobs


def test_match_segments_undoes_a_known_permutation(tmp_path):
    frame, _, old, _, labels = fitted_blobs()
    permutation = np.array([2, 0, 3, 1])  # new cluster j has old cluster permutation[j]'s centre
    new = load_skops(save_skops(old, tmp_path / "copy.skops"))  # an independent copy
    new.named_steps["kmeans"].cluster_centers_ = old.named_steps["kmeans"].cluster_centers_[permutation]
    new_labels = cluster.assign(new, frame)
    np.testing.assert_array_equal(permutation[new_labels], labels)
    matching = recluster.match_segments(old, new, frame)
    assert matching.index.name == "new_segment"
    assert matching["old_segment"].to_dict() == {j: int(permutation[j]) for j in range(4)}
    assert (matching["distance"] < 1e-9).all()
    np.testing.assert_array_equal(recluster.relabel(new_labels, matching), labels)


def test_match_segments_after_refit_with_another_seed_and_row_order():
    frame, _, old, _, labels = fitted_blobs()
    order = np.random.default_rng(1).permutation(len(frame))
    new = cluster.fit_segmenter(frame.iloc[order], dataclasses.replace(FAST, seed=1))
    new_labels = cluster.assign(new, frame)
    assert adjusted_rand_score(labels, new_labels) == 1.0
    assert not np.array_equal(new_labels, labels)  # the ids really are permuted (else the test proves nothing)
    matching = recluster.match_segments(old, new, frame)
    np.testing.assert_array_equal(recluster.relabel(new_labels, matching), labels)
    assert sorted(matching["old_segment"]) == [0, 1, 2, 3]
    assert (matching["distance"] < 1e-6).all()


def test_match_segments_follows_clusters_that_moved():
    frame, _, old, _, labels = fitted_blobs()
    shifted = frame + np.array([0.8, -0.6, 0.5])  # each blob moves a little (blob sd 0.6, gaps ~10)
    new = cluster.fit_segmenter(shifted, dataclasses.replace(FAST, seed=99))
    matching = recluster.match_segments(old, new, shifted)
    np.testing.assert_array_equal(recluster.relabel(cluster.assign(new, shifted), matching), labels)
    # each match's distance is the shift measured in the old model's scaled space
    scale = old.named_steps["prepare"].named_steps["scale"].scale_
    np.testing.assert_allclose(matching["distance"], np.linalg.norm(np.array([0.8, -0.6, 0.5]) / scale), rtol=1e-6)


def test_inherit_names_and_count_agreement():
    matching = pd.DataFrame({"old_segment": [2, 0, 1], "distance": [0.1, 0.2, 0.3]},
                            index=pd.Index([0, 1, 2], name="new_segment"))
    old_names = {0: "Lapsing", 1: "Window Browsers", 2: "High-Value Loyal"}
    today = {0: "High-Value Loyal", 1: "Lapsing", 2: "More visits"}
    inherited = recluster.inherit_names(matching, old_names, today)
    assert inherited["inherited name"].tolist() == ["High-Value Loyal", "Lapsing", "Window Browsers"]
    assert inherited["name by today's rules"].tolist() == ["High-Value Loyal", "Lapsing", "More visits"]
    assert inherited["distance"].tolist() == [0.1, 0.2, 0.3]
    assert recluster.names_agree(inherited) == 2
    assert recluster.names_agree(recluster.inherit_names(matching, old_names, {0: "x", 1: "y", 2: "z"})) == 0


def test_transitions_count_only_customers_in_both():
    previous = pd.Series(["A", "A", "B", "B", "C"], index=[1, 2, 3, 4, 5])
    current = pd.Series(["B", "A", "B", "A", "C"], index=[2, 3, 4, 6, 7])
    moves = recluster.transitions(previous, current)
    assert int(moves.to_numpy().sum()) == 3  # customers 2 (A->B), 3 (B->A), 4 (B->B)
    assert moves.loc["A", "B"] == 1 and moves.loc["B", "A"] == 1 and moves.loc["B", "B"] == 1
    assert moves.loc["A", "A"] == 0
    assert "C" not in moves.index and "C" not in moves.columns
    assert moves.index.name == "previous" and moves.columns.name == "current"
    assert recluster.kept_share(moves) == 1 / 3  # only customer 4 kept B


def test_kept_share_with_segments_on_one_side_only_and_with_nobody_in_both():
    moves = pd.DataFrame([[3, 1], [0, 4]], index=["A", "B"], columns=["A", "C"])
    assert recluster.kept_share(moves) == 3 / 8  # B has no column: nobody can have kept it
    assert np.isnan(recluster.kept_share(recluster.transitions(pd.Series(["A"], index=[1]),
                                                               pd.Series(["A"], index=[2]))))
