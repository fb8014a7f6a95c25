"""Optional per-cell reduction before clustering: PCA (optionally whitened), then UMAP, then L2 rows.

UMAP (umap-learn; ``umap=D`` with ``umap_neighbors`` (30), ``umap_min_dist`` (0) and ``umap_metric``,
seeded by the cell) is the remedy for density clusterers on image features (Lowe et al. 2024;
McConville et al.'s N2D); the runner caches its output like an embedding (it takes minutes at 70k).

This is DeepCluster's preprocessing (PCA-256, whitening, L2: the one implementation, which
DeepCluster's epoch loop uses too) and HDBSCAN's remedy for wide inputs. faiss does the PCA
(fast, float32); sklearn is the alternative backend.

Whitening is faiss's ``eigen_power = -0.5``: each principal component divided by the square
root of its eigenvalue (its standard deviation), so every kept direction has unit variance.
It is applied after the projection rather than inside faiss's matrix so that directions of
(near) zero variance -- fewer points than dimensions, dead units -- are not divided by zero:
eigenvalues are floored at 1e-6 of the largest.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Annotated, Literal

import numpy as np

from clusterbench.core.errors import UserError
from clusterbench.core.params import Interval, PositiveInt, Seed, check_all, declared

UMAP_METRICS = Literal["euclidean", "cosine", "manhattan", "correlation"]


# Above this many points umap-learn's own neighbour search (NN-descent, numba) is most of a run;
# faiss's exact search is faster there and exact. Below it, the difference is noise.
FAISS_KNN_MIN_POINTS = 4096
# Above this many dimensions the neighbour graph is built on a PCA to PCA_BEFORE_UMAP first: on
# Fashion-MNIST 70k x 784 that was 1.8x faster with the same k-means NMI (0.644 vs 0.642).
PCA_BEFORE_UMAP = 50
PCA_ABOVE_DIMS = 100


def umap_embed(X: np.ndarray, dims: int, neighbors: int, min_dist: float, metric: str, seed: int,
               fast: bool = True) -> np.ndarray:
    """A seeded UMAP embedding of ``X`` (umap-learn; seeded runs are single-threaded). With ``fast``
    (the harness's way): wide features go through PCA to 50 first, and a large set's neighbour
    graph comes from faiss, handed to umap-learn as its ``precomputed_knn``; the layout's epochs are
    umap-learn's own rule (200 above 10,000 points, else 500)."""
    import warnings

    import umap

    if dims > X.shape[1]:
        raise UserError(f"reducer umap={dims}: more than the {X.shape[1]} dimensions of these features")
    neighbors = min(neighbors, len(X) - 1)
    knn = None
    if fast:
        if X.shape[1] > PCA_ABOVE_DIMS and min(X.shape) > PCA_BEFORE_UMAP and metric in ("euclidean", "cosine"):
            X = Reducer(pca=PCA_BEFORE_UMAP, seed=seed).fit_transform(X)
        if len(X) >= FAISS_KNN_MIN_POINTS and metric in ("euclidean", "cosine"):
            knn = faiss_knn(X, neighbors, metric)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by setting random_state", numba notes
        model = umap.UMAP(n_components=dims, n_neighbors=neighbors, min_dist=min_dist, metric=metric,
                          random_state=seed, precomputed_knn=knn or (None, None, None))
        return np.ascontiguousarray(model.fit_transform(X), dtype=np.float32)


def faiss_knn(X: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray, None]:
    """Each point's ``k`` nearest neighbours (itself first) and their distances, exact, in the form
    umap-learn's ``precomputed_knn`` takes (cosine: on unit rows, as 1 - cosine similarity)."""
    from clusterbench.core.backends import import_faiss

    faiss = import_faiss()
    X = np.ascontiguousarray(X, dtype=np.float32)
    if metric == "cosine":
        X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
        index = faiss.IndexFlatIP(X.shape[1])
        index.add(X)
        similarity, indices = index.search(X, k)
        distances = np.maximum(1.0 - similarity, 0.0)
    else:
        index = faiss.IndexFlatL2(X.shape[1])
        index.add(X)
        squared, indices = index.search(X, k)
        distances = np.sqrt(np.maximum(squared, 0.0))
    return indices.astype(np.int64), distances.astype(np.float32), None


@dataclass
class Reducer:
    # Declared like a method's parameters (clusterbench.core.params), checked before anything runs.
    pca: PositiveInt | None = None  # target dimension; None keeps the features' dimension
    whiten: bool = False
    l2: bool = False
    backend: Literal["faiss", "sklearn"] = "faiss"
    seed: Seed = 0
    umap: PositiveInt | None = None  # UMAP target dimension, after any PCA
    umap_neighbors: Annotated[int, Interval(2, None)] = 30
    umap_min_dist: Annotated[float, Interval(0, 1)] = 0.0
    umap_metric: UMAP_METRICS = "euclidean"

    @classmethod
    def parse(cls, text: str | None) -> Reducer | None:
        """``pca=256,whiten=true,l2=true`` (the spec-parameter syntax), or None/'none'."""
        if text is None or str(text).strip().lower() in ("", "none"):
            return None
        from clusterbench.core.registry import Spec

        params = Spec.parse(f"reduce:{text}").params
        valid = ("pca", "whiten", "l2", "backend", "umap", "umap_neighbors", "umap_min_dist", "umap_metric")
        if set(params) - set(valid):
            raise UserError(f"unknown reducer parameter(s) {sorted(set(params) - set(valid))} in {text!r}; valid: {', '.join(valid)}")
        if any(k.startswith("umap_") for k in params) and not params.get("umap"):
            raise UserError(f"reducer {text!r}: umap_* settings need umap=D (the UMAP dimension)")
        check_all("reducer", params, declared(cls))
        return cls(**params)

    def validate(self) -> None:
        """Refuse a field that breaks its declaration (``pca=0``, ``backend=torch``): one line."""
        check_all("reducer", {f.name: self.__dict__[f.name] for f in fields(self)}, declared(type(self)))

    def describe(self) -> str:
        parts = [f"pca={self.pca}"] if self.pca else []
        parts += ["whiten=true"] * self.whiten + ["l2=true"] * self.l2
        if self.pca and self.backend != "faiss":
            parts.append(f"backend={self.backend}")
        if self.umap:
            parts += [f"umap={self.umap}", f"umap_neighbors={self.umap_neighbors}",
                      f"umap_min_dist={self.umap_min_dist:g}", f"umap_metric={self.umap_metric}"]
        return ",".join(parts) or "none"

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float32)
        if self.pca:
            if self.pca > min(X.shape):
                raise UserError(f"reducer pca={self.pca}: more than min(N, D) = {min(X.shape)} of these features")
            X = self._pca(X)
        if self.umap:
            X = umap_embed(X, self.umap, self.umap_neighbors, self.umap_min_dist, self.umap_metric, self.seed)
        if self.l2:
            norms = np.linalg.norm(X, axis=1, keepdims=True)
            X = X / np.maximum(norms, 1e-12)
        return X

    def _pca(self, X: np.ndarray) -> np.ndarray:
        if self.backend == "sklearn":
            from sklearn.decomposition import PCA

            return PCA(self.pca, whiten=self.whiten, random_state=self.seed).fit_transform(X).astype(np.float32)
        if self.backend != "faiss":
            raise UserError(f"reducer backend={self.backend!r}: expected faiss or sklearn")
        from clusterbench.core.backends import import_faiss

        faiss = import_faiss()
        pca = faiss.PCAMatrix(X.shape[1], self.pca, 0.0)
        pca.train(X)
        out = pca.apply(X)
        if self.whiten:  # eigen power -0.5, with a floor (see the module docstring)
            eigenvalues = faiss.vector_to_array(pca.eigenvalues)[: self.pca].astype(np.float64)
            floor = max(float(eigenvalues.max(initial=0.0)) * 1e-6, 1e-12)
            out /= np.sqrt(np.maximum(eigenvalues, floor)).astype(np.float32)
        return out
