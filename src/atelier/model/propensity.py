"""Purchase-likelihood models: candidates, grid search, feature selection, out-of-time validation.

Label: did the customer order within the horizon after a snapshot's cutoff (from prep). Models
train on the earlier snapshots and are tested on the last one (out of time). Inside training,
hyperparameters are tuned with stratified K-fold cross-validation grouped by customer, because
one customer appears in several monthly snapshots and must not sit in a training and a
validation fold at once. Every candidate is a scikit-learn Pipeline whose preprocessing is
refitted inside each fold.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV, calibration_curve
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder
from threadpoolctl import threadpool_limits
from xgboost import XGBClassifier

from atelier.core import attributes, paths
from atelier.core.config import ParamsError
from atelier.data import transform
from atelier.model.explain import source_feature

FAMILIES = ("logistic_regression", "random_forest", "xgboost")
DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class ModelSettings:
    """The tunables of the propensity phase (params.yaml `model`, plus the seed)."""

    cv_folds: int
    threads: int
    grids: dict[str, dict[str, list[Any]]]
    permutation_repeats: int
    prune_below: float
    prune_tolerance: float
    overfit_gap_warning: float
    bootstrap: int
    calibration: str
    promotion_min_delta: float
    active_recency_days: int
    lime_customers: int
    lime_seeds: int
    lime_num_samples: int
    lime_top_k: int
    lime_background: int
    lime_stability_customers: int
    short_history_days: int
    seed: int

    @classmethod
    def from_params(cls, section: dict[str, Any], seed: int) -> ModelSettings:
        """Settings from params.yaml's `model` section."""
        try:
            settings = cls(seed=int(seed), **{name: section[name] for name in cls.__dataclass_fields__ if name != "seed"})
        except KeyError as missing:
            raise ParamsError(f"params.yaml model: missing key {missing}; restore it from the project's params.yaml") from None
        unknown = set(settings.grids) - set(FAMILIES)
        if unknown:
            raise ParamsError(f"params.yaml model.grids: unknown candidates {sorted(unknown)}; known: {list(FAMILIES)}")
        if settings.calibration not in ("isotonic", "sigmoid"):
            raise ParamsError(f"params.yaml model.calibration: '{settings.calibration}' is neither 'isotonic' nor 'sigmoid'")
        return settings


# --------------------------------------------------------------------------------------------
# Data: the time split and the leakage rule
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TimeSplit:
    """Training snapshots (earlier cutoffs) and the out-of-time test snapshot (the last cutoff)."""

    train: pd.DataFrame
    test: pd.DataFrame
    train_cutoffs: list[pd.Timestamp]
    test_cutoff: pd.Timestamp


def split_by_time(snapshots: pd.DataFrame, horizon_days: int) -> TimeSplit:
    """Train on every snapshot before the last cutoff, test on the last.

    The leakage rule across snapshots: a training label looks `horizon_days` past its cutoff, so
    that window must end by the test cutoff; otherwise training would use what happened during
    the test period. Censored labels (windows past the data) cannot be used at all.
    """
    cutoffs = sorted(pd.Timestamp(c) for c in snapshots["cutoff"].unique())
    if len(cutoffs) < 2:
        raise ParamsError("params.yaml timeline.cutoffs: the propensity phase needs at least two cutoffs (train, test)")
    test_cutoff, train_cutoffs = cutoffs[-1], cutoffs[:-1]
    for cutoff in train_cutoffs:
        if cutoff + horizon_days * DAY > test_cutoff:
            raise ParamsError(
                f"params.yaml timeline.cutoffs: the training snapshot {cutoff.date()}'s label window ({horizon_days} days) "
                f"ends after the test cutoff {test_cutoff.date()}, so its labels use the test period; space the cutoffs "
                "at least timeline.horizon_days apart"
            )
    if snapshots["label"].isna().any():
        censored = sorted({pd.Timestamp(c).date().isoformat() for c in snapshots.loc[snapshots["label"].isna(), "cutoff"]})
        raise ParamsError(
            f"params.yaml timeline.cutoffs: labels at {censored} are censored (the data ends before their window does); "
            "choose cutoffs at least timeline.horizon_days before the end of the data"
        )
    train = snapshots[snapshots["cutoff"] < test_cutoff]
    test = snapshots[snapshots["cutoff"] == test_cutoff]
    return TimeSplit(train=train, test=test, train_cutoffs=train_cutoffs, test_cutoff=test_cutoff)


