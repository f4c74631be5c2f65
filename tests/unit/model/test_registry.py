"""Tests for atelier.registry: pickle-free versions, hashes, aliases, rollback and the promotion rule."""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from xgboost import XGBClassifier

from atelier.core.io import read_json, write_json
from atelier.core.persist import save_skops
from atelier.model.registry import (
    PromotionDecision,
    Registry,
    _git_state,
    data_hash,
    file_hash,
)

REPO = Path(__file__).resolve().parents[3]
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")


def shout(values):
    """A function skops does not trust: a crafted file holding it must not load."""
    return values


@pytest.fixture(scope="module")
def data() -> dict:
    """A small classification problem as a DataFrame with a categorical column, split train / out-of-time."""
    X, y = make_classification(n_samples=300, n_features=5, n_informative=3, random_state=0)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)])
    frame["channel"] = np.where(X[:, 0] > 0.3, "app", np.where(X[:, 1] > 0, "web", "store"))
    return {"X": frame.iloc[:200], "y": y[:200], "X_oot": frame.iloc[200:], "y_oot": y[200:]}


def preprocess() -> ColumnTransformer:
    numeric = [f"x{i}" for i in range(5)]
    return ColumnTransformer(
        [("num", StandardScaler(), numeric), ("cat", OneHotEncoder(handle_unknown="ignore"), ["channel"])]
    )


@pytest.fixture(scope="module")
def models(data) -> dict[str, Pipeline]:
    """Tiny fitted pipelines: logistic regression, random forest, xgboost (all on the categorical frame)."""
    made = {
        "logistic": Pipeline([("prep", preprocess()), ("model", LogisticRegression(max_iter=200))]),
        "forest": Pipeline([("prep", preprocess()),
                            ("model", RandomForestClassifier(n_estimators=10, max_depth=3, random_state=0))]),
        # reg_alpha=1e-8 would be rounded away by write_json; missing=nan is not JSON: both must survive.
        "xgboost": Pipeline([("prep", preprocess()), ("booster", XGBClassifier(
            n_estimators=8, max_depth=2, learning_rate=0.3, reg_alpha=1e-8, random_state=0))]),
        "dummy": Pipeline([("prep", preprocess()), ("model", DummyClassifier(strategy="prior"))]),
    }
    return {key: model.fit(data["X"], data["y"]) for key, model in made.items()}


@pytest.fixture()
def auc(data):
    """score(model): ROC AUC on the same out-of-time rows for every model."""
    return lambda model: roc_auc_score(data["y_oot"], model.predict_proba(data["X_oot"])[:, 1])


def all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


# ------------------------------------------------------------------------------------ round trips




@pytest.mark.parametrize("kind", ["logistic", "forest", "xgboost"])
def test_round_trip_gives_identical_probabilities(tmp_path, models, data, kind):
    registry = Registry(tmp_path / "registry")
    version = registry.register(models[kind], name="purchase-likelihood", metadata={"metrics": {"auc": 0.7}})
    loaded = registry.load(version)
    assert loaded is not models[kind]
    np.testing.assert_array_equal(loaded.predict_proba(data["X_oot"]), models[kind].predict_proba(data["X_oot"]))
    assert [name for name, _ in loaded.steps] == [name for name, _ in models[kind].steps]
    folder = tmp_path / "registry" / version
    if kind == "xgboost":
        assert sorted(p.name for p in folder.iterdir()) == ["booster.ubj", "metadata.json", "preprocess.skops"]
        assert isinstance(loaded.steps[-1][1], XGBClassifier)
        meta = registry.metadata(version)
        assert meta["format"] == "xgboost-ubj+skops"
        assert meta["xgboost"]["class"] == "XGBClassifier" and meta["xgboost"]["step"] == "booster"
        original, rebuilt = models[kind].steps[-1][1].get_params(), loaded.steps[-1][1].get_params()
        assert rebuilt["reg_alpha"] == 1e-8 and math.isnan(rebuilt["missing"])
        # Every parameter that was set comes back exactly (load_model fills in some unset ones, e.g. base_score).
        assert {k: rebuilt[k] for k, v in original.items() if v is not None and k != "missing"} == {
            k: v for k, v in original.items() if v is not None and k != "missing"
        }
    else:
        assert sorted(p.name for p in folder.iterdir()) == ["metadata.json", "model.skops"]
        assert registry.metadata(version)["format"] == "skops"


