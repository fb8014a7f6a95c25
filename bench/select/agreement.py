"""Label-free criteria from agreement between partitions: consensus and stability.

consensus (Strehl & Ghosh 2002, cluster ensembles): each partition's average NMI (ANMI) to the
other partitions of the same dataset; the partition the others agree with most wins.
``consensus-ari`` averages the adjusted Rand index instead (chance-corrected, so it does not
drift toward larger K the way NMI can).

consensus-within: the same average taken only over the partitions of the same embedder's
features (other clusterers, reducers, K). It scores a partition by how typical it is of its own
representation and, through the level of agreement, how clear that representation's structure is
(clear clusters make k-means, Ward, average linkage and HDBSCAN agree); no embedder outvotes another
by having more configurations. Candidates without an embedder name form one group.

stability (Ben-Hur et al. 2002; Lange et al. 2004): each partition's mean ARI to its own reruns
(other seeds, subsamples) on the points they share; a configuration that says the same thing when
refitted wins. Without reruns, or for a partition of fewer than two groups (one cluster, all
noise: perfectly "stable" and useless), the score is NaN (ranks last).

Noise (-1) is one extra group (see :mod:`clusterbench.select.candidate`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import adjusted_rand_score

from .candidate import Candidate, check_candidates, noise_as_group


def _codes(labels: np.ndarray) -> tuple[np.ndarray, int, float]:
    """(codes 0..k-1, k, entropy in nats) of one partition, noise as one group."""
    _, codes = np.unique(noise_as_group(labels), return_inverse=True)
    p = np.bincount(codes) / len(codes)
    return codes, int(codes.max()) + 1, float(-(p * np.log(p)).sum())


def _pair_table(a: np.ndarray, ka: int, b: np.ndarray, kb: int) -> np.ndarray:
    return np.bincount(a * kb + b, minlength=ka * kb).reshape(ka, kb)


def _nmi(table: np.ndarray, ha: float, hb: float) -> float:
    """NMI with arithmetic averaging (scikit-learn's default and the harness's): computed by hand
    from a contingency table so that each partition's coding and entropy are done once, not once
    per pair as ``normalized_mutual_info_score`` would (n^2/2 pairs)."""
    if ha == 0.0 and hb == 0.0:
        return 1.0  # two one-group partitions agree perfectly (scikit-learn's convention)
    if ha == 0.0 or hb == 0.0:
        return 0.0
    n = table.sum()
    nz = table > 0
    pij = table[nz] / n
    pi, pj = table.sum(1) / n, table.sum(0) / n
    mi = float((pij * (np.log(pij) - np.log(np.outer(pi, pj)[nz]))).sum())
    return max(0.0, mi) / ((ha + hb) / 2.0)


def _ari(table: np.ndarray) -> float:
    """Adjusted Rand index from a contingency table (Hubert & Arabie), as scikit-learn computes it."""
    n = table.sum()
    comb = lambda x: x * (x - 1) / 2.0  # noqa: E731
    sum_ij, sum_a, sum_b = comb(table).sum(), comb(table.sum(1)).sum(), comb(table.sum(0)).sum()
    expected = sum_a * sum_b / comb(n)
    top = (sum_a + sum_b) / 2.0
    if top == expected:
        return 1.0
    return float((sum_ij - expected) / (top - expected))


def agreement_matrix(candidates: Sequence[Candidate], measure: str = "nmi") -> np.ndarray:
    """Symmetric (n, n) agreement of every pair of partitions; the diagonal is 1."""
    coded = [_codes(c.labels) for c in check_candidates(candidates)]
    n = len(coded)
    out = np.eye(n)
    for i in range(n):
        a, ka, ha = coded[i]
        for j in range(i + 1, n):
            b, kb, hb = coded[j]
            table = _pair_table(a, ka, b, kb)
            out[i, j] = out[j, i] = _nmi(table, ha, hb) if measure == "nmi" else _ari(table)
    return out


def _average_agreement(candidates, measure: str, within_embedder: bool = False) -> dict[str, float]:
    """Each partition's mean agreement to the others (of its own embedder); 0 when alone."""
    candidates = check_candidates(candidates)
    m = agreement_matrix(candidates, measure)
    np.fill_diagonal(m, np.nan)
    if within_embedder:
        group = np.array([str(c.embedder) for c in candidates])
        m[group[:, None] != group[None, :]] = np.nan
    counts = (~np.isnan(m)).sum(axis=1)
    means = np.where(counts > 0, np.nansum(m, axis=1) / np.maximum(counts, 1), 0.0)
    return {c.key: float(v) for c, v in zip(candidates, means, strict=True)}


def consensus(candidates: Sequence[Candidate], shared_space=None, seed: int = 0) -> dict[str, float]:
    """ANMI: each partition's mean NMI to the other candidates."""
    return _average_agreement(candidates, "nmi")


def consensus_within(candidates: Sequence[Candidate], shared_space=None, seed: int = 0) -> dict[str, float]:
    """Each partition's mean NMI to the other candidates of the same embedder."""
    return _average_agreement(candidates, "nmi", within_embedder=True)


def consensus_ari(candidates: Sequence[Candidate], shared_space=None, seed: int = 0) -> dict[str, float]:
    """Each partition's mean ARI to the other candidates."""
    return _average_agreement(candidates, "ari")


def stability(candidates: Sequence[Candidate], shared_space=None, seed: int = 0) -> dict[str, float]:
    """Each partition's mean ARI to its reruns on the points each rerun labelled; NaN without reruns."""
    out = {}
    for c in check_candidates(candidates):
        if len(np.unique(noise_as_group(c.labels))) < 2:
            out[c.key] = float("nan")
            continue
        scores = []
        for rerun in c.reruns:
            index = np.arange(len(c.labels)) if rerun.index is None else np.asarray(rerun.index)
            scores.append(adjusted_rand_score(noise_as_group(c.labels[index]), noise_as_group(np.asarray(rerun.labels))))
        out[c.key] = float(np.mean(scores)) if scores else float("nan")
    return out
