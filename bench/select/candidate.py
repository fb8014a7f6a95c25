"""One candidate configuration of a dataset, as the recommendation sees it, and the noise rule.

A candidate is what a finished cell hands over: its key, its dataset, its labels, and where
available the features it clustered in, its own-space silhouette, the labels of reruns (other
seeds, subsamples) and its embedder's name. Never the dataset's ground truth: nothing here has a field for it.

Noise rule (HDBSCAN's -1), the same as the harness's label metrics:
- agreement between partitions (consensus, stability) counts every noise point in one extra
  "noise" group, so a partition that discards half the points disagrees with those that keep them;
- silhouette in a shared space gives every noise point the score 0 (Rousseeuw's value for a point
  with no cluster to be cohesive with): the mean over clustered points times the clustered fraction;
- the own-space silhouette is taken as the cell computed it (clustered points only).
A score that cannot be computed (one cluster, no features) is NaN and ranks last.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clusterbench.scoring.metrics import noise_as_group

__all__ = ["Candidate", "Rerun", "check_candidates", "fingerprint", "noise_as_group"]


@dataclass(frozen=True)
class Rerun:
    """Labels of a refit of the same configuration (another seed, a subsample): ``labels[i]`` is
    the label of point ``index[i]`` (``index`` None: of every point, in order)."""

    labels: np.ndarray
    index: np.ndarray | None = None


@dataclass
class Candidate:
    key: str  # the cell's key: names the configuration (embedder x reducer x clusterer x K)
    dataset: str
    labels: np.ndarray  # (N,) int, noise = -1
    features: np.ndarray | None = None  # (N, D) the space the labels were made in
    own_silhouette: float | None = None  # silhouette in that space, as the cell scored it
    reruns: tuple[Rerun, ...] = ()
    embedder: str | None = None  # whose features (the embedder spec): groups candidates by representation

    def __post_init__(self):
        self.labels = np.asarray(self.labels).astype(np.int64, copy=False)
        if self.labels.ndim != 1:
            raise ValueError(f"candidate {self.key}: labels must be one-dimensional, got shape {self.labels.shape}")
        if self.features is not None and len(self.features) != len(self.labels):
            raise ValueError(f"candidate {self.key}: {len(self.features)} feature rows for {len(self.labels)} labels")


def check_candidates(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates as a list, after checking they are one dataset's: same dataset, same number
    of points, distinct keys."""
    candidates = list(candidates)
    if not candidates:
        raise ValueError("no candidates to recommend from")
    datasets = {c.dataset for c in candidates}
    if len(datasets) > 1:
        raise ValueError(f"candidates from several datasets ({', '.join(sorted(datasets))}): recommend per dataset")
    sizes = {len(c.labels) for c in candidates}
    if len(sizes) > 1:
        raise ValueError(f"candidates of one dataset label different numbers of points: {sorted(sizes)}")
    keys = [c.key for c in candidates]
    if len(set(keys)) != len(keys):
        raise ValueError("candidate keys repeat: " + ", ".join(sorted({k for k in keys if keys.count(k) > 1})))
    return candidates


def fingerprint(X: np.ndarray) -> str:
    """A cheap identity of a feature array (shape + every row, strided past 4,000 rows), so the
    candidates that share a space share its shared-space embedding."""
    step = max(1, len(X) // 4000)
    digest = hashlib.sha1(repr(X.shape).encode())
    digest.update(np.ascontiguousarray(X[::step]).tobytes())
    return digest.hexdigest()