def test_xgboost_pipeline_without_preprocessing_and_bare_model(tmp_path, data):
    X = data["X"].drop(columns="channel")
    classifier = XGBClassifier(n_estimators=5, max_depth=2).fit(X, data["y"])
    registry = Registry(tmp_path / "registry")
    in_pipeline = registry.register(Pipeline([("clf", classifier)]), name="xgb", metadata={})
    bare = registry.register(classifier, name="xgb", metadata={})
    assert sorted(p.name for p in (tmp_path / "registry" / in_pipeline).iterdir()) == ["booster.ubj", "metadata.json"]
    loaded_pipeline, loaded_bare = registry.load(in_pipeline), registry.load(bare)
    assert isinstance(loaded_pipeline, Pipeline) and loaded_pipeline.steps[0][0] == "clf"
    assert isinstance(loaded_bare, XGBClassifier)
    expected = classifier.predict_proba(data["X_oot"].drop(columns="channel"))
    np.testing.assert_array_equal(loaded_pipeline.predict_proba(data["X_oot"].drop(columns="channel")), expected)
    np.testing.assert_array_equal(loaded_bare.predict_proba(data["X_oot"].drop(columns="channel")), expected)


# ------------------------------------------------------------------------------ versions, metadata


def test_versions_increment_and_metadata_has_automatic_fields(tmp_path, models):
    registry = Registry(tmp_path / "models" / "registry")
    assert registry.versions().empty and not (tmp_path / "models").exists()
    ids = [
        registry.register(models[kind], name="purchase-likelihood",
                          metadata={"metrics": {"auc": auc_value, "oot": {"logloss": 0.5}}, "features": ["x0"],
                                    "data_hash": "abc"})
        for kind, auc_value in [("logistic", 0.71), ("dummy", 0.72), ("xgboost", 0.73)]
    ]
    assert ids == ["v1", "v2", "v3"]
    table = registry.versions()
    assert list(table["version"]) == ids and list(table["auc"]) == [0.71, 0.72, 0.73]
    assert {"name", "created", "oot.logloss"} <= set(table.columns)
    meta = registry.metadata("v3")
    assert meta["version"] == "v3" and meta["name"] == "purchase-likelihood"
    assert meta["features"] == ["x0"] and meta["data_hash"] == "abc"
    assert datetime.fromisoformat(meta["created"]).utcoffset() == UTC.utcoffset(None)
    assert "git_revision" in meta and "git_dirty" in meta and meta["libraries"]["scikit-learn"]
    folder = tmp_path / "models" / "registry" / "v3"
    assert set(meta["files"]) == {"booster.ubj", "preprocess.skops"}
    for filename, digest in meta["files"].items():
        assert digest == hashlib.sha256((folder / filename).read_bytes()).hexdigest()


def test_version_ids_are_not_reused_after_a_deleted_champion(tmp_path, models):
    registry = Registry(tmp_path)
    registry.register(models["logistic"], name="m", metadata={})
    registry.register(models["xgboost"], name="m", metadata={})
    registry.set_alias("champion", "v2")
    shutil.rmtree(tmp_path / "v2")
    # A new model must not silently become the "champion" by inheriting the deleted id.
    assert registry.register(models["dummy"], name="m", metadata={}) == "v3"
    with pytest.raises(ValueError, match=r"alias 'champion' points to version 'v2', which no longer exists"):
        registry.load("champion")


