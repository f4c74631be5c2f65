"""Explaining purchase predictions: LIME on the raw feature frame, and xgboost's exact contributions.

LIME (`TabularExplainer`) perturbs one customer's features, asks the model for P(order) on the
perturbed copies and fits a weighted linear surrogate around that customer. It works on numpy
arrays, so the raw feature frame is encoded: numeric columns as floats, with the *undefined* value
(NaN, e.g. average order value of a customer without orders) as -1 — every real value is >= 0 —
and categoricals as codes. A small discretizer (`UndefinedAwareQuartiles`) gives "undefined" its
own region next to the quartiles of the defined values, and samples inside each region from the
values actually seen there. Stock LIME would not: with its quartiles -1 shares a bin with small
real values, and its undiscretize step turns a one-value bin into 0, so the model would never see
an undefined feature in the perturbations.

xgboost's `pred_contribs` (`xgboost_contributions`) is exact for the model (the contributions sum
to its margin) but speaks log-odds and the model's own transformed columns, which are summed back
to the source features; `compare_importances` puts the two side by side.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
import scipy.stats
import xgboost
from lime.discretize import BaseDiscretizer
from lime.lime_tabular import LimeTabularExplainer
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state

from atelier.data import transform

#: A fitted model's predict_proba on a raw feature frame -> array (n, 2).
PredictProba = Callable[[pd.DataFrame], np.ndarray]

#: How an undefined (NaN) numeric value is encoded for LIME; every real value is >= 0.
UNDEFINED = -1.0
#: The category name of a missing categorical value.
MISSING = "(missing)"
CLASS_NAMES = ["no order", "order"]
#: The columns of the agreement table (`agreement_methods`): LIME, permutation importance, and exact contributions
#: of the champion (when it is xgboost) or of the xgboost candidate (a different model, named as such).
LIME_COLUMN = "LIME mean |weight|"
PERMUTATION_COLUMN = "permutation importance"
EXACT_OF_CHAMPION, EXACT_OF_CANDIDATE = "champion", "xgboost candidate"
EXACT_COLUMNS = {
    EXACT_OF_CHAMPION: "champion's exact contributions (xgboost), mean |.|",
    EXACT_OF_CANDIDATE: "xgboost candidate's exact contributions (NOT the champion), mean |.|",
}


def _number(value: float) -> str:
    """A bin boundary for humans: two decimals at most, no trailing zeros (7.20 -> 7.2, 3.00 -> 3)."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


class UndefinedAwareQuartiles(BaseDiscretizer):
    """LIME discretizer: region 0 is "undefined" (the code -1), then quartiles of the defined values.

    Each region is undiscretized by sampling (truncated normal) between the smallest and largest
    training value seen in it, so perturbed values stay real (>= 0) and "undefined" stays exactly -1.
    """

    def __init__(
        self, data: np.ndarray, categorical_features: list[int], feature_names: list[str], random_state=None
    ) -> None:
        super().__init__(data, categorical_features, feature_names, random_state=random_state)
        for feature in self.to_discretize:
            column = data[:, feature]
            boundaries = self.bins_by_feature[feature]
            regions = self.lambdas[feature](column)
            stats = []  # (mean, std, min, max) per region
            for region in range(len(boundaries) + 1):
                seen = column[regions == region]
                if len(seen):
                    stats.append((seen.mean(), seen.std() + 1e-11, seen.min(), seen.max()))
                else:  # never sampled (LIME samples regions seen in training); a value inside it anyway
                    edge = boundaries[min(region, len(boundaries) - 1)]
                    stats.append((edge, 1e-11, edge, edge))
            means, stds, mins, maxs = (np.asarray(s, dtype=float) for s in zip(*stats))
            self.means[feature], self.stds[feature], self.mins[feature], self.maxs[feature] = means, stds, mins, maxs
            name = feature_names[feature]
            quartiles = [_number(q) for q in boundaries[1:]]
            if not quartiles:
                self.names[feature] = [f"{name} is undefined", f"{name} is defined"]
            else:
                names = [f"{name} is undefined", f"{name} <= {quartiles[0]}"]
                names += [f"{low} < {name} <= {high}" for low, high in itertools.pairwise(quartiles)]
                self.names[feature] = names + [f"{name} > {quartiles[-1]}"]

    def bins(self, data: np.ndarray, labels=None) -> list[np.ndarray]:
        """Per feature: the boundary -1 (undefined), then the quartiles of the defined values."""
        self.bins_by_feature = {}
        for feature in self.to_discretize:
            defined = data[:, feature][data[:, feature] >= 0]
            quartiles = np.percentile(defined, [25, 50, 75]) if len(defined) else np.array([])
            self.bins_by_feature[feature] = np.unique(np.concatenate([[UNDEFINED], quartiles]))
        return [self.bins_by_feature[feature] for feature in self.to_discretize]

    def get_undiscretize_values(self, feature: int, values: np.ndarray) -> np.ndarray:
        """Values for region codes: a truncated normal within the region's observed range (its value if one)."""
        values = np.asarray(values).astype(int)
        mins, maxs = self.mins[feature][values], self.maxs[feature][values]
        means, stds = self.means[feature][values], self.stds[feature][values]
        out = mins.copy()
        spread = maxs > mins
        if spread.any():
            out[spread] = scipy.stats.truncnorm.rvs(
                (mins[spread] - means[spread]) / stds[spread],
                (maxs[spread] - means[spread]) / stds[spread],
                loc=means[spread],
                scale=stds[spread],
                random_state=self.random_state,
            )
        return out


