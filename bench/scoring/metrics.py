"""Clustering quality as pure functions of (features, assignments, truth).

Noise rule (HDBSCAN's -1): external metrics are computed on *all* points with every noise
point counted as one extra "noise" group, so discarding data is never rewarded; the same
metrics on clustered points only carry the suffix ``_clustered``. Internal metrics use
clustered points only (a "noise cluster" has no centre or cohesion).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn import metrics as skm

NMI_AVERAGE = "arithmetic"  # sklearn's default since 0.22; fixed here and recorded with results
SILHOUETTE_EXACT_MAX = 10_000  # above this many points silhouette is estimated on a sample

EXTERNAL = ("nmi", "ami", "ari", "acc", "purity")
INTERNAL = ("silhouette", "calinski_harabasz", "davies_bouldin")
LABEL_METRICS = frozenset(EXTERNAL) | {f"{m}_clustered" for m in EXTERNAL}


def unsupervised_accuracy(truth: np.ndarray, pred: np.ndarray) -> float:
    """Best one-to-one matching of clusters to classes (Hungarian on the contingency table).

    Works for any number of clusters: with more clusters than classes the extra clusters
    count as wrong, as in the papers that report ACC.
    """
    table = skm.cluster.contingency_matrix(truth, pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / len(truth))


def purity(truth: np.ndarray, pred: np.ndarray) -> float:
    table = skm.cluster.contingency_matrix(truth, pred)
    return float(table.max(axis=0).sum() / len(truth))


def external_metrics(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {
        "nmi": float(skm.normalized_mutual_info_score(truth, pred, average_method=NMI_AVERAGE)),
        "ami": float(skm.adjusted_mutual_info_score(truth, pred, average_method=NMI_AVERAGE)),
        "ari": float(skm.adjusted_rand_score(truth, pred)),
        "acc": unsupervised_accuracy(truth, pred),
        "purity": purity(truth, pred),
    }


def internal_metrics(X: np.ndarray, pred: np.ndarray, sample_size: int = SILHOUETTE_EXACT_MAX, seed: int = 0) -> dict:
    """Silhouette (exact up to ``sample_size`` points, sampled above), Calinski-Harabasz,
    Davies-Bouldin. All None when fewer than two clusters (or too few points) remain."""
    out: dict = dict.fromkeys(INTERNAL)
    out["silhouette_sample_size"] = None
    n_clusters = len(np.unique(pred))
    if n_clusters < 2 or n_clusters >= len(pred):
        return out
    X_all, pred_all = X, pred
    from clusterbench.scoring.silhouette import silhouette_exact

    if len(pred) > sample_size:
        idx = np.random.default_rng(seed).choice(len(pred), size=sample_size, replace=False)
        X, pred = X[idx], pred[idx]
    if 2 <= len(np.unique(pred)) < len(pred):
        out["silhouette"] = silhouette_exact(X, pred, device=_silhouette_device())
        out["silhouette_sample_size"] = len(pred)
    out["calinski_harabasz"] = float(skm.calinski_harabasz_score(X_all, pred_all))
    out["davies_bouldin"] = float(skm.davies_bouldin_score(X_all, pred_all))
    return out


def _silhouette_device() -> str:
    """CUDA when there is a GPU (the O(N^2) distance work is what it is good at), else CPU."""
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def cluster_stats(pred: np.ndarray) -> dict:
    clustered = pred[pred >= 0]
    sizes = np.bincount(clustered) if len(clustered) else np.zeros(0, int)
    sizes = sizes[sizes > 0]
    return {
        "n_clusters": int(len(sizes)),
        "noise_fraction": float(np.mean(pred < 0)) if len(pred) else 0.0,
        "largest_cluster": int(sizes.max()) if len(sizes) else 0,
        "smallest_cluster": int(sizes.min()) if len(sizes) else 0,
    }


def noise_as_group(pred: np.ndarray) -> np.ndarray:
    """The assignment with every noise point (-1) in one extra group: the rule for label metrics."""
    pred = np.asarray(pred)
    return np.where(pred < 0, pred.max(initial=-1) + 1, pred)


def score(X: np.ndarray, pred: np.ndarray, truth: np.ndarray | None, sample_size: int = SILHOUETTE_EXACT_MAX, seed: int = 0) -> dict:
    """Every metric for one assignment; label metrics are None (not invented) without truth."""
    pred = np.asarray(pred)
    noise = pred < 0
    out: dict = cluster_stats(pred)
    if truth is not None:
        truth = np.asarray(truth)
        out.update(external_metrics(truth, noise_as_group(pred)))
        if noise.any() and (~noise).any():
            out.update({f"{k}_clustered": v for k, v in external_metrics(truth[~noise], pred[~noise]).items()})
    else:
        out.update(dict.fromkeys(EXTERNAL))
    out.update(internal_metrics(X[~noise], pred[~noise], sample_size=sample_size, seed=seed))
    return out


def group_metrics(pred: np.ndarray, groups, prefix: str) -> dict[str, float]:
    """How clusters sit against the groups items were cut from (the videos of frames):
    ``{prefix}_nmi`` (NMI between clusters and groups), ``{prefix}_purity`` (the fraction of
    items in their cluster's most common group: 1 = no cluster mixes groups) and
    ``{prefix}_consistency`` (the fraction of items in their group's most common cluster: 1 =
    every group stays in one cluster). Noise counts as one extra cluster, as for the labels."""
    pred = noise_as_group(np.asarray(pred))
    _, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    return {
        f"{prefix}_nmi": float(skm.normalized_mutual_info_score(codes, pred, average_method=NMI_AVERAGE)),
        f"{prefix}_purity": purity(codes, pred),
        f"{prefix}_consistency": purity(pred, codes),
    }
