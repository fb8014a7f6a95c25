"""K estimators against known answers: well-separated blobs of known K, and hand-computed pieces
(W_k, prediction strength of a small table, the gap 1-SE rule, the Kneedle example, the reference box)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from clusterbench.core.contracts import KEstimator
from clusterbench.core.errors import UserError
from clusterbench.k.estimators import K_ESTIMATORS
from clusterbench.k.estimators.base import sweep, within_ss
from clusterbench.k.estimators.gap import one_se_choice, reference_sets
from clusterbench.k.estimators.prediction_strength import strength

ALL = ("silhouette", "silhouette-umap", "calinski-harabasz", "davies-bouldin", "gap", "prediction-strength",
       "stability", "bic", "elbow")


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=400, centers=10.0 * np.eye(4, 12), cluster_std=0.8,
                      random_state=0)
    return X.astype(np.float32), y


def kmeans(X, k, seed):
    return KMeans(k, n_init=4, random_state=seed).fit_predict(X)


def test_every_issue_estimator_is_registered_with_its_contract():
    assert set(ALL) <= set(K_ESTIMATORS.list())
    for name in ALL:
        cls = K_ESTIMATORS.get(name)
        assert isinstance(cls(), KEstimator) and cls.needs_labels is False
        assert cls.direction in ("maximize", "minimize")


# silhouette-umap's first call compiles UMAP's numba kernels (tens of seconds): slow tier only
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "silhouette-umap" else n for n in ALL])
def test_each_estimator_finds_four_well_separated_blobs(name, blobs):
    X, _ = blobs
    chosen, curve = sweep(K_ESTIMATORS.create(name), X, range(2, 9), kmeans, seed=0)
    assert chosen == 4, {k: round(v["value"], 3) for k, v in curve.items()}
    assert sorted(curve) == list(range(2, 9))


def test_within_ss_by_hand():
    X = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0], [10.0, 12.0], [5.0, 5.0]])
    labels = np.array([0, 0, 1, 1, -1])  # noise left out
    # each pair is 2 apart: 2 * 1^2 per cluster; = D_r / (2 n_r) = (2 * 4) / (2 * 2) per cluster
    assert within_ss(X, labels) == pytest.approx(4.0)


def test_prediction_strength_by_hand():
    test = np.array([0, 0, 0, 0, 1, 1, 1])
    predicted = np.array([5, 5, 5, 6, 7, 7, 7])
    # cluster 0: 4 points, pairs co-predicted 3 of 6 = 0.5; cluster 1: 3 of 3 = 1.0; strength = min = 0.5
    assert strength(test, predicted) == pytest.approx(0.5)
    assert strength(np.array([0, 0, 1]), np.array([1, 1, 2])) == 1.0  # singletons are skipped


def test_gap_one_se_rule_by_hand():
    # Tibshirani et al.: the smallest k with gap(k) >= gap(k+1) - s(k+1)
    curve = {2: {"value": 0.5, "s": 0.05}, 3: {"value": 0.8, "s": 0.05}, 4: {"value": 0.82, "s": 0.05},
             5: {"value": 0.9, "s": 0.01}}
    assert one_se_choice(curve) == 3  # 0.8 >= 0.82 - 0.05
    rising = {k: {"value": float(k), "s": 0.1} for k in range(2, 6)}
    assert one_se_choice(rising) == 5  # none qualifies: the largest gap


def test_gap_reference_sets_are_uniform_over_the_principal_component_box():
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(500, 2)) * [5.0, 0.5]) @ np.array([[np.cos(0.5), np.sin(0.5)], [-np.sin(0.5), np.cos(0.5)]])
    (Z,) = reference_sets(X, 1, seed=0)
    assert Z.shape == X.shape
    # in the PC frame the reference box is the data's range; across the thin axis it stays thin
    _, _, vt = np.linalg.svd(X - X.mean(0), full_matrices=False)
    rot_x, rot_z = (X - X.mean(0)) @ vt.T, (Z - X.mean(0)) @ vt.T
    assert (rot_z.min(0) >= rot_x.min(0) - 1e-4).all() and (rot_z.max(0) <= rot_x.max(0) + 1e-4).all()
    assert rot_z[:, 1].std() < 0.3 * rot_z[:, 0].std()
    np.testing.assert_array_equal(Z, reference_sets(X, 1, seed=0)[0])  # seeded: the same at every K


def test_elbow_on_kneedles_published_example():
    # kneed's documented example: y = x^2 style convex increasing... here a decreasing convex 1/x curve
    est = K_ESTIMATORS.create("elbow")
    curve = {k: {"value": 1.0 / k} for k in range(1, 11)}
    assert est.choose(curve) == 3  # kneed's knee of 1/x on 1..10 (S=1)


def test_stability_and_prediction_strength_rules():
    ps = K_ESTIMATORS.create("prediction-strength")
    assert ps.choose({2: {"value": 0.95}, 3: {"value": 0.7}, 4: {"value": 0.85}, 5: {"value": 0.6}}) == 4
    assert ps.choose({2: {"value": 0.5}, 3: {"value": 0.7}}) == 3  # none >= 0.8: the strongest
    st = K_ESTIMATORS.create("stability")
    assert st.choose({2: {"value": 0.95}, 3: {"value": 0.9}, 4: {"value": 0.5}, 5: {"value": 0.99}}) == 3
    assert st.choose({2: {"value": 0.3}, 3: {"value": 0.9}, 4: {"value": 0.5}}) == 3


def test_declared_parameters_and_closest_name():
    with pytest.raises(UserError, match="did you mean 'gap'"):
        K_ESTIMATORS.validate("gapp")
    with pytest.raises(UserError, match="refs=1 must be"):
        K_ESTIMATORS.validate("gap:refs=1")
    with pytest.raises(UserError, match="threshold=2 must be"):
        K_ESTIMATORS.validate("prediction-strength:threshold=2")


def test_a_class_breaking_the_contract_is_refused_at_registration():
    class NoRule:
        needs_labels = False
        direction = "maximize"

        def score(self, X, labels, k, fit, seed):
            return {"value": 0.0}

    with pytest.raises(TypeError, match="no 'choose'"):
        K_ESTIMATORS.register("no-rule")(NoRule)
    assert "no-rule" not in K_ESTIMATORS.list()
