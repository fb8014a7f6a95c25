"""The gap statistic (Tibshirani, Walther & Hastie 2001).

``gap(k) = mean_b log W*_kb - log W_k``: W_k is the pooled within-cluster sum of squares of the
cell's clustering at K, W*_kb the same for the cell's clusterer refitted on reference set b, drawn
uniformly over the box aligned with the data's principal components (their method (b)); the same
``refs`` reference sets at every K (seeded by the cell). ``s_k = sd_k * sqrt(1 + 1/B)``. The rule
(1-SE): the smallest K with ``gap(k) >= gap(k+1) - s_{k+1}``; when no K of the sweep qualifies,
the K of the largest gap.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np

from clusterbench.core.params import Interval

from .base import K_ESTIMATORS, KEstimatorBase, best_of, within_ss


def reference_sets(X: np.ndarray, n: int, seed: int) -> list[np.ndarray]:
    """``n`` sets, each as many points as X, uniform over X's principal-component box."""
    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(axis=0)
    # the principal axes from the D x D scatter matrix, by torch's eigensolver: numpy's SVD of the
    # points (and LAPACK's divide-and-conquer eigh) took 7-10 s on 2,000 Fashion-MNIST images, whose
    # border pixels never vary, where this takes 0.2 s (measured on the 2-core machine)
    import torch

    centred = X - mean
    _, vectors = torch.linalg.eigh(torch.from_numpy(centred.T @ centred))
    vt = vectors.numpy().T
    rotated = centred @ vt.T
    low, high = rotated.min(axis=0), rotated.max(axis=0)
    rng = np.random.default_rng(seed)
    return [(rng.uniform(low, high, size=rotated.shape) @ vt + mean).astype(np.float32) for _ in range(n)]


def one_se_choice(curve) -> int:
    ks = sorted(curve)
    for k, nxt in zip(ks, ks[1:], strict=False):
        if nxt == k + 1 and curve[k]["value"] >= curve[nxt]["value"] - curve[nxt]["s"]:
            return k
    return best_of(curve, "maximize")


@K_ESTIMATORS.register("gap")
class Gap(KEstimatorBase):
    """gap statistic, uniform reference over the principal-component box, 1-SE rule"""

    direction = "maximize"

    def __init__(self, refs: Annotated[int, Interval(2, None)] = 10):
        self.refs = refs
        self._refs: tuple | None = None

    def _reference(self, X, seed) -> list[np.ndarray]:
        key = (X.shape, float(X[: min(len(X), 50)].sum()), seed)
        if self._refs is None or self._refs[0] != key:
            self._refs = (key, reference_sets(X, self.refs, seed))
        return self._refs[1]

    def score(self, X, labels, k, fit, seed) -> dict:
        log_w = np.log(within_ss(X, labels))
        ref = np.log([within_ss(Z, np.asarray(fit(Z, k, seed + b))) for b, Z in enumerate(self._reference(X, seed))])
        sd = float(ref.std())  # 1/B, as in the paper
        return {"value": float(ref.mean() - log_w), "s": sd * float(np.sqrt(1 + 1 / self.refs)), "log_w": float(log_w)}

    def choose(self, curve) -> int:
        return one_se_choice(curve)
