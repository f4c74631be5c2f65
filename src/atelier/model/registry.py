"""A versioned model registry: safe files, hashes, a `champion` alias, rollback and a promotion rule.

Each registered model gets a folder `root/v<N>/` that never changes afterwards:

* scikit-learn estimators and pipelines: `model.skops` (saved with `atelier.core.persist.save_skops`);
* a Pipeline whose last step is an xgboost model: `preprocess.skops` (the pipeline without its last
  step; absent when the pipeline is only the model) and `booster.ubj` (xgboost's own format, written
  by `save_model`), plus the model's `get_params()` in the metadata so it can be rebuilt;
* `metadata.json`: what the caller passed (params, features, data hash, metrics, ...) and automatic
  fields: version, name, created (UTC), git revision and dirtiness, library versions, format and the
  sha256 of every file.

Nothing is ever pickled. Loading checks every file's sha256 against the metadata first, then reads
skops files through `atelier.core.persist.load_skops` (which refuses anything but scikit-learn classes and
numpy dtypes) and boosters through xgboost's `load_model`.

Aliases (`root/aliases.json`) name a version ("champion") and keep the history of what they pointed
to, so `rollback` can return to the previous one. `promote` applies the promotion rule (a candidate
replaces the champion only if it scores at least `min_delta` higher on the same out-of-time data)
and appends every decision to `root/promotions.json`.

The registry is meant for one writer at a time (a DVC stage or a notebook); it does not lock files,
but writes JSON files atomically and moves a finished version folder into place in one step.
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from atelier.core.io import read_json, write_json
from atelier.core.persist import load_skops, save_skops

#: Version ids: "v1", "v2", ...
VERSION_PATTERN = re.compile(r"^v([1-9][0-9]*)$")
#: Alias names: a letter, then letters, digits, "_", "-" or "."; never something that looks like a version.
ALIAS_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")

FORMAT_SKOPS = "skops"
FORMAT_XGBOOST = "xgboost-ubj+skops"
MODEL_FILE = "model.skops"
PREPROCESS_FILE = "preprocess.skops"
BOOSTER_FILE = "booster.ubj"
METADATA_FILE = "metadata.json"
ALIASES_FILE = "aliases.json"
PROMOTIONS_FILE = "promotions.json"

#: xgboost estimator classes the registry rebuilds (only these names are ever looked up on `xgboost`).
XGBOOST_CLASSES = ("XGBClassifier", "XGBRFClassifier", "XGBRegressor", "XGBRFRegressor", "XGBRanker")
#: Metadata keys the registry fills in itself; a caller's metadata may not use them.
AUTOMATIC_FIELDS = (
    "version", "name", "created", "git_revision", "git_dirty", "libraries", "format", "files", "xgboost",
)
#: Scores closer than this count as equal in the promotion rule (so 0.3 >= 0.2 + 0.1 holds).
SCORE_TOLERANCE = 1e-12


@dataclass(frozen=True)
class PromotionDecision:
    """The outcome of `Registry.promote`: who was compared, their scores, and why."""

    candidate: str
    champion_before: str | None
    promoted: bool
    candidate_score: float
    champion_score: float | None
    min_delta: float
    reason: str


# --------------------------------------------------------------------------------------------- hashes


def file_hash(path: Path) -> str:
    """The sha256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_hash(paths: list[Path]) -> str:
    """One sha256 for the data that trained a model: files, or folders walked in sorted order.

    A file contributes its content; a folder contributes each file's path relative to it (so
    partition folders such as `date=2025-01-01/` count) and content. Paths are taken in the order
    given. Where the project lives on disk does not matter.
    """
    if not paths:
        raise ValueError("data_hash needs at least one file or folder")
    digest = hashlib.sha256()
    for given in paths:
        path = Path(given)
        if path.is_file():
            digest.update(b"file\0" + bytes.fromhex(file_hash(path)))
        elif path.is_dir():
            files = sorted((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.relative_to(path).as_posix())
            digest.update(b"folder\0" + str(len(files)).encode() + b"\0")
            for file in files:
                name = file.relative_to(path).as_posix().encode("utf-8")
                digest.update(name + b"\0" + bytes.fromhex(file_hash(file)))
        else:
            raise FileNotFoundError(f"data_hash: {path} is neither a file nor a folder")
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------- helpers


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _git_state(folder: Path) -> tuple[str, bool | None]:
    """(HEAD revision, whether the work tree has changes) of the repository holding `folder`.

    ("unknown", None) outside a git repository or without git. Read-only: `git status` runs without
    optional locks, so it never rewrites the index.
    """
    probe = folder.resolve()
    while not probe.exists():
        probe = probe.parent
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(probe), *args], capture_output=True, text=True, timeout=30, check=True, env=env,
        ).stdout.strip()

    try:
        revision = git("rev-parse", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return "unknown", None
    try:
        dirty: bool | None = bool(git("status", "--porcelain"))
    except (OSError, subprocess.SubprocessError):
        dirty = None
    return revision, dirty


def _library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("scikit-learn", "skops", "xgboost", "xgboost-cpu", "numpy", "pandas"):
        try:
            versions[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            pass
    return versions


def _encode_param(value: Any, where: str) -> Any:
    """An xgboost parameter as exact JSON: floats `write_json` would round (or NaN) kept as their repr."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        exact = math.isfinite(value) and round(value, 6) == value
        return value if exact else {"__float__": repr(value)}
    if isinstance(value, np.ndarray):
        return [_encode_param(item, where) for item in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_encode_param(item, where) for item in value]
    if isinstance(value, Mapping) and all(isinstance(key, str) for key in value):
        return {key: _encode_param(item, f"{where}.{key}") for key, item in value.items()}
    raise ValueError(
        f"xgboost parameter '{where}' is a {type(value).__name__}, which the registry cannot store as JSON "
        "(callables such as a custom objective or eval_metric are not supported); use a built-in name instead"
    )


def _decode_param(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        return {key: _decode_param(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode_param(item) for item in value]
    return value


def _xgboost_last_step(model: Any) -> tuple[Pipeline | None, Any, str, bool] | None:
    """(preprocess pipeline or None, xgboost model, its step name, whether it was bare) or None if no xgboost."""
    try:
        import xgboost
    except ImportError:  # pragma: no cover - xgboost is a project dependency
        return None
    if isinstance(model, Pipeline):
        step_name, last = model.steps[-1]
        preprocess = model[:-1] if len(model.steps) > 1 else None
        bare = False
    else:
        step_name, last, preprocess, bare = "model", model, None, True
    if not isinstance(last, xgboost.XGBModel):
        return None
    class_name = type(last).__name__
    if class_name not in XGBOOST_CLASSES or getattr(xgboost, class_name) is not type(last):
        raise ValueError(
            f"the registry rebuilds only xgboost's own classes {list(XGBOOST_CLASSES)}, not {type(last).__qualname__}"
        )
    return preprocess, last, step_name, bare


def _write_json_atomic(obj: Any, path: Path) -> None:
    """`write_json` to a temporary file beside `path`, then replace `path` in one step."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write_json(obj, temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _version_number(version: str) -> int:
    return int(VERSION_PATTERN.match(version).group(1))  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------------ registry


class Registry:
    """Versioned, pickle-free storage of fitted models under one folder, with aliases and promotion."""

    def __init__(self, root: Path) -> None:
        """A registry in `root` (e.g. models/registry); the folder is created on the first write."""
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    def copy_to(self, target: Path) -> Registry:
        """A fresh copy of this registry at `target` (replacing whatever was there): a sandbox to retrain, promote or
        roll back in without touching this one."""
        target = Path(target)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(self.root, target)
        return Registry(target)

    # ---------------------------------------------------------------------------------- versions

    def _existing(self) -> list[str]:
        """Complete version folders (with metadata.json), oldest first."""
        if not self.root.is_dir():
            return []
        found = [
            entry.name for entry in self.root.iterdir()
            if entry.is_dir() and VERSION_PATTERN.match(entry.name) and (entry / METADATA_FILE).is_file()
        ]
        return sorted(found, key=_version_number)

    def _describe_existing(self) -> str:
        existing = self._existing()
        return f"it has {', '.join(existing)}" if existing else "it is empty"

    def _highest_known(self) -> int:
        """The highest version number on disk or named in aliases/promotions (ids are never reused)."""
        known = set(self._existing())
        for entry in self._aliases().values():
            known.update(entry.get("history", []))
        for record in self._promotions():
            known.update(v for v in (record.get("candidate"), record.get("champion_before")) if v)
        numbers = [_version_number(v) for v in known if isinstance(v, str) and VERSION_PATTERN.match(v)]
        return max(numbers, default=0)

    def register(self, model: Pipeline, *, name: str, metadata: dict[str, Any]) -> str:
        """Store a fitted estimator or Pipeline as the next version ("v1", "v2", ...) and return its id.

        `metadata` (params, features, data_hash, metrics, ...) must be JSON-friendly and may not use
        the automatic field names. A Pipeline ending in an xgboost model is stored as
        preprocess.skops + booster.ubj; anything else as model.skops. The saved files are read back
        with the safe loader before the version is created, so every version can be loaded.
        """
        if not isinstance(name, str) or not name.strip():
            raise ValueError("register needs a non-empty model name, e.g. name='purchase-likelihood'")
        if not isinstance(metadata, Mapping):
            raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
        clashes = sorted(set(metadata) & set(AUTOMATIC_FIELDS))
        if clashes:
            raise ValueError(f"metadata keys {clashes} are filled in by the registry; rename them")
        if not isinstance(model, BaseEstimator):
            raise TypeError(f"register expects a fitted scikit-learn estimator or Pipeline, got {type(model).__name__}")
        try:
            check_is_fitted(model)
        except NotFittedError as error:
            raise ValueError(f"cannot register an unfitted model: {error}") from error
        xgb = _xgboost_last_step(model)

        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
        try:
            record: dict[str, Any] = dict(metadata)
            if xgb is None:
                skops_files = [save_skops(model, staging / MODEL_FILE)]
                record["format"] = FORMAT_SKOPS
            else:
                preprocess, booster_model, step_name, bare = xgb
                skops_files = [] if preprocess is None else [save_skops(preprocess, staging / PREPROCESS_FILE)]
                booster_model.save_model(staging / BOOSTER_FILE)
                record["format"] = FORMAT_XGBOOST
                record["xgboost"] = {
                    "class": type(booster_model).__name__,
                    "step": step_name,
                    "bare": bare,
                    "params": _encode_param(booster_model.get_params(), "params"),
                }
            for path in skops_files:  # never create a version the safe loader would refuse
                try:
                    load_skops(path)
                except ValueError as error:
                    raise ValueError(f"cannot register '{name}': the safe loader would refuse it. {error}") from error
            revision, dirty = _git_state(self.root)
            record.update(
                name=name,
                created=_utc_now(),
                git_revision=revision,
                git_dirty=dirty,
                libraries=_library_versions(),
                files={path.name: file_hash(path) for path in sorted(staging.iterdir())},
            )
            number = self._highest_known()
            for _ in range(1000):
                number += 1
                version = f"v{number}"
                record["version"] = version
                try:
                    write_json(record, staging / METADATA_FILE)
                except TypeError as error:
                    raise ValueError(f"metadata for '{name}' must be JSON-friendly: {error}") from error
                try:
                    os.rename(staging, self.root / version)
                except OSError:
                    if (self.root / version).exists():  # another writer took this id; try the next
                        continue
                    raise
                return version
            raise RuntimeError(f"could not find a free version id in {self.root}")  # pragma: no cover
        finally:
            if staging.exists():
                shutil.rmtree(staging)

    def versions(self) -> pd.DataFrame:
        """One row per version, oldest first: version, name, created and the metadata's metrics (flattened)."""
        rows = []
        for version in self._existing():
            meta = self.metadata(version)
            row = {"version": version, "name": meta.get("name"), "created": meta.get("created")}
            metrics = meta.get("metrics")
            if isinstance(metrics, Mapping):
                for key, value in _flatten(metrics).items():
                    row[f"metrics.{key}" if key in ("version", "name", "created") else key] = value
            rows.append(row)
        if not rows:
            return pd.DataFrame(columns=["version", "name", "created"])
        return pd.DataFrame(rows)

    def _exists(self, version: object) -> bool:
        """Whether `version` is a version id with a folder and metadata in this registry."""
        return isinstance(version, str) and bool(VERSION_PATTERN.match(version)) and (
            self.root / version / METADATA_FILE).is_file()

    def _folder(self, version: str) -> Path:
        """The folder of an existing version, or a ValueError saying which versions exist."""
        if not isinstance(version, str) or not VERSION_PATTERN.match(version):
            raise ValueError(
                f"'{version}' is not a version id (expected 'v1', 'v2', ...); registry {self.root}: "
                f"{self._describe_existing()}"
            )
        folder = self.root / version
        if not (folder / METADATA_FILE).is_file():
            raise ValueError(f"unknown version '{version}' in registry {self.root}: {self._describe_existing()}")
        return folder

    def metadata(self, version: str) -> dict[str, Any]:
        """The metadata.json of a version (caller's fields plus the automatic ones)."""
        return read_json(self._folder(version) / METADATA_FILE)

    def _verify(self, version: str, meta: Mapping[str, Any]) -> None:
        """Check every file of a version against the sha256 recorded when it was registered."""
        folder = self._folder(version)
        files = meta.get("files")
        if not isinstance(files, Mapping) or not files:
            raise ValueError(f"{folder / METADATA_FILE} lists no files and hashes; the version cannot be verified")
        required = {MODEL_FILE} if meta.get("format") == FORMAT_SKOPS else {BOOSTER_FILE}
        missing_entries = sorted(required - set(files))
        if missing_entries:
            raise ValueError(
                f"{folder / METADATA_FILE} has no hash for {missing_entries}; the version cannot be verified"
            )
        for filename, expected in sorted(files.items()):
            if Path(filename).name != filename or filename in ("", ".", ".."):
                raise ValueError(f"{folder / METADATA_FILE} lists a file outside its folder: {filename!r}")
            path = folder / filename
            if not path.is_file():
                raise ValueError(f"{path} is missing; version {version} is incomplete")
            actual = file_hash(path)
            if actual != expected:
                raise ValueError(
                    f"{path} does not match the sha256 recorded when {version} was registered "
                    f"(expected {expected}, found {actual}); it was modified or corrupted, so it will not be loaded"
                )

    def load(self, reference: str) -> Pipeline:
        """The model of a version ("v3") or alias ("champion"), after checking every file's sha256.

        skops files are read with the safe loader; xgboost entries come back as a Pipeline of the
        preprocessing steps plus the rebuilt xgboost model (or the bare model if one was registered).
        """
        version = self._resolve(reference)
        meta = self.metadata(version)
        self._verify(version, meta)
        folder = self.root / version
        if meta.get("format") == FORMAT_SKOPS:
            return load_skops(folder / MODEL_FILE)
        if meta.get("format") != FORMAT_XGBOOST:
            raise ValueError(f"{folder / METADATA_FILE} has unknown format {meta.get('format')!r}")

        import xgboost

        spec = meta.get("xgboost") or {}
        class_name = spec.get("class")
        if class_name not in XGBOOST_CLASSES:
            raise ValueError(
                f"{folder / METADATA_FILE} names xgboost class {class_name!r}; expected one of {list(XGBOOST_CLASSES)}"
            )
        booster_model = getattr(xgboost, class_name)(**_decode_param(spec.get("params", {})))
        booster_model.load_model(folder / BOOSTER_FILE)
        if spec.get("bare"):
            return booster_model
        step = (spec.get("step") or "model", booster_model)
        if PREPROCESS_FILE not in meta["files"]:
            return Pipeline([step])
        preprocess = load_skops(folder / PREPROCESS_FILE)
        if not isinstance(preprocess, Pipeline):
            raise ValueError(f"{folder / PREPROCESS_FILE} holds a {type(preprocess).__name__}, expected a Pipeline")
        preprocess.steps.append(step)  # keeps the pipeline's own settings (memory, verbose, ...)
        return preprocess

    # ----------------------------------------------------------------------------------- aliases

    def _aliases(self) -> dict[str, dict[str, Any]]:
        path = self.root / ALIASES_FILE
        return read_json(path) if path.is_file() else {}

    def _resolve(self, reference: str) -> str:
        """The version id a reference (version or alias) stands for; clear errors otherwise."""
        if not isinstance(reference, str) or not reference:
            raise ValueError(f"expected a version ('v1') or an alias ('champion'), got {reference!r}")
        if VERSION_PATTERN.match(reference):
            self._folder(reference)
            return reference
        aliases = self._aliases()
        if reference not in aliases or not aliases[reference].get("current"):
            known = ", ".join(sorted(a for a, e in aliases.items() if e.get("current"))) or "none"
            raise ValueError(
                f"'{reference}' is neither a version nor an alias in registry {self.root} "
                f"(aliases: {known}; versions: {', '.join(self._existing()) or 'none'})"
            )
        version = aliases[reference]["current"]
        if not self._exists(version):
            raise ValueError(
                f"alias '{reference}' points to version {version!r}, which no longer exists in {self.root} "
                f"({self._describe_existing()}); use rollback('{reference}') or set_alias to repair it"
            )
        return version

    def alias(self, alias: str) -> str | None:
        """The version an alias points to now, or None if the alias was never set."""
        entry = self._aliases().get(alias)
        return entry.get("current") if entry else None

    def set_alias(self, alias: str, version: str) -> None:
        """Point `alias` at an existing version, appending it to the alias's history (no-op if already there)."""
        if not isinstance(alias, str) or not ALIAS_PATTERN.match(alias) or VERSION_PATTERN.match(alias):
            raise ValueError(
                f"invalid alias name {alias!r}: use a letter followed by letters, digits, '_', '-' or '.', "
                "and not a version id such as 'v2'"
            )
        self._folder(version)
        aliases = self._aliases()
        entry = aliases.setdefault(alias, {"current": None, "history": []})
        if entry.get("current") == version:
            return
        entry["history"] = [*entry.get("history", []), version]
        entry["current"] = version
        self.root.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(aliases, self.root / ALIASES_FILE)

    def rollback(self, alias: str = "champion") -> str:
        """Point `alias` back at the previous version in its history (dropping the current one); return it."""
        aliases = self._aliases()
        if alias not in aliases:
            known = ", ".join(sorted(aliases)) or "none"
            raise ValueError(f"cannot roll back '{alias}': no such alias in {self.root} (aliases: {known})")
        entry = aliases[alias]
        history = list(entry.get("history", []))
        if len(history) < 2:
            raise ValueError(
                f"cannot roll back '{alias}': its history {history} has no earlier version to return to"
            )
        previous = history[-2]
        if not self._exists(previous):
            raise ValueError(
                f"cannot roll back '{alias}' to {previous!r}: that version no longer exists in {self.root} "
                f"({self._describe_existing()}); use set_alias to choose one"
            )
        entry["history"] = history[:-1]
        entry["current"] = previous
        _write_json_atomic(aliases, self.root / ALIASES_FILE)
        return previous

    # --------------------------------------------------------------------------------- promotion

    def _promotions(self) -> list[dict[str, Any]]:
        path = self.root / PROMOTIONS_FILE
        return read_json(path) if path.is_file() else []

    def promotions(self) -> list[dict[str, Any]]:
        """Every promotion decision so far, oldest first (as recorded in promotions.json)."""
        return self._promotions()

    def promote(
        self,
        candidate: str,
        score: Callable[[Pipeline], float],
        *,
        alias: str = "champion",
        min_delta: float = 0.0,
        blocked_by: str | None = None,
    ) -> PromotionDecision:
        """Make `candidate` the `alias` if it beats the current one out of time; record the decision.

        `score(model)` must evaluate a loaded model on the same out-of-time data for both models
        (higher is better; close over the data). With no current `alias`, the candidate is promoted.
        Otherwise it is promoted iff candidate_score >= champion_score + min_delta (scores within
        1e-12 count as equal) and no `blocked_by` reason is given (e.g. a failed overfitting check):
        a blocked candidate never replaces a champion, though it may become the first one, with the
        reason noted. Every decision is appended to promotions.json.
        """
        min_delta = float(min_delta)
        if not math.isfinite(min_delta):
            raise ValueError(f"min_delta must be a finite number, got {min_delta}")
        self._folder(candidate)
        if not isinstance(alias, str) or not ALIAS_PATTERN.match(alias) or VERSION_PATTERN.match(alias):
            raise ValueError(f"invalid alias name {alias!r}")

        def evaluate(version: str) -> float:
            value = float(score(self.load(version)))
            if not math.isfinite(value):
                raise ValueError(f"score returned {value} for {version}; it must be a finite number (higher is better)")
            return value

        champion = self.alias(alias)
        if champion is not None:
            champion = self._resolve(alias)  # clear error if the alias points to a deleted version
        candidate_score = evaluate(candidate)
        champion_score: float | None = None
        if champion is None:
            promoted = True
            reason = f"{candidate} promoted to '{alias}': there was no '{alias}' yet (score {candidate_score:.6g})."
            if blocked_by:
                reason += f" Despite: {blocked_by}."
        elif champion == candidate:
            promoted, champion_score = False, candidate_score
            reason = f"{candidate} is already '{alias}'; nothing changed (score {candidate_score:.6g})."
        else:
            champion_score = evaluate(champion)
            promoted = candidate_score >= champion_score + min_delta - SCORE_TOLERANCE and not blocked_by
            if blocked_by:
                reason = (
                    f"{candidate} not promoted; '{alias}' stays {champion}: {blocked_by} "
                    f"(score {candidate_score:.6g} against {champion_score:.6g})."
                )
            elif promoted:
                reason = (
                    f"{candidate} promoted to '{alias}', replacing {champion}: score {candidate_score:.6g} "
                    f">= {champion_score:.6g} + min_delta {min_delta:g}."
                )
            else:
                reason = (
                    f"{candidate} not promoted; '{alias}' stays {champion}: score {candidate_score:.6g} "
                    f"< {champion_score:.6g} + min_delta {min_delta:g}."
                )
        decision = PromotionDecision(
            candidate=candidate, champion_before=champion, promoted=promoted, candidate_score=candidate_score,
            champion_score=champion_score, min_delta=min_delta, reason=reason,
        )
        if promoted:
            self.set_alias(alias, candidate)
        records = self._promotions()
        records.append({**asdict(decision), "alias": alias, "decided": _utc_now()})
        self.root.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(records, self.root / PROMOTIONS_FILE)
        return decision
