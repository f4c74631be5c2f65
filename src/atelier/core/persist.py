"""Saving scikit-learn objects without pickle: skops files that are safe to load and byte-stable.

Anything a user might load from elsewhere is saved with skops, whose loader refuses types it has
not been told to trust. Atelier trusts only numpy dtypes and scikit-learn classes, never functions
or builtins. Files are rewritten so the same object always gives the same bytes (DVC then sees an
unchanged model as unchanged).
"""

from __future__ import annotations

import importlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

# skops and scikit-learn are imported where a model is saved or loaded: importing skops walks every scikit-learn
# estimator (about 1.5 s), which stages that never persist a model (simulate, validate) should not pay.


#: scikit-learn's compiled tree structures: fitted trees hold them as data (no code runs on load).
TRUSTED_SKLEARN_DATA_TYPES = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    }
)


def _trusted(type_name: str) -> bool:
    """Whether a type skops reports as untrusted is one a saved transformer legitimately holds.

    Only numpy dtypes and scikit-learn classes (estimators and their named tuples): never
    functions or builtins, which a crafted file could call to run code while loading.
    """
    if type_name == "numpy.dtype" or type_name in TRUSTED_SKLEARN_DATA_TYPES:
        return True
    module_name, _, attribute = type_name.rpartition(".")
    if not module_name.startswith("sklearn."):
        return False
    try:
        candidate = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        return False
    # Estimators, and the plain named tuples some of them keep (IterativeImputer's _ImputerTriplet).
    from sklearn.base import BaseEstimator

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


def save_skops(estimator: Any, path: Path | str) -> Path:
    """Persist a fitted scikit-learn object with skops (a safe format: loading cannot run arbitrary code).

    The file is byte-for-byte repeatable, so DVC sees an unchanged model as unchanged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    import skops.io as sio

    path.write_bytes(_stable_zip(sio.dumps(estimator)))
    return path


def load_skops(path: Path | str) -> Any:
    """Load an object saved by `save_skops`, trusting only scikit-learn classes and numpy dtypes."""
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    unexpected = [t for t in untrusted if not _trusted(t)]
    if unexpected:
        raise ValueError(
            f"{path} contains types Atelier does not trust: {unexpected}. "
            "Refit it with `dvc repro` rather than loading a file of unknown origin."
        )
    return sio.load(path, trusted=untrusted)
