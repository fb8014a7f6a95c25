"""A small fixed workload timed in every suite run, so speed figures from two machines (or two CI
runners) can be compared: a timing divided by the calibration seconds measured beside it is in
"calibration units", which a faster or slower machine scales away (mostly: a GPU, a disk or a
network do not scale with the CPU workload)."""

from __future__ import annotations

import statistics
import time

import numpy as np

REPEATS = 3


def _workload() -> float:
    """Dense BLAS (the embedding's matrix products) and a short k-means (the clustering's
    distance loops); fixed data and iteration counts, about 0.15 s on an idle 2-core machine."""
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(0)
    a = rng.standard_normal((512, 512), dtype=np.float32)
    x = rng.standard_normal((10000, 64), dtype=np.float32)
    start = time.perf_counter()
    for _ in range(10):
        a = np.tanh(a @ a * (1.0 / 512))
    KMeans(n_clusters=32, n_init=1, max_iter=20, tol=0.0, init="random", random_state=0).fit(x)
    return time.perf_counter() - start


def calibration_seconds(repeats: int = REPEATS) -> float:
    """The median seconds of ``repeats`` runs of the fixed workload on this machine, now."""
    return float(statistics.median(_workload() for _ in range(max(1, repeats))))
