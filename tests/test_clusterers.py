import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.metrics import normalized_mutual_info_score as nmi

from clusterbench.errors import UserError
from clusterbench.methods.clusterers import CLUSTERERS
from clusterbench.methods.clusterers import agglomerative as agglo_module


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y


def test_faiss_kmeans_reproduces_the_digits_baseline(digits):
    X, y = digits
    scores = [nmi(y, CLUSTERERS.create(f"kmeans:k=10,seed={s}").fit_predict(X)) for s in range(3)]
    assert np.mean(scores) == pytest.approx(0.74, abs=0.03)


def test_sklearn_backend_agrees(digits):
    X, y = digits
    labels = CLUSTERERS.create("kmeans:k=10,backend=sklearn,n_init=3").fit_predict(X)
    assert nmi(y, labels) == pytest.approx(0.74, abs=0.03)


def test_kmeans_uses_every_point_no_subsampling():
    # 3000 points, K=2: faiss' default would train on 512 of them. Trained on all points, the
    # converged centroids are exactly the means of the points assigned to them.
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 1, (1500, 8)), rng.normal(4, 1, (1500, 8))].astype(np.float32)
    km = CLUSTERERS.create("kmeans:k=2,max_iter=50")
    labels = km.fit_predict(X)
    for c in range(2):
        np.testing.assert_allclose(km.cluster_centers_[c], X[labels == c].mean(axis=0), atol=1e-4)


def test_kmeans_same_seed_same_labels(digits):
    X, _ = digits
    a = CLUSTERERS.create("kmeans:k=10,seed=3").fit_predict(X)
    b = CLUSTERERS.create("kmeans:k=10,seed=3").fit_predict(X)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("linkage", ["ward", "average", "complete", "single"])
def test_agglomerative_linkages(digits, linkage):
    X, y = digits
    labels = CLUSTERERS.create(f"agglomerative:k=10,linkage={linkage}").fit_predict(X)
    assert len(np.unique(labels)) == 10
    if linkage == "ward":
        assert nmi(y, labels) > 0.8


def test_agglomerative_refuses_what_does_not_fit(digits, monkeypatch):
    monkeypatch.setattr(agglo_module, "available_memory_bytes", lambda: 1_000_000)
    with pytest.raises(UserError, match=r"exact clustering of 1797 points needs ~0\.0 GiB, 0\.0 GiB available"):
        CLUSTERERS.create("agglomerative:k=10").fit_predict(digits[0])


def test_agglomerative_micro_clusters_above_threshold(digits):
    X, y = digits
    model = CLUSTERERS.create("agglomerative:k=10,max_points=1000,n_micro=300")
    labels = model.fit_predict(X)
    assert model.info_["method"] == "microclusters:300"
    assert nmi(y, labels) > 0.7


def test_hdbscan_reports_clusters_and_noise_and_reduces_wide_input(digits):
    X, _ = digits
    model = CLUSTERERS.create("hdbscan:min_cluster_size=15,max_dim=20")
    labels = model.fit_predict(X)
    assert model.info_["reduced_to"] == 20
    assert model.info_["n_clusters_found"] == labels.max() + 1 >= 2
    assert model.info_["noise_fraction"] == pytest.approx(np.mean(labels == -1))


@pytest.mark.parametrize(
    ("spec", "message"),
    [("kmeans:k=1", "k=1 must be at least 2"), ("kmeans:k=5000", r"k=5000 exceeds the number of points \(1797\)"),
     ("agglomerative:k=0", "k=0 must be at least 2"), ("agglomerative:k=10,linkage=median", "linkage='median'")],
)
def test_bad_k_and_parameters_are_clear(digits, spec, message):
    with pytest.raises(UserError, match=message):
        CLUSTERERS.create(spec).fit_predict(digits[0])


def test_nan_features_are_refused(digits):
    X = digits[0].copy()
    X[3, 2] = np.nan
    with pytest.raises(UserError, match="1 of 1797 feature rows contain NaN or inf"):
        CLUSTERERS.create("kmeans:k=10").fit_predict(X)