def test_register_rejects_bad_input_and_leaves_nothing_behind(tmp_path, models):
    registry = Registry(tmp_path)
    with pytest.raises(ValueError, match="filled in by the registry"):
        registry.register(models["logistic"], name="m", metadata={"version": "v9"})
    with pytest.raises(ValueError, match="unfitted"):
        registry.register(Pipeline([("model", LogisticRegression())]), name="m", metadata={})
    with pytest.raises(ValueError, match="JSON-friendly"):
        registry.register(models["logistic"], name="m", metadata={"data": Path("x")})
    with pytest.raises(ValueError, match="non-empty model name"):
        registry.register(models["logistic"], name=" ", metadata={})
    assert registry.versions().empty and all_files(tmp_path) == []
    assert registry.register(models["logistic"], name="m", metadata={}) == "v1"


def test_unknown_references_say_what_exists(tmp_path, models):
    registry = Registry(tmp_path)
    with pytest.raises(ValueError, match="it is empty"):
        registry.load("v1")
    registry.register(models["logistic"], name="m", metadata={})
    registry.set_alias("champion", "v1")
    with pytest.raises(ValueError, match=r"unknown version 'v7'.*it has v1"):
        registry.metadata("v7")
    with pytest.raises(ValueError, match=r"aliases: champion; versions: v1"):
        registry.load("challenger")
    with pytest.raises(ValueError, match="not a version id"):
        registry.metadata("../v1")
    with pytest.raises(ValueError, match="invalid alias"):
        registry.set_alias("v2", "v1")
    with pytest.raises(ValueError, match="unknown version 'v5'"):
        registry.set_alias("staging", "v5")
    assert registry.alias("staging") is None


# ------------------------------------------------------------------------------- aliases, rollback


def test_load_by_alias_set_alias_history_and_rollback(tmp_path, models, data):
    registry = Registry(tmp_path)
    for kind in ("logistic", "dummy", "xgboost"):
        registry.register(models[kind], name="m", metadata={})
    assert registry.alias("champion") is None
    registry.set_alias("champion", "v1")
    registry.set_alias("champion", "v2")
    registry.set_alias("champion", "v2")  # no duplicate entry
    registry.set_alias("champion", "v3")
    registry.set_alias("staging", "v1")
    aliases = read_json(tmp_path / "aliases.json")
    assert aliases["champion"] == {"current": "v3", "history": ["v1", "v2", "v3"]}
    assert aliases["staging"] == {"current": "v1", "history": ["v1"]}
    np.testing.assert_array_equal(
        registry.load("champion").predict_proba(data["X_oot"]), models["xgboost"].predict_proba(data["X_oot"])
    )

    assert registry.rollback() == "v2"
    assert registry.alias("champion") == "v2"
    np.testing.assert_array_equal(
        registry.load("champion").predict_proba(data["X_oot"]), models["dummy"].predict_proba(data["X_oot"])
    )
    assert registry.rollback("champion") == "v1"
    assert read_json(tmp_path / "aliases.json")["champion"] == {"current": "v1", "history": ["v1"]}
    with pytest.raises(ValueError, match="no earlier version to return to"):
        registry.rollback("champion")
    with pytest.raises(ValueError, match="no such alias"):
        registry.rollback("production")
    assert registry.alias("champion") == "v1"  # failed rollbacks change nothing


# ---------------------------------------------------------------------------------------- promotion