def features_of(snapshots: pd.DataFrame, keep: list[str] | None = None) -> tuple[list[str], list[str]]:
    """Numeric and categorical feature columns (restricted to `keep` if given)."""
    numeric, categorical = transform.split_columns(snapshots)
    if keep is not None:
        numeric = [c for c in numeric if c in keep]
        categorical = [c for c in categorical if c in keep]
    return numeric, categorical


def xy(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Model input (categoricals as objects with NaN), labels and groups (customer ids)."""
    return transform.model_frame(frame[numeric + categorical]), frame["label"].astype(int).to_numpy(), frame.index.to_numpy()


# --------------------------------------------------------------------------------------------
# Candidates and the grid search
# --------------------------------------------------------------------------------------------
def _ordinal_categoricals(numeric: list[str], categorical: list[str], numeric_step: Any) -> ColumnTransformer:
    encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2)
    parts = [("numeric", numeric_step, numeric)] + ([("categorical", encoder, categorical)] if categorical else [])
    return ColumnTransformer(parts, verbose_feature_names_out=False)


def candidate(family: str, numeric: list[str], categorical: list[str], settings: ModelSettings) -> Pipeline:
    """An unfitted candidate Pipeline: its own preprocessing, then the model."""
    if family == "logistic_regression":
        # log1p on heavy tails, median imputation with missing indicators, scaling, one-hot demographics.
        prepare = transform.build_transformer(numeric, categorical, imputer="median").named_steps["columns"]
        model = LogisticRegression(max_iter=2000)
    elif family == "random_forest":
        prepare = _ordinal_categoricals(numeric, categorical, SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True))
        model = RandomForestClassifier(n_jobs=settings.threads, random_state=settings.seed, max_features="sqrt")
    elif family == "xgboost":
        # xgboost learns where undefined values should go, so no imputation.
        prepare = _ordinal_categoricals(numeric, categorical, "passthrough")
        model = XGBClassifier(n_jobs=settings.threads, random_state=settings.seed, tree_method="hist", eval_metric="logloss")
    else:
        raise ParamsError(f"params.yaml model.grids: unknown candidate '{family}'; known: {list(FAMILIES)}")
    return Pipeline([("prepare", prepare), ("model", model)])


def tuned(family: str, params: dict[str, Any], numeric: list[str], categorical: list[str], settings: ModelSettings) -> Pipeline:
    """An unfitted candidate with the model hyperparameters `params` (e.g. the grid search's best)."""
    return candidate(family, numeric, categorical, settings).set_params(**{f"model__{k}": v for k, v in params.items()})


def cv_splits(y: np.ndarray, groups: np.ndarray, settings: ModelSettings) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified K-fold splits with every customer's rows in one fold (seeded)."""
    splitter = StratifiedGroupKFold(n_splits=settings.cv_folds, shuffle=True, random_state=settings.seed)
    return list(splitter.split(np.zeros(len(y)), y, groups))


def grid_search(frame: pd.DataFrame, numeric: list[str], categorical: list[str], settings: ModelSettings,
                progress: Callable | None = None) -> tuple[pd.DataFrame, dict[str, GridSearchCV]]:
    """Grid search every candidate with grouped stratified CV (ROC-AUC); the CV table and fitted searches."""
    X, y, groups = xy(frame, numeric, categorical)
    splits = cv_splits(y, groups, settings)
    searches, rows = {}, []
    families = [f for f in FAMILIES if f in settings.grids]
    for family in progress(families) if progress else families:
        grid = {f"model__{name}": values for name, values in settings.grids[family].items()}
        search = GridSearchCV(candidate(family, numeric, categorical, settings), grid, scoring="roc_auc", cv=splits,
                              refit=True, return_train_score=True, n_jobs=1, error_score="raise")
        with threadpool_limits(1, user_api="blas"):
            search.fit(X, y)
        if isinstance(search.best_estimator_[-1], RandomForestClassifier):
            search.best_estimator_[-1].set_params(n_jobs=1)  # repeatable predictions (see `fit`)
        searches[family] = search
        results = pd.DataFrame(search.cv_results_)
        for _, row in results.iterrows():
            rows.append({
                "candidate": family,
                "params": {k.removeprefix("model__"): v for k, v in row["params"].items()},
                "cv_auc": row["mean_test_score"], "cv_auc_sd": row["std_test_score"],
                "train_auc": row["mean_train_score"], "fit_seconds": row["mean_fit_time"], "rank": int(row["rank_test_score"]),
            })
    table = pd.DataFrame(rows)
    table["gap"] = table["train_auc"] - table["cv_auc"]
    return table.sort_values(["candidate", "rank"]).reset_index(drop=True), searches


def best_table(table: pd.DataFrame, settings: ModelSettings) -> pd.DataFrame:
    """The best setting of each candidate with its overfitting flag (train AUC - CV AUC above the threshold)."""
    best = table[table["rank"] == 1].drop_duplicates("candidate").set_index("candidate")
    best["overfitting"] = best["gap"] > settings.overfit_gap_warning
    return best[["params", "cv_auc", "cv_auc_sd", "train_auc", "gap", "overfitting"]].sort_values("cv_auc", ascending=False)


# --------------------------------------------------------------------------------------------
# Feature selection
# --------------------------------------------------------------------------------------------
def forest_importance(pipeline: Pipeline, features: list[str]) -> pd.Series:
    """The random forest's impurity importance, summed back onto source features."""
    names = pipeline.named_steps["prepare"].get_feature_names_out()
    importance = pd.Series(pipeline.named_steps["model"].feature_importances_, index=names)
    return importance.groupby([source_feature(n, features) or n for n in names]).sum().sort_values(ascending=False)


def permutation_table(pipeline: Pipeline, X: pd.DataFrame, y: np.ndarray, settings: ModelSettings) -> pd.DataFrame:
    """Permutation importance (mean and SD of the ROC-AUC drop when a column is shuffled) on validation data."""
    with threadpool_limits(1, user_api="blas"):
        result = permutation_importance(pipeline, X, y, scoring="roc_auc", n_repeats=settings.permutation_repeats,
                                        random_state=settings.seed, n_jobs=1)
    return pd.DataFrame({"importance": result.importances_mean, "sd": result.importances_std}, index=X.columns).sort_values(
        "importance", ascending=False)


@dataclass(frozen=True)
class Pruning:
    """What permutation importance suggests dropping, and what dropping it does to validation AUC."""

    kept: list[str]
    dropped: list[str]
    auc_all: float
    auc_pruned: float
    applied: bool


def validation_split(train: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training snapshots before the last training cutoff, and the last training snapshot (out-of-time validation)."""
    last = train["cutoff"].max()
    return train[train["cutoff"] < last], train[train["cutoff"] == last]


def fit(pipeline: Pipeline, frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> Pipeline:
    """Fit a fresh copy of `pipeline` on `frame`.

    A random forest is fitted on several threads, then set to predict on one: threads add up the
    trees' votes in whatever order they finish, so parallel predictions differ in the last bit.
    """
    X, y, _ = xy(frame, numeric, categorical)
    with threadpool_limits(1, user_api="blas"):
        fitted = clone(pipeline).fit(X, y)
    if isinstance(fitted[-1], RandomForestClassifier):
        fitted[-1].set_params(n_jobs=1)
    return fitted


def predict(pipeline: Pipeline, frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> np.ndarray:
    """P(order) for each row of `frame` (its label, if any, is never read: censored snapshots score too)."""
    return pipeline.predict_proba(transform.model_frame(frame[numeric + categorical]))[:, 1]


def prune(best: Pipeline, family: str, train: pd.DataFrame, numeric: list[str], categorical: list[str],
          settings: ModelSettings) -> tuple[Pruning, pd.DataFrame]:
    """Permutation importance on the validation snapshot; drop the irrelevant features if validation AUC holds.

    Needs two training snapshots (one to fit, the last to validate); with one, nothing is pruned.
    """
    early, validation = validation_split(train)
    if early.empty or validation["label"].nunique() < 2 or early["label"].nunique() < 2:
        empty = pd.DataFrame({"importance": 0.0, "sd": 0.0}, index=numeric + categorical)
        return Pruning(kept=numeric + categorical, dropped=[], auc_all=float("nan"), auc_pruned=float("nan"), applied=False), empty
    fitted = fit(best, early, numeric, categorical)
    X_val, y_val, _ = xy(validation, numeric, categorical)
    importance = permutation_table(fitted, X_val, y_val, settings)
    dropped = [f for f in importance.index if importance.at[f, "importance"] < settings.prune_below]
    kept = [f for f in numeric + categorical if f not in dropped]
    auc_all = roc_auc_score(y_val, fitted.predict_proba(X_val)[:, 1])
    kept_numeric, kept_categorical = [f for f in numeric if f in kept], [f for f in categorical if f in kept]
    best_params = {k.removeprefix("model__"): v for k, v in best.get_params().items() if k.startswith("model__") and k.count("__") == 1}
    pruned_pipeline = tuned(family, best_params, kept_numeric, kept_categorical, settings)
    refit = fit(pruned_pipeline, early, kept_numeric, kept_categorical)
    auc_pruned = roc_auc_score(y_val, predict(refit, validation, kept_numeric, kept_categorical))
    applied = bool(dropped) and auc_pruned >= auc_all - settings.prune_tolerance
    return Pruning(kept=kept if applied else numeric + categorical, dropped=dropped if applied else [],
                   auc_all=float(auc_all), auc_pruned=float(auc_pruned), applied=applied), importance


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------
def lift_at(y: np.ndarray, p: np.ndarray, share: float) -> float:
    """Buyer rate among the top `share` of scores, relative to the overall buyer rate."""
    top = np.argsort(-p, kind="stable")[: max(1, int(round(share * len(p))))]
    return float(y[top].mean() / y.mean()) if y.mean() > 0 else float("nan")


def evaluate(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC, Brier score, log loss, lift at the top 10 % and the base rate."""
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6))),
        "lift_top10": lift_at(y, p, 0.10),
        "base_rate": float(y.mean()),
    }


