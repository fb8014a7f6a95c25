"""The DeepCluster epoch loop, with a checkpoint after every epoch and resume from it.

One epoch (Caron et al., 2018, and the reference implementation):

1. features of the whole dataset, eval mode, no augmentation (the harness's shared forward
   path, :func:`clusterbench.infer.inference.run_inference`);
2. PCA to ``pca_dim`` with whitening (eigen power -0.5), L2-normalised rows, faiss k-means
   (``kmeans_iter`` iterations, no subsampling, a new seed each epoch) -> pseudo-labels;
3. |D| samples drawn uniformly over the non-empty clusters, augmented (random resized crop +
   horizontal flip, done batched with ``grid_sample``), a freshly initialised top layer
   (N(0, 0.01)) with its own SGD, and SGD on the body (lr 0.05, momentum 0.9, weight decay
   1e-5, batch 256) that persists across epochs.

Metrics per epoch go to ``log_metrics(dict, step=epoch)`` (0-based epoch index). Nothing here
knows about MLflow; the harness routes the callback to its tracker.

Every epoch draws its randomness from ``(seed, epoch)`` alone, so a run resumed from its
checkpoint continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from clusterbench.core.errors import UserError

from . import model as M

CHECKPOINT_FORMAT = "clusterbench-deepcluster"
CHECKPOINT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
# Config fields that do not change the learned weights (left out of the cache key).
_NOT_IN_KEY = ("device",)


@dataclass(frozen=True)
class DeepClusterConfig:
    """Everything that determines the learned weights (``key()`` names them; the device does not).

    The paper's values where they transfer (SGD lr 0.05, momentum 0.9, weight decay 1e-5, batch
    256, 20 k-means iterations, PCA 256 for its AlexNet). Four defaults are set for small images
    and were measured on Fashion-MNIST (70k, alexnet-small, k-means K=10 on the features):
    ``k=30`` (k=300 drifted down to NMI 0.49 after 5 epochs, k=50 ~0.58-0.62, k=30 ~0.59-0.65),
    ``pca_dim`` 32 for alexnet-small (see :func:`model.resolve_pca_dim`), ``crop_min=0.5`` (28 px
    crops of 20 % area are mostly background) and ``jitter=0.5`` (random contrast, so clusters
    cannot form on image contrast, which survives the Sobel filter).
    """

    k: int = 30  # k-means clusters per epoch (overclustering: a few times the classes expected)
    epochs: int = 10
    backbone: str = "auto"  # auto | alexnet | alexnet-small | any torchvision model name
    sobel: bool = True
    size: int | None = None  # network input size; None: 32 (alexnet-small), 224 (alexnet)
    pca_dim: int | None = None  # None: 256 (the paper's) for alexnet and torchvision backbones, 32 for alexnet-small
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 1e-5
    batch_size: int = 256
    kmeans_iter: int = 20
    crop_min: float = 0.5  # random-resized-crop minimum area fraction (0.08 in the paper, at 224 px)
    flip: bool = True
    jitter: float = 0.5  # random contrast/brightness strength (0: off)
    precision: str = "auto"  # feature pass and training: auto | fp32 | bf16 (| fp16: feature pass on CUDA)
    seed: int = 0
    device: str = "auto"

    @classmethod
    def from_params(cls, owner) -> DeepClusterConfig:
        """The config from an estimator's same-named attributes (the clusterer's and the
        embedder's spec parameters); fields they do not expose keep their defaults."""
        return cls(**{f.name: getattr(owner, f.name) for f in fields(cls) if hasattr(owner, f.name)})

    def __post_init__(self):
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 2:
            raise UserError(f"deepcluster: k={self.k!r} must be an integer >= 2")
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise UserError(f"deepcluster: epochs={self.epochs!r} must be an integer >= 0")
        if self.batch_size < 1 or (self.pca_dim is not None and self.pca_dim < 2) or self.kmeans_iter < 1:
            raise UserError("deepcluster: batch_size, kmeans_iter must be >= 1 and pca_dim >= 2")
        if not 0 < self.crop_min <= 1:
            raise UserError(f"deepcluster: crop_min={self.crop_min} must be in (0, 1]")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DeepClusterConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def key(self) -> str:
        """Names the learned weights: every training parameter, not the device."""
        d = {k: v for k, v in sorted(self.to_dict().items()) if k not in _NOT_IN_KEY}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def run_dir(root: str | Path, config: DeepClusterConfig, fingerprint: str) -> Path:
    """Where one training (config x dataset) keeps its checkpoint."""
    return Path(root) / f"{config.key()}-{fingerprint}"


