"""When to trust one explanation: LIME against xgboost's exact contributions, customer by customer.

LIME's weights (changes in probability for discretized conditions) and xgboost's `pred_contribs`
(log-odds, exact for the model) are in different units, so they are compared on what does not
depend on units: the direction of each feature's push and the features' order by size. For every
customer, each seed gives one LIME explanation, compared with the exact contributions:

* lime_score: the local surrogate's weighted R² on its perturbations. Low means a linear story
  does not describe the model around this customer;
* sign_agreement: the share of LIME's top features that push the same way as their exact
  contribution. A feature the model never uses has contribution 0 and never agrees;
* rank_correlation: Spearman between |LIME weight| and |exact contribution| over LIME's top
  features. NaN with fewer than three features or a constant side;
* top_k_overlap_with_exact: Jaccard overlap of LIME's top k and the k largest |exact contributions|;
* seed_stability: mean pairwise Jaccard overlap of LIME's top k across the seeds.

The first four are means over the seeds; seeds where rank_correlation is NaN are left out of its
mean. LIME names are mapped to source features with `explain.source_feature`, and
`explain.xgboost_contributions` sums encoded columns (ordinal, one-hot) into their source, so a
categorical is one feature on both sides. `verdicts` turns four checks (surrogate fit, seed
stability, sign agreement, top-k overlap; `CHECKS`) into trust / caution / do not trust by the
thresholds in `Thresholds`; `check_pass_rates` says how often each check passes on its own, so a
reader sees which check fails, not only the verdict. Two yardsticks put the thresholds in context:
`surrogate_ceiling` (the fit LIME reaches when it may use every feature: what any linear story over
its conditions can explain) and `chance_overlap` (the top-k overlap of a random pick of features).

Correlated features are a separate warning (`correlated_pairs`): when two columns carry the same
information (recency_days and days_since_last_purchase), the model and LIME may split the credit
between them arbitrarily, so neither weight should be read on its own.

`review_champion` runs the whole review for a registered champion; `review_reading` turns it into
the facts the report words (why the fit fails, what goes with a better fit, whether the top-k bar
asks more than chance).
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from atelier.core.config import ParamsError
from atelier.core.io import python_scalar
from atelier.data import transform
from atelier.model import explain
from atelier.model.champion import Champion
from atelier.model.explain import TabularExplainer

VERDICTS = ("trust", "caution", "do not trust")
AGREEMENT = ["sign_agreement", "rank_correlation", "top_k_overlap_with_exact", "seed_stability"]
#: The checks behind a verdict: (metrics key, label in reasons and tables, review column, `Thresholds` field).
CHECKS = (
    ("surrogate_fit", "surrogate R²", "lime_score", "min_lime_score"),
    ("seed_stability", "seed stability", "seed_stability", "min_seed_stability"),
    ("sign_agreement", "sign agreement", "sign_agreement", "min_sign_agreement"),
    ("top_k_overlap", "top-k overlap", "top_k_overlap_with_exact", "min_top_k_overlap"),
)


@dataclass(frozen=True)
class Thresholds:
    """The checks an explanation must pass (each passes at or above its threshold; NaN fails).

    0 checks failed -> "trust", 1 -> "caution", 2 to 4 -> "do not trust".
    """

    #: Surrogate R². Below 0.5 the linear surrogate explains less than half of how the model's
    #: answers vary over LIME's perturbations (weighted by closeness to the customer): its weights
    #: then describe a minority of the model's behaviour, so their sizes cannot be read.
    min_lime_score: float = 0.5
    #: Mean Jaccard of the top k across seeds. With k = 5, 0.6 means about four of five features are shared.
    min_seed_stability: float = 0.6
    #: Share of LIME's top features with the exact contribution's sign. With k = 5, 0.8 allows one wrong sign.
    min_sign_agreement: float = 0.8
    #: Mean Jaccard of LIME's top k and the exact top k: the seed-stability bar (about four of five
    #: shared with k = 5), so LIME must agree with the model as well as it must agree with itself.
    min_top_k_overlap: float = 0.6

    @classmethod
    def from_params(cls, section: dict[str, Any]) -> Thresholds:
        """The thresholds from params.yaml `robustness.explainability` (min_lime_score, min_seed_stability, ...)."""
        return cls(**{f.name: _number(section, f.name, low=0.0, high=1.0) for f in fields(cls)})


DEFAULT_THRESHOLDS = Thresholds()
SECTION = "params.yaml robustness.explainability"
#: Model families whose exact per-feature contributions the review compares LIME with (`pred_contribs`).
EXACT_FAMILIES = ("xgboost",)


def _number(section: dict[str, Any], key: str, *, low: float, high: float | None = None) -> float:
    """`section[key]` as a float in [low, high], or a ParamsError naming the key."""
    if key not in section:
        raise ParamsError(f"{SECTION}: missing key '{key}'; restore it from the project's params.yaml")
    value = section[key]
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not low <= value <= (high if high is not None else value)
    ):
        bounds = f"between {low:g} and {high:g}" if high is not None else f"{low:g} or more"
        raise ParamsError(f"{SECTION}.{key}: a number {bounds}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class ExplainSettings:
    """params.yaml `robustness.explainability`: who is explained, how often, and the bars of the verdicts."""

    customers: int
    seeds: int
    thresholds: Thresholds
    correlation_threshold: float

    @classmethod
    def from_params(cls, section: dict[str, Any]) -> ExplainSettings:
        """Settings from params.yaml's `robustness.explainability` section."""
        customers, seeds = _number(section, "customers", low=1), _number(section, "seeds", low=2)
        if customers != int(customers) or seeds != int(seeds):
            raise ParamsError(
                f"{SECTION}.customers and .seeds: whole numbers, got {section['customers']!r} and {section['seeds']!r}"
            )
        return cls(
            customers=int(customers),
            seeds=int(seeds),
            thresholds=Thresholds.from_params(section),
            correlation_threshold=_number(section, "correlation_threshold", low=0.0, high=1.0),
        )


