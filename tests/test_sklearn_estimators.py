"""Any scikit-learn style clusterer is a clusterer: by import path (``sklearn:estimator=PATH``) or as
a plain plug-in class, its parameters checked against its own signature, K and seed filled in."""

from __future__ import annotations

import numpy as np
import pytest

from clusterbench.core.catalog import registries
from clusterbench.core.contracts import Clusterer
from clusterbench.core.errors import UserError
from clusterbench.core.registry import Registry


@pytest.fixture(scope="module")
def digits_pixels():
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.data / 16.0).astype(np.float32), data.target


@pytest.mark.parametrize(("spec", "floor"), [
    ("sklearn:estimator=sklearn.cluster.Birch", 0.80),
    ("sklearn:estimator=sklearn.cluster.SpectralClustering,affinity=nearest_neighbors", 0.80),
    ("sklearn:estimator=sklearn.mixture.GaussianMixture,covariance_type=diag", 0.55),
])
def test_scikit_learn_estimators_take_the_grids_k_and_seed(digits_pixels, spec, floor):
    from sklearn.metrics import normalized_mutual_info_score as nmi

    X, y = digits_pixels
    clusterers = registries().clusterers
    traits = clusterers.traits(spec)
    assert traits.takes_k and traits.adapted
    labels = clusterers.create(spec, k=10, **({"seed": 0} if traits.takes_seed else {})).fit(X).labels
    assert len(np.unique(labels)) == 10  # n_clusters / n_components really got the grid's K
    assert nmi(y, labels) >= floor


def test_the_seed_reaches_random_state_and_fixes_the_result(digits_pixels):
    X, _ = digits_pixels
    clusterers = registries().clusterers
    spec = "sklearn:estimator=sklearn.mixture.GaussianMixture,covariance_type=diag,max_iter=20"
    assert clusterers.traits(spec).takes_seed
    runs = [clusterers.create(spec, k=10, seed=s).fit(X).labels for s in (0, 0, 1)]
    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])


def test_an_estimator_from_another_package_finds_its_own_k(digits_pixels):
    X, y = digits_pixels
    clusterers = registries().clusterers
    spec = "sklearn:estimator=hdbscan.HDBSCAN,min_cluster_size=20"
    traits = clusterers.traits(spec)
    assert not traits.takes_k and not traits.takes_seed  # hdbscan has neither n_clusters nor random_state
    labels = clusterers.create(spec).fit(X).labels
    assert labels.min() >= -1 and len(np.unique(labels[labels >= 0])) >= 2


@pytest.mark.parametrize(("spec", "line"), [
    ("sklearn:estimator=sklearn.cluster.Birch,treshold=0.3",
     "unknown parameter 'treshold' for clusterer 'sklearn' (did you mean 'threshold'?)"),
    ("sklearn:estimator=sklearn.cluster.Nope", "estimator=sklearn.cluster.Nope: sklearn.cluster has no 'Nope'"),
    ("sklearn:estimator=no_such_package.Thing", "cannot import no_such_package"),
    ("sklearn:estimator=sklearn.metrics.pairwise_distances", "not a clusterer"),
    ("sklearn:estimator=sklearn.cluster.Birch,n_clusters=5", "unknown parameter 'n_clusters'"),
    ("sklearn", "needs parameter(s): estimator"),
])
def test_a_bad_estimator_spec_is_one_line(spec, line):
    with pytest.raises(UserError) as caught:
        registries().clusterers.validate(spec)
    assert line in str(caught.value) and "\n" not in str(caught.value)


def test_a_bad_estimator_spec_exits_2_before_anything_runs(run_cli, results_dir):
    status, _, err, _ = run_cli("-d", "digits", "-e", "pixels", "-c", "sklearn:estimator=sklearn.cluster.Birch,treshold=1")
    assert status == 2 and "did you mean 'threshold'" in err and "Traceback" not in err
    assert not (results_dir / "mlflow.db").exists()


def test_a_plain_plug_in_class_is_wrapped_with_derived_traits(digits_pixels):
    """A class with only scikit-learn's interface (no needs, owns_k, plan, ...) is registered
    through the adapter: K from n_clusters, seed from random_state."""
    from sklearn.cluster import KMeans

    from clusterbench.methods.clusterers.sklearn_estimator import adapt

    class PlainKMeans:
        def __init__(self, n_clusters=8, random_state=None, n_init=1):
            self.n_clusters, self.random_state, self.n_init = n_clusters, random_state, n_init

        def fit(self, X):
            self.labels_ = KMeans(self.n_clusters, random_state=self.random_state, n_init=self.n_init).fit(X).labels_
            return self

    class NotAClusterer:
        def transform(self, X):
            return X

    reg = Registry("clusterer", contract=Clusterer, adapt=adapt)
    assert reg.register("plain")(PlainKMeans) is PlainKMeans  # the plug-in's own class is left as it was
    traits = reg.traits("plain")
    assert traits.adapted and traits.takes_k and traits.takes_seed and traits.tunable
    assert list(reg.parameters("plain")) == ["k", "seed", "n_init"]
    X, _ = digits_pixels
    labels = reg.create("plain:n_init=2", k=7, seed=0).fit(X).labels
    assert len(np.unique(labels)) == 7
    with pytest.raises(TypeError, match="breaks the clusterer contract: no 'fit'"):
        reg.register("not-one")(NotAClusterer)


def test_traits_are_derived_from_declarations():
    datasets, embedders, clusterers = registries()
    kmeans, hdbscan, deepcluster = (clusterers.traits(n) for n in ("kmeans", "hdbscan", "deepcluster"))
    assert kmeans.takes_k and kmeans.takes_seed and kmeans.tunable and not kmeans.owns_k
    assert not hdbscan.takes_k and hdbscan.tunable
    assert deepcluster.owns_k and not deepcluster.takes_k and not deepcluster.tunable and "data" in deepcluster.needs
    assert embedders.traits("efficientnet-lite0").explainable and not embedders.traits("pixels").explainable
    assert embedders.traits("identity").consumes == "features" and datasets.traits("features").provides == "features"
    assert not embedders.traits("identity").cache_features and embedders.traits("pixels").cache_features
    assert datasets.traits("features").checks_files and not datasets.traits("digits").checks_files
