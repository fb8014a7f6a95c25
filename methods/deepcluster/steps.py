"""The steps of one DeepCluster epoch: features, PCA-whitening + L2, k-means, and a training pass
on the pseudo-labels."""

from __future__ import annotations

import math
import time

import numpy as np

from clusterbench.core.errors import UserError

from .config import DeepClusterConfig
from .images import Normalize, TensorImages, _norm_stats, augment


class _Embed:
    """Wraps a DeepClusterNet so a plain ``forward`` returns one layer (by default the clustered one)."""

    def __new__(cls, net, layer: str = "fc7"):
        import torch.nn as nn

        class Embed(nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, x):
                return self.inner.output(x, layer)

        return Embed(net)


def compute_features(net, images, *, device: str, precision: str, batch_size: int, progress: bool = True,
                     desc: str = "deepcluster features", layer: str = "fc7"):
    """One layer's features of every image (eval mode, no augmentation; by default the penultimate,
    clustered one): the shared forward path."""
    from clusterbench.infer.inference import run_inference

    result = run_inference(_Embed(net, layer), TensorImages(images), Normalize(images.shape[1]), device=device,
                           precision=precision, batch_size=batch_size, rgb=False, progress=progress, desc=desc)
    (features,) = result.outputs
    return np.ascontiguousarray(features, dtype=np.float32), result.stats


def reduce_features(features: np.ndarray, pca_dim: int) -> np.ndarray:
    """PCA to ``pca_dim`` whitened with eigen power -0.5 (each component divided by its standard
    deviation, eigenvalues floored at 1e-6 of the largest), then L2-normalised rows, as the
    reference does: the harness's :class:`~clusterbench.core.reduce.Reducer`, the one
    implementation. Non-finite values become 0; the dimension is capped at min(D, N - 1)."""
    from clusterbench.core.reduce import Reducer

    features = np.ascontiguousarray(np.nan_to_num(features, nan=0.0, posinf=0.0, neginf=0.0), dtype=np.float32)
    dim = max(1, min(pca_dim, features.shape[1], features.shape[0] - 1))
    return np.ascontiguousarray(Reducer(pca=dim, whiten=True, l2=True).fit_transform(features), dtype=np.float32)


def l2_rows(features: np.ndarray) -> np.ndarray:
    """Unit-norm rows, non-finite values made 0."""
    features = np.nan_to_num(np.asarray(features, dtype=np.float32))
    return np.ascontiguousarray(features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12))


def clustering_features(features: np.ndarray, space: str, pca_dim: int) -> np.ndarray:
    """What the epoch's k-means sees: ``pca`` the reference's PCA-whitened, L2-normalised features
    (:func:`reduce_features`), ``l2`` DeepCluster-v2's L2-normalised features, no PCA."""
    return l2_rows(features) if space == "l2" else reduce_features(features, pca_dim)


def cluster(reduced: np.ndarray, k: int, seed: int, niter: int = 20, spherical: bool = False):
    """faiss k-means on every point (no subsampling; ``spherical``: centroids renormalised to the
    unit sphere after each iteration); returns (labels, objective)."""
    from clusterbench.methods.clusterers.kmeans import faiss_gpu_available, faiss_kmeans

    if k > len(reduced):
        raise UserError(f"deepcluster: k={k} exceeds the number of images ({len(reduced)})")
    labels, _, objective = faiss_kmeans(reduced, k, n_init=1, max_iter=niter, seed=int(seed) % 2**31,
                                        init="random", spherical=spherical, use_gpu=faiss_gpu_available())
    return labels, objective


