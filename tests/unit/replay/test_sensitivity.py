"""Tests for atelier.replay.sensitivity: the uplift at several assumed response strengths, and the check that the
interval at strength 0 covers 0."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from atelier.replay import sensitivity


def test_the_sweep_replays_the_same_visits_at_each_strength(noisy):
    sweep = sensitivity.sweep(noisy, (0.0, 2.0), days=2, n_boot=50)
    assert list(sweep.columns) == sensitivity.COLUMNS and sweep["strength"].tolist() == [0.0, 2.0]
    assert sweep["visits"].nunique() == 1 and sweep["visits"].iloc[0] > 30
    assert sweep["control"].nunique() == 1  # common random numbers: control visits play out alike
    assert sweep["treatment"].iloc[1] >= sweep["treatment"].iloc[0]  # a stronger response only adds orders
    assert (sweep["ci_low"] <= sweep["ci_high"]).all()


def test_two_workers_and_a_reused_run_give_the_same_sweep_as_one_by_one(noisy):
    serial = sensitivity.sweep(noisy, (0.0, 2.0), days=2, n_boot=50)
    kept: dict = {}
    known = {(2.0, True): sensitivity.replay_days(noisy, 2.0, 2)}
    parallel = sensitivity.sweep(noisy, (0.0, 2.0), days=2, n_boot=50, keep=kept, known=known, workers=2)
    pd.testing.assert_frame_equal(parallel, serial)
    assert kept[2.0, True] is known[2.0, True]  # reused, not replayed


def test_a_longer_loop_stopped_after_the_sweeps_days_has_made_the_sweeps_run_and_goes_on_unchanged(noisy, tmp_path):
    longer = sensitivity.windows(noisy, 3)  # the report's loop goes on to the replay's end; three days show it
    whole = noisy.closed_loop().run(until=longer, progress=False)
    paused = noisy.closed_loop(on_decisions=lambda decisions: None)
    paused.run(until=sensitivity.windows(noisy, 1), checkpoint_dir=tmp_path / "ck", progress=False)
    assert paused.window == sensitivity.windows(noisy, 1) < longer < len(whole.windows())
    pd.testing.assert_frame_equal(paused.frames("visits"),
                                  sensitivity.replay_days(noisy, noisy.settings.response_strength, 1))
    paused.run(until=longer, checkpoint_dir=tmp_path / "ck", progress=False)
    assert paused.window == whole.window == longer
    for kind in ("visits", "decisions", "dead_letters", "events", "orders", "profiles"):  # asked for midway or not
        pd.testing.assert_frame_equal(paused.frames(kind), whole.frames(kind))


def _sweep(rows: list[tuple[float, float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"strength": s, "visits": 100, "control": 0.1, "treatment": 0.1, "relative_uplift": u,
                          "ci_low": low, "ci_high": high} for s, u, low, high in rows], columns=sensitivity.COLUMNS)


@pytest.mark.parametrize("rows, covers", [
    ([(0.0, 0.04, -0.16, 0.30), (0.5, 0.37, 0.14, 0.67)], True),
    ([(0.0, 0.25, 0.05, 0.45), (0.5, 0.37, 0.14, 0.67)], False),  # a false positive, or a biased test
    ([(0.0, -0.20, -0.35, -0.02)], False),
    ([(0.0, np.nan, np.nan, np.nan)], None),  # no conversion in the control arm
])
def test_null_check_says_whether_the_interval_at_strength_zero_covers_zero(rows, covers):
    check = sensitivity.null_check(_sweep(rows))
    assert check["run"] is True and check["covers_zero"] is covers
    if covers is not None:
        assert (check["ci_low"], check["ci_high"]) == (rows[0][2], rows[0][3])


def test_null_check_without_a_strength_zero_run():
    check = sensitivity.null_check(_sweep([(0.25, 0.1, -0.1, 0.3), (0.5, 0.2, 0.0, 0.4)]))
    assert check == {"run": False, "relative_uplift": None, "ci_low": None, "ci_high": None, "covers_zero": None}


#: Strengths of the overlapped sweep: with the lent run, two started (one per worker without learned lists).
STRENGTHS = (0.0, 1.0, 2.0)


def test_a_sweep_started_in_workers_and_collected_later_is_the_sweep_made_one_by_one(noisy):
    serial = sensitivity.sweep(noisy, STRENGTHS, days=2, n_boot=50)
    lent = {(2.0, True): sensitivity.replay_days(noisy, 2.0, 2)}  # made by the caller meanwhile, as the report's loop
    for workers in (1, 2):
        pending = sensitivity.start_sweep(noisy, STRENGTHS, days=2, lent=tuple(lent), workers=workers)
        started = sorted(run for group, _ in pending.parts for run in group)
        assert started == sorted(set(sensitivity.runs_of(noisy, STRENGTHS)) - set(lent))
        assert len(pending.parts) == min(workers, len(started))  # each process its share of the runs
        kept: dict = {}
        overlapped = sensitivity.collect(pending, n_boot=50, keep=kept, known=lent)
        pd.testing.assert_frame_equal(overlapped, serial)
        assert kept[2.0, True] is lent[2.0, True]  # the lent run, not replayed
        pd.testing.assert_frame_equal(kept[0.0, True], sensitivity.replay_days(noisy, 0.0, 2))


def test_collecting_a_sweep_without_its_lent_run_names_the_missing_run(noisy):
    pending = sensitivity.start_sweep(noisy, (0.0,), days=1, lent=((0.0, True),), workers=1)
    with pytest.raises(ValueError, match=r"sensitivity runs \[\(0.0, True\)\] were neither started nor given"):
        sensitivity.collect(pending, n_boot=10)