def test_promotion_rule_and_audit_trail(tmp_path, models, auc):
    registry = Registry(tmp_path)
    weak = registry.register(models["dummy"], name="m", metadata={})
    strong = registry.register(models["logistic"], name="m", metadata={})
    weak_again = registry.register(models["dummy"], name="m", metadata={})
    strong_again = registry.register(models["logistic"], name="m", metadata={})

    first = registry.promote(weak, auc)
    assert isinstance(first, PromotionDecision)
    assert first.promoted and first.champion_before is None and first.champion_score is None
    assert first.candidate_score == pytest.approx(0.5) and registry.alias("champion") == weak

    better = registry.promote(strong, auc)
    assert better.promoted and better.champion_before == weak and better.candidate_score > 0.8
    assert registry.alias("champion") == strong

    worse = registry.promote(weak_again, auc)
    assert not worse.promoted and worse.champion_score == better.candidate_score
    assert registry.alias("champion") == strong and "stays v2" in worse.reason

    tie_with_margin = registry.promote(strong_again, auc, min_delta=0.01)
    assert tie_with_margin.candidate_score == tie_with_margin.champion_score
    assert not tie_with_margin.promoted and registry.alias("champion") == strong

    tie = registry.promote(strong_again, auc, min_delta=0.0)
    assert tie.promoted and registry.alias("champion") == strong_again

    records = read_json(tmp_path / "promotions.json")
    assert [r["candidate"] for r in records] == [weak, strong, weak_again, strong_again, strong_again]
    assert [r["promoted"] for r in records] == [True, True, False, False, True]
    assert [r["champion_before"] for r in records] == [None, weak, strong, strong, strong]
    assert records[3]["min_delta"] == 0.01 and all(r["alias"] == "champion" and r["reason"] for r in records)
    assert registry.promotions() == records
    assert read_json(tmp_path / "aliases.json")["champion"]["history"] == [weak, strong, strong_again]
    assert registry.rollback() == strong


def test_a_blocked_candidate_never_replaces_the_champion_but_may_be_the_first(tmp_path, models, auc):
    registry = Registry(tmp_path)
    weak = registry.register(models["dummy"], name="m", metadata={})
    strong = registry.register(models["logistic"], name="m", metadata={})

    first = registry.promote(weak, auc, blocked_by="train-validation gap 0.05 > 0.03")
    assert first.promoted and registry.alias("champion") == weak and "Despite: train-validation gap" in first.reason

    blocked = registry.promote(strong, auc, blocked_by="train-validation gap 0.05 > 0.03")
    assert blocked.candidate_score > blocked.champion_score + 0.2  # it would win on score alone
    assert not blocked.promoted and registry.alias("champion") == weak
    assert "stays v1: train-validation gap 0.05 > 0.03" in blocked.reason
    assert read_json(tmp_path / "promotions.json")[-1]["promoted"] is False

    assert registry.promote(strong, auc).promoted and registry.alias("champion") == strong


def test_promotion_margin_is_not_defeated_by_float_rounding(tmp_path, models):
    registry = Registry(tmp_path)
    champion = registry.register(models["dummy"], name="m", metadata={})
    candidate = registry.register(models["logistic"], name="m", metadata={})
    registry.set_alias("champion", champion)
    score = lambda model: 0.3 if isinstance(model.steps[-1][1], LogisticRegression) else 0.2  # noqa: E731
    assert 0.3 < 0.2 + 0.1  # the trap
    assert registry.promote(candidate, score, min_delta=0.1).promoted


def test_promotion_refuses_unusable_scores_and_records_nothing(tmp_path, models):
    registry = Registry(tmp_path)
    version = registry.register(models["logistic"], name="m", metadata={})
    with pytest.raises(ValueError, match="finite"):
        registry.promote(version, lambda model: float("nan"))
    with pytest.raises(ValueError, match="unknown version"):
        registry.promote("v9", lambda model: 1.0)
    assert registry.alias("champion") is None and not (tmp_path / "promotions.json").exists()


# ------------------------------------------------------------------------------------------ safety


@pytest.mark.parametrize("kind,filename", [("logistic", "model.skops"), ("xgboost", "booster.ubj"),
                                           ("xgboost", "preprocess.skops")])
