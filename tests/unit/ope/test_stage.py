"""Tests for atelier.ope.stage's exploratory and truth runs: independent closed loops, the same on 2 workers as 1
(and as the first run here while the others run on worker processes)."""

from __future__ import annotations

import dataclasses
from functools import partial

import pandas as pd

from atelier.core.parallel import dealt_map
from atelier.ope import stage as ope_stage
from atelier.replay.explore import Exploration


def test_runs_on_two_workers_are_the_runs_one_after_another(context):
    settings = dataclasses.replace(context.settings, treatment_share=0.0)
    start = context.initial_state()
    policies = [Exploration(epsilon=0.5), Exploration(epsilon=0.0, base="personalized"),
                Exploration(epsilon=0.0, base="default")]
    run = partial(ope_stage.explored_run, context, start, settings, 24)
    serial = [run(policy) for policy in policies]
    for parallel in (dealt_map(run, policies, workers=2), ope_stage.shared_runs(run, policies, workers=2),
                     ope_stage.shared_runs(run, policies, workers=1)):
        assert len(parallel) == len(serial)
        for (visits, decisions), (expected_visits, expected_decisions) in zip(parallel, serial, strict=True):
            pd.testing.assert_frame_equal(visits, expected_visits)
            pd.testing.assert_frame_equal(decisions, expected_decisions)
    explored, personalized, default = serial
    assert len(explored[0]) > 30 and explored[0]["session_id"].tolist() == default[0]["session_id"].tolist()
    assert explored[1]["experience"].nunique() > 1  # it explored
    # each run starts from its own copy: the shared start state is untouched, so a rerun gives the same visits
    pd.testing.assert_frame_equal(run(policies[1])[0], personalized[0])
    assert set(default[0]["experience"]) == {"default"} and "personalized" in set(personalized[0]["experience"])
