"""k-means: Lloyd iterations on faiss (its GPU index when CUDA is there) or on scikit-learn,
started from a cheap k-means++ seeding."""

from __future__ import annotations

import time
from typing import Annotated, Literal

import numpy as np

from clusterbench.core.backends import faiss_gpu_available, import_faiss
from clusterbench.core.errors import UserError
from clusterbench.core.params import Device, Interval, K, PositiveInt, Seed

from .base import CLUSTERERS, ClustererBase, ClusterResult, check_features

__all__ = ["KMeans", "faiss_gpu_available", "faiss_kmeans", "import_faiss", "run_kmeans"]


KMEANS_PP_MAX_K = 100  # above this, k-means++ seeding costs more than the Lloyd iterations
# Up to this K, scikit-learn's Lloyd loop (assignment and centre sums fused per 256-row chunk,
# OpenMP over chunks) runs an iteration 1.4-2.5x faster than faiss on the CPU, whose fixed
# per-iteration costs dominate there; above, both are BLAS-bound and faiss is kept.
SKLEARN_LLOYD_MAX_K = 100
ENGINES = ("auto", "faiss", "sklearn")
INITS = ("auto", "k-means++", "random")


def kmeans_pp_init(X: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means++ seeding on a sample of 100 points per cluster: k-means++ quality for the price
    of a Lloyd iteration or two (full k-means++ costs K * (2 + ln K) passes over the data)."""
    from sklearn.cluster import kmeans_plusplus

    sample = min(len(X), 100 * k)
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(X), size=sample, replace=False) if sample < len(X) else np.arange(len(X))
    centers, _ = kmeans_plusplus(X[idx], k, random_state=seed)
    return np.ascontiguousarray(centers, dtype=np.float32)


def random_init(X: np.ndarray, k: int, seed: int) -> np.ndarray:
    """K distinct data points drawn uniformly: random seeding for the scikit-learn engine (faiss draws its own)."""
    idx = np.random.default_rng(seed).choice(len(X), size=k, replace=False)
    return np.ascontiguousarray(X[idx], dtype=np.float32)


def resolve_init(init: str, k: int) -> str:
    """``auto``: sampled k-means++ up to K=100; above, random seeding, whose NMI matched
    scikit-learn's full k-means++ within 0.01 at K=1000 on Fashion-MNIST for a fraction of the time."""
    if init == "auto":
        return "k-means++" if k <= KMEANS_PP_MAX_K else "random"
    return init


def resolve_engine(backend: str, k: int, *, use_gpu: bool, spherical: bool) -> str:
    """``auto``: faiss on a GPU, for spherical k-means (scikit-learn has none) and above
    SKLEARN_LLOYD_MAX_K; scikit-learn's Lloyd loop otherwise."""
    if backend != "auto":
        return backend
    return "faiss" if use_gpu or spherical or k > SKLEARN_LLOYD_MAX_K else "sklearn"


def _faiss_lloyd(X, k: int, centers, *, max_iter: int, tol: float, seed: int, spherical: bool, use_gpu: bool):
    """``centers=None``: faiss draws its own random seeding from ``seed``.

    faiss' own test (recent versions) stops only once the objective no longer changes, so with
    ``tol > 0`` one ``Clustering`` object (and one index, on the GPU too) is trained one
    iteration per call, each call continuing from the centres it holds, and stops on
    scikit-learn's rule: squared centre shift at most ``tol`` times the mean feature variance.
    The centres equal those of one long call. The iteration count is faiss' own record.
    """
    faiss = import_faiss()

    d = X.shape[1]
    clustering = faiss.Clustering(d, k)
    clustering.seed = seed
    clustering.spherical = spherical
    clustering.max_points_per_centroid = max(1, (len(X) + k - 1) // k)  # never subsample
    clustering.min_points_per_centroid = 1
    clustering.verbose = False
    if centers is not None:
        faiss.copy_array_to_vector(np.ascontiguousarray(centers, dtype=np.float32).ravel(), clustering.centroids)
    index = faiss.IndexFlatIP(d) if spherical else faiss.IndexFlatL2(d)
    if use_gpu:
        index = faiss.index_cpu_to_all_gpus(index)

    def current():
        return faiss.vector_to_array(clustering.centroids).reshape(k, d)

    if tol <= 0:
        clustering.niter = max_iter
        clustering.train(X, index)
        final = current()
    else:
        threshold = tol * float(np.var(X, axis=0).mean())
        clustering.niter = 1
        previous = None
        for _ in range(max_iter):
            clustering.train(X, index)  # one iteration from the centres held
            final = current()
            if previous is not None and float(((final - previous) ** 2).sum()) <= threshold:
                break
            previous = final
    _, labels = index.search(X, 1)  # the index holds the final centres
    stats = clustering.iteration_stats  # one entry per iteration run, across the calls
    objective = float(stats.at(stats.size() - 1).obj) if stats.size() else float("inf")
    return labels.ravel().astype(np.int64), final, objective, int(stats.size())


def _sklearn_lloyd(X, centers, *, max_iter: int, tol: float, seed: int):
    from sklearn.cluster import KMeans as SkKMeans

    model = SkKMeans(len(centers), init=centers, n_init=1, max_iter=max_iter, tol=tol, random_state=seed)
    labels = model.fit_predict(X).astype(np.int64)
    return labels, model.cluster_centers_.astype(np.float32), float(model.inertia_), int(model.n_iter_)


def run_kmeans(X: np.ndarray, k: int, *, n_init: int = 1, max_iter: int = 100, tol: float = 1e-4, seed: int = 0,
               init: str = "auto", engine: str = "faiss", spherical: bool = False, use_gpu: bool = False) -> dict:
    """Best of ``n_init`` seeded runs by objective; every point is used (no 256*K subsampling).
    Both engines stop before ``max_iter`` when the centres move less than ``tol`` (relative to
    the data's variance, scikit-learn's rule); with ``tol=0`` they stop only once nothing
    changes any more, which gives what every remaining iteration would."""
    init = resolve_init(init, k)
    best = None
    for run in range(n_init):
        if init == "k-means++":
            centers = kmeans_pp_init(X, k, seed + run)
        else:
            centers = None if engine == "faiss" else random_init(X, k, seed + run)
        if engine == "faiss":
            result = _faiss_lloyd(X, k, centers, max_iter=max_iter, tol=tol, seed=seed + run, spherical=spherical,
                                  use_gpu=use_gpu)
        else:
            result = _sklearn_lloyd(X, centers, max_iter=max_iter, tol=tol, seed=seed + run)
        if best is None or result[2] < best[2]:
            best = result
    labels, centers, objective, n_iter = best
    return {"labels": labels, "centers": centers, "objective": objective, "n_iter": n_iter, "init": init}


def faiss_kmeans(X: np.ndarray, k: int, *, n_init: int, max_iter: int, seed: int, init: str, spherical: bool, use_gpu: bool):
    """faiss k-means for callers that need faiss itself (DeepCluster's recipe, micro-clusters):
    ``max_iter`` iterations as in the DeepCluster paper, fewer only when nothing changes any more."""
    out = run_kmeans(X, k, n_init=n_init, max_iter=max_iter, tol=0.0, seed=seed, init=init, engine="faiss",
                     spherical=spherical, use_gpu=use_gpu)
    return out["labels"], out["centers"], out["objective"]


@CLUSTERERS.register("kmeans")
class KMeans(ClustererBase):
    """k-means on every point: sampled k-means++ seeding, then Lloyd on scikit-learn or faiss."""

    def __init__(self, k: K = None, n_init: PositiveInt = 1, max_iter: PositiveInt = 100,
                 tol: Annotated[float, Interval(0, None)] = 1e-4, seed: Seed = 0,
                 init: Literal["auto", "k-means++", "random"] = "auto", backend: Literal["auto", "faiss", "sklearn"] = "auto",
                 spherical: bool = False, device: Device = "auto"):
        self.k = k
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.seed = seed
        self.init = init
        self.backend = backend
        self.spherical = spherical
        self.device = device

    @staticmethod
    def check_params(params: dict) -> str | None:
        """The one rule spanning two parameters (each one's own range is its declaration's)."""
        if params.get("spherical") and params.get("backend") == "sklearn":
            return "spherical=true needs backend=faiss (scikit-learn has no spherical k-means)"
        return None

    def fit(self, X, context=None) -> ClusterResult:
        X = check_features(X, self.k, "kmeans")
        use_gpu = self.device != "cpu" and self.backend != "sklearn" and faiss_gpu_available()
        if self.device.startswith("cuda") and not use_gpu:
            raise UserError("kmeans: device=cuda needs backend=faiss/auto and faiss with a GPU (pip install 'clusterbench[gpu]')")
        engine = resolve_engine(self.backend, self.k, use_gpu=use_gpu, spherical=self.spherical)
        start = time.perf_counter()
        out = run_kmeans(X, self.k, n_init=self.n_init, max_iter=self.max_iter, tol=self.tol, seed=self.seed,
                         init=self.init, engine=engine, spherical=self.spherical, use_gpu=use_gpu)
        self.cluster_centers_ = out["centers"]
        info = {"objective": out["objective"], "device": "cuda" if use_gpu else "cpu", "engine": engine,
                "init": out["init"], "n_iter": out["n_iter"], "seconds": time.perf_counter() - start}
        return ClusterResult(out["labels"], info=info)
