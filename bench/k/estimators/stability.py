"""Stability (Ben-Hur, Elisseeff & Guyon 2002): at each K, ``pairs`` pairs of random subsamples
(``fraction`` of the points each, seeded by the cell) are clustered with the cell's clusterer, and
each pair's agreement on the points they share is measured by the adjusted Rand index. The score is
the mean agreement. Rule (their reading of the curve: the largest K before the agreement stops
being concentrated near 1): the last K of the sweep, going up from its smallest, before the mean
agreement first falls below ``threshold``; when even the smallest K is below it, the most stable K.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from sklearn.metrics import adjusted_rand_score

from clusterbench.core.params import Interval

from .base import K_ESTIMATORS, KEstimatorBase, best_of


@K_ESTIMATORS.register("stability")
class Stability(KEstimatorBase):
    """agreement (ARI) of clusterings of subsample pairs; last K before it falls below 0.8"""

    direction = "maximize"

    def __init__(self, pairs: Annotated[int, Interval(1, None)] = 5, fraction: Annotated[float, Interval(0.1, 1)] = 0.8,
                 threshold: Annotated[float, Interval(0, 1)] = 0.8):
        self.pairs, self.fraction, self.threshold = pairs, fraction, threshold

    def score(self, X, labels, k, fit, seed) -> dict:
        n, size = len(X), max(k + 1, int(round(self.fraction * len(X))))
        agreements = []
        for p in range(self.pairs):
            rng = np.random.default_rng(seed * 1000 + p)
            a, b = np.sort(rng.choice(n, size, replace=False)), np.sort(rng.choice(n, size, replace=False))
            la, lb = np.full(n, -2), np.full(n, -2)
            la[a], lb[b] = fit(X[a], k, seed + 2 * p), fit(X[b], k, seed + 2 * p + 1)
            shared = np.intersect1d(a, b)
            agreements.append(float(adjusted_rand_score(la[shared], lb[shared])))
        return {"value": float(np.mean(agreements)), "sd": float(np.std(agreements))}

    def choose(self, curve) -> int:
        ks = sorted(curve)
        if curve[ks[0]]["value"] < self.threshold:
            return best_of(curve, "maximize")
        chosen = ks[0]
        for k in ks[1:]:
            if curve[k]["value"] < self.threshold:
                break
            chosen = k
        return chosen
