"""Speed figures of this machine: our paths against the plain reference on the same data,
and against the hardware's measured limits. Used by ``clusterbench bench`` (the figures page)
and by the ratio gates in tests/benchmarks (one source for both)."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

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


def matmul_gflops(dtype: str = "fp32", n: int = 2048, repeats: int = 3, device: str = "cpu") -> float:
    """Measured dense matrix-multiply rate (GFLOP/s) with torch on ``device``."""
    import torch

    from clusterbench.run.perf import cuda_sync

    dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    a, b = torch.randn(n, n, dtype=dt, device=device), torch.randn(n, n, dtype=dt, device=device)

    def product():
        a @ b
        cuda_sync(device)

    return 2 * n**3 / best_time(product, repeats) / 1e9


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
                      slow_down: float = 0.0, device: str = "cpu") -> dict:
    """Our inference path vs a plain fp32 torchvision loop on the same images, model and device
    (on CUDA the plain loop copies each ready-made batch over; both wait for the GPU to finish).

    ``slow_down`` (seconds per batch) deliberately breaks our path, to show the gate catches it.
    """
    import torch
    import torchvision
    from torchvision.transforms import v2

    from clusterbench.infer.fold_bn import fold_batchnorm
    from clusterbench.infer.inference import flops_per_image, run_inference
    from clusterbench.run.perf import cuda_sync

    torch.manual_seed(0)
    model = torchvision.models.get_model(arch, weights=None).eval().to(device)
    data = _Images(n_images, size)
    normalize = v2.Compose([v2.ToDtype(torch.float32, scale=True),
                            v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    batches = [torch.stack([normalize(torch.from_numpy(data.image(i)).permute(2, 0, 1))
                            for i in range(s, min(s + batch, n_images))]) for s in range(0, n_images, batch)]

    def plain():
        with torch.no_grad():
            for x in batches:
                model(x.to(device))
        cuda_sync(device)

    class Slowed(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            time.sleep(slow_down)
            return self.inner(x)

    folded = copy.deepcopy(model)
    fold_batchnorm(folded)  # as the embedders do
    ours_model = Slowed(folded) if slow_down else folded
    stats = {}

    def ours():
        stats.update(run_inference(ours_model, data, normalize, batch_size=batch, progress=False,
                                   count_flops=False, device=device).stats)

    plain_rate = n_images / best_time(plain, repeats=3)
    ours_rate = n_images / best_time(ours, repeats=3)
    flops = flops_per_image(model, batches[0][0], device)
    figures = {"plain_img_per_s": plain_rate, "ours_img_per_s": ours_rate, "precision": stats.get("precision"),
               "flops_per_image": flops, "ours_gflops_per_s": flops * ours_rate / 1e9, "ours_fn": ours,
               "gpu_peak_memory_mb": stats.get("gpu_peak_memory_mb")}
    if device != "cpu":
        figures["compute_img_per_s"] = _compute_only_rate(folded, batches, device, stats["precision"])
    return figures


def _compute_only_rate(model, batches, device: str, precision: str) -> float:
    """Images/s of the prepared model alone, on batches already on the device: what the data
    path (loading, copying, normalising) is measured against."""
    import torch

    from clusterbench.infer.inference import _autocast
    from clusterbench.run.perf import cuda_sync

    on_device = [x.to(device).contiguous(memory_format=torch.channels_last) for x in batches]

    def compute():
        with torch.inference_mode(), _autocast(device, precision):
            for x in on_device:
                model(x)
        cuda_sync(device)

    return sum(len(x) for x in on_device) / best_time(compute, repeats=3)


def kmeans_figures(X: np.ndarray, k: int, iters: int = 20, seed: int = 0, repeats: int = 1,
                   device: str = "auto") -> dict:
    """Our k-means (its auto engine and seeding) vs scikit-learn's default
    KMeans(n_init=1, max_iter=iters), same tolerance, best of ``repeats`` each."""
    from sklearn.cluster import KMeans as SkKMeans
    from sklearn.metrics import normalized_mutual_info_score as nmi

    from clusterbench.methods.clusterers import CLUSTERERS

    ours = CLUSTERERS.create(f"kmeans:k={k},max_iter={iters},seed={seed},device={device}")
    sk = SkKMeans(n_clusters=k, n_init=1, max_iter=iters, random_state=seed)
    labels, info = {}, {}

    def ours_fn():
        result = ours.fit(X)
        labels["ours"], info["ours"] = result.labels, result.info
        return labels["ours"]

    def sk_fn():
        labels["sklearn"] = sk.fit_predict(X)

    ours_s = best_time(ours_fn, repeats=repeats, warmup=0)
    sk_s = best_time(sk_fn, repeats=repeats, warmup=0)
    n, d = X.shape
    ours_iters = info["ours"]["n_iter"]  # both may stop before ``iters`` (same tol): count what ran
    return {"ours_s": ours_s, "sklearn_s": sk_s, "ours_labels": labels["ours"], "sklearn_labels": labels["sklearn"],
            "ours_iters": ours_iters, "sklearn_iters": int(sk.n_iter_),
            "gflops_per_s": 2 * n * k * d * ours_iters / ours_s / 1e9,
            "agreement_nmi": nmi(labels["sklearn"], labels["ours"]), "engine": info["ours"]["engine"], "ours_fn": ours_fn}


def silhouette_figures(n: int = 20000, d: int = 256, k: int = 10, seed: int = 0, device: str = "cpu") -> dict:
    """Our exact silhouette on ``device`` vs scikit-learn's (CPU) on the same points."""
    from sklearn.metrics import silhouette_score

    from clusterbench.scoring.silhouette import silhouette_exact

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    X = (rng.normal(size=(n, d)) + labels[:, None] * 0.2).astype(np.float32)
    if device != "cpu":
        silhouette_exact(X[:1000], labels[:1000], device=device)  # CUDA context and kernels: not the figure
    start = time.perf_counter()
    ours = silhouette_exact(X, labels, device=device)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    ref = silhouette_score(X, labels)
    ref_s = time.perf_counter() - start
    return {"ours_s": ours_s, "sklearn_s": ref_s, "ours": ours, "sklearn": ref, "shape": X.shape,
            "ours_fn": lambda: silhouette_exact(X, labels, device=device)}


