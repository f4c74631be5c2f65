"""The keys params.yaml may hold, in one place: a misspelled or missing key is reported before any work starts.

`SCHEMA` mirrors params.yaml. A name maps to `LEAF` (a value: number, text, list, null), to a nested
mapping of the keys it takes, to `FREE` (a mapping whose names are the user's: segment names, event
types, categories, with any values), or to `Named(...)` (names are the user's, each holding the same
keys). `Optional(...)` marks a key that may be left out. `OPEN` accepts a section as it is: sections
other features add are listed so until their keys are written down here.

To add a parameter: put it in params.yaml, declare it in dvc.yaml, and add its name here (the test
`tests/unit/core/test_schema.py` fails until params.yaml and this schema agree).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from atelier.core.config import ParamsError

LEAF = "value"
FREE = "mapping with names of your choice"
OPEN = "section whose keys are not checked yet"


@dataclass(frozen=True)
class Named:
    """A mapping whose names are the user's (personas, seasonal events), each holding the keys of `schema`."""

    schema: dict[str, Any]


@dataclass(frozen=True)
class Optional:
    """A key that may be left out of params.yaml (`make quick` sets it)."""

    schema: Any


_PERSONA = dict.fromkeys(
    ("share", "joined_during_share", "sessions_per_month", "views_per_session", "cart_rate", "buy_rate",
     "basket_extra_units", "price_sensitivity", "discount_sensitivity", "tier_mix", "mobile_share",
     "affinity_concentration", "lifetime_months", "age_mix"), LEAF)

SCHEMA: dict[str, Any] = {
    "seed": LEAF,
    #: A line every report shows as a banner (the quick run sets it, see params.quick.yaml).
    "run_label": Optional(LEAF),
    "data": {"source": LEAF, "path": LEAF},
    "timeline": {"cutoffs": LEAF, "horizon_days": LEAF},
    "simulate": {
        **dict.fromkeys(("n_customers", "n_products", "start", "end", "signup_lookback_days", "visit_rate_shape",
                         "chunk_customers", "dwell_log_mean", "dwell_log_sd"), LEAF),
        "devices": {"tablet_share_of_non_mobile": LEAF, "buy_multiplier": FREE},
        "drift": {"mobile_logit_per_year": LEAF},
        "calendar": {
            "weekly": LEAF,
            "events": Named(dict.fromkeys(("anchor", "offset_days", "days", "traffic", "discount"), LEAF)),
            "clearance_share": LEAF,
            "clearance_discount": LEAF,
        },
        "catalog": {"categories": FREE, "tier_price_multiplier": FREE, "price_log_sd": LEAF, "popularity_zipf": LEAF,
                    "style_dims": LEAF, "style_strength": LEAF},
        "demographics": {"age_bands": LEAF, "genders": FREE, "regions": FREE},
        "personas": Named(_PERSONA),
    },
    "validate": dict.fromkeys(("valid_from", "valid_until", "max_bad_value_share"), LEAF),
    "prep": {
        **dict.fromkeys(("session_windows_days", "half_life_days", "imputer", "knn_neighbors", "knn_fit_rows",
                         "iterative_max_iter"), LEAF),
        "engagement_weights": FREE,
    },
    "segmentation": dict.fromkeys(
        ("features", "log1p", "k", "k_range", "n_init", "silhouette_sample", "stability_boot", "stability_n_init",
         "dbscan_min_samples", "dbscan_eps", "hdbscan_min_cluster_size", "density_sample", "tsne_sample", "threads",
         "workers"),
        LEAF),
    "model": {
        **dict.fromkeys(
            ("cv_folds", "threads", "permutation_repeats", "prune_below", "prune_tolerance", "overfit_gap_warning",
             "bootstrap", "calibration", "promotion_min_delta", "active_recency_days", "short_history_days",
             "lime_customers", "lime_seeds", "lime_stability_customers", "lime_num_samples", "lime_background",
             "lime_top_k"), LEAF),
        "grids": FREE,
    },
    "replay": {
        **dict.fromkeys(
            ("window_minutes", "micro_batch_events", "watermark_delay_seconds", "allowed_lateness_seconds",
             "network_delay_seconds", "late_share", "duplicate_share", "malformed_share", "treatment_share",
             "response_strength", "sensitivity_strengths", "sensitivity_days", "explain_sample",
             "checkpoint_every_windows", "workers", "throughput_batches"), LEAF),
        "policy": {"recommendations": LEAF, "high_propensity": LEAF, "banners": FREE},
        "drift": dict.fromkeys(("columns", "psi_threshold", "consecutive_days"), LEAF),
    },
    "robustness": {
        "fairness": {
            **dict.fromkeys(("attributes", "target_share", "disparity_threshold", "min_group_size", "min_buyers",
                             "uplift_min_sessions", "bootstrap"), LEAF),
            "gaps": dict.fromkeys(("auc", "calibration_ratio"), LEAF),
        },
        "retraining": dict.fromkeys(("start", "end", "window_months", "policies", "psi_threshold", "columns"), LEAF),
        "injection": {"per_problem": LEAF},
        "explainability": dict.fromkeys(
            ("customers", "seeds", "min_lime_score", "min_seed_stability", "min_sign_agreement", "min_top_k_overlap",
             "correlation_threshold"), LEAF),
        "guard": dict.fromkeys(("kinds", "days", "psi_threshold", "min_auc_ratio", "min_scorings"), LEAF),
        "workers": LEAF,
    },
    # Sections of features built beside this one (a service, a Spark engine, recommendations, off-policy
    # evaluation): accepted as they are until their keys are listed here.
    "compute": {"engine": LEAF,
                "spark": dict.fromkeys(("master", "shuffle_partitions", "state_store", "driver_memory"), LEAF)},
    "recommend": {"weights": FREE, "gains": FREE,
                  **dict.fromkeys(("half_life_days", "factors", "regularization", "alpha", "iterations", "neighbours",
                                   "bootstrap", "threads", "workers"), LEAF)},
    "ope": {"replay": {"days": LEAF, "window_minutes": LEAF, "exploration": {"epsilon": LEAF, "base": LEAF},
                       "targets": LEAF},
            "estimators": dict.fromkeys(("n_boot", "dm_refits", "clip", "folds"), LEAF),
            "obd": dict.fromkeys(("distribution", "prior_simulations", "cell_prior", "relative_half_width"), LEAF)},
    "serve": dict.fromkeys(("host", "port", "max_body_bytes", "max_batch_records", "feed_history", "max_feeds",
                            "watch_seconds", "examples_per_segment", "top_contributions"), LEAF),
}


