"""A scikit-learn style clusterer for the regression tests: k-means that first sleeps for
$CLUSTERBENCH_TEST_DELAY seconds, so a slowdown can be injected without changing the cell's key."""

from __future__ import annotations

import os
import time

from sklearn.cluster import KMeans


class SleepyKMeans:
    def __init__(self, n_clusters: int = 8, random_state: int | None = None):
        self.n_clusters = n_clusters
        self.random_state = random_state

    def fit_predict(self, X):
        time.sleep(float(os.environ.get("CLUSTERBENCH_TEST_DELAY", "0")))
        return KMeans(self.n_clusters, n_init=1, random_state=self.random_state).fit_predict(X)
