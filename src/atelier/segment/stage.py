"""The segment stage's inputs and outputs: every file the phase reads or writes goes through here.

Reads the prep snapshots (the last two cutoffs) and, on simulated data, the hidden personas. Writes
the segmenters (skops), the assignments (Parquet, and the SQLite attribute database through
`atelier.core.attributes`), the k sweep's plot data and `metrics/segment.json`, whose dict
`metrics` builds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from atelier.core import attributes, paths, truth
from atelier.core.io import read_parquet, write_json, write_parquet
from atelier.core.persist import save_skops
from atelier.segment.density import METHODS
from atelier.segment.recluster import kept_share, names_agree


@dataclass(frozen=True)
class Snapshots:
    """The customers at the last two cutoffs: today's segmentation and last period's."""

    current: pd.DataFrame
    previous: pd.DataFrame
    current_cutoff: pd.Timestamp
    previous_cutoff: pd.Timestamp

    @property
    def days_between(self) -> int:
        """Days from the previous cutoff to the current one (the refit interval)."""
        return int((self.current_cutoff - self.previous_cutoff).days)

    @property
    def period(self) -> str:
        """The refit interval in words, e.g. "2025-10-01 to 2025-11-01"."""
        return f"{self.previous_cutoff.date()} to {self.current_cutoff.date()}"


def load_snapshots(root: Path) -> Snapshots:
    """The prep snapshots at the last two cutoffs (index: customer_id)."""
    path = Path(root) / paths.SNAPSHOTS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the prep stage first (`dvc repro prep`)")
    snapshots = read_parquet(path)
    cutoffs = sorted(snapshots["cutoff"].unique())
    if len(cutoffs) < 2:
        raise ValueError(
            f"{path} holds {len(cutoffs)} cutoff(s); segmentation refits at the last two to show re-clustering: "
            "list at least two dates in params.yaml timeline.cutoffs"
        )
    current_cutoff, previous_cutoff = pd.Timestamp(cutoffs[-1]), pd.Timestamp(cutoffs[-2])
    return Snapshots(
        current=snapshots[snapshots["cutoff"] == current_cutoff],
        previous=snapshots[snapshots["cutoff"] == previous_cutoff],
        current_cutoff=current_cutoff,
        previous_cutoff=previous_cutoff,
    )


def load_personas(root: Path, customers: pd.Index) -> pd.Series | None:
    """The simulator's hidden persona of each customer, or None on the retailer's own data (no truth)."""
    return truth.personas(root, customers)


def model_version(path: Path) -> str:
    """A content-derived version of a saved model file: 'seg-' and 12 hex digits of its SHA-256."""
    return "seg-" + hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def assignments(customers: pd.Index, labels: np.ndarray, names: dict[int, str]) -> pd.DataFrame:
    """One row per customer: customer_id, segment_id, segment_name (what the attribute database stores)."""
    return pd.DataFrame(
        {"customer_id": customers, "segment_id": labels, "segment_name": [names[label] for label in labels]}
    )


def metrics(
    *,
    k: int,
    features: list[str],
    skipped_features: list[str],
    quality: dict[str, Any],
    labels: np.ndarray,
    names: dict[int, str],
    comparison: pd.DataFrame,
    trap: dict[str, Any],
    aris: np.ndarray,
    jaccard: pd.DataFrame,
    density: dict[str, Any],
    truth_agreement: dict[str, Any] | None,
    snapshots: Snapshots,
    inherited: pd.DataFrame,
    moves: pd.DataFrame,
) -> dict[str, Any]:
    """The headline numbers of the stage (metrics/segment.json, without the model version `write_outputs` adds).

    `names` are the final segment names (inherited at the refit); `comparison` is
    `cluster.compare_transforms`; `trap` is `quality.silhouette_trap`; `aris`, `jaccard` are
    `stability.bootstrap_stability`; `density` is `density.density_clusterings`; `inherited` is
    `recluster.inherit_names`; `moves` is `recluster.transitions`.
    """
    return {
        "k": int(k),
        "features": list(features),
        "skipped_features": list(skipped_features),
        "fitted_on": snapshots.current_cutoff.date().isoformat(),
        "quality": {key: quality[key] for key in ("silhouette", "davies_bouldin", "largest_share", "smallest_share")},
        "sizes": pd.Series(labels).map(names).value_counts().sort_index().to_dict(),
        "sweep_best_k": {"log1p": int(trap["k_log_best"]), "raw": int(trap["k"])},
        "raw_vs_log": comparison[["silhouette", "largest_share"]].astype(float).to_dict(orient="index"),
        "silhouette_trap": trap,
        "stability": {
            "ari_mean": float(aris.mean()),
            "ari_min": float(aris.min()),
            "jaccard_mean": {names[segment]: float(value) for segment, value in jaccard.mean().items()},
        },
        "density": {
            name: {key: density[name][key] for key in ("clusters", "noise_share", "ari_vs_kmeans_all")}
            for name in METHODS
        },
        "truth": truth_agreement,
        "recluster": {
            "previous_cutoff": snapshots.previous_cutoff.date().isoformat(),
            "names_agree": names_agree(inherited),
            "mean_match_distance": float(inherited["distance"].mean()),
            "kept_segment_share": kept_share(moves),
        },
    }


def write_outputs(
    root: Path,
    *,
    segmenter: Pipeline,
    previous: Pipeline,
    assignments: pd.DataFrame,
    snapshots: Snapshots,
    sweep: pd.DataFrame,
    sweep_raw: pd.DataFrame,
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """Save the segmenters (skops), the assignments (Parquet and SQLite), the k sweep and the metrics.

    `assignments` has customer_id, segment_id, segment_name; the segmenter was fitted on `snapshots.current`
    and `previous` on `snapshots.previous`. Returns the metrics, with the model version.
    """
    root, fitted_on = Path(root), snapshots.current_cutoff
    model_path = save_skops(segmenter, root / paths.SEGMENTER_FILE)
    save_skops(previous, root / paths.SEGMENTER_PREVIOUS_FILE)
    version = model_version(model_path)
    quality = metrics["quality"]
    model = {
        "model_version": version,
        "fitted_on": fitted_on.isoformat(),
        "k": segmenter.named_steps["kmeans"].n_clusters,
        "features": metrics["features"],
        "silhouette": quality["silhouette"],
        "davies_bouldin": quality["davies_bouldin"],
    }
    names = assignments.drop_duplicates("segment_id").set_index("segment_id")["segment_name"].sort_index()
    write_json(
        {**model, "previous_cutoff": snapshots.previous_cutoff.isoformat(), "names": names.to_dict()},
        root / paths.SEGMENTER_DESCRIPTION_FILE,
    )
    write_parquet(assignments.assign(model_version=version, updated_at=fitted_on), root / paths.SEGMENTS_FILE)
    attributes.write_segments(root / paths.SEGMENT_ATTRIBUTES, assignments, model)
    (root / paths.SEGMENT_K_SWEEP_PLOT).parent.mkdir(parents=True, exist_ok=True)
    plot = sweep.join(sweep_raw.add_suffix("_raw")).reset_index()
    plot.to_csv(root / paths.SEGMENT_K_SWEEP_PLOT, index=False, float_format="%.6f")
    metrics = {"model_version": version, **metrics}
    write_json(metrics, root / paths.SEGMENT_METRICS)
    return metrics


def read_stored(root: Path) -> pd.DataFrame:
    """The segment attributes as an application reads them (table customer_segments)."""
    return attributes.read_table(Path(root) / paths.SEGMENT_ATTRIBUTES, "customer_segments")