class TabularExplainer:
    """LIME for a model that takes the raw feature frame (numeric + categorical columns)."""

    def __init__(
        self,
        training: pd.DataFrame,
        numeric: list[str],
        categorical: list[str],
        predict_proba: PredictProba,
        *,
        num_samples: int = 2000,
        discretize: bool = True,
    ) -> None:
        """`training` is LIME's reference sample (pass a subsample); numeric values must be >= 0 or NaN."""
        wanted = set(numeric) | set(categorical)
        if len(wanted) != len(numeric) + len(categorical):
            raise ValueError("a column is listed twice in numeric/categorical")
        missing = wanted - set(training.columns)
        if missing:
            raise ValueError(f"training frame lacks columns {sorted(missing)}")
        self.columns = [c for c in training.columns if c in wanted]  # the training frame's order
        self.numeric = [c for c in self.columns if c in set(numeric)]
        self.categorical = [c for c in self.columns if c in set(categorical)]
        self.predict_proba = predict_proba
        self.num_samples = int(num_samples)
        self.discretize = discretize
        self.dtypes = {c: training[c].dtype for c in self.categorical}
        #: Numeric columns that can be undefined (NaN somewhere in the training frame).
        self.nullable = {c for c in self.numeric if training[c].isna().any()}
        # Codes: the training categories sorted, then "(missing)"; unseen values are appended by encode().
        self.categories = {
            column: sorted(pd.unique(training[column].dropna()).tolist(), key=str) + [MISSING]
            for column in self.categorical
        }
        data = self.encode(training)
        index = {c: i for i, c in enumerate(self.columns)}
        categorical_features = [index[c] for c in self.categorical]
        discretizer = (
            UndefinedAwareQuartiles(data, categorical_features, self.columns, random_state=0)
            if discretize
            else "quartile"
        )
        self.lime = LimeTabularExplainer(
            data,
            mode="classification",
            feature_names=self.columns,
            categorical_features=categorical_features,
            # The lists are shared, so codes appended for unseen values get names too.
            categorical_names={index[c]: self.categories[c] for c in self.categorical},
            class_names=CLASS_NAMES,
            discretize_continuous=discretize,
            discretizer=discretizer,
            # LIME's "auto" switches to forward selection below 7 features, ~8x slower; highest
            # weights (fit on all, keep the largest, refit) behaves the same at every k.
            feature_selection="highest_weights",
            random_state=0,
        )

    # ------------------------------------------------------------------------------------------
    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """The feature columns as LIME's float array: NaN numerics -> -1, categoricals -> codes."""
        out = np.empty((len(frame), len(self.columns)), dtype=float)
        for position, column in enumerate(self.columns):
            if column in self.categories:
                out[:, position] = self._codes(column, frame[column])
                continue
            values = pd.to_numeric(frame[column]).to_numpy(dtype=float, na_value=np.nan)
            if (values < 0).any():
                raise ValueError(f"{column}: negative values; the encoding needs every real value >= 0")
            out[:, position] = np.where(np.isnan(values), UNDEFINED, values)
        return out

    def _codes(self, column: str, values: pd.Series) -> np.ndarray:
        categories = self.categories[column]
        lookup = {value: code for code, value in enumerate(categories)}
        codes = []
        for value in values.tolist():
            key = MISSING if pd.isna(value) else value
            if key not in lookup:  # unseen in training: its own code, which LIME never samples
                lookup[key] = len(categories)
                categories.append(key)
            codes.append(lookup[key])
        return np.asarray(codes, dtype=float)

    def decode(self, array: np.ndarray) -> pd.DataFrame:
        """Inverse of `encode`: -1 -> NaN, codes -> values (missing -> NA), in the training frame's dtypes.

        Off-grid values (only the continuous mode, discretize=False, makes them) go to the nearest
        meaning: in a column that can be undefined, <= -0.5 is undefined; other negatives are 0.
        """
        array = np.atleast_2d(np.asarray(array, dtype=float))
        columns = {}
        for position, column in enumerate(self.columns):
            values = array[:, position]
            if column in self.categories:
                categories = self.categories[column]
                codes = np.clip(np.rint(values).astype(int), 0, len(categories) - 1)
                labels = np.asarray([None if c == MISSING else c for c in categories], dtype=object)[codes]
                dtype = self.dtypes[column]
                if pd.api.types.is_object_dtype(dtype):
                    labels = np.where(pd.isna(labels), np.nan, labels)
                columns[column] = pd.Series(labels, dtype=dtype)
            else:
                undefined = values <= UNDEFINED / 2 if column in self.nullable else values == UNDEFINED
                columns[column] = pd.Series(np.where(undefined, np.nan, np.maximum(values, 0.0)))
        return pd.DataFrame(columns)

    def _predict(self, array: np.ndarray) -> np.ndarray:
        return np.asarray(self.predict_proba(self.decode(array)), dtype=float)

    def _reseed(self, seed: int) -> None:
        """One random stream for every part of LIME that draws (sampling, undiscretizing, the surrogate)."""
        state = check_random_state(seed)
        self.lime.random_state = state
        self.lime.base.random_state = state
        if self.lime.discretizer is not None:
            self.lime.discretizer.random_state = state

    # ------------------------------------------------------------------------------------------
    def explain(self, row: pd.Series, *, seed: int, num_features: int = 8) -> pd.DataFrame:
        """One seeded explanation of P(order): feature, condition, value, weight (sorted by |weight|).

        attrs: prediction (the model's), local_prediction and intercept (the surrogate's), score
        (its weighted R^2 on the perturbations), seconds.
        """
        started = time.perf_counter()
        encoded = self.encode(row[self.columns].to_frame().T)[0]
        self._reseed(seed)
        explanation = self.lime.explain_instance(
            encoded, self._predict, labels=(1,), num_features=num_features, num_samples=self.num_samples
        )
        weights = explanation.local_exp[1]
        conditions = [condition for condition, _ in explanation.as_list(label=1)]
        features = [self.columns[i] for i, _ in weights]
        table = pd.DataFrame(
            {
                "feature": features,
                "condition": conditions,
                "value": pd.Series([np.nan if pd.isna(row[f]) else row[f] for f in features], dtype=object),
                "weight": [float(w) for _, w in weights],
            }
        )
        table = table.iloc[np.argsort(-table["weight"].abs().to_numpy(), kind="stable")].reset_index(drop=True)
        table.attrs = {
            "prediction": float(explanation.predict_proba[1]),
            "local_prediction": float(np.ravel(explanation.local_pred)[0]),
            "intercept": float(explanation.intercept[1]),
            "score": float(explanation.score),
            "seconds": time.perf_counter() - started,
        }
        return table

    def importance(self, rows: pd.DataFrame, *, seed: int, num_features: int = 8) -> pd.Series:
        """Mean |weight| per feature over `rows` (row i explained with seed + i; unpicked = 0), largest first."""
        totals = pd.Series(0.0, index=pd.Index(self.columns, name="feature"))
        for i in range(len(rows)):
            table = self.explain(rows.iloc[i], seed=seed + i, num_features=num_features)
            totals = totals.add(table.set_index("feature")["weight"].abs(), fill_value=0.0)
        mean = totals / max(len(rows), 1)
        return mean.sort_values(ascending=False, kind="stable").rename("lime")

    def stability(self, rows: pd.DataFrame, *, seeds: list[int], top_k: int = 5) -> pd.DataFrame:
        """Per row, how much LIME's top_k features agree across seeds.

        Columns: mean_jaccard and min_jaccard (pairwise Jaccard overlap of the top_k sets; 1.0 = the
        same features every time), top1_agreement (share of seeds naming the most common top-1).
        """
        if len(seeds) < 2:
            raise ValueError("stability needs at least two seeds")
        records = []
        for i in range(len(rows)):
            picks = [self.explain(rows.iloc[i], seed=s, num_features=top_k)["feature"].tolist() for s in seeds]
            sets = [set(p[:top_k]) for p in picks]
            overlaps = [len(a & b) / len(a | b) if a | b else 1.0 for a, b in itertools.combinations(sets, 2)]
            firsts = pd.Series([p[0] if p else None for p in picks])
            records.append(
                {
                    "mean_jaccard": float(np.mean(overlaps)),
                    "min_jaccard": float(np.min(overlaps)),
                    "top1_agreement": float(firsts.value_counts(dropna=False).iloc[0] / len(seeds)),
                }
            )
        return pd.DataFrame(records, index=rows.index)