def uniform_cluster_sample(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` indices drawn uniformly over the non-empty clusters (the reference's UnifLabelSampler)."""
    order = np.argsort(labels, kind="stable")
    _, starts = np.unique(labels[order], return_index=True)
    members = np.split(order, starts[1:])
    per = n // len(members) + 1
    picks = [rng.choice(m, per, replace=len(m) <= per) for m in members]
    out = np.concatenate(picks)
    rng.shuffle(out)
    return out[:n]


def epoch_sample(labels: np.ndarray, n_min: int, rng: np.random.Generator) -> np.ndarray:
    """|D| indices uniform over the clusters, drawn again (and appended) until there are at
    least ``n_min``: a small dataset still gets that many SGD samples an epoch."""
    draws = [uniform_cluster_sample(labels, len(labels), rng)]
    while sum(len(d) for d in draws) < n_min:
        draws.append(uniform_cluster_sample(labels, len(labels), rng))
    return np.concatenate(draws)


def epoch_steps(n_images: int, batch_size: int, min_steps: int) -> int:
    """The SGD steps of one epoch: the batches of :func:`epoch_sample`'s draws."""
    samples = n_images * max(1, math.ceil(min_steps * batch_size / n_images))
    return math.ceil(samples / batch_size)


def pseudo_labels(reduced: np.ndarray, config: DeepClusterConfig, seed: int) -> tuple[np.ndarray, float, int]:
    """One k-means clustering of the epoch, empty clusters refilled where ``reassign_empty``;
    returns (labels, objective, empty clusters k-means left)."""
    labels, objective = cluster(reduced, config.k, seed, config.kmeans_iter, config.spherical)
    empty = int((np.bincount(labels, minlength=config.k) == 0).sum())
    if config.reassign_empty and empty:
        labels, _ = reassign_empty(reduced, labels, config.k, np.random.default_rng(seed))
    return labels, objective, empty


def reassign_empty(reduced: np.ndarray, labels: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Give every empty cluster half of a non-empty one, as faiss's k-means does between its
    iterations: the donor is picked with probability proportional to (size - 1), and its
    members are split by the sign of their projection on the donor's first principal direction.
    Returns (labels, number of clusters refilled)."""
    labels = labels.copy()
    refilled = 0
    for c in np.flatnonzero(np.bincount(labels, minlength=k) == 0):
        sizes = np.bincount(labels, minlength=k).astype(np.float64)
        weight = np.maximum(sizes - 1, 0)
        if weight.sum() <= 0:
            break
        donor = int(rng.choice(k, p=weight / weight.sum()))
        members = np.flatnonzero(labels == donor)
        centred = reduced[members] - reduced[members].mean(axis=0)
        direction = np.linalg.svd(centred, full_matrices=False)[2][0] if len(members) > 2 else rng.normal(size=reduced.shape[1])
        side = centred @ direction > 0
        if side.all() or not side.any():  # identical points: split them by position instead
            side = np.arange(len(members)) % 2 == 1
        labels[members[side]] = c
        refilled += 1
    return labels, refilled


def cluster_stats(labels: np.ndarray, k: int) -> dict:
    counts = np.bincount(labels, minlength=k)
    nonempty = counts[counts > 0]
    return {"clusters_empty": int((counts == 0).sum()), "clusters_nonempty": int(len(nonempty)),
            "cluster_largest": int(nonempty.max()), "cluster_smallest": int(nonempty.min())}


def nmi(a: np.ndarray, b: np.ndarray) -> float:
    from sklearn.metrics import normalized_mutual_info_score

    return float(normalized_mutual_info_score(a, b))  # arithmetic mean, the harness's convention


def resolve_train_precision(precision: str, device: str) -> str:
    from clusterbench.infer.inference import resolve_precision

    p = resolve_precision(precision, device)
    return "fp32" if p == "fp16" else p  # fp16 training would need a grad scaler: not worth it here


def cluster_prototypes(features: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(k, D) unit-norm means of the L2-normalised features of each cluster (an empty cluster
    gets a zero row): the centroid head's starting prototypes, in the space that is evaluated."""
    from scipy import sparse

    z = np.nan_to_num(np.asarray(features, dtype=np.float32))
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    # per-cluster sums as one sparse (k, N) one-hot product: np.add.at took seconds at 70k rows
    onehot = sparse.csr_matrix((np.ones(len(labels), dtype=np.float32), (labels, np.arange(len(labels)))),
                               shape=(k, len(labels)))
    sums = np.asarray(onehot @ z, dtype=np.float64)
    return (sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _make_head(net, k: int, config: DeepClusterConfig, prototypes, gen):
    """One of the epoch's top layers: the reference's fresh N(0, 0.01) linear layer on the ReLU
    output (``head=random``), or cosine logits / ``temperature`` against prototypes that start at
    the k-means centroids of the embedding (``head=centroids``, DeepCluster-v2), so the first steps
    already point at the pseudo-labels instead of fitting a random layer from scratch."""
    import torch
    import torch.nn as nn

    if config.head == "centroids":
        if prototypes is None:
            raise UserError("deepcluster: head=centroids needs the cluster prototypes")
        top = nn.Linear(prototypes.shape[1], k, bias=False)
        with torch.no_grad():
            top.weight.copy_(torch.from_numpy(prototypes))
        return top
    top = nn.Linear(net.feature_dim, k)
    with torch.no_grad():
        top.weight.normal_(0, 0.01, generator=gen)
        top.bias.zero_()
    return top


def _logits(net, x, config: DeepClusterConfig, body_grad: bool) -> list:
    """The logits of every head (``net.top_layer`` holds one per clustering)."""
    import torch
    import torch.nn.functional as F

    centroids = config.head == "centroids"
    with torch.set_grad_enabled(body_grad):
        h = net.embed(x) if centroids else net.classifier(net.body(x))
    if not centroids:
        return [top(h.float()) for top in net.top_layer]
    z = F.normalize(h.float(), dim=1)
    return [z @ F.normalize(top.weight, dim=1).t() / config.temperature for top in net.top_layer]


def lr_scale(config: DeepClusterConfig, epoch: int) -> float:
    """The learning-rate factor of ``epoch``: 1 (``constant``, the reference's) or a cosine decay
    over the epochs (``cosine``, DeepCluster-v2's), so the last epochs settle the features
    instead of moving them as much as the first ones did."""
    if config.lr_schedule == "cosine" and config.epochs > 1:
        return 0.5 * (1.0 + math.cos(math.pi * epoch / config.epochs))
    return 1.0


def train_epoch(net, optimizer, images, labels, k: int, config: DeepClusterConfig, *, device: str, precision: str,
                epoch_seed: int, progress: bool, prototypes: list | None = None, scale: float = 1.0,
                average=None):
    """One pass of |D| samples drawn uniformly over the first clustering's clusters at ``scale``
    times the learning rates, the weight ``average`` (a :class:`~.averaging.WeightAverage`)
    updated after every step; returns (mean loss, images/s).

    ``labels`` is (N,) or (heads, N): one row of pseudo-labels per clustering, each with its own
    top layer (and its own ``prototypes``); the loss is the heads' mean."""
    import torch
    import torch.nn as nn

    from clusterbench.run.progress import progress_bar

    rng = np.random.default_rng(epoch_seed)
    gen = torch.Generator().manual_seed(epoch_seed)
    rows = np.atleast_2d(labels)
    order = torch.from_numpy(epoch_sample(rows[0], config.min_steps * config.batch_size, rng))
    targets_all = torch.from_numpy(rows.astype(np.int64))
    prototypes = list(prototypes) if prototypes is not None else [None] * len(rows)

    with torch.random.fork_rng(devices=[]):  # nn.Linear's own init draws from the global stream, which dropout uses
        net.top_layer = nn.ModuleList(_make_head(net, k, config, p, gen) for p in prototypes).to(device)
    top_lr = scale * (config.lr if config.top_lr is None else config.top_lr)
    for group in optimizer.param_groups:
        group["lr"] = scale * config.lr
    # The loss is the heads' mean, so each head's own gradient arrives divided by their number: its rate is
    # multiplied back (and its decay divided), so that every head steps as a lone head would.
    n_heads = len(net.top_layer)
    top_opt = torch.optim.SGD(net.top_layer.parameters(), lr=top_lr * n_heads, weight_decay=config.weight_decay / n_heads)
    mean, std = (t.to(device) for t in _norm_stats(images.shape[1]))
    on_cuda = device.startswith("cuda")
    autocast = torch.autocast(device_type="cuda" if on_cuda else "cpu", dtype=torch.bfloat16,
                              enabled=precision == "bf16")
    criterion = nn.CrossEntropyLoss()
    net.train()
    total, count = 0.0, 0
    start = time.perf_counter()
    batches = range(0, len(order), config.batch_size)
    for step, s in enumerate(progress_bar(batches, "deepcluster train", enabled=progress)):
        idx = order[s:s + config.batch_size]
        warming = step < config.warmup_steps  # the head fits the pseudo-labels before the body moves
        if len(idx) < 2:  # BatchNorm needs two samples
            continue
        x = images[idx].to(device, non_blocking=True).float().div_(255.0)
        x = augment(x, config.crop_min, config.flip, gen, config.jitter)
        x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
        y = targets_all[:, idx].to(device, non_blocking=True)
        with autocast:
            logits = _logits(net, x, config, body_grad=not warming)
            loss = sum(criterion(out.float(), target) for out, target in zip(logits, y, strict=True)) / len(logits)
        optimizer.zero_grad(set_to_none=True)
        top_opt.zero_grad(set_to_none=True)
        loss.backward()
        if not warming:
            optimizer.step()
            if average is not None:
                average.update()
        top_opt.step()
        total += float(loss.detach()) * len(idx)
        count += len(idx)
    if on_cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    net.top_layer = None
    return total / max(count, 1), count / max(seconds, 1e-9)
