"""Normalization and imputation of the feature table, and saving it without pickle (skops).

The transformer is a scikit-learn Pipeline fitted on the training snapshots only:
log1p on heavy-tailed counts and amounts -> imputation (iterative or KNN, as the case study
suggests) with missing-value indicators -> standard scaling; demographics are one-hot encoded.
The indicators matter: most missing values here are *undefined*, not unknown (a customer with no
order has no average order value), and the fact of being missing is itself informative.
"""

from __future__ import annotations

import importlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (registers IterativeImputer)
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from atelier.features import HEAVY_TAILED

IMPUTERS = ("iterative", "knn")


def split_columns(features: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Numeric and categorical feature columns (bookkeeping columns like cutoff and label excluded)."""
    candidates = [c for c in features.columns if c not in ("cutoff", "label", "customer_id")]
    numeric = [c for c in candidates if pd.api.types.is_numeric_dtype(features[c])]
    categorical = [c for c in candidates if c not in numeric]
    return numeric, categorical


def build_transformer(
    numeric: list[str],
    categorical: list[str],
    *,
    imputer: str = "iterative",
    knn_neighbors: int = 5,
    iterative_max_iter: int = 10,
    seed: int = 0,
) -> Pipeline:
    """An unfitted Pipeline: log1p heavy tails -> impute (+ indicators) -> scale; one-hot categoricals."""
    if imputer == "iterative":
        # verbose=1: one line per imputation round, the progress of the slowest prep step.
        numeric_imputer = IterativeImputer(
            max_iter=iterative_max_iter, random_state=seed, add_indicator=True, keep_empty_features=True, verbose=1
        )
    elif imputer == "knn":
        numeric_imputer = KNNImputer(n_neighbors=knn_neighbors, add_indicator=True, keep_empty_features=True)
    else:
        raise ValueError(f"params.yaml prep.imputer: '{imputer}' is not one of {IMPUTERS}")
    heavy = [c for c in numeric if c in HEAVY_TAILED]
    log_heavy = ColumnTransformer(
        [("log1p", FunctionTransformer(np.log1p, feature_names_out="one-to-one"), heavy)],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )
    numeric_steps = Pipeline([("log_heavy", log_heavy), ("impute", numeric_imputer), ("scale", StandardScaler())])
    categorical_steps = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
            ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    columns = ColumnTransformer(
        [("numeric", numeric_steps, numeric)] + ([("categorical", categorical_steps, categorical)] if categorical else []),
        verbose_feature_names_out=False,
    )
    return Pipeline([("columns", columns)]).set_output(transform="pandas")


def _model_frame(features: pd.DataFrame) -> pd.DataFrame:
    """The feature columns as scikit-learn expects them: categoricals as objects with NaN for gaps."""
    numeric, categorical = split_columns(features)
    frame = features[numeric + categorical].copy()
    for column in categorical:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), np.nan)
    return frame


def transform(transformer: Pipeline, features: pd.DataFrame) -> pd.DataFrame:
    """Apply a fitted transformer; keeps the index (customer_id) of `features`."""
    prepared = transformer.transform(_model_frame(features))
    prepared.index = features.index
    return prepared


def fit_transformer(transformer: Pipeline, features: pd.DataFrame) -> Pipeline:
    """Fit `transformer` on `features` (the training snapshots)."""
    return transformer.fit(_model_frame(features))


def _trusted(type_name: str) -> bool:
    """Whether a type skops reports as untrusted is one a saved transformer legitimately holds.

    Only numpy dtypes and scikit-learn classes (estimators and their named tuples): never
    functions or builtins, which a crafted file could call to run code while loading.
    """
    if type_name == "numpy.dtype":
        return True
    module_name, _, attribute = type_name.rpartition(".")
    if not module_name.startswith("sklearn."):
        return False
    try:
        candidate = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        return False
    # Estimators, and the plain named tuples some of them keep (IterativeImputer's _ImputerTriplet).
    return isinstance(candidate, type) and issubclass(candidate, (BaseEstimator, tuple))


def _stable_zip(archive: bytes) -> bytes:
    """The same skops archive with repeatable bytes: ids renumbered, entries sorted, timestamps fixed.

    skops names arrays and shared objects by Python's id(), which changes from run to run. Walking
    the schema in order, each id gets the next small number, everywhere it occurs (its `__id__`
    and the `file` of an array node), so shared references still resolve.
    """
    source = zipfile.ZipFile(io.BytesIO(archive))
    renumber: dict[int, int] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        node = {key: walk(value) for key, value in node.items()}
        if isinstance(node.get("__id__"), int):
            node["__id__"] = renumber.setdefault(node["__id__"], len(renumber) + 1)
        if node.get("type") == "numpy" and isinstance(node.get("file"), str) and node["file"].endswith(".npy"):
            old = int(node["file"].removesuffix(".npy"))
            node["file"] = f"{renumber.setdefault(old, len(renumber) + 1)}.npy"
        return node

    schema = walk(json.loads(source.read("schema.json")))
    entries = {"schema.json": json.dumps(schema, indent=2).encode("utf-8")}
    for name in source.namelist():
        if name.endswith(".npy"):
            entries[f"{renumber[int(name.removesuffix('.npy'))]}.npy"] = source.read(name)
        elif name != "schema.json":
            entries[name] = source.read(name)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for name in sorted(entries):
            entry = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(entry, entries[name])
    return buffer.getvalue()


def save(transformer: Pipeline, path: Path | str) -> Path:
    """Persist a fitted transformer with skops (a safe format: loading cannot run arbitrary code).

    The file is byte-for-byte repeatable, so DVC sees an unchanged transformer as unchanged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_stable_zip(sio.dumps(transformer)))
    return path


def load(path: Path | str) -> Pipeline:
    """Load a transformer saved by `save`, trusting only scikit-learn estimators and numpy dtypes."""
    untrusted = sio.get_untrusted_types(file=path)
    unexpected = [t for t in untrusted if not _trusted(t)]
    if unexpected:
        raise ValueError(f"{path} contains types Atelier does not trust: {unexpected}. Refit it with `dvc repro prep`.")
    return sio.load(path, trusted=untrusted)
