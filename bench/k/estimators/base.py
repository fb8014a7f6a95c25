"""K estimators (``--k auto:NAME``): a registry of their own, one file each, declared like methods.

Each estimator defines its per-K ``score`` (the value the cell's Optuna sweep over K records; the
other numbers it returns are kept as the trial's user attributes) and its ``choose`` rule, which
picks K from the finished sweep. ``needs_labels`` is part of the contract: an estimator declaring
it is refused before anything runs (choosing K with the labels leaks them).

:func:`sweep` runs an estimator over a list of K in memory (no study): the unit tests' way, and a
plain way to use one outside the harness.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar

import numpy as np

from clusterbench.core.contracts import KEstimator
from clusterbench.core.registry import Registry

K_ESTIMATORS = Registry("k estimator", group="clusterbench.k_estimators", contract=KEstimator)

__all__ = ["K_ESTIMATORS", "KEstimatorBase", "best_of", "sweep", "within_ss"]


class KEstimatorBase:
    needs_labels: ClassVar[bool] = False
    direction: ClassVar[str] = "maximize"

    def score(self, X, labels, k, fit, seed) -> dict:
        raise NotImplementedError

    def choose(self, curve: Mapping[int, Mapping]) -> int:
        """The best score (ties to the smaller K)."""
        return best_of(curve, self.direction)


def best_of(curve: Mapping[int, Mapping], direction: str, key: str = "value") -> int:
    sign = -1.0 if direction == "maximize" else 1.0
    return min(curve, key=lambda k: (sign * float(curve[k][key]), k))


def within_ss(X: np.ndarray, labels: np.ndarray) -> float:
    """W_k: the pooled within-cluster sum of squared distances to the cluster means (noise, -1,
    left out); the same as sum over clusters of D_r / (2 n_r) in Tibshirani et al. (2001)."""
    from scipy.sparse import csr_matrix

    labels = np.asarray(labels)
    keep = labels >= 0
    X = np.asarray(X, dtype=np.float64)[keep]
    if not len(X):
        return 0.0
    _, cluster = np.unique(labels[keep], return_inverse=True)
    # sum over clusters of (sum ||x||^2 - ||sum x||^2 / n): one sparse product gives every cluster's
    # sum at once, where a loop over clusters copied each cluster's rows (a sweep calls this per K and
    # per reference set: the gap statistic's cost was mostly here)
    members = csr_matrix((np.ones(len(X)), (cluster, np.arange(len(X)))))
    sums = np.asarray(members @ X)
    sizes = np.bincount(cluster).astype(np.float64)
    return max(float(np.einsum("ij,ij->", X, X) - ((sums**2).sum(axis=1) / sizes).sum()), 0.0)


def sweep(estimator, X: np.ndarray, ks, fit: Callable, seed: int = 0) -> tuple[int, dict[int, dict]]:
    """(chosen K, {k: score dict}) with the clustering ``fit(X, k, seed)`` at each K."""
    curve = {int(k): estimator.score(X, np.asarray(fit(X, int(k), seed)), int(k), fit, seed) for k in ks}
    return estimator.choose(curve), curve