# --------------------------------------------------------------------------------------------
# xgboost's exact contributions
# --------------------------------------------------------------------------------------------
def source_feature(name: str, sources: list[str]) -> str | None:
    """The source column an output column of a transformer came from, or None.

    Handles sklearn's "prefix__name" (also nested), one-hot "name_value", and imputers'
    "missingindicator_name"; the longest matching source wins.
    """
    candidates = [name] + [name.split("__", depth)[-1] for depth in range(1, name.count("__") + 1)]
    for candidate in candidates:
        if candidate in sources:
            return candidate
        stripped = candidate.removeprefix("missingindicator_")
        if stripped in sources:
            return stripped
    base = candidates[-1]
    matches = [s for s in sources if base.startswith(f"{s}_")]
    return max(matches, key=len) if matches else None


def xgboost_contributions(pipeline: Pipeline, frame: pd.DataFrame) -> pd.DataFrame:
    """Exact per-row contributions (log-odds) of each source feature, plus "bias"; rows sum to the margin.

    `pipeline`'s last step is a fitted xgboost.XGBClassifier; the preceding steps transform `frame`.
    Output columns made from one source (one-hot, ordinal, "prefix__name", missing indicators) are
    summed into it; an output column that matches no source keeps its own name.
    """
    model = pipeline[-1]
    if not isinstance(model, xgboost.XGBClassifier):
        raise TypeError(f"the last step is a {type(model).__name__}, not an xgboost.XGBClassifier")
    steps = pipeline[:-1] if len(pipeline) > 1 else None
    transformed = steps.transform(frame) if steps is not None else frame
    booster = model.get_booster()
    if isinstance(transformed, pd.DataFrame):
        names = [str(c) for c in transformed.columns]
        matrix = xgboost.DMatrix(transformed, missing=model.missing, enable_categorical=model.enable_categorical)
    else:
        transformed = np.asarray(transformed, dtype=float)
        if steps is not None and hasattr(steps, "get_feature_names_out"):
            names = [str(c) for c in steps.get_feature_names_out()]
        else:
            names = booster.feature_names or [f"f{i}" for i in range(transformed.shape[1])]
        matrix = xgboost.DMatrix(transformed, missing=model.missing, feature_names=booster.feature_names)
    try:
        iterations = (0, model.best_iteration + 1)  # what predict() uses after early stopping
    except AttributeError:
        iterations = (0, 0)
    contributions = booster.predict(matrix, pred_contribs=True, iteration_range=iterations)
    if contributions.ndim != 2:
        raise ValueError("only binary classifiers are supported (one margin per row)")
    sources = [str(c) for c in frame.columns]
    owners = np.asarray([source_feature(name, sources) or name for name in names], dtype=object)
    ordered = [s for s in sources if s in set(owners)] + list(dict.fromkeys(o for o in owners if o not in sources))
    values = contributions.astype(float)
    columns = {owner: values[:, :-1][:, owners == owner].sum(axis=1) for owner in ordered}
    columns["bias"] = values[:, -1]
    return pd.DataFrame(columns, index=frame.index)


