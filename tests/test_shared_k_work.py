"""A K sweep shares work across K where the clusterer can: agglomerative builds one tree and cuts it
at every K, giving the partition a fit at that K gives."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.metrics import adjusted_rand_score

from clusterbench.core.catalog import registries


@pytest.fixture(scope="module")
def digits():
    return (load_digits().data / 16.0).astype(np.float32)


@pytest.mark.parametrize("linkage", ["ward", "average", "complete", pytest.param("single", marks=pytest.mark.slow)])
def test_one_tree_cut_at_every_k_equals_a_fit_at_that_k(digits, linkage):
    clusterers = registries().clusterers
    spec = f"agglomerative:linkage={linkage}"
    assert clusterers.traits(spec).sweeps_k and not clusterers.traits("hdbscan").sweeps_k
    at = clusterers.create(spec).sweep(digits)
    for k in (2, 7, 10, 14, 29, 50):  # single linkage has tied heights at 7, 14, 29: cut_tree keeps exactly k
        fitted = clusterers.create(spec, k=k).fit(digits).labels
        swept = at(k)
        assert len(np.unique(swept)) == k
        assert adjusted_rand_score(fitted, swept) == pytest.approx(1.0)


def test_the_micro_cluster_mode_shares_its_summary_too(digits):
    clusterers = registries().clusterers
    spec = "agglomerative:max_points=500,n_micro=200"
    at = clusterers.create(spec, seed=0).sweep(digits)
    for k in (5, 10):
        fitted = clusterers.create(spec, k=k, seed=0).fit(digits).labels
        assert adjusted_rand_score(fitted, at(k)) == pytest.approx(1.0)