def test_tampered_file_is_detected(tmp_path, models, kind, filename):
    registry = Registry(tmp_path)
    version = registry.register(models[kind], name="m", metadata={})
    path = tmp_path / version / filename
    payload = bytearray(path.read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    path.write_bytes(bytes(payload))
    with pytest.raises(ValueError, match=rf"{filename} does not match the sha256"):
        registry.load(version)
    path.unlink()
    with pytest.raises(ValueError, match=rf"{filename} is missing"):
        registry.load(version)


def test_untrusted_types_are_refused_at_register_and_at_load(tmp_path, models, data):
    registry = Registry(tmp_path)
    custom = Pipeline([("shout", FunctionTransformer(shout)), ("model", LogisticRegression())])
    custom.fit(data["X"].drop(columns="channel"), data["y"])
    with pytest.raises(ValueError, match="does not trust"):
        registry.register(custom, name="m", metadata={})
    assert all_files(tmp_path) == []  # no half-written version

    # A crafted file whose hash was updated too: the hash check passes, persist's safe loader still refuses.
    version = registry.register(models["logistic"], name="m", metadata={})
    crafted = save_skops(custom, tmp_path / version / "model.skops")
    meta = registry.metadata(version)
    meta["files"]["model.skops"] = file_hash(crafted)
    write_json(meta, tmp_path / version / "metadata.json")
    with pytest.raises(ValueError, match=r"does not trust.*shout"):
        registry.load(version)


def test_registry_never_holds_pickles(tmp_path, models):
    registry = Registry(tmp_path)
    versions = {kind: registry.register(models[kind], name="m", metadata={})
                for kind in ("logistic", "dummy", "xgboost")}
    registry.set_alias("champion", versions["dummy"])
    registry.promote(versions["xgboost"], lambda model: 1.0)
    files = all_files(tmp_path)
    assert files and not [p for p in files if p.name.endswith(PICKLE_SUFFIXES)]
    assert (tmp_path / versions["xgboost"] / "booster.ubj").is_file()
    assert not (tmp_path / versions["xgboost"] / "model.skops").exists()
    for path in files:
        assert not path.read_bytes().startswith(b"\x80"), f"{path} looks like a pickle"
        if path.suffix == ".skops":
            with zipfile.ZipFile(path) as archive:
                assert not [n for n in archive.namelist() if n.endswith(PICKLE_SUFFIXES)]


# --------------------------------------------------------------------------------------------- git


def test_root_outside_git_repository_gives_unknown_revision(tmp_path, models, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    registry = Registry(tmp_path / "not-a-repo" / "registry")
    meta = registry.metadata(registry.register(models["logistic"], name="m", metadata={}))
    assert meta["git_revision"] == "unknown" and meta["git_dirty"] is None


def test_git_state_inside_the_project_repository():
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        pytest.skip("the project is not a git checkout here")
    revision, dirty = _git_state(REPO / "models" / "registry-not-created")

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True,
                              env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"}).stdout.strip()

    assert revision == git("rev-parse", "HEAD")
    assert dirty == bool(git("status", "--porcelain"))


# ------------------------------------------------------------------------------------------ hashes


def test_file_and_data_hash(tmp_path):
    data_dir = tmp_path / "data"
    (data_dir / "date=2025-01-01").mkdir(parents=True)
    (data_dir / "date=2025-01-01" / "part.parquet").write_bytes(b"rows-1")
    (data_dir / "b.csv").write_bytes(b"b")
    single = tmp_path / "extra.csv"
    single.write_bytes(b"extra")
    assert file_hash(single) == hashlib.sha256(b"extra").hexdigest()

    base = data_hash([data_dir, single])
    assert data_hash([data_dir, single]) == base
    moved = tmp_path / "elsewhere" / "data"
    shutil.copytree(data_dir, moved)
    assert data_hash([moved, single]) == base  # where the project lives does not matter
    assert data_hash([single, data_dir]) != base
    (moved / "date=2025-01-01").rename(moved / "date=2025-01-02")
    assert data_hash([moved, single]) != base  # partition names count
    (data_dir / "b.csv").write_bytes(b"B")
    assert data_hash([data_dir, single]) != base
    with pytest.raises(FileNotFoundError, match="neither a file nor a folder"):
        data_hash([tmp_path / "missing.parquet"])
    with pytest.raises(ValueError):
        data_hash([])
