"""The segmentation report's closing answers, from the stage's metrics: one short answer per question."""

from __future__ import annotations

from typing import Any

import pandas as pd

from atelier.core import paths
from atelier.segment.quality import CASE_STUDY_SILHOUETTE, against_case_study
from atelier.segment.stability import STABLE_JACCARD


def answers(metrics: dict[str, Any], meanings: dict[str, str]) -> pd.Series:
    """Question -> answer, from `metrics` (as `stage.metrics` builds them) and what each name means.

    `meanings` maps each segment name to what it means (`naming.describe`).
    """
    sizes = pd.Series(metrics["sizes"]).sort_values(ascending=False, kind="stable")
    total = int(sizes.sum())
    quality, stability, truth = metrics["quality"], metrics["stability"], metrics["truth"]
    jaccard = pd.Series(stability["jaccard_mean"]).sort_values(kind="stable")
    weakest, weakest_jaccard = str(jaccard.index[0]), float(jaccard.iloc[0])
    line = "at or above" if weakest_jaccard >= STABLE_JACCARD else "below"
    truth_text = (
        "No ground truth on the retailer's own data"
        if truth is None
        else f"Adjusted Rand index {truth['ari']:.2f}, NMI {truth['nmi']:.2f} against the simulator's hidden personas"
    )
    return pd.Series(
        {
            "How many segments?": f"{metrics['k']}, {total:,} customers: "
            + "; ".join(f"{name} {count / total:.0%}" for name, count in sizes.items()),
            "How good?": f"Silhouette {quality['silhouette']:.2f}, {against_case_study(quality['silhouette'])} the "
            f"case study's {CASE_STUDY_SILHOUETTE:g}; Davies-Bouldin {quality['davies_bouldin']:.2f} (lower is better)",
            "How stable?": f"Bootstrap ARI {stability['ari_mean']:.3f} on average (lowest {stability['ari_min']:.3f}); "
            f"weakest segment: {weakest} (mean Jaccard {weakest_jaccard:.2f}, {line} the {STABLE_JACCARD:g} line)",
            "How close to the truth?": truth_text,
            "What is each one?": "; ".join(f"{name}: {meanings.get(name, '?')}" for name in sizes.index),
            "Where are they stored?": f"SQLite {paths.SEGMENT_ATTRIBUTES} (table customer_segments, model version "
            f"{metrics['model_version']}); Parquet {paths.SEGMENTS_FILE}; segmenter {paths.SEGMENTER_FILE} (skops)",
        },
        name="answer",
    ).rename_axis("question")