@dataclass
class DeepClusterResult:
    model: object
    features: np.ndarray  # (N, D) penultimate features of the final network (raw)
    reduced: np.ndarray  # PCA-whitened, L2-normalised features (what k-means sees)
    labels: np.ndarray  # k-means at config.k on the final features: the final pseudo-labels
    history: list[dict] = field(default_factory=list)  # one metrics dict per epoch, resumed ones included
    resumed_from: int = 0  # epochs already done when this call started
    checkpoint: str | None = None
    info: dict = field(default_factory=dict)

    @property
    def eval_features(self) -> np.ndarray:
        """The representation judged with k-means at the evaluation K (see :func:`evaluation_features`)."""
        return evaluation_features(self.features)


# -- images -----------------------------------------------------------------------------------

def prepare_images(data, size: int):
    """uint8 tensor (N, C, size, size), C = 1 (all grayscale) or 3, resized with antialiasing."""
    import torch
    import torch.nn.functional as F

    n = len(data)
    if n == 0:
        raise UserError("deepcluster: no images")
    images = data.images
    stacked = isinstance(images, np.ndarray) and images.ndim in (3, 4)

    def resize(batch):  # uint8 (B, C, H, W) -> uint8 (B, C, size, size)
        if batch.shape[-2:] == (size, size):
            return batch
        x = F.interpolate(batch.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return x.round_().clamp_(0, 255).to(torch.uint8)

    if stacked:
        arr = images if images.ndim == 4 else images[:, :, :, None]
        _check_channels(arr.shape[3])
        out = torch.empty((n, arr.shape[3], size, size), dtype=torch.uint8)
        for s in range(0, n, 4096):
            chunk = torch.from_numpy(np.ascontiguousarray(arr[s:s + 4096])).permute(0, 3, 1, 2)
            out[s:s + len(chunk)] = resize(chunk)
        return out
    # one read per image (a folder may decode from disk on every read); grayscale images are
    # widened to 3 channels afterwards if any image is in colour
    small = [resize(torch.from_numpy(np.ascontiguousarray(data.image(i))).permute(2, 0, 1)[None])[0]
             for i in range(n)]
    channels = max(img.shape[0] for img in small)
    _check_channels(channels)
    return torch.stack([img.expand(channels, -1, -1) for img in small])


def _check_channels(channels: int) -> None:
    if channels not in (1, 3):
        raise UserError(f"deepcluster: images with {channels} channels; expected 1 or 3")


class TensorImages:
    """The ImageData face (``len``, ``image(i)`` -> uint8 HWC) of a prepared uint8 tensor."""

    def __init__(self, tensor):
        self.tensor = tensor

    def __len__(self):
        return len(self.tensor)

    def image(self, i):
        return self.tensor[i].permute(1, 2, 0).numpy()


def _norm_stats(channels: int):
    import torch

    mean, std = (M.MEAN, M.STD) if channels == 3 else ((sum(M.MEAN) / 3,), (sum(M.STD) / 3,))
    return torch.tensor(mean).view(-1, 1, 1), torch.tensor(std).view(-1, 1, 1)


class Normalize:
    """uint8 CHW tensor -> float, ImageNet mean/std (per-image transform for the feature pass)."""

    def __init__(self, channels: int):
        self.mean, self.std = _norm_stats(channels)

    def __call__(self, img):
        return (img.float().div_(255.0) - self.mean) / self.std

    def device_split(self):
        """The shared inference path normalises whole batches on the device instead."""
        from clusterbench.infer.preprocess import DeviceSplit

        return DeviceSplit(None, tuple(self.mean.flatten().tolist()), tuple(self.std.flatten().tolist()))


def augment(batch, crop_min: float, flip: bool, generator=None, jitter: float = 0.0):
    """Random resized crop (area in [crop_min, 1], aspect in [3/4, 4/3]) + horizontal flip, for a
    whole float batch (B, C, H, W) at once via ``affine_grid``/``grid_sample``."""
    import torch
    import torch.nn.functional as F

    b = batch.shape[0]
    area = torch.empty(b).uniform_(crop_min, 1.0, generator=generator)
    log_ratio = torch.empty(b).uniform_(float(np.log(3 / 4)), float(np.log(4 / 3)), generator=generator)
    ratio = log_ratio.exp()
    w = (area * ratio).sqrt().clamp(max=1.0)  # crop width / image width
    h = (area / ratio).sqrt().clamp(max=1.0)
    cx = (torch.rand(b, generator=generator) * 2 - 1) * (1 - w)
    cy = (torch.rand(b, generator=generator) * 2 - 1) * (1 - h)
    sx = w * (torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0) if flip else 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, cx, h, cy
    grid = F.affine_grid(theta.to(batch.device), list(batch.shape), align_corners=False)
    out = F.grid_sample(batch, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if jitter > 0:
        contrast = torch.empty(b, 1, 1, 1).uniform_(1 - jitter, 1 + jitter, generator=generator).to(batch.device)
        bright = torch.empty(b, 1, 1, 1).uniform_(-jitter / 2, jitter / 2, generator=generator).to(batch.device)
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = ((out - mean) * contrast + mean + bright).clamp_(0, 1)
    return out


# -- the steps of an epoch ----------------------------------------------------------------------

class _Embed:
    """Wraps a DeepClusterNet so a plain ``forward`` returns the clustered representation."""

    def __new__(cls, net):
        import torch.nn as nn

        class Embed(nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, x):
                return self.inner.embed(x)

        return Embed(net)


def compute_features(net, images, *, device: str, precision: str, batch_size: int, progress: bool = True,
                     desc: str = "deepcluster features"):
    """Penultimate features of every image (eval mode, no augmentation): the shared forward path."""
    from clusterbench.infer.inference import run_inference

    result = run_inference(_Embed(net), TensorImages(images), Normalize(images.shape[1]), device=device,
                           precision=precision, batch_size=batch_size, rgb=False, progress=progress, desc=desc)
    (features,) = result.outputs
    return np.ascontiguousarray(features, dtype=np.float32), result.stats


def reduce_features(features: np.ndarray, pca_dim: int) -> np.ndarray:
    """PCA (whitened, eigen power -0.5) to ``pca_dim`` then L2 rows, as the reference does.

    faiss's PCA with the whitening itself (rather than ``eigen_power=-0.5``) so that directions
    with (near) zero variance -- fewer images than dimensions, dead units -- are not divided by
    zero: eigenvalues are floored at 1e-6 of the largest.
    """
    from clusterbench.core.backends import import_faiss

    faiss = import_faiss()

    features = np.ascontiguousarray(np.nan_to_num(features, nan=0.0, posinf=0.0, neginf=0.0), dtype=np.float32)
    dim = max(1, min(pca_dim, features.shape[1], features.shape[0] - 1))
    pca = faiss.PCAMatrix(features.shape[1], dim, 0.0)
    pca.train(features)
    out = pca.apply(features)
    eigenvalues = faiss.vector_to_array(pca.eigenvalues)[:dim].astype(np.float64)
    floor = max(float(eigenvalues.max(initial=0.0)) * 1e-6, 1e-12)
    out /= np.sqrt(np.maximum(eigenvalues, floor)).astype(np.float32)
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return np.ascontiguousarray(out, dtype=np.float32)


def cluster(reduced: np.ndarray, k: int, seed: int, niter: int = 20):
    """faiss k-means on every point (no subsampling); returns (labels, objective)."""
    from clusterbench.methods.clusterers.kmeans import faiss_gpu_available, faiss_kmeans

    if k > len(reduced):
        raise UserError(f"deepcluster: k={k} exceeds the number of images ({len(reduced)})")
    labels, _, objective = faiss_kmeans(reduced, k, n_init=1, max_iter=niter, seed=int(seed) % 2**31,
                                        init="random", spherical=False, use_gpu=faiss_gpu_available())
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


def train_epoch(net, optimizer, images, labels, k: int, config: DeepClusterConfig, *, device: str, precision: str,
                epoch_seed: int, progress: bool):
    """One pass of |D| samples drawn uniformly over clusters; returns (mean loss, images/s)."""
    import torch
    import torch.nn as nn

    from clusterbench.run.progress import progress_bar

    rng = np.random.default_rng(epoch_seed)
    gen = torch.Generator().manual_seed(epoch_seed)
    order = torch.from_numpy(uniform_cluster_sample(labels, len(labels), rng))
    targets_all = torch.from_numpy(labels.astype(np.int64))

    top = nn.Linear(net.feature_dim, k)
    with torch.no_grad():
        top.weight.normal_(0, 0.01, generator=gen)
        top.bias.zero_()
    net.top_layer = top.to(device)
    top_opt = torch.optim.SGD(net.top_layer.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    mean, std = (t.to(device) for t in _norm_stats(images.shape[1]))
    on_cuda = device.startswith("cuda")
    autocast = torch.autocast(device_type="cuda" if on_cuda else "cpu", dtype=torch.bfloat16,
                              enabled=precision == "bf16")
    criterion = nn.CrossEntropyLoss()
    net.train()
    total, count = 0.0, 0
    start = time.perf_counter()
    batches = range(0, len(order), config.batch_size)
    for s in progress_bar(batches, "deepcluster train", enabled=progress):
        idx = order[s:s + config.batch_size]
        if len(idx) < 2:  # BatchNorm needs two samples
            continue
        x = images[idx].to(device, non_blocking=True).float().div_(255.0)
        x = augment(x, config.crop_min, config.flip, gen, config.jitter)
        x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
        y = targets_all[idx].to(device, non_blocking=True)
        with autocast:
            loss = criterion(net(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        top_opt.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        top_opt.step()
        total += float(loss.detach()) * len(idx)
        count += len(idx)
    if on_cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    net.top_layer = None
    return total / max(count, 1), count / max(seconds, 1e-9)


# -- checkpoints --------------------------------------------------------------------------------

def save_checkpoint(path: Path, net, optimizer, config: DeepClusterConfig, resolved: dict, epoch: int,
                    assignments: np.ndarray | None, history: list[dict], fingerprint: str | None) -> None:
    import torch

    from clusterbench.run.atomic import atomic_file

    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items() if not k.startswith("top_layer.")}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": config.to_dict(),
        "resolved": dict(resolved),
        "epoch": int(epoch),  # epochs completed
        "model": state,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "assignments": None if assignments is None else torch.from_numpy(np.asarray(assignments, dtype=np.int64)),
        "history": [dict(h) for h in history],
        "fingerprint": fingerprint,
    }
    with atomic_file(path) as f:
        torch.save(payload, f)


def read_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint (ours or the official format) with ``weights_only=True``."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"deepcluster: checkpoint {path} does not exist") from None
    except Exception as exc:  # noqa: BLE001 - unpickling errors of every kind: one line
        raise UserError(f"deepcluster: cannot read checkpoint {path}: {type(exc).__name__}: "
                        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from None


def is_our_checkpoint(obj) -> bool:
    return isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT


def model_from_checkpoint(obj: dict):
    """(network, config, resolved) from one of our checkpoints."""
    config = DeepClusterConfig.from_dict(obj["config"])
    resolved = obj["resolved"]
    net = M.build_model(resolved["backbone"], config.sobel, resolved["size"])
    M.load_state(net, obj["model"], "deepcluster checkpoint")
    return net, config, resolved


# -- the loop -------------------------------------------------------------------------------------

def _cuda_indices(device: str) -> list[int]:
    import torch

    if not device.startswith("cuda"):
        return []
    index = torch.device(device).index
    return [torch.cuda.current_device() if index is None else index]


def _epoch_seed(seed: int, epoch: int) -> int:
    return (int(seed) * 1_000_003 + 7919 * (epoch + 1)) % 2**31


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def train_deepcluster(
    data,
    config: DeepClusterConfig,
    *,
    checkpoint_dir: str | Path | None = None,
    log_metrics: Callable[[dict, int], None] | None = None,
    on_epoch_end: Callable[[int, dict], None] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = _log,
    eval_k: int | None = None,
) -> DeepClusterResult:
    """Train (or resume, or just load) DeepCluster on ``data`` (ImageData-like) and return the final
    network, its features and the final pseudo-labels.

    With ``checkpoint_dir``, a checkpoint is written after every epoch and an existing one is
    resumed from (a finished one is loaded without training). ``on_epoch_end(epoch, metrics)``
    runs after the checkpoint is written. With labels in ``data`` and ``eval_k``, each epoch also
    reports ``nmi_labels_k{eval_k}``: k-means at ``eval_k`` on the same reduced features.
    """
    import torch

    from clusterbench.infer.inference import resolve_device

    log = log or (lambda msg: None)
    log_metrics = log_metrics or (lambda metrics, step: None)
    device = resolve_device(config.device)
    first = data.image(0)
    image_size = int(max(first.shape[0], first.shape[1]))
    backbone = M.resolve_backbone(config.backbone, image_size)
    size = M.resolve_size(backbone, config.size, image_size)
    pca_dim = M.resolve_pca_dim(backbone, config.pca_dim)
    resolved = {"backbone": backbone, "size": size, "pca_dim": pca_dim}
    precision = resolve_train_precision(config.precision, device)
    truth = getattr(data, "labels", None)
    fingerprint = getattr(data, "fingerprint", None)
    if config.k > len(data):
        raise UserError(f"deepcluster: k={config.k} exceeds the number of images ({len(data)})")

    path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = M.build_model(backbone, config.sobel, size)
    net = net.to(device).to(memory_format=torch.channels_last)
    params = [p for p in net.parameters() if p.requires_grad]
    # The body's optimizer persists across epochs (momentum included); the top layer gets its own.
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)

    start_epoch, history, previous = 0, [], None
    if path is not None and path.exists():
        ckpt = read_checkpoint(path)
        if not is_our_checkpoint(ckpt) or ckpt.get("config") != config.to_dict() or ckpt.get("resolved") != resolved:
            raise UserError(f"deepcluster: {path} belongs to another configuration; remove it to retrain")
        M.load_state(net, ckpt["model"], f"deepcluster checkpoint {path}")
        if ckpt.get("optimizer") is not None:
            optimizer.load_state_dict(ckpt["optimizer"])
        start_epoch = int(ckpt["epoch"])
        history = list(ckpt.get("history") or [])
        previous = ckpt["assignments"].numpy() if ckpt.get("assignments") is not None else None
        if start_epoch < config.epochs:
            log(f"deepcluster: resuming from {path} after epoch {start_epoch}/{config.epochs}")
        for h in history:  # a resumed run's curves start at epoch 0 too
            log_metrics({**h, "resumed": 1.0}, int(h["epoch"]))

    images = prepare_images(data, size)
    if start_epoch < config.epochs:
        log(f"deepcluster: {backbone} (sobel={config.sobel}) at {size}px on {len(images)} images, k={config.k}, "
            f"{config.epochs} epochs, {device}/{precision}")
    for epoch in range(start_epoch, config.epochs):
        epoch_seed = _epoch_seed(config.seed, epoch)
        t0 = time.perf_counter()
        features, fstats = compute_features(net, images, device=device, precision=precision,
                                            batch_size=config.batch_size, progress=progress)
        t1 = time.perf_counter()
        reduced = reduce_features(features, pca_dim)
        labels, objective = cluster(reduced, config.k, epoch_seed, config.kmeans_iter)
        t2 = time.perf_counter()
        with torch.random.fork_rng(devices=_cuda_indices(device)):
            torch.manual_seed(epoch_seed)  # dropout: from (seed, epoch) too, so a resumed run matches
            loss, train_rate = train_epoch(net, optimizer, images, labels, config.k, config, device=device,
                                           precision=precision, epoch_seed=epoch_seed, progress=progress)
        t3 = time.perf_counter()
        evaluation = _evaluate(features, truth, eval_k, config.seed)  # scoring only: not part of the epoch's time
        metrics = {
            "epoch": epoch,
            "loss": loss,
            "kmeans_objective": objective,
            **cluster_stats(labels, config.k),
            "time_features_s": t1 - t0,
            "time_clustering_s": t2 - t1,
            "time_training_s": t3 - t2,
            "time_epoch_s": t3 - t0,
            "features_images_per_s": fstats.get("images_per_s"),
            "train_images_per_s": train_rate,
            "images_per_s": len(images) / max(t3 - t0, 1e-9),
            "clustering_fraction": (t2 - t1) / max(t3 - t0, 1e-9),
        }
        if previous is not None and len(previous) == len(labels):
            metrics["nmi_previous"] = nmi(previous, labels)
        if truth is not None:
            metrics["nmi_labels"] = nmi(truth, labels)
        metrics.update(evaluation)
        metrics = {k: float(v) if isinstance(v, int | float | np.floating | np.integer) else v for k, v in metrics.items()}
        history.append(metrics)
        previous = labels
        if path is not None:
            save_checkpoint(path, net, optimizer, config, resolved, epoch + 1, labels, history, fingerprint)
        log_metrics(metrics, epoch)
        log(_epoch_line(epoch, config.epochs, metrics))
        if on_epoch_end is not None:
            on_epoch_end(epoch, metrics)

    t0 = time.perf_counter()
    features, fstats = compute_features(net, images, device=device, precision=precision,
                                        batch_size=config.batch_size, progress=progress, desc="deepcluster final")
    reduced = reduce_features(features, pca_dim)
    labels, objective = cluster(reduced, config.k, _epoch_seed(config.seed, config.epochs), config.kmeans_iter)
    final = {"final_time_s": time.perf_counter() - t0, "final_kmeans_objective": objective,
             **{f"final_{k}": v for k, v in cluster_stats(labels, config.k).items()}}
    if previous is not None and len(previous) == len(labels):
        final["final_nmi_previous"] = nmi(previous, labels)
    if truth is not None:
        final["final_nmi_labels"] = nmi(truth, labels)
    final.update({f"final_{k}": v for k, v in _evaluate(features, truth, eval_k, config.seed).items()})
    info = {
        "backbone": backbone, "size": size, "pca_dim": pca_dim, "sobel": config.sobel, "device": device, "precision": precision,
        "feature_dim": int(features.shape[1]), "epochs": config.epochs, "resumed_from": start_epoch,
        "train_seconds": float(sum(h["time_epoch_s"] for h in history)), "images_per_s": fstats.get("images_per_s"),
        **final,
    }
    net.eval()
    return DeepClusterResult(net, features, reduced, labels, history, start_epoch,
                             str(path) if path is not None else None, info)


def evaluation_features(features: np.ndarray) -> np.ndarray:
    """L2-normalised penultimate features: what the learned representation is judged on with
    k-means at the evaluation K (whitening, right for K >> classes, hurts at K = classes)."""
    features = np.nan_to_num(np.asarray(features, dtype=np.float32))
    return np.ascontiguousarray(features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12))


def evaluation_kmeans(features: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means (k-means++ seeding, 100 iterations) at the evaluation K."""
    from clusterbench.methods.clusterers.kmeans import faiss_gpu_available, faiss_kmeans

    labels, _, _ = faiss_kmeans(features, int(k), n_init=1, max_iter=100, seed=int(seed) % 2**31, init="k-means++",
                                spherical=False, use_gpu=faiss_gpu_available())
    return labels


def _evaluate(features, truth, eval_k, seed) -> dict:
    """NMI vs labels of k-means at the evaluation K (labels used for scoring only)."""
    if truth is None or not eval_k or eval_k > len(features):
        return {}
    labels = evaluation_kmeans(evaluation_features(features), eval_k, seed)
    return {f"nmi_labels_k{int(eval_k)}": nmi(truth, labels)}


def _epoch_line(epoch: int, epochs: int, m: dict) -> str:
    parts = [f"deepcluster epoch {epoch + 1}/{epochs}: loss {m['loss']:.3f}"]
    if "nmi_labels" in m:
        parts.append(f"nmi(labels) {m['nmi_labels']:.3f}")
    if "nmi_previous" in m:
        parts.append(f"nmi(prev) {m['nmi_previous']:.3f}")
    parts += [f"{k.replace('nmi_labels_', 'nmi(labels,')}) {v:.3f}" for k, v in m.items() if k.startswith("nmi_labels_k")]
    parts.append(f"empty {int(m['clusters_empty'])}")
    parts.append(f"time {m['time_epoch_s']:.0f}s = features {m['time_features_s']:.0f} + clustering "
                 f"{m['time_clustering_s']:.1f} + training {m['time_training_s']:.0f}")
    return ", ".join(parts)


def nmi_figure(history: list[dict], title: str = "DeepCluster"):
    """NMI over epochs: vs the previous epoch's assignment (stability) and vs the labels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    curves = [("nmi_previous", "stability: NMI(assignments t, t-1)"), ("nmi_labels", "NMI(pseudo-labels, labels)")]
    curves += [(k, f"NMI(k-means K={k[len('nmi_labels_k'):]} on features, labels)")
               for k in sorted({k for h in history for k in h if k.startswith("nmi_labels_k")})]
    for key, label in curves:
        points = [(h["epoch"] + 1, h[key]) for h in history if key in h]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("NMI")
    ax.set_ylim(0, 1)
    ax.grid(True, alpha=0.3)
    ax.set_title(title)
    if ax.lines:
        ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    return fig
