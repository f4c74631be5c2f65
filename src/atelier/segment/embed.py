"""Pictures of the segments: PCA (keeps global distances) and t-SNE (keeps neighbourhoods) coordinates."""

from __future__ import annotations

from concurrent.futures import Future

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from atelier.core.parallel import start
from atelier.segment.sample import seeded_sample

#: Features shown in the pairwise plots, when the data has them.
PAIRWISE = ("recency_days", "frequency", "monetary", "sessions_90d")


def embed_pca(X: np.ndarray, components: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """PCA coordinates of every row and the share of variance each component explains."""
    pca = PCA(n_components=min(components, X.shape[1])).fit(X)
    return pca.transform(X), pca.explained_variance_ratio_


def embed_tsne(X: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """2-D t-SNE coordinates of a seeded sample of `size` rows: (the rows' positions, their coordinates).

    Seeded both ways (sample and embedding); t-SNE shows neighbourhoods, not distances.
    """
    rows = seeded_sample(len(X), size, seed)
    # Perplexity must stay below the number of points; 30 is the usual value for large samples.
    perplexity = float(min(30, max(2, (len(rows) - 1) // 3)))
    return rows, TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(X[rows])


def start_tsne(X: np.ndarray, size: int, seed: int) -> Future[tuple[np.ndarray, np.ndarray]]:
    """`embed_tsne` on another process (`core.parallel.start`), started while the caller goes on (t-SNE runs on one
    thread, so the k sweep's processes and it share the cores); `.result()` gives the same arrays."""
    return start(embed_tsne, X, size, seed)


def pairwise_features(frame: pd.DataFrame, columns: tuple[str, ...] = PAIRWISE) -> pd.DataFrame:
    """The `columns` that `frame` has, on the log1p scale (undefined as 0), renamed "log1p <column>"."""
    present = [column for column in columns if column in frame.columns]
    return np.log1p(frame[present].fillna(0)).add_prefix("log1p ")
