"""How close to the truth? Segments against the simulator's hidden personas (simulated data only).

The personas are never an input to the segmenter; they only score it afterwards.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

#: A persona has a home segment when one segment holds at least this share of its customers.
HOME_SHARE = 0.5
#: Adjusted Rand index from which segments "largely recover" the personas, and under which they do not.
RECOVERS_ARI, PARTLY_ARI = 0.8, 0.5


def truth_agreement(labels: np.ndarray, personas: pd.Series) -> dict[str, Any]:
    """Adjusted Rand index and normalized mutual information of segments against hidden personas."""
    return {
        "ari": float(adjusted_rand_score(personas, labels)),
        "nmi": float(normalized_mutual_info_score(personas, labels)),
    }


def confusion(segment_names: pd.Series, personas: pd.Series) -> pd.DataFrame:
    """Customers by segment name (rows) and persona (columns); both series share the customer index."""
    return pd.crosstab(segment_names.rename("segment"), personas.rename("persona"))


def persona_homes(counts: pd.DataFrame, home_share: float = HOME_SHARE) -> pd.DataFrame:
    """For each persona (a column of `counts`): its largest segment, that segment's share, and whether it is a home.

    Index: persona, in the order of the columns; columns: segment, share, home (share >= `home_share`).
    """
    shares = counts / counts.sum()
    table = pd.DataFrame({"segment": shares.idxmax(), "share": shares.max()})
    table.index.name = "persona"
    return table.assign(home=table["share"] >= home_share)


def recovery(ari: float) -> Literal["largely", "partly", "hardly"]:
    """How far segments recover the personas, by adjusted Rand index (1 = identical, 0 = chance)."""
    if ari >= RECOVERS_ARI:
        return "largely"
    if ari >= PARTLY_ARI:
        return "partly"
    return "hardly"


def look_alikes(homes: pd.DataFrame) -> dict[str, list[str]]:
    """Segments that are the largest segment of two or more personas (from `persona_homes`), with those personas.

    Personas that land mostly in the same segment behave alike at the snapshot: behaviour before the
    cutoff cannot tell them apart.
    """
    shared = homes.groupby("segment", sort=True).groups
    return {str(segment): [str(persona) for persona in personas] for segment, personas in shared.items()
            if len(personas) > 1}
