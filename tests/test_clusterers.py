import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.metrics import normalized_mutual_info_score as nmi

from clusterbench.core.errors import UserError
from clusterbench.methods.clusterers import CLUSTERERS
from clusterbench.methods.clusterers import agglomerative as agglo_module


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y


@pytest.mark.parametrize("backend", ["auto", "faiss", "sklearn"])
def test_kmeans_reproduces_the_digits_baseline_on_every_engine(digits, backend):
    X, y = digits
    scores = [nmi(y, CLUSTERERS.create(f"kmeans:k=10,seed={s},backend={backend}").fit_predict(X)) for s in range(3)]
    assert np.mean(scores) == pytest.approx(0.74, abs=0.03)


@pytest.mark.parametrize(("spec", "engine"), [
    ("kmeans:k=10", "sklearn"), ("kmeans:k=150", "faiss"), ("kmeans:k=10,spherical=true", "faiss"),
    ("kmeans:k=150,backend=sklearn", "sklearn"), ("kmeans:k=10,backend=faiss", "faiss"),
])
def test_auto_engine_is_sklearn_lloyd_at_small_k_faiss_above(digits, spec, engine):
    km = CLUSTERERS.create(spec)
    result = km.fit(digits[0])
    labels = result.labels
    assert result.info["engine"] == engine
    assert len(np.unique(labels)) == km.k


@pytest.mark.parametrize("backend", ["sklearn", "faiss"])
def test_tol_stops_either_engine_early_and_zero_only_at_exact_convergence(digits, backend):
    loose = CLUSTERERS.create(f"kmeans:k=10,max_iter=100,tol=0.01,backend={backend}")
    exact = CLUSTERERS.create(f"kmeans:k=10,max_iter=100,tol=0,backend={backend}")
    loose, exact = loose.fit(digits[0]).info, exact.fit(digits[0]).info
    assert loose["n_iter"] < exact["n_iter"] <= 100
    assert loose["objective"] >= exact["objective"]
    # tol=0 stopped because nothing changed any more, not at the cap: more room changes nothing
    roomier = CLUSTERERS.create(f"kmeans:k=10,max_iter=300,tol=0,backend={backend}").fit(digits[0])
    again = CLUSTERERS.create(f"kmeans:k=10,max_iter=100,tol=0,backend={backend}").fit(digits[0])
    np.testing.assert_array_equal(roomier.labels, again.labels)
    assert roomier.info["n_iter"] == exact["n_iter"] < 100


def test_faiss_stepped_one_iteration_at_a_time_matches_one_long_call(digits):
    # a tolerance that stops only when the centres no longer move: stepping one iteration per
    # call must give what one 30-iteration call gives
    stepped = CLUSTERERS.create("kmeans:k=150,max_iter=30,tol=1e-15,backend=faiss")
    whole = CLUSTERERS.create("kmeans:k=150,max_iter=30,tol=0,backend=faiss")
    a, b = stepped.fit(digits[0]), whole.fit_predict(digits[0])
    assert 1 < a.info["n_iter"] <= 30
    np.testing.assert_array_equal(a.labels, b)
    np.testing.assert_allclose(stepped.cluster_centers_, whole.cluster_centers_, atol=1e-6)


def test_more_restarts_never_worsen_the_objective(digits):
    one = CLUSTERERS.create("kmeans:k=10,seed=1")
    five = CLUSTERERS.create("kmeans:k=10,seed=1,n_init=5")
    assert five.fit(digits[0]).info["objective"] <= one.fit(digits[0]).info["objective"]


@pytest.mark.parametrize("backend", ["faiss", "sklearn"])
def test_kmeans_uses_every_point_no_subsampling(backend):
    # 3000 points, K=2: faiss' default would train on 512 of them. Trained on all points, the
    # converged centroids are exactly the means of the points assigned to them.
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 1, (1500, 8)), rng.normal(4, 1, (1500, 8))].astype(np.float32)
    km = CLUSTERERS.create(f"kmeans:k=2,max_iter=50,backend={backend}")
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
    result = model.fit(X)
    labels = result.labels
    assert result.info["method"] == "microclusters:300"
    assert nmi(y, labels) > 0.7


def test_hdbscan_reports_clusters_and_noise_and_reduces_wide_input(digits):
    X, _ = digits
    model = CLUSTERERS.create("hdbscan:min_cluster_size=15,max_dim=20")
    result = model.fit(X)
    labels = result.labels
    assert result.info["reduced_to"] == 20
    assert result.info["n_clusters_found"] == labels.max() + 1 >= 2
    assert result.info["noise_fraction"] == pytest.approx(np.mean(labels == -1))


@pytest.mark.parametrize(
    ("spec", "message"),
    [("kmeans:k=1", "clusterer 'kmeans': k=1 must be >= 2"), ("kmeans:k=5000", r"k=5000 exceeds the number of points \(1797\)"),
     ("agglomerative:k=0", "clusterer 'agglomerative': k=0 must be >= 2"),
     ("kmeans:k=10,backend=torch", "clusterer 'kmeans': backend=torch is not allowed; choose one of auto, faiss, sklearn"),
     ("kmeans:k=10,tol=-1", "clusterer 'kmeans': tol=-1 must be >= 0"),
     ("kmeans:k=10,spherical=true,backend=sklearn", "spherical=true needs backend=faiss"),
     ("agglomerative:k=10,linkage=median", "linkage=median is not allowed; choose one of ward, average, complete, single")],
)
def test_bad_k_and_parameters_are_clear(digits, spec, message):
    with pytest.raises(UserError, match=message):
        CLUSTERERS.create(spec).fit_predict(digits[0])


def test_nan_features_are_refused(digits):
    X = digits[0].copy()
    X[3, 2] = np.nan
    with pytest.raises(UserError, match="1 of 1797 feature rows contain NaN or inf"):
        CLUSTERERS.create("kmeans:k=10").fit_predict(X)


@pytest.mark.slow
def test_without_faiss_sklearn_kmeans_still_runs_and_faiss_work_names_the_extra(digits, monkeypatch, run_cli):
    import sys

    monkeypatch.setitem(sys.modules, "faiss", None)  # as if neither extra were installed
    labels = CLUSTERERS.create("kmeans:k=10").fit_predict(digits[0])
    assert nmi(digits[1], labels) > 0.6
    with pytest.raises(UserError, match=r"faiss is not installed: pip install 'clusterbench\[cpu\]'"):
        CLUSTERERS.create("kmeans:k=150").fit_predict(digits[0])
    status, _, err, summary = run_cli("-d", "digits:limit=400", "-e", "pixels", "-c", "kmeans:k=150", "-c", "kmeans:k=10")
    failed, ok = summary["cells"]
    assert status != 0 and "Traceback" not in err
    assert failed["status"] == "failed" and "clusterbench[cpu]" in failed["error"]
    assert ok["status"] == "ok"  # nothing else is lost