# --------------------------------------------------------------------------------------------
# Comparing and reporting
# --------------------------------------------------------------------------------------------
def compare_importances(importances: dict[str, pd.Series]) -> pd.DataFrame:
    """Ranks (1 = most important) per method over the union of features; a feature a method lacks is 0.

    attrs["spearman"]: each other method's Spearman correlation with the first method's importances (the first
    against itself, always 1, is left out).
    """
    if not importances:
        raise ValueError("no importances to compare")
    values = pd.DataFrame({name: series.astype(float) for name, series in importances.items()}).fillna(0.0)
    ranks = values.rank(ascending=False, method="min").astype(int)
    first = next(iter(importances))
    ranks = ranks.sort_values([first] + list(ranks.columns.drop(first)), kind="stable")
    ranks.index.name = "feature"
    ranks.attrs["spearman"] = {name: float(values[first].corr(values[name], method="spearman"))
                               for name in values.columns if name != first}
    return ranks


def readable(explanation: pd.DataFrame, top: int = 5) -> str:
    """One sentence for a report from the `top` largest weights (those that round to 0.00 left out).

    "P(order) = 0.31. Pushing it up: recency_days <= 7.2 (+0.08), ...; pulling it down: ... (-0.02)."
    """
    head = explanation.iloc[np.argsort(-explanation["weight"].abs().to_numpy(), kind="stable")].head(top)

    def listing(part: pd.DataFrame) -> str:
        return ", ".join(f"{c} ({w:+.2f})" for c, w in zip(part["condition"], part["weight"])) or "nothing"

    shown = head[head["weight"].abs() >= 0.005]  # what would print as +0.00 says nothing
    up, down = shown[shown["weight"] > 0], shown[shown["weight"] < 0]
    p = explanation.attrs["prediction"]
    probability = "< 0.01" if p < 0.005 else "> 0.99" if p > 0.995 else f"= {p:.2f}"
    return (
        f"P(order) {probability}. "
        f"Pushing it up: {listing(up)}; pulling it down: {listing(down)}."
    )


