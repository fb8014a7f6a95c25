import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score, silhouette_score

from clusterbench.scoring import metrics as M


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


@pytest.mark.parametrize("k", [2, 7, 40])
def test_blockwise_silhouette_equals_sklearn(k, monkeypatch):
    from clusterbench.scoring import silhouette

    monkeypatch.setattr(silhouette, "BLOCK_BYTES", 4 * 700 * 97)  # force several uneven blocks
    rng = np.random.default_rng(k)
    X = (rng.normal(size=(700, 33)) + rng.integers(0, 3, 700)[:, None] * 2 + 50).astype(np.float32)
    labels = rng.integers(0, k, 700)
    labels[0] = k  # a singleton cluster scores 0
    assert silhouette.silhouette_exact(X, labels) == pytest.approx(silhouette_score(X, labels), abs=1e-6)


def test_simplified_silhouette_matches_its_definition():
    from clusterbench.scoring.silhouette import silhouette_simplified

    X = np.array([[0.0], [2.0], [10.0], [12.0], [13.0]])
    labels = np.array([0, 0, 1, 1, 1])
    c0, c1 = 1.0, 35 / 3
    a = [1, 1, abs(10 - c1), abs(12 - c1), abs(13 - c1)]
    b = [c1, c1 - 2, 9, 11, 12]
    expected = np.mean([(bi - ai) / max(ai, bi) for ai, bi in zip(a, b, strict=True)])
    assert silhouette_simplified(X, labels) == pytest.approx(expected)
    assert c0 == 1.0