def verdicts(review: pd.DataFrame, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> pd.DataFrame:
    """Per row of `review`: verdict ("trust" / "caution" / "do not trust") and reasons (the failed checks)."""
    passed = _passes(review, thresholds)
    reasons = [
        [
            f"{label} {review[column].iloc[position]:.2f} < {getattr(thresholds, field):g}"
            for _, label, column, field in CHECKS
            if not passed[label].iloc[position]
        ]
        for position in range(len(review))
    ]
    return pd.DataFrame(
        {
            "verdict": [VERDICTS[min(len(failed), 2)] for failed in reasons],
            "reasons": ["; ".join(failed) for failed in reasons],
        },
        index=review.index,
    )


def _passes(review: pd.DataFrame, thresholds: Thresholds) -> pd.DataFrame:
    """One boolean column per check (by label): the value is at or above its threshold (NaN fails)."""
    missing = [column for _, _, column, _ in CHECKS if column not in review.columns]
    if missing:
        raise ValueError(f"review lacks columns {missing}; build it with trust.explanation_review")
    return pd.DataFrame(
        {
            label: review[column].to_numpy(dtype=float) >= getattr(thresholds, field)
            for _, label, column, field in CHECKS
        },
        index=review.index,
    )


def check_pass_rates(review: pd.DataFrame, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> pd.DataFrame:
    """Each check on its own (index: its label, in `CHECKS` order): which check fails, and how often.

    Columns: column (of the review), threshold, median (of the column), passed (explanations at or
    above the threshold), pass_rate, and only_failure (explanations for which this is the one
    failed check: the ones it alone moves from "trust" to "caution").
    """
    if review.empty:
        raise ValueError("check_pass_rates: the review is empty")
    passed = _passes(review, thresholds)
    failures = (~passed).sum(axis=1)
    rows = {
        label: {
            "column": column,
            "threshold": float(getattr(thresholds, field)),
            "median": float(review[column].median()),
            "passed": int(passed[label].sum()),
            "pass_rate": float(passed[label].mean()),
            "only_failure": int((~passed[label] & (failures == 1)).sum()),
        }
        for _, label, column, field in CHECKS
    }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "check"
    return table


def chance_overlap(n_features: int, k: int) -> float:
    """The expected Jaccard overlap of `k` features picked at random among `n_features` with a fixed top `k`.

    The floor of the top-k check: an explanation that names its features at random scores this on
    average. Hypergeometric: the shared count s runs from max(0, 2k - n) to k, Jaccard = s / (2k - s).
    """
    if n_features < 1 or k < 1:
        raise ValueError(f"chance_overlap: n_features and k must be 1 or more, got {n_features} and {k}")
    k = min(k, n_features)
    total = math.comb(n_features, k)
    return sum(
        math.comb(k, s) * math.comb(n_features - k, k - s) / total * s / (2 * k - s)
        for s in range(max(1, 2 * k - n_features), k + 1)
    )


def surrogate_ceiling(
    explainer: TabularExplainer, rows: pd.DataFrame, *, seed: int, num_samples: int | None = None
) -> pd.Series:
    """Per customer in `rows` (raw features, index kept): LIME's surrogate R² when it may use every feature.

    Keeping only the top k can only lower the fit, so this is the most a linear story over LIME's
    conditions explains around the customer. A ceiling close to the top-k score says the poor fit
    comes from the model's own shape (steps, interactions), not from leaving features out.
    """
    if rows.empty:
        raise ValueError("surrogate_ceiling: no rows to explain; pass at least one customer's features")
    if num_samples is not None:
        explainer = copy.copy(explainer)
        explainer.num_samples = int(num_samples)
    everything = len(explainer.columns)
    scores = [
        explainer.explain(rows.iloc[position], seed=seed, num_features=everything).attrs["score"]
        for position in range(len(rows))
    ]
    return pd.Series(np.asarray(scores, dtype=float), index=rows.index, name="lime_score_all_features")


def _jaccard(first: set, second: set) -> float:
    return len(first & second) / len(first | second) if first | second else 1.0


def _spearman(first: pd.Series, second: pd.Series) -> float:
    if len(first) < 3 or first.nunique() < 2 or second.nunique() < 2:
        return math.nan
    return float(first.corr(second, method="spearman"))


def _lime_weights(table: pd.DataFrame, sources: list[str]) -> pd.Series:
    """LIME's weights per source feature (a name that maps to no source keeps its own)."""
    names = [explain.source_feature(str(name), sources) or str(name) for name in table["feature"]]
    return pd.Series(table["weight"].to_numpy(dtype=float), index=names).groupby(level=0, sort=False).sum()


def _agreement(weights: pd.Series, exact: pd.Series, top_k: int) -> dict[str, float]:
    """One explanation against one customer's exact contributions (indexed by source feature)."""
    matched = exact.reindex(weights.index, fill_value=0.0)
    ranked = exact.abs().sort_values(ascending=False, kind="stable")
    picked = weights.abs().sort_values(ascending=False, kind="stable")
    return {
        "sign_agreement": float(np.mean(np.sign(weights.to_numpy()) == np.sign(matched.to_numpy()))),
        "rank_correlation": _spearman(weights.abs(), matched.abs()),
        "top_k_overlap_with_exact": _jaccard(set(picked.index[:top_k]), set(ranked.index[:top_k])),
    }


def explanation_review(
    explainer: TabularExplainer,
    pipeline: Pipeline,
    rows: pd.DataFrame,
    *,
    seeds: list[int],
    num_features: int,
    num_samples: int | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> pd.DataFrame:
    """One row per customer in `rows` (raw features, index kept): the checks above, prediction, verdict, reasons.

    `pipeline` is the fitted xgboost Pipeline that `explainer` explains (it takes
    `transform.model_frame` of the raw features); `num_samples` overrides the explainer's LIME
    samples for this review only. Every customer is explained once per seed, with the same seeds.
    """
    if rows.empty:
        raise ValueError("explanation_review: no rows to explain; pass at least one customer's features")
    if len(set(seeds)) < 2:
        raise ValueError(f"explanation_review: seed stability needs at least two different seeds, got {list(seeds)}")
    if num_samples is not None:  # a shallow copy: the LIME machinery is shared, the caller's setting is not changed
        explainer = copy.copy(explainer)
        explainer.num_samples = int(num_samples)
    sources = list(explainer.columns)
    exact = explain.xgboost_contributions(pipeline, transform.model_frame(rows[sources]))
    exact = exact.reindex(columns=sources, fill_value=0.0)  # drops "bias"; an unused feature contributes 0
    records = []
    for position in range(len(rows)):
        tables = [explainer.explain(rows.iloc[position], seed=seed, num_features=num_features) for seed in seeds]
        weights = [_lime_weights(table, sources) for table in tables]
        per_seed = pd.DataFrame([_agreement(w, exact.iloc[position], num_features) for w in weights])
        picks = [set(w.abs().sort_values(ascending=False, kind="stable").index[:num_features]) for w in weights]
        records.append(
            {
                "lime_score": float(np.mean([table.attrs["score"] for table in tables])),
                **{column: float(value) for column, value in per_seed.mean().items()},
                "seed_stability": float(np.mean([_jaccard(a, b) for a, b in itertools.combinations(picks, 2)])),
                "prediction": tables[0].attrs["prediction"],
            }
        )
    review = pd.DataFrame(records, index=rows.index)
    return review.join(verdicts(review, thresholds))


def correlated_pairs(frame: pd.DataFrame, threshold: float = 0.8) -> pd.DataFrame:
    """Pairs of numeric columns with |Spearman| at or above `threshold`, strongest first.

    Columns: feature_a, feature_b, spearman. Spearman catches monotone relations that are not
    straight lines (x and log x); NaN is left out pairwise; constant columns never pair.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"correlated_pairs: threshold must be in (0, 1], got {threshold}")
    matrix = frame.select_dtypes("number").corr(method="spearman")
    pairs = [
        (first, second, float(matrix.at[first, second]))
        for first, second in itertools.combinations(matrix.columns, 2)
        if abs(matrix.at[first, second]) >= threshold
    ]
    table = pd.DataFrame(pairs, columns=["feature_a", "feature_b", "spearman"])
    order = np.argsort(-table["spearman"].abs().to_numpy(), kind="stable")
    return table.iloc[order].reset_index(drop=True)


def agreement_by_confidence(review: pd.DataFrame, *, by: str = "lime_score", bins: int = 3) -> pd.DataFrame:
    """Mean agreement and stability per group: quantile bins of lime_score (default) or a column's values ("verdict").

    Columns: customers, lime_score_min, lime_score_max and the means of the agreement columns.
    attrs["spearman_with_lime_score"]: over all customers, each agreement column's Spearman with
    lime_score, so a claim such as "a poorer surrogate agrees less" can be checked, not assumed.
    """
    if review.empty:
        raise ValueError("agreement_by_confidence: the review is empty")
    groups = pd.qcut(review["lime_score"], q=bins, duplicates="drop") if by == "lime_score" else review[by]
    aggregations: dict[str, Any] = {
        "customers": ("lime_score", "size"),
        "lime_score_min": ("lime_score", "min"),
        "lime_score_max": ("lime_score", "max"),
    }
    table = review.groupby(groups, observed=True, sort=True).agg(**aggregations, **{c: (c, "mean") for c in AGREEMENT})
    table.index.name = f"{by} bin" if by == "lime_score" else by
    table.attrs["spearman_with_lime_score"] = {c: _spearman(review["lime_score"], review[c]) for c in AGREEMENT}
    return table


def review_summary(review: pd.DataFrame, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> dict[str, Any]:
    """For metrics: customers, verdict shares (every verdict, 0 if absent), each check's threshold, pass rate
    and only-failure share (by `CHECKS` key), and medians; plain ints and floats (NaN for an undefined median)."""
    shares = review["verdict"].value_counts(normalize=True)
    rates = check_pass_rates(review, thresholds)
    return {
        "customers": int(len(review)),
        "verdict_shares": {verdict: float(shares.get(verdict, 0.0)) for verdict in VERDICTS},
        "checks": {
            key: {
                "threshold": float(rates.at[label, "threshold"]),
                "pass_rate": float(rates.at[label, "pass_rate"]),
                "only_failure_share": float(rates.at[label, "only_failure"] / len(review)),
            }
            for key, label, _, _ in CHECKS
        },
        **{
            f"median_{column}": python_scalar(review[column].median())
            for column in (
                "lime_score",
                "sign_agreement",
                "rank_correlation",
                "top_k_overlap_with_exact",
                "seed_stability",
            )
        },
    }


# --------------------------------------------------------------------------------------------
# The champion's review, and what it says
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChampionReview:
    """The explanation review of a champion and its two yardsticks."""

    review: pd.DataFrame  #: `explanation_review`, one row per customer explained
    ceiling: pd.Series  #: `surrogate_ceiling` of the same customers
    chance: float  #: `chance_overlap` of the top k among the champion's features
    check_rates: pd.DataFrame  #: `check_pass_rates`
    features: int  #: how many features the champion uses
    top_k: int  #: LIME's top k


def review_champion(
    champion: Champion,
    train: pd.DataFrame,
    test: pd.DataFrame,
    settings: ExplainSettings,
    *,
    seed: int,
    top_k: int,
    num_samples: int,
    background: int = 2000,
) -> ChampionReview:
    """Explain a seeded sample of `settings.customers` test customers, each with `settings.seeds` seeds.

    LIME draws its perturbations from a seeded sample of `background` training rows; the champion
    must be of a family with exact contributions (`EXACT_FAMILIES`).
    """
    if champion.name not in EXACT_FAMILIES:
        raise ValueError(
            f"review_champion: exact contributions need one of {list(EXACT_FAMILIES)}; the champion is {champion.name}"
        )
    features = champion.numeric + champion.categorical
    explainer = TabularExplainer(
        train[features].sample(n=min(background, len(train)), random_state=seed),
        champion.numeric,
        champion.categorical,
        champion.predict_proba,
        num_samples=num_samples,
    )
    sample = test.sample(n=min(settings.customers, len(test)), random_state=seed)[features]
    review = explanation_review(
        explainer,
        champion.pipeline,
        sample,
        seeds=[seed + i for i in range(settings.seeds)],
        num_features=top_k,
        thresholds=settings.thresholds,
    )
    return ChampionReview(
        review=review,
        ceiling=surrogate_ceiling(explainer, sample, seed=seed),
        chance=chance_overlap(len(features), top_k),
        check_rates=check_pass_rates(review, settings.thresholds),
        features=len(features),
        top_k=top_k,
    )


#: The surrogate's fit lost by keeping only the top k, below which the features left out are not the cause.
SMALL_FIT_GAP = 0.05


def chance_correlation(n: int, confidence: float = 0.95) -> float:
    """The size a Spearman correlation over `n` customers stays under by chance: z / sqrt(n - 1), the
    large-sample test of no correlation (inf below three customers)."""
    from scipy import stats

    return float(stats.norm.ppf(0.5 + confidence / 2) / math.sqrt(n - 1)) if n >= 3 else math.inf


def association(rho: float, n: int, confidence: float = 0.95) -> str:
    """ "more", "less" or "hardly": the direction of a Spearman correlation over `n` customers, "hardly"
    when it is within what chance gives (`chance_correlation`) or undefined."""
    if pd.isna(rho) or abs(rho) < chance_correlation(n, confidence):
        return "hardly"
    return "more" if rho > 0 else "less"


def review_reading(result: ChampionReview) -> dict[str, Any]:
    """The facts of a champion review, for the report to word.

    weakest: the label of the check passed least often; fit_gap: median surrogate ceiling minus
    median surrogate fit; fit_cause: "model shape" (the gap is under SMALL_FIT_GAP: the top k lose
    almost nothing, the model's own shape is what a linear story misses) or "too few features";
    fit_reachable: share of customers whose ceiling reaches the fit bar (0: no explanation of this
    model can pass it); chance_below_bar: the top-k bar asks more than a random pick reaches;
    with_fit: per agreement column, its Spearman with the fit and `association` ("more", "less",
    "hardly"); chance_spearman: the size under which a Spearman is within chance; fit_tells: what
    a better fit says, "which features" (more overlap or stability, not more sign agreement),
    "direction" (the reverse), "both" or "neither".
    """
    review, ceiling = result.review, result.ceiling
    (_, fit_label, _, _), *_, (_, overlap_label, _, _) = CHECKS
    bar = result.check_rates.at[fit_label, "threshold"]
    gap = float(ceiling.median() - review["lime_score"].median())
    spearman = agreement_by_confidence(review).attrs["spearman_with_lime_score"]
    with_fit = {column: (spearman[column], association(spearman[column], len(review))) for column in AGREEMENT}
    features = "more" in (with_fit["top_k_overlap_with_exact"][1], with_fit["seed_stability"][1])
    direction = with_fit["sign_agreement"][1] == "more"
    return {
        "weakest": str(result.check_rates["pass_rate"].idxmin()),
        "fit_gap": gap,
        "fit_cause": "model shape" if gap < SMALL_FIT_GAP else "too few features",
        "fit_reachable": float((ceiling >= bar).mean()),
        "chance_below_bar": bool(result.chance < result.check_rates.at[overlap_label, "threshold"]),
        "with_fit": with_fit,
        "chance_spearman": chance_correlation(len(review)),
        "fit_tells": {(True, False): "which features", (False, True): "direction", (True, True): "both"}.get(
            (features, direction), "neither"
        ),
    }
