"""Tests for atelier.replay.explanations: LIME on the replay's decisions, and how explanations are stored."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from atelier.core.io import write_parquet
from atelier.replay import drift, explanations


@pytest.fixture(scope="module")
def explained(context, strong_run, snapshots):
    """Three decisions of the strong replay explained, with the training snapshots as LIME's reference."""
    loop = strong_run[0]
    reference = drift.visitor_reference(snapshots, context.tables["events"], context.cutoff, context.scorer)
    decisions, profiles = loop.frames("decisions"), loop.frames("profiles")
    return explanations.explain_decisions(context, decisions, profiles, reference, 3), decisions, profiles, reference


def test_a_sample_of_scored_decisions_is_explained_with_its_banner_and_segment(explained, context):
    result, decisions, _, _ = explained
    assert len(result) == 3 and result.lines["session_id"].is_unique
    chosen = decisions.set_index("session_id").loc[result.lines["session_id"]]
    assert chosen["propensity"].notna().all(), "only scored decisions are explained"
    for line, (_, decision) in zip(result.lines.itertuples(index=False), chosen.iterrows()):
        assert line.why.startswith(f"Banner '{decision['banner']}' (segment {decision['segment']}). ")
        assert (line.banner, line.segment) == (decision["banner"], decision["segment"])
    assert (result.lines["milliseconds"] > 0).all()
    assert set(result.rows["feature"]) <= set(context.scorer.features)
    assert result.rows.groupby("session_id").size().max() <= explanations.TOP_FEATURES
    assert result.rows["value"].dtype == "string"


def test_explanations_repeat_for_the_seed(explained, context):
    result, decisions, profiles, reference = explained
    again = explanations.explain_decisions(context, decisions, profiles, reference, 3)
    pd.testing.assert_frame_equal(again.rows, result.rows)
    pd.testing.assert_frame_equal(again.lines.drop(columns="milliseconds"), result.lines.drop(columns="milliseconds"))


def test_nothing_is_explained_without_a_champion_a_scored_decision_or_a_sample(explained, context):
    _, decisions, profiles, reference = explained
    cases = [(dataclasses.replace(context, scorer=None), decisions, 3),
             (context, decisions.assign(propensity=np.nan), 3), (context, decisions, 0)]
    for ctx, frame, n in cases:
        empty = explanations.explain_decisions(ctx, frame, profiles, reference, n)
        assert len(empty) == 0 and list(empty.lines.columns) == explanations.LINE_COLUMNS
        assert len(empty.stored()) == 0


def test_stored_explanations_carry_their_decisions_sentence_and_latency(explained):
    result = explained[0]
    stored = result.stored()
    assert len(stored) == len(result.rows)
    by_session = result.lines.set_index("session_id")
    assert (stored["why"].to_numpy() == by_session.loc[stored["session_id"], "why"].to_numpy()).all()


def test_explanation_values_mixing_numbers_and_categories_are_stored_as_text(tmp_path):
    values = pd.Series([3.14159, "female", np.nan, 12, None, True], dtype=object)
    text = values.map(explanations.value_text).astype("string")
    assert text.tolist()[:2] == ["3.142", "female"] and text.isna().tolist() == [False, False, True, False, True, False]
    assert text.iloc[3] == "12" and text.iloc[5] == "True"
    path = write_parquet(pd.DataFrame({"feature": ["a"] * 6, "value": text}), tmp_path / "explanations.parquet")
    assert pd.read_parquet(path)["value"].tolist()[1] == "female"