def _kmeans_data(n: int, seed: int = 0):
    """Fashion-MNIST pixels when installed (real data), else Gaussian blobs of the same shape."""
    from clusterbench.core.errors import UserError

    try:
        from clusterbench.datasets import DATASETS

        data = DATASETS.create(f"fashion-mnist:limit={n}").load()
        return data.images.reshape(len(data), -1).astype(np.float32) / 255.0, "fashion-mnist pixels"
    except UserError:
        rng = np.random.default_rng(seed)
        centers = rng.normal(size=(10, 784)).astype(np.float32)
        return (centers[rng.integers(0, 10, n)] + rng.normal(size=(n, 784)).astype(np.float32)), "gaussian blobs"


def pretrained_lite0_figures(n_images: int = 32, batch: int = 16) -> dict:
    """The pretrained ``efficientnet-lite0`` embedder end to end (weights, preprocessing, folded
    BatchNorm, the shared inference path) on random 224 px images: its rate and FLOPs per image."""
    from clusterbench.core.contracts import EmbedRequest
    from clusterbench.methods.embedders import EMBEDDERS

    embedder = EMBEDDERS.create(f"efficientnet-lite0:batch_size={batch}")
    embedder.embed(_Images(batch, 224), EmbedRequest())  # weights loaded and the path warm
    stats = embedder.embed(_Images(n_images, 224, seed=1), EmbedRequest()).stats
    return {"img_per_s": stats.images_per_s, "flops_per_image": stats.flops_per_image, "precision": stats.precision}


