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


def test_a_cut_into_as_many_clusters_as_points_gives_singletons(digits):
    at = registries().clusterers.create("agglomerative").sweep(digits[:12])
    assert len(np.unique(at(12))) == 12 and len(np.unique(at(11))) == 11 and len(np.unique(at(2))) == 2


def test_the_micro_cluster_mode_shares_its_summary_too(digits):
    clusterers = registries().clusterers
    spec = "agglomerative:max_points=500,n_micro=200"
    at = clusterers.create(spec, seed=0).sweep(digits)
    for k in (5, 10):
        fitted = clusterers.create(spec, k=k, seed=0).fit(digits).labels
        assert adjusted_rand_score(fitted, at(k)) == pytest.approx(1.0)


@pytest.mark.slow
@pytest.mark.parametrize(("dataset", "estimator"), [
    ("digits", "auto:elbow"),
    ("digits:limit=400", "auto:gap"),
    pytest.param("fashion-mnist:split=test,limit=2000", "auto:elbow", marks=pytest.mark.skipif(
        not __import__("pathlib").Path("/usr/share/datasets/fashion-mnist").exists(), reason="no Fashion-MNIST")),
])
def test_a_sweep_sharing_one_tree_chooses_the_k_of_per_k_refits(run_cli, dataset, estimator):
    """The same estimator over the same K range, once through the shared tree (agglomerative) and
    once refitted at every K (scikit-learn's AgglomerativeClustering through the estimator adapter,
    which shares nothing): the same K, the same NMI."""
    status, _, err, summary = run_cli(
        "-d", dataset, "-e", "pixels", "-c", "agglomerative:linkage=ward",
        "-c", "sklearn:estimator=sklearn.cluster.AgglomerativeClustering,linkage=ward",
        "--k", estimator, "--tune", "k_max=30" if "gap" not in estimator else "k_max=12", "--pictures", "false")
    assert status == 0, err
    shared, refitted = summary["cells"]
    assert shared["params"]["k"] == refitted["params"]["k"]
    assert shared["metrics"]["nmi"] == pytest.approx(refitted["metrics"]["nmi"])
