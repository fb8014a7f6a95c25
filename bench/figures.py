"""Speed figures of this machine: our paths against the plain reference on the same data,
and against the hardware's measured limits. Used by ``clusterbench bench`` (the figures page)
and by the ratio gates in tests/benchmarks (one source for both)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def best_time(fn: Callable[[], object], repeats: int = 3, warmup: int = 1) -> float:
    """Best wall time of ``repeats`` calls after ``warmup`` calls: the least noisy estimate
    on a shared machine."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@dataclass
class Figure:
    name: str
    ours: float
    reference: float
    unit: str
    note: str = ""

    @property
    def ratio(self) -> float:
        """How many times better ours is (higher is better for rates, lower for times)."""
        if self.unit.endswith("/s"):
            return self.ours / self.reference
        return self.reference / self.ours


def matmul_gflops(dtype: str = "fp32", n: int = 2048, repeats: int = 3) -> float:
    """Measured dense matrix-multiply rate (GFLOP/s) with torch on the CPU."""
    import torch

    dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    a, b = torch.randn(n, n, dtype=dt), torch.randn(n, n, dtype=dt)
    seconds = best_time(lambda: a @ b, repeats)
    return 2 * n**3 / seconds / 1e9


def blas_gflops(n: int = 2048, repeats: int = 3) -> float:
    """NumPy/BLAS float32 matrix-multiply rate (GFLOP/s): the limit for k-means distance work."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    return 2 * n**3 / best_time(lambda: a @ b, repeats) / 1e9


class _Images:
    """Minimal ImageData stand-in: N random RGB uint8 images of one size."""

    def __init__(self, n: int, size: int, seed: int = 0):
        self.images = np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)

    def __len__(self):
        return len(self.images)

    def image(self, i):
        return self.images[i]


def embedding_figures(arch: str = "resnet152", n_images: int = 32, size: int = 224, batch: int = 16,
                      slow_down: float = 0.0) -> dict:
    """Our inference path vs a plain fp32 torchvision loop on the same images and model.

    ``slow_down`` (seconds per batch) deliberately breaks our path, to show the gate catches it.
    """
    import torch
    import torchvision
    from torchvision.transforms import v2

    from .inference import flops_per_image, run_inference

    torch.manual_seed(0)
    model = torchvision.models.get_model(arch, weights=None).eval()
    data = _Images(n_images, size)
    normalize = v2.Compose([v2.ToDtype(torch.float32, scale=True),
                            v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    batches = [torch.stack([normalize(torch.from_numpy(data.image(i)).permute(2, 0, 1))
                            for i in range(s, min(s + batch, n_images))]) for s in range(0, n_images, batch)]

    def plain():
        with torch.no_grad():
            for x in batches:
                model(x)

    class Slowed(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            time.sleep(slow_down)
            return self.inner(x)

    ours_model = Slowed(model) if slow_down else model
    stats = {}

    def ours():
        stats.update(run_inference(ours_model, data, normalize, batch_size=batch, progress=False,
                                   count_flops=False).stats)

    plain_rate = n_images / best_time(plain, repeats=2)
    ours_rate = n_images / best_time(ours, repeats=2)
    flops = flops_per_image(model, batches[0][0])
    model.to(memory_format=torch.contiguous_format)
    return {"plain_img_per_s": plain_rate, "ours_img_per_s": ours_rate, "precision": stats.get("precision"),
            "flops_per_image": flops, "ours_gflops_per_s": flops * ours_rate / 1e9}


def kmeans_figures(X: np.ndarray, k: int, iters: int = 20, seed: int = 0) -> dict:
    """Our k-means (faiss) vs scikit-learn's default KMeans(n_init=1, max_iter=iters)."""
    from sklearn.cluster import KMeans as SkKMeans
    from sklearn.metrics import normalized_mutual_info_score as nmi

    from .methods.clusterers import CLUSTERERS

    ours = CLUSTERERS.create(f"kmeans:k={k},max_iter={iters},seed={seed}")
    start = time.perf_counter()
    ours_labels = ours.fit_predict(X)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    sk_labels = SkKMeans(n_clusters=k, n_init=1, max_iter=iters, random_state=seed).fit_predict(X)
    sk_s = time.perf_counter() - start
    n, d = X.shape
    return {"ours_s": ours_s, "sklearn_s": sk_s, "ours_labels": ours_labels, "sklearn_labels": sk_labels,
            "gflops_per_s": 2 * n * k * d * iters / ours_s / 1e9, "agreement_nmi": nmi(sk_labels, ours_labels)}


def silhouette_figures(n: int = 20000, d: int = 256, k: int = 10, seed: int = 0) -> dict:
    from sklearn.metrics import silhouette_score

    from .silhouette import silhouette_exact

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    X = (rng.normal(size=(n, d)) + labels[:, None] * 0.2).astype(np.float32)
    start = time.perf_counter()
    ours = silhouette_exact(X, labels)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    ref = silhouette_score(X, labels)
    ref_s = time.perf_counter() - start
    return {"ours_s": ours_s, "sklearn_s": ref_s, "ours": ours, "sklearn": ref}
