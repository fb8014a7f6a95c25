import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score, silhouette_score

from clusterbench import metrics as M


def test_accuracy_matches_hand_computed_when_k_differs_from_classes():
    truth = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    pred = np.array([5, 5, 7, 1, 1, 1, 9, 9])  # 4 clusters for 3 classes
    # best matching: 5->0 (2), 1->1 (3), 9->2 (2); cluster 7 unmatched -> 7/8
    assert M.unsupervised_accuracy(truth, pred) == pytest.approx(7 / 8)
    assert M.purity(truth, pred) == pytest.approx(1.0)
    # fewer clusters than classes: only 2 classes can be matched
    assert M.unsupervised_accuracy(truth, np.array([0, 0, 0, 1, 1, 1, 1, 1])) == pytest.approx(6 / 8)


def test_nmi_uses_the_recorded_averaging():
    rng = np.random.default_rng(0)
    truth, pred = rng.integers(0, 4, 200), rng.integers(0, 6, 200)
    got = M.external_metrics(truth, pred)["nmi"]
    assert got == pytest.approx(normalized_mutual_info_score(truth, pred, average_method=M.NMI_AVERAGE))
    assert M.NMI_AVERAGE == "arithmetic"


def test_noise_rule_all_points_plus_clustered_only():
    X = np.r_[np.zeros((5, 2)), np.ones((5, 2)) * 5, np.ones((2, 2)) * 50]
    truth = np.array([0] * 5 + [1] * 5 + [0, 1])
    pred = np.array([0] * 5 + [1] * 5 + [-1, -1])
    out = M.score(X, pred, truth)
    assert out["noise_fraction"] == pytest.approx(2 / 12)
    assert out["n_clusters"] == 2
    assert out["acc_clustered"] == 1.0  # perfect on the clustered points
    # on all points noise is one extra group; with 2 classes it stays unmatched -> 10/12
    assert out["acc"] == pytest.approx(10 / 12)
    # internal metrics ignore the noise points
    assert out["silhouette"] == pytest.approx(silhouette_score(X[:10], pred[:10]))


def test_without_truth_label_metrics_are_none_not_invented():
    X = np.random.default_rng(0).normal(size=(40, 3))
    out = M.score(X, np.arange(40) % 3, None)
    assert all(out[m] is None for m in M.EXTERNAL)
    assert out["silhouette"] is not None and out["davies_bouldin"] is not None


def test_single_cluster_has_no_internal_metrics():
    out = M.internal_metrics(np.zeros((10, 2)), np.zeros(10, int))
    assert out["silhouette"] is None and out["calinski_harabasz"] is None


def test_silhouette_is_sampled_above_the_limit_and_says_so():
    X = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32)
    labels = (X[:, 0] > 0).astype(int)
    exact = M.internal_metrics(X, labels, sample_size=1000)
    sampled = M.internal_metrics(X, labels, sample_size=100)
    assert exact["silhouette_sample_size"] == 300
    assert sampled["silhouette_sample_size"] == 100
    assert exact["silhouette"] == pytest.approx(silhouette_score(X, labels), rel=1e-5)
    assert abs(sampled["silhouette"] - exact["silhouette"]) < 0.1
