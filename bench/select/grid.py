"""Candidates for the measurement: every configuration of a grid (embedder x reducer x clusterer
x K) computed through the harness's own registries, with the labels' NMI/AMI kept apart.

Embeddings, reductions and the grid's labels are cached as .npy/.npz files under ``cache_dir``
(default ``$CLUSTERBENCH_SELECT_CACHE`` or /tmp/clusterbench-select), so a rerun only recomputes
the report. Each configuration also gets two refits on random halves of the points (seeds 1 and 2)
for the stability criterion (Lange et al. 2004 compare clusterings of two halves).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import numpy as np

from .candidate import Candidate, Rerun

DEFAULT_CACHE = os.environ.get("CLUSTERBENCH_SELECT_CACHE", "/tmp/clusterbench-select")
RERUN_SEEDS, RERUN_FRACTION = (1, 2), 0.5


@dataclass(frozen=True)
class Grid:
    """One dataset's configurations: spaces (embedder, reducer) x clusterers x K. A clusterer that
    takes ``k`` is fitted at every K; one that finds K itself once."""

    name: str  # short name for tables
    dataset: str  # dataset spec
    embedders: tuple[str, ...]
    reducers: tuple[str | None, ...]  # reducer specs (``pca=50``, ``umap=10``), None for none
    clusterers: tuple[str, ...]
    ks: tuple[int, ...]
    skip: tuple[tuple[str, str | None], ...] = field(default=())  # (embedder, reducer) pairs left out

    def spaces(self) -> list[tuple[str, str | None]]:
        return [(e, r) for e in self.embedders for r in self.reducers if (e, r) not in self.skip]


@dataclass
class Scored:
    """One dataset's candidates and the labels' verdict on each (kept away from the criteria)."""

    grid: Grid
    candidates: list[Candidate]
    nmi: dict[str, float]
    ami: dict[str, float]
    spaces: dict[str, np.ndarray]  # shared-space candidates by name: UMAP of each embedder's features


def _slug(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _cached(path: str, compute):
    if os.path.exists(path):
        return np.load(path)
    value = np.ascontiguousarray(compute(), dtype=np.float32)
    with open(path + ".tmp", "wb") as f:  # np.save on a name would append .npy to the temp name
        np.save(f, value)
    os.replace(path + ".tmp", path)
    return value


def _fit(clusterers, spec: str, X: np.ndarray, seed: int) -> np.ndarray:
    from clusterbench.core.contracts import Context

    extra = {"seed": seed} if clusterers.traits(spec).takes_seed else {}
    return np.asarray(clusterers.create(spec, **extra).fit(X, Context(seed=seed)).labels, dtype=np.int64)


def configurations(grid: Grid, clusterers) -> list[tuple[str, str | None, str]]:
    """(embedder, reducer, clusterer spec with its k) for every configuration of the grid."""
    out = []
    for embedder, reducer in grid.spaces():
        for spec in grid.clusterers:
            if clusterers.traits(spec).takes_k:
                sep = "," if ":" in spec else ":"
                out.extend((embedder, reducer, f"{spec}{sep}k={k}") for k in grid.ks)
            else:
                out.append((embedder, reducer, spec))
    return out


def cell_key(grid: Grid, embedder: str, reducer: str | None, clusterer: str) -> str:
    return f"{grid.dataset}|{embedder}|{clusterer}|reduce={reducer or 'none'}"


def build(grid: Grid, cache_dir: str = DEFAULT_CACHE, data=None, log=print) -> Scored:
    """Load, embed, reduce and cluster every configuration of ``grid``; score each against the
    labels afterwards. ``data``: an already loaded dataset (its labels are only read for scoring)."""
    from clusterbench.core.catalog import registries
    from clusterbench.core.contracts import EmbedRequest
    from clusterbench.core.reduce import Reducer
    from clusterbench.scoring import metrics as M

    from .shared_space import UMAP_DIMS, umap_space

    os.makedirs(cache_dir, exist_ok=True)
    reg = registries()
    data = reg.datasets.create(grid.dataset).load() if data is None else data
    tag = f"{grid.name}-{data.fingerprint[:12]}"
    features, spaces = {}, {}
    for embedder in grid.embedders:
        path = os.path.join(cache_dir, f"{tag}-emb-{_slug(embedder)}.npy")
        features[embedder] = _cached(path, lambda e=embedder: reg.embedders.create(e).embed(data, EmbedRequest()).features)
        path = os.path.join(cache_dir, f"{tag}-shared-{_slug(embedder)}.npy")
        spaces[embedder] = _cached(path, lambda e=embedder: umap_space(features[e], seed=0, dims=UMAP_DIMS))
    reduced = {}
    for embedder, reducer in grid.spaces():
        X = features[embedder]
        if reducer is None:
            reduced[(embedder, reducer)] = X
        elif reducer == f"umap={UMAP_DIMS}":  # the same seeded UMAP as the shared space: computed once
            reduced[(embedder, reducer)] = spaces[embedder]
        else:
            path = os.path.join(cache_dir, f"{tag}-red-{_slug(embedder + str(reducer))}.npy")
            reduced[(embedder, reducer)] = _cached(path, lambda X=X, r=reducer: Reducer.parse(r).fit_transform(X))
    candidates, nmi, ami = [], {}, {}
    for embedder, reducer, spec in configurations(grid, reg.clusterers):
        key = cell_key(grid, embedder, reducer, spec)
        X = reduced[(embedder, reducer)]
        path = os.path.join(cache_dir, f"{tag}-labels-{_slug(key)}.npz")
        if not os.path.exists(path):
            labels = _fit(reg.clusterers, spec, X, seed=0)
            halves = [np.sort(np.random.default_rng(s).choice(len(X), int(len(X) * RERUN_FRACTION), replace=False))
                      for s in RERUN_SEEDS]
            rerun_labels = [_fit(reg.clusterers, spec, X[idx], seed=s) for idx, s in zip(halves, RERUN_SEEDS, strict=True)]
            keep = labels >= 0
            own = M.internal_metrics(X[keep], labels[keep])["silhouette"]
            with open(path + ".tmp", "wb") as f:
                np.savez(f, labels=labels, own=np.nan if own is None else own,
                         **{f"index{i}": idx for i, idx in enumerate(halves)},
                         **{f"rerun{i}": lab for i, lab in enumerate(rerun_labels)})
            os.replace(path + ".tmp", path)
            log(f"  {key}")
        saved = np.load(path)
        reruns = tuple(Rerun(saved[f"rerun{i}"], saved[f"index{i}"]) for i in range(len(RERUN_SEEDS)))
        own = float(saved["own"])
        candidates.append(Candidate(key, grid.name, saved["labels"], X, None if np.isnan(own) else own, reruns, embedder))
        scored = M.external_metrics(data.labels, M.noise_as_group(saved["labels"]))
        nmi[key], ami[key] = scored["nmi"], scored["ami"]
    return Scored(grid, candidates, nmi, ami, spaces)
