"""Segments against the simulator's hidden personas: ARI and NMI, each persona's home, and personas that look alike."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from atelier.segment import agreement


def test_truth_agreement_ignores_label_ids():
    personas = pd.Series(["loyal", "loyal", "bargain", "bargain", "browser", "browser"])
    perfect = agreement.truth_agreement(np.array([2, 2, 0, 0, 1, 1]), personas)
    assert perfect == {"ari": pytest.approx(1.0), "nmi": pytest.approx(1.0)}
    worse = agreement.truth_agreement(np.array([0, 1, 0, 1, 0, 1]), personas)
    assert worse["ari"] < 0.5 and worse["nmi"] < 0.5


def test_confusion_counts_customers_by_segment_and_persona():
    index = pd.Index([10, 11, 12, 13], name="customer_id")
    counts = agreement.confusion(pd.Series(["A", "A", "B", "B"], index=index),
                                 pd.Series(["x", "y", "y", "y"], index=index))
    assert counts.loc["A", "x"] == 1 and counts.loc["B", "y"] == 2 and counts.loc["B", "x"] == 0
    assert (counts.index.name, counts.columns.name) == ("segment", "persona")


def counts_table() -> pd.DataFrame:
    """Customers by segment (rows) and persona (columns), made up: loyal lives in Loyal, the rest spread."""
    return pd.DataFrame(
        {"loyal": [8, 1, 1], "lapsing": [0, 6, 4], "new": [1, 5, 4], "bargain": [4, 3, 3]},
        index=pd.Index(["Loyal", "Lapsing", "Browsers"], name="segment"),
    )


def test_persona_homes_by_hand():
    homes = agreement.persona_homes(counts_table())
    assert list(homes.index) == ["loyal", "lapsing", "new", "bargain"]
    assert homes["segment"].tolist() == ["Loyal", "Lapsing", "Lapsing", "Loyal"]
    assert homes["share"].tolist() == pytest.approx([0.8, 0.6, 0.5, 0.4])
    assert homes["home"].tolist() == [True, True, True, False]  # half is enough; 40 % is not
    assert agreement.persona_homes(counts_table(), home_share=0.7)["home"].tolist() == [True, False, False, False]


def test_look_alikes_are_personas_sharing_their_largest_segment():
    homes = agreement.persona_homes(counts_table())
    assert agreement.look_alikes(homes) == {"Lapsing": ["lapsing", "new"], "Loyal": ["loyal", "bargain"]}
    apart = agreement.persona_homes(pd.DataFrame({"x": [3, 1], "y": [1, 3]}, index=["A", "B"]))
    assert agreement.look_alikes(apart) == {}


@pytest.mark.parametrize("ari, word", [(1.0, "largely"), (0.8, "largely"), (0.79, "partly"), (0.5, "partly"),
                                       (0.49, "hardly"), (0.13, "hardly"), (-0.1, "hardly")])
def test_recovery_words_the_ari(ari, word):
    assert agreement.recovery(ari) == word
