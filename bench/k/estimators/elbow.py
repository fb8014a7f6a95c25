"""The elbow of the clustering's objective: W_k (pooled within-cluster sum of squares, the k-means
objective) at each K, and the knee of that decreasing convex curve by ``kneed``'s Kneedle
(Satopää et al. 2011) with sensitivity ``S``; when kneed finds none, the smallest K."""

from __future__ import annotations

from typing import Annotated

from clusterbench.core.params import Interval

from .base import K_ESTIMATORS, KEstimatorBase, within_ss


@K_ESTIMATORS.register("elbow")
class Elbow(KEstimatorBase):
    """knee of W_k (kneed); the curve's elbow"""

    direction = "minimize"

    def __init__(self, S: Annotated[float, Interval(0, None)] = 1.0):
        self.S = S

    def score(self, X, labels, k, fit, seed) -> dict:
        return {"value": within_ss(X, labels)}

    def choose(self, curve) -> int:
        from kneed import KneeLocator

        ks = sorted(curve)
        if len(ks) < 3:
            return ks[0]
        knee = KneeLocator(ks, [curve[k]["value"] for k in ks], S=self.S, curve="convex", direction="decreasing").knee
        return int(knee) if knee is not None else ks[0]