def figures_table(quick: bool = False, log=print) -> list[list]:
    """Rows of (figure, ours, reference, ratio, note) measured now on this machine."""
    import platform

    import torch

    from clusterbench.infer.inference import resolve_precision

    rows = []
    # The embedding path first: NumPy's BLAS threads keep spinning for a while after their
    # own work and would steal the cores torch measures on.
    n_img = 16 if quick else 32
    emb = embedding_figures("resnet152", n_images=n_img, size=224, batch=16)
    bf16, fp32 = matmul_gflops("bf16"), matmul_gflops("fp32")
    blas = blas_gflops()
    log("measured the embedding path and matrix-multiply rates")
    rows.append(["matmul GFLOP/s (torch bf16 / fp32)", bf16, fp32, bf16 / fp32, "2048^2 matrices"])
    rows.append(["matmul GFLOP/s (NumPy BLAS fp32)", blas, None, None, "the k-means limit"])
    rows += _embedding_rows("", emb, bf16, f"{emb['flops_per_image'] / 1e9:.1f} GFLOP/img")
    lite = pretrained_lite0_figures(n_images=n_img * 2)
    lite_ceiling = bf16 * 1e9 / lite["flops_per_image"]
    rows.append([f"EfficientNet-Lite0 (pretrained embedder, {lite['precision']}) img/s vs bf16 FLOP ceiling",
                 lite["img_per_s"], lite_ceiling, lite["img_per_s"] / lite_ceiling,
                 f"{lite['flops_per_image'] / 1e9:.2f} GFLOP/img; depthwise convolutions run far below matmul rate"])
    log("measured efficientnet-lite0")

    n = 5000 if quick else 20000
    X, source = _kmeans_data(n)
    for k in (1000, 10):
        km = kmeans_figures(X, k, iters=20, repeats=1 if k > 100 else 3)
        rows.append([f"k-means K={k} seconds (ours, {km['engine']} Lloyd / sklearn default)", km["ours_s"], km["sklearn_s"],
                     km["sklearn_s"] / km["ours_s"],
                     f"{n}x784 {source}, max_iter=20: {km['ours_iters']} / {km['sklearn_iters']} iterations ran"])
        if k == 1000:
            rows.append(["k-means K=1000 GFLOP/s vs BLAS matmul", km["gflops_per_s"], blas, km["gflops_per_s"] / blas,
                         "2*N*K*D per iteration"])
        log(f"measured k-means K={k}")

    rows.append(_silhouette_row("exact silhouette seconds (ours / sklearn)", silhouette_figures(n, 256)))
    rows.append(["machine", None, None, None,
                 f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
                 f"auto precision on cpu = {resolve_precision('auto', 'cpu')}"])
    if torch.cuda.is_available():
        rows += cuda_figures_rows(quick, log, X, source)
    return rows


def cuda_figures_rows(quick: bool, log, X: np.ndarray, source: str) -> list[list]:
    """The same figures on the first CUDA GPU: our path there vs the plain fp32 loop there,
    against the GPU's measured bf16 matrix-multiply rate; silhouette and k-means vs sklearn."""
    import torch

    from clusterbench.core.backends import faiss_gpu_available

    name = torch.cuda.get_device_name(0)
    rows = []
    n_img, batch = (1024, 128) if quick else (4096, 256)
    emb = embedding_figures("resnet152", n_images=n_img, size=224, batch=batch, device="cuda")
    bf16 = matmul_gflops("bf16", n=8192, device="cuda")
    log("measured the embedding path on CUDA")
    rows.append([f"{name}: matmul GFLOP/s (torch bf16)", bf16, None, None, "8192^2 matrices"])
    rows += _embedding_rows(f"{name}: ", emb, bf16,
                            f"batch {batch}, {n_img} images, GPU peak {emb['gpu_peak_memory_mb']:.0f} MiB")
    rows.append([f"{name}: ResNet152 img/s (ours, whole path / the model alone on batches already on the GPU)",
                 emb["ours_img_per_s"], emb["compute_img_per_s"], emb["ours_img_per_s"] / emb["compute_img_per_s"],
                 "what loading, copying and normalising cost"])
    n = len(X)
    rows.append(_silhouette_row(f"{name}: exact silhouette seconds (ours on CUDA / sklearn on CPU)",
                                silhouette_figures(n, 256, device="cuda")))
    if faiss_gpu_available():
        km = kmeans_figures(X, 1000, iters=20, device="cuda")
        rows.append([f"{name}: k-means K=1000 seconds (ours, faiss GPU / sklearn CPU)", km["ours_s"], km["sklearn_s"],
                     km["sklearn_s"] / km["ours_s"], f"{n}x784 {source}, NMI between them {km['agreement_nmi']:.3f}"])
    else:
        rows.append([f"{name}: k-means on the GPU", None, None, None, "not measured: faiss here has no GPU support"])
    return rows


def _embedding_rows(prefix: str, emb: dict, bf16_gflops: float, note: str) -> list[list]:
    """Our ResNet152 rate against the plain fp32 loop and against the bf16 FLOP ceiling."""
    ours, ceiling = emb["ours_img_per_s"], bf16_gflops * 1e9 / emb["flops_per_image"]
    return [[f"{prefix}ResNet152 224px img/s (ours {emb['precision']}+channels_last+folded BN / plain fp32)",
             ours, emb["plain_img_per_s"], ours / emb["plain_img_per_s"], note],
            [f"{prefix}ResNet152 img/s vs bf16 FLOP ceiling", ours, ceiling, ours / ceiling,
             "ceiling = bf16 matmul rate / FLOPs per image"]]


def _silhouette_row(label: str, sil: dict) -> list:
    n, d = sil["shape"]
    return [f"{label}, {n}x{d}", sil["ours_s"], sil["sklearn_s"], sil["sklearn_s"] / sil["ours_s"],
            f"difference from sklearn {abs(sil['ours'] - sil['sklearn']):.1e}"]
