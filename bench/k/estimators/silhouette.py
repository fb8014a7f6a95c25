"""Silhouette (Rousseeuw 1987) of the cell's clustering at each K; the largest wins. Today's
``--k auto`` objective: ``--k auto`` and ``--k auto:silhouette`` run the same study."""

from __future__ import annotations

from typing import Annotated

from clusterbench.core.params import Interval
from clusterbench.scoring import metrics as M

from .base import K_ESTIMATORS, KEstimatorBase


@K_ESTIMATORS.register("silhouette")
class Silhouette(KEstimatorBase):
    """mean silhouette of the clustering; max wins"""

    direction = "maximize"

    def __init__(self, sample: Annotated[int, Interval(10, None)] = 2000):
        self.sample = sample

    def score(self, X, labels, k, fit, seed) -> dict:
        keep = labels >= 0
        value = M.internal_metrics(X[keep], labels[keep], sample_size=self.sample, seed=seed)["silhouette"]
        return {"value": value}