# --------------------------------------------------------------------------------------------
# What the report explains, and against what
# --------------------------------------------------------------------------------------------
def showcase(scores: pd.Series) -> dict[str, object]:
    """The customers (index of `scores`) with the highest, the middle and the lowest score."""
    ranked = scores.sort_values()
    middle = ranked.index[len(ranked) // 2]
    return {"highest score": ranked.index[-1], "middle": middle, "lowest score": ranked.index[0]}


def exact_contributions_source(champion: str, candidates: Iterable[str]) -> str | None:
    """Whose exact contributions can check LIME: the champion's when it is xgboost, else the xgboost candidate's
    (EXACT_OF_CANDIDATE, a different model), else None."""
    if champion == "xgboost":
        return EXACT_OF_CHAMPION
    return EXACT_OF_CANDIDATE if "xgboost" in set(candidates) else None


def agreement_methods(lime: pd.Series, permutation: pd.Series, features: list[str], champion: str,
                      champion_pipeline: Pipeline, candidates: dict[str, Pipeline],
                      sample: pd.DataFrame) -> tuple[dict[str, pd.Series], str | None]:
    """The importances to compare with LIME's, and whose exact contributions are among them (None: nobody's).

    Permutation importance is restricted to `features` and clipped at 0 (a negative drop is noise); exact
    contributions are the mean |log-odds contribution| over `sample` (raw feature rows).
    """
    methods = {LIME_COLUMN: lime, PERMUTATION_COLUMN: permutation.reindex(features).clip(lower=0)}
    exact_of = exact_contributions_source(champion, candidates)
    if exact_of is not None:
        model = champion_pipeline if exact_of == EXACT_OF_CHAMPION else candidates["xgboost"]
        contributions = xgboost_contributions(model, transform.model_frame(sample[features]))
        methods[EXACT_COLUMNS[exact_of]] = contributions.drop(columns="bias").abs().mean()
    return methods, exact_of
