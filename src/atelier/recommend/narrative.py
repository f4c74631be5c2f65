"""The recommendations report's findings as sentences, computed from the tables (every branch is tested)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from atelier.recommend.stage import BASELINES


def verdict(gain: dict[str, Any]) -> str:
    """How the learned list compares with the rule: "beats" or "falls behind" when the paired difference's whole
    interval lies above or below 0, "cannot be told apart from" when it covers 0 (or is undefined)."""
    return "beats" if gain["ci_low"] > 0 else "falls behind" if gain["ci_high"] < 0 else "cannot be told apart from"


def out_of_time_story(ndcg: pd.DataFrame, table: pd.DataFrame, gain: dict[str, Any], learned: str, k: int,
               simulated: bool, rule: str = "category_rule") -> str:
    """The out-of-time finding: does the learned list beat the rule (by the paired interval), which baseline is
    best, and (simulated shops only) how much of the true-best list's preference each list captures.

    ndcg: `stage.wide(result.table, "ndcg")` (ndcg per method); table: the mean of every metric per method
    (truth_share among them on a simulated shop); gain: `stage.learned_gain`.
    """
    best_baseline = max(BASELINES, key=lambda method: ndcg.loc[method, "ndcg"])
    text = (
        f"On the test horizon the learned list ({learned}) **{verdict(gain)}** the favourite-category rule: NDCG@{k} "
        f"{ndcg.loc[learned, 'ndcg']:.3f} against {ndcg.loc[rule, 'ndcg']:.3f}, a difference of "
        f"{gain['difference']:+.3f} (95 % interval {gain['ci_low']:+.3f} to {gain['ci_high']:+.3f}, paired over the "
        f"same customers). The best baseline is {best_baseline}. "
    )
    if not simulated:
        return text
    learned_truth = table.loc[learned, "truth_share"] if "truth_share" in table else float("nan")
    return text + (
        f"Against the truth, the learned list captures {learned_truth:.0%} of the true-best list's preference, "
        f"the rule {table.loc[rule, 'truth_share']:.0%}; the oracle's own NDCG, {ndcg.loc['oracle', 'ndcg']:.3f}, is "
        "the ceiling set by chance: even the true-best list misses what a customer happened to view next."
    )


def segment_story(by_segment: pd.DataFrame, learned: str, rule: str = "category_rule") -> str:
    """Where the learned list gains most and least over the rule (cold starts left out: every method gives them the
    same list) and, when the oracle was scored, where the gap to it is widest and narrowest.

    by_segment: NDCG per segment (rows) and method (columns).
    """
    lift = (by_segment[learned] - by_segment[rule]).drop("cold start", errors="ignore")
    text = (f"The learned list's largest gain over the rule is for **{lift.idxmax()}** ({lift.max():+.3f}), the "
            f"smallest for **{lift.idxmin()}** ({lift.min():+.3f}). Cold starts get the same bestsellers from every "
            "method. ")
    if "oracle" not in by_segment:
        return text
    gap = by_segment["oracle"] - by_segment[learned]
    return text + (f"The gap to the oracle is widest for **{gap.idxmax()}** ({gap.max():.3f} NDCG) and narrowest for "
                   f"**{gap.idxmin()}** ({gap.min():.3f}).")
