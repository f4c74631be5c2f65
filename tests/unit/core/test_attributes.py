"""The user-attribute database: one schema, a copy per stage (segments, then propensity, then live profiles)."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest

from atelier.core import attributes, paths

MODEL = {
    "model_version": "seg-0123456789ab",
    "fitted_on": "2025-05-01T00:00:00",
    "k": 3,
    "features": ["frequency", "monetary"],
    "silhouette": 0.42,
    "davies_bouldin": 0.9,
}


def assignments_for(ids) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ids,
            "segment_id": [i % 3 for i in range(len(ids))],
            "segment_name": [f"Segment {i % 3}" for i in range(len(ids))],
        }
    )


@pytest.mark.parametrize("ids", [[10, 2, 33, 1, 7], ["c-10", "c-2", "c-33", "c-1", "c-7"]], ids=["int-ids", "str-ids"])
def test_attributes_round_trip(tmp_path, ids):
    assignments = assignments_for(ids)
    database = attributes.write_segments(tmp_path / "deep" / "attributes.sqlite", assignments, MODEL)
    stored = attributes.read_table(database, "customer_segments")
    assert len(stored) == len(ids)
    assert stored["customer_id"].map(type).eq(str).all()
    expected = assignments.assign(customer_id=assignments["customer_id"].astype(str)).set_index("customer_id")
    got = stored.set_index("customer_id").loc[expected.index]
    assert got["segment_id"].tolist() == expected["segment_id"].tolist()
    assert got["segment_name"].tolist() == expected["segment_name"].tolist()
    assert (stored["model_version"] == MODEL["model_version"]).all()
    assert (stored["updated_at"] == MODEL["fitted_on"]).all()
    with sqlite3.connect(database) as connection:
        models = connection.execute("SELECT * FROM segment_models").fetchall()
    connection.close()
    assert models == [(MODEL["model_version"], MODEL["fitted_on"], 3, "frequency,monetary", 0.42, 0.9)]


def test_attributes_write_again_replaces(tmp_path):
    database = tmp_path / "attributes.sqlite"
    attributes.write_segments(database, assignments_for([1, 2, 3, 4]), {**MODEL, "silhouette": 0.1})
    attributes.write_segments(database, assignments_for([1, 2, 3, 4]), MODEL)
    assert len(attributes.read_table(database, "customer_segments")) == 4
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT model_version, silhouette FROM segment_models").fetchall() == [
            (MODEL["model_version"], 0.42)
        ]  # the same version's row is replaced, not duplicated or kept stale
    connection.close()
    second = assignments_for([3, 4, 5])
    second["segment_id"] = [2, 2, 2]
    newer = {**MODEL, "model_version": "seg-ba9876543210", "fitted_on": "2025-06-01T00:00:00"}
    attributes.write_segments(database, second, newer)
    stored = attributes.read_table(database, "customer_segments")
    assert sorted(stored["customer_id"]) == ["3", "4", "5"]
    assert stored["segment_id"].tolist() == [2, 2, 2]
    assert set(stored["model_version"]) == {newer["model_version"]}
    with sqlite3.connect(database) as connection:
        versions = [row[0] for row in connection.execute("SELECT model_version FROM segment_models")]
        (duplicates,) = connection.execute(
            "SELECT COUNT(*) - COUNT(DISTINCT customer_id) FROM customer_segments"
        ).fetchone()
    connection.close()
    assert sorted(versions) == sorted([MODEL["model_version"], newer["model_version"]])
    assert duplicates == 0


SEGMENT_MODEL = {
    "model_version": "seg-0123456789ab",
    "fitted_on": "2025-05-01T00:00:00",
    "k": 2,
    "features": ["frequency", "monetary"],
    "silhouette": 0.4,
    "davies_bouldin": 0.9,
}


def test_write_attributes_joins_segment_and_propensity(tmp_path):
    segments = pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 20],
            "segment_id": [0, 1, 0, 1],
            "segment_name": ["Loyal", "Browsers", "Loyal", "Browsers"],
        }
    )
    source = attributes.write_segments(tmp_path / paths.SEGMENT_ATTRIBUTES, segments, SEGMENT_MODEL)
    before = source.read_bytes()
    scores = scores_frame([3, 1, 10, 2])  # customer 10 has no segment, customer 20 no score
    database = attributes.write_propensity(
        tmp_path / paths.SEGMENT_ATTRIBUTES, tmp_path / paths.PROPENSITY_ATTRIBUTES, scores
    )
    assert database == tmp_path / paths.PROPENSITY_DIR / "attributes.sqlite"
    assert source.read_bytes() == before  # the segment stage's database is copied, never modified
    view = attributes.read_table(database, "customer_attributes")
    assert list(view.columns) == [
        "customer_id",
        "segment_id",
        "segment_name",
        "segment_model",
        "propensity",
        "propensity_model",
        "scored_at",
    ]
    assert view["customer_id"].tolist() == sorted(["1", "2", "3", "10"])  # text ids, sorted as text, unique
    got = view.set_index("customer_id")
    expected = scores.assign(customer_id=scores["customer_id"].astype(str)).set_index("customer_id")
    assert np.allclose(got.loc[expected.index, "propensity"], expected["propensity"])
    assert got.loc["1", "segment_name"] == "Loyal" and got.loc["2", "segment_name"] == "Browsers"
    assert got.loc["3", "segment_id"] == 0 and got.loc["3", "segment_model"] == SEGMENT_MODEL["model_version"]
    assert pd.isna(got.loc["10", "segment_id"]) and pd.isna(got.loc["10", "segment_name"])
    assert (got["propensity_model"] == "m-1").all()
    with sqlite3.connect(database) as connection:  # the segment tables travel along
        (models,) = connection.execute("SELECT COUNT(*) FROM segment_models").fetchone()
    connection.close()
    assert models == 1
    # Written again (a rerun of the stage), the database is replaced, not appended to.
    attributes.write_propensity(
        tmp_path / paths.SEGMENT_ATTRIBUTES, tmp_path / paths.PROPENSITY_ATTRIBUTES, scores_frame([5, 4])
    )
    assert attributes.read_table(database, "customer_attributes")["customer_id"].tolist() == ["4", "5"]


def test_write_attributes_without_a_segment_database(tmp_path):
    database = attributes.write_propensity(
        tmp_path / paths.SEGMENT_ATTRIBUTES, tmp_path / paths.PROPENSITY_ATTRIBUTES, scores_frame(["c-2", "c-1", "c-3"])
    )
    view = attributes.read_table(database, "customer_attributes")
    assert view["customer_id"].tolist() == ["c-1", "c-2", "c-3"]
    assert view["customer_id"].is_unique
    assert view[["segment_id", "segment_name", "segment_model"]].isna().all().all()
    assert view["propensity"].notna().all()
    assert not (tmp_path / paths.SEGMENT_ATTRIBUTES).exists()


def scores_frame(ids) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ids,
            "propensity": np.linspace(0.9, 0.1, len(ids)),
            "model_version": "m-1",
            "scored_at": "2025-05-01T00:00:00",
        }
    )