def _problems(node: Any, schema: Any, where: str) -> list[str]:
    """What is wrong with `node` (a part of params.yaml at dotted path `where`) against `schema`."""
    if isinstance(schema, Optional):
        schema = schema.schema
    if schema is LEAF or schema is OPEN:
        return []
    if not isinstance(node, dict):
        return [f"'{where}' must be a mapping of keys (as in the project's params.yaml), found {node!r}"]
    if schema is FREE:
        return []
    if isinstance(schema, Named):
        return [problem for name, value in node.items() for problem in _problems(value, schema.schema,
                                                                                  f"{where}.{name}")]
    found: list[str] = []
    prefix = f"{where}." if where else ""
    for key in node:
        if key not in schema:
            close = difflib.get_close_matches(str(key), list(schema), n=1)
            hint = f"did you mean '{prefix}{close[0]}'?" if close else f"{where or 'the top level'} takes: " + \
                ", ".join(schema)
            found.append(f"unknown key '{prefix}{key}' ({hint})")
    for key, inner in schema.items():
        if key in node:
            found.extend(_problems(node[key], inner, f"{prefix}{key}"))
        elif not isinstance(inner, Optional) and inner is not OPEN:
            found.append(f"missing key '{prefix}{key}'; restore it from the project's params.yaml")
    return found


def problems(params: dict[str, Any], schema: dict[str, Any] | None = None) -> list[str]:
    """Every unknown or missing key of `params` (as read from params.yaml), one sentence each."""
    return _problems(params, SCHEMA if schema is None else schema, "")


def check_keys(params: dict[str, Any], source: str = "params.yaml") -> None:
    """Raise one ParamsError listing every unknown or missing key of `params` (read from `source`), with the fix."""
    found = problems(params)
    if found:
        raise ParamsError(
            f"{source}: " + "; ".join(found) + ". Fix the spelling (or restore the key) and run again; a new "
            "parameter must also be listed in src/atelier/core/schema.py"
        )
