"""Silhouette in a shared space: every candidate's labels scored in the same embedding.

Own-space silhouettes are not comparable across embedders (a 10-d UMAP space scores far higher
than 784 raw pixels for the same partition). Scoring every partition in ONE space per dataset
makes them comparable; Lowe et al. (2024) found silhouette in a UMAP space (30 neighbours,
min_dist 0) tracks AMI. ``shared_space`` is that space -- one array, or several by name, whose
silhouettes are averaged -- or, when not given, the UMAP of every distinct feature array among the
candidates (built once per array and process), averaged, so that no one embedder is the judge.

Noise points score 0 (see :mod:`clusterbench.select.candidate`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from clusterbench.scoring.silhouette import silhouette_exact

from .candidate import Candidate, check_candidates, fingerprint

UMAP_DIMS, UMAP_NEIGHBORS, UMAP_MIN_DIST = 10, 30, 0.0  # Lowe et al.'s recipe (10-d: the harness's silhouette-umap)
SAMPLE = 4000  # silhouette is O(N^2): above this many points it is taken on a seeded sample

_BUILT: dict[tuple, np.ndarray] = {}


def umap_space(X: np.ndarray, seed: int = 0, dims: int = UMAP_DIMS) -> np.ndarray:
    """The seeded UMAP of ``X`` (30 neighbours, min_dist 0, at most ``dims`` dimensions), once per process."""
    from clusterbench.core.reduce import umap_embed

    key = (fingerprint(X), dims, seed)
    if key not in _BUILT:
        _BUILT[key] = umap_embed(np.asarray(X, dtype=np.float32), min(dims, X.shape[1]), UMAP_NEIGHBORS,
                                 UMAP_MIN_DIST, "euclidean", seed)
    return _BUILT[key]


def silhouette_with_noise(Y: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """Mean silhouette of the clustered points in ``Y`` times the clustered fraction (noise scores 0);
    NaN when fewer than two clusters remain. Sampled above ``SAMPLE`` points (seeded)."""
    labels = np.asarray(labels)
    if len(labels) > SAMPLE:
        idx = np.random.default_rng(seed).choice(len(labels), SAMPLE, replace=False)
        Y, labels = Y[idx], labels[idx]
    keep = labels >= 0
    k = len(np.unique(labels[keep]))
    if k < 2 or k >= keep.sum():
        return float("nan")
    return float(silhouette_exact(Y[keep], labels[keep])) * float(keep.mean())


def spaces_of(candidates: Sequence[Candidate], shared_space, seed: int) -> list[np.ndarray]:
    """The shared spaces to score in: the one given, those given by name, or the UMAP of each
    distinct candidate feature array."""
    if isinstance(shared_space, Mapping):
        return list(shared_space.values())
    if shared_space is not None:
        return [np.asarray(shared_space)]
    distinct = {}
    for c in candidates:
        if c.features is not None:
            distinct.setdefault(fingerprint(c.features), c.features)
    if not distinct:
        raise ValueError("silhouette in a shared space needs shared_space= or candidates with features")
    return [umap_space(X, seed) for X in distinct.values()]


def shared_silhouette(candidates: Sequence[Candidate], shared_space=None, seed: int = 0) -> dict[str, float]:
    """Each candidate's silhouette in the shared space(s), averaged over the spaces."""
    candidates = check_candidates(candidates)
    spaces = spaces_of(candidates, shared_space, seed)
    for Y in spaces:
        if len(Y) != len(candidates[0].labels):
            raise ValueError(f"shared space has {len(Y)} rows for {len(candidates[0].labels)} labelled points")
    return {c.key: float(np.mean([silhouette_with_noise(Y, c.labels, seed) for Y in spaces])) for c in candidates}


def own_umap_silhouette(candidates: Sequence[Candidate], shared_space=None, seed: int = 0) -> dict[str, float]:
    """Each candidate's silhouette in the UMAP of its own embedder's features (Lowe et al.'s recipe
    per representation, the UMAP spaces being alike enough to compare): ``shared_space[embedder]``
    when ``shared_space`` maps embedder names to spaces, else the UMAP of the features it clustered
    in; NaN for a candidate with neither."""
    out = {}
    for c in check_candidates(candidates):
        if isinstance(shared_space, Mapping) and c.embedder in shared_space:
            Y = np.asarray(shared_space[c.embedder])
        elif shared_space is not None and not isinstance(shared_space, Mapping):
            Y = np.asarray(shared_space)
        elif c.features is not None:
            Y = umap_space(c.features, seed)
        else:
            out[c.key] = float("nan")
            continue
        out[c.key] = silhouette_with_noise(Y, c.labels, seed)
    return out