def decile_table(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    """Customers ranked by score in ten equal groups: buyers, rate, lift and cumulative gains per decile."""
    order = np.argsort(-p, kind="stable")
    decile = np.empty(len(p), dtype=int)
    decile[order] = np.arange(len(p)) * 10 // len(p) + 1
    frame = pd.DataFrame({"decile": decile, "y": y, "p": p}).groupby("decile").agg(
        customers=("y", "size"), buyers=("y", "sum"), buyer_rate=("y", "mean"), mean_score=("p", "mean"))
    frame["lift"] = frame["buyer_rate"] / y.mean()
    frame["cumulative_share_of_buyers"] = frame["buyers"].cumsum() / y.sum()
    return frame


def lift_by_decile(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    """Lift per score decile (its buyer rate over the overall rate) and cumulative lift down to it.

    Cumulative lift at decile d is the buyer rate among the top d tenths over the overall rate: what a
    campaign reaching that far gains over targeting at random (1.0 at the last decile).
    """
    table = decile_table(y, p)
    cumulative_rate = table["buyers"].cumsum() / table["customers"].cumsum()
    return pd.DataFrame({"decile": table.index.to_numpy(), "lift": table["lift"].to_numpy(),
                         "cumulative_lift": (cumulative_rate / y.mean()).to_numpy()})


def curves(y: np.ndarray, p: np.ndarray) -> dict[str, pd.DataFrame]:
    """ROC, precision-recall, cumulative gains, lift by decile and calibration (reliability) curves as tidy frames."""
    fpr, tpr, _ = roc_curve(y, p)
    precision, recall, _ = precision_recall_curve(y, p)
    order = np.argsort(-p, kind="stable")
    gains = pd.DataFrame({"share_targeted": np.arange(1, len(p) + 1) / len(p), "share_of_buyers": np.cumsum(y[order]) / y.sum()})
    step = max(1, len(gains) // 200)
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
    return {
        "roc": pd.DataFrame({"fpr": fpr, "tpr": tpr}),
        "pr": pd.DataFrame({"recall": recall, "precision": precision}),
        "gains": pd.concat([gains.iloc[::step], gains.iloc[[-1]]]).drop_duplicates(),
        "lift": lift_by_decile(y, p),
        "calibration": pd.DataFrame({"predicted": predicted, "observed": observed}),
    }


def bootstrap_interval(y: np.ndarray, p: np.ndarray, metric: Callable[[np.ndarray, np.ndarray], float], n: int,
                       seed: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of `metric` over resampled rows (seeded)."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        rows = rng.integers(0, len(y), len(y))
        if y[rows].min() != y[rows].max():
            values.append(metric(y[rows], p[rows]))
    tail = (1 - level) / 2 * 100
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


def ranking_agreement(first: pd.Series, second: pd.Series) -> dict[str, Any]:
    """Do two scorings of the same candidates (e.g. CV AUC and out-of-time AUC) rank them alike?

    Both series are indexed by candidate (higher is better). Returns each order (best first), whether
    the best is the same, whether the whole order is the same, and Kendall's tau between the two.
    """
    common = [c for c in first.index if c in second.index]
    if not common:
        raise ValueError("the two scorings share no candidate")
    a, b = first.loc[common].astype(float), second.loc[common].astype(float)
    first_order = a.sort_values(ascending=False, kind="stable").index.tolist()
    second_order = b.sort_values(ascending=False, kind="stable").index.tolist()
    tau = float(a.corr(b, method="kendall")) if len(common) > 1 else float("nan")
    return {"first_order": first_order, "second_order": second_order, "same_best": first_order[0] == second_order[0],
            "same_order": first_order == second_order, "kendall_tau": tau}


# --------------------------------------------------------------------------------------------
# Where the gap to the oracle comes from
# --------------------------------------------------------------------------------------------
def pair_credit(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Each customer's share of the (buyer, non-buyer) pairs that `p` orders correctly (ties count half).

    ROC-AUC is the share of all such pairs in which the buyer scores higher. A buyer's credit is the
    number of non-buyers it outscores, a non-buyer's the number of buyers that outscore it, both divided
    by the number of pairs: the credits of the buyers add up to the AUC, and so do those of the non-buyers.
    """
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    positives, negatives = np.sort(p[y == 1]), np.sort(p[y == 0])
    if not len(positives) or not len(negatives):
        raise ValueError("pair credit needs at least one buyer and one non-buyer")
    credit = np.empty(len(y))
    buyer_scores, other_scores = p[y == 1], p[y == 0]
    below = np.searchsorted(negatives, buyer_scores, "left")
    tied = np.searchsorted(negatives, buyer_scores, "right") - below
    credit[y == 1] = below + 0.5 * tied
    above = len(positives) - np.searchsorted(positives, other_scores, "right")
    tied = np.searchsorted(positives, other_scores, "right") - np.searchsorted(positives, other_scores, "left")
    credit[y == 0] = above + 0.5 * tied
    return credit / (len(positives) * len(negatives))


def _auc_or_nan(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def gap_attribution(y: np.ndarray, model: np.ndarray, oracle: np.ndarray, groups: pd.Series | np.ndarray) -> pd.DataFrame:
    """Split the AUC gap between the oracle and a model over groups of customers, exactly.

    The gap (oracle AUC - model AUC) is the mean over (buyer, non-buyer) pairs of "the oracle orders the
    pair right" minus "the model does". Each pair's difference is shared half and half by its two
    customers, so every customer carries a part of the gap and the parts of any grouping add up to it.
    A group's `share_of_gap` is how much of the oracle's advantage sits with its customers (negative:
    the model orders them better than the oracle). `model_auc` and `oracle_auc` are AUCs within the
    group (NaN when it lacks buyers or non-buyers). attrs["gap"] is the whole gap.
    """
    y = np.asarray(y).astype(int)
    groups = pd.Series(np.asarray(groups, dtype=object), name=getattr(groups, "name", None) or "group")
    if not len(y) == len(model) == len(oracle) == len(groups):
        raise ValueError("labels, model scores, oracle scores and groups must have one entry per customer")
    part = 0.5 * (pair_credit(y, oracle) - pair_credit(y, np.asarray(model, dtype=float)))
    gap = float(part.sum())
    frame = pd.DataFrame({"group": groups, "y": y, "model": np.asarray(model, dtype=float),
                          "oracle": np.asarray(oracle, dtype=float), "part": part})
    rows = {}
    for name, rows_of in frame.groupby("group", sort=True, dropna=False):
        labels = rows_of["y"].to_numpy()
        rows[name] = {
            "customers": len(rows_of), "buyers": int(labels.sum()), "share_of_customers": len(rows_of) / len(frame),
            "model_auc": _auc_or_nan(labels, rows_of["model"].to_numpy()),
            "oracle_auc": _auc_or_nan(labels, rows_of["oracle"].to_numpy()),
            "gap_points": float(rows_of["part"].sum()),
            "share_of_gap": float(rows_of["part"].sum() / gap) if gap != 0 else float("nan"),
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = groups.name
    table.attrs["gap"] = gap
    return table


def calibrated(pipeline: Pipeline, frame: pd.DataFrame, numeric: list[str], categorical: list[str],
               settings: ModelSettings) -> CalibratedClassifierCV:
    """The pipeline wrapped in cross-fitted calibration (isotonic or sigmoid) on the training data."""
    X, y, groups = xy(frame, numeric, categorical)
    model = CalibratedClassifierCV(clone(pipeline), method=settings.calibration, cv=cv_splits(y, groups, settings))
    with threadpool_limits(1, user_api="blas"):
        return model.fit(X, y)


def progress_bar(description: str) -> Callable:
    """A tqdm wrapper for long loops (shown in the notebook and in the DVC log)."""
    from tqdm import tqdm

    return lambda items: tqdm(items, desc=description, file=sys.stderr)


# --------------------------------------------------------------------------------------------
# The stage's outputs
# --------------------------------------------------------------------------------------------

def write_outputs(root: Path, *, scores: pd.DataFrame, champion_curves: dict[str, pd.DataFrame], metrics: dict[str, Any]) -> dict[str, Any]:
    """Scores (Parquet + attribute database), the champion's curves as plot data, and the metrics."""
    from atelier.core.io import write_json, write_parquet

    root = Path(root)
    write_parquet(scores, root / paths.SCORES_FILE)
    attributes.write_propensity(root / paths.SEGMENT_ATTRIBUTES, root / paths.PROPENSITY_ATTRIBUTES, scores)
    (root / paths.MODEL_PLOTS).mkdir(parents=True, exist_ok=True)
    for name, curve in champion_curves.items():
        curve.to_csv(root / paths.MODEL_PLOTS / f"{name}.csv", index=False, float_format="%.6f")
    write_json(metrics, root / paths.MODEL_METRICS)
    return metrics
