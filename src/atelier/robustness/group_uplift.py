"""Does personalization help every group? The replay's A/B test split by customer group.

Split by group, each estimate has fewer sessions and so a wider interval: a group whose interval
covers 0 is *not shown to benefit*, which is not the same as shown not to benefit.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from atelier.replay import abtest
from atelier.robustness.fairness import FairnessSettings

UNMATCHED = "(not in groups)"


def uplift_by_group(
    visits: pd.DataFrame,
    groups: pd.DataFrame,
    attribute: str,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    min_sessions: int = 200,
) -> pd.DataFrame:
    """Conversion per arm and relative uplift (customer-clustered bootstrap CI) per group of `attribute`.

    visits needs customer_id, arm, purchased (or converted) and revenue; groups is indexed by
    customer_id. Visits of customers absent from groups form the group "(not in groups)". A
    group with fewer than `min_sessions` sessions in either arm gets NaN uplift and a note.
    """
    if attribute not in groups.columns:
        raise ValueError(f"attribute {attribute!r} is not a column of groups {list(groups.columns)}; pick one of those")
    visits = visits if "converted" in visits.columns else visits.rename(columns={"purchased": "converted"})
    if min_sessions < 1:
        raise ValueError(f"min_sessions must be at least 1, got {min_sessions}")
    missing = [column for column in abtest.SESSION_COLUMNS if column not in visits.columns]
    if missing:
        raise ValueError(
            f"visits is missing columns {missing}; it needs customer_id, arm, purchased (or converted) and revenue"
        )
    sessions = visits.loc[:, list(abtest.SESSION_COLUMNS)]
    labels = sessions["customer_id"].map(groups[attribute]).astype(object)
    sessions = sessions.assign(group=labels.where(labels.notna(), UNMATCHED).astype(str))
    rows = []
    for group, part in sessions.groupby("group", sort=True):
        per_arm = part["arm"].value_counts().reindex(list(abtest.ARMS), fill_value=0)
        row = {
            "attribute": attribute,
            "group": group,
            "customers": part["customer_id"].nunique(),
            **{f"sessions_{arm}": int(per_arm[arm]) for arm in abtest.ARMS},
        }
        if per_arm.min() < min_sessions:
            row["note"] = f"fewer than {min_sessions} sessions in an arm; uplift not estimated"
        else:
            result = abtest.uplift(part, metric="conversion_rate", n_boot=n_boot, seed=seed)
            row.update(
                {
                    key: result[key]
                    for key in ("control", "treatment", "relative_uplift", "ci_low", "ci_high", "p_value_two_sided")
                },
                note="" if result["control"] > 0 else "no control conversions; relative uplift undefined",
            )
        rows.append(row)
    columns = [
        "attribute",
        "group",
        "customers",
        "sessions_control",
        "sessions_treatment",
        "control",
        "treatment",
        "relative_uplift",
        "ci_low",
        "ci_high",
        "p_value_two_sided",
        "note",
    ]
    return pd.DataFrame(rows).reindex(columns=columns)


def uplift_table(visits: pd.DataFrame, groups: pd.DataFrame, settings: FairnessSettings, *, seed: int) -> pd.DataFrame:
    """`uplift_by_group` for every attribute, one after the other; visitors in no group (new sign-ups missing
    from the snapshot) appear once, as attribute "(any)", group UNMATCHED."""
    by_group = pd.concat(
        [
            uplift_by_group(
                visits,
                groups,
                attribute,
                n_boot=settings.bootstrap,
                seed=seed,
                min_sessions=settings.uplift_min_sessions,
            )
            for attribute in groups.columns
        ],
        ignore_index=True,
    )
    unmatched = by_group[by_group["group"] == UNMATCHED].head(1).assign(attribute="(any)")
    return pd.concat([by_group[by_group["group"] != UNMATCHED], unmatched], ignore_index=True)


def uplift_reading(by_group: pd.DataFrame) -> dict[str, Any]:
    """Of the groups with an uplift estimate (UNMATCHED left out): how many, and which benefit clearly (interval
    above 0), which have an interval covering 0 (not shown to benefit), and which are harmed (below 0), as
    "attribute=group" names; unmatched: whether visitors in no group have a row."""
    estimated = by_group[by_group["relative_uplift"].notna() & (by_group["group"] != UNMATCHED)]

    def names(rows: pd.DataFrame) -> list[str]:
        return [f"{attribute}={group}" for attribute, group in zip(rows["attribute"], rows["group"])]

    return {
        "estimated": int(len(estimated)),
        "benefit": names(estimated[estimated["ci_low"] > 0]),
        "covering": names(estimated[(estimated["ci_low"] <= 0) & (estimated["ci_high"] >= 0)]),
        "harmed": names(estimated[estimated["ci_high"] < 0]),
        "unmatched": bool((by_group["group"] == UNMATCHED).any()),
    }
