"""The DeepCluster epoch loop, with a checkpoint after every epoch and resume from it.

One epoch (Caron et al., 2018, and the reference implementation):

1. features of the whole dataset, eval mode, no augmentation (the harness's shared forward
   path, :func:`clusterbench.infer.inference.run_inference`);
2. PCA to ``pca_dim`` with whitening (eigen power -0.5) and L2-normalised rows (``cluster_space=l2``:
   L2-normalised rows only, DeepCluster-v2's), faiss k-means (``kmeans_iter`` iterations, no
   subsampling, a new seed each epoch, ``spherical`` optional) -> pseudo-labels;
3. |D| samples (at least ``min_steps`` batches) drawn uniformly over the non-empty clusters,
   augmented (random resized crop + horizontal flip where the dataset's mirror images are the
   same class, batched with ``grid_sample``), a fresh top layer with its own SGD (prototypes
   at the epoch's centroids, DeepCluster-v2's head, or the reference's N(0, 0.01) linear
   layer), and SGD on the body (lr 0.05, momentum 0.9, weight decay 1e-5, batch 256) that
   persists across epochs.

Metrics per epoch go to ``log_metrics(dict, step=epoch)`` (0-based epoch index). Nothing here
knows about MLflow; the harness routes the callback to its tracker.

Every epoch draws its randomness from ``(seed, epoch)`` alone, so a run resumed from its
checkpoint continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from clusterbench.core.errors import UserError

# The loop's parts live in config, images, steps, checkpoint and evaluate; their public names are
# re-exported here, where they used to be defined.
from . import model as M
from .averaging import WeightAverage, lag_warning
from .checkpoint import (  # noqa: F401
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    CHECKPOINT_VERSION,
    PREVIOUS_NAME,
    is_our_checkpoint,
    load_for_resume,
    model_from_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from .config import DeepClusterConfig, run_dir  # noqa: F401
from .evaluate import _epoch_line, _evaluate, evaluation_features, evaluation_kmeans, nmi_figure  # noqa: F401
from .images import Normalize, TensorImages, augment, prepare_images  # noqa: F401
from .steps import (  # noqa: F401
    cluster,
    cluster_prototypes,
    cluster_stats,
    clustering_features,
    compute_features,
    epoch_sample,
    epoch_steps,
    lr_scale,
    nmi,
    pseudo_labels,
    reassign_empty,
    reduce_features,
    resolve_train_precision,
    train_epoch,
    uniform_cluster_sample,
)


@dataclass
class DeepClusterResult:
    model: object
    features: np.ndarray  # (N, D) penultimate features of the final network (raw)
    reduced: np.ndarray  # what the final k-means sees (PCA-whitened or plain, L2-normalised)
    labels: np.ndarray  # k-means at config.k on the final features: the final pseudo-labels
    history: list[dict] = field(default_factory=list)  # one metrics dict per epoch, resumed ones included
    resumed_from: int = 0  # epochs already done when this call started
    checkpoint: str | None = None
    info: dict = field(default_factory=dict)

    @property
    def eval_features(self) -> np.ndarray:
        """The representation judged with k-means at the evaluation K (see :func:`evaluation_features`)."""
        return evaluation_features(self.features)


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
    flip = data.mirror_invariant if config.flip is None else config.flip
    resolved = {"backbone": backbone, "size": size, "pca_dim": pca_dim, "flip": flip}
    train_config = replace(config, flip=flip)
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
    average = WeightAverage(net, config.ema) if config.ema > 0 else None
    embedder = average.net if average is not None else net  # the network whose features are clustered

    start_epoch, history, previous = 0, [], None
    ckpt, source = load_for_resume(path) if path is not None else (None, None)  # damaged: one warning, skipped
    if ckpt is not None:
        if not is_our_checkpoint(ckpt) or ckpt.get("config") != config.to_dict() or ckpt.get("resolved") != resolved:
            raise UserError(f"deepcluster: {source} belongs to another configuration; remove it to retrain")
        M.load_state(embedder, ckpt["model"], f"deepcluster checkpoint {source}")
        if average is not None:
            M.load_state(net, ckpt.get("online") or ckpt["model"], f"deepcluster checkpoint {source}")
        if ckpt.get("optimizer") is not None:
            optimizer.load_state_dict(ckpt["optimizer"])
        start_epoch = int(ckpt["epoch"])
        history = list(ckpt.get("history") or [])
        previous = ckpt["assignments"].numpy() if ckpt.get("assignments") is not None else None
        if start_epoch < config.epochs:
            log(f"deepcluster: resuming from {source} after epoch {start_epoch}/{config.epochs}")
        for h in history:  # a resumed run's curves start at epoch 0 too
            log_metrics({**h, "resumed": 1.0}, int(h["epoch"]))

    images = prepare_images(data, size)
    if start_epoch < config.epochs:
        log(f"deepcluster: {backbone} (sobel={config.sobel}) at {size}px on {len(images)} images, k={config.k}, "
            f"{config.epochs} epochs, {device}/{precision}")
        lagging = lag_warning(config.ema, config.epochs * epoch_steps(len(images), config.batch_size, config.min_steps))
        if lagging:
            log(lagging)
    for epoch in range(start_epoch, config.epochs):
        epoch_seed = _epoch_seed(config.seed, epoch)
        t0 = time.perf_counter()
        features, fstats = compute_features(embedder, images, device=device, precision=precision,
                                            batch_size=config.batch_size, progress=progress)
        t1 = time.perf_counter()
        reduced = clustering_features(features, config.cluster_space, pca_dim)
        # head 0 is the one clustering of heads=1; the others get their own seeds
        clusterings = [pseudo_labels(reduced, config, (epoch_seed + 104_729 * head) % 2**31)
                       for head in range(config.heads)]
        heads = [labels for labels, _, _ in clusterings]
        found_empty = sum(empty for _, _, empty in clusterings)
        labels, objective, _ = clusterings[0]  # the epoch's pseudo-labels in the metrics and the checkpoint
        prototypes = ([cluster_prototypes(features, h, config.k) for h in heads] if config.head == "centroids"
                      else None)
        t2 = time.perf_counter()
        with torch.random.fork_rng(devices=_cuda_indices(device)):
            torch.manual_seed(epoch_seed)  # dropout: from (seed, epoch) too, so a resumed run matches
            loss, train_rate = train_epoch(net, optimizer, images, np.stack(heads), config.k, train_config, device=device,
                                           precision=precision, epoch_seed=epoch_seed, progress=progress,
                                           prototypes=prototypes, scale=lr_scale(config, epoch), average=average)
        t3 = time.perf_counter()
        evaluation = _evaluate(features, truth, eval_k, config.seed)  # scoring only: not part of the epoch's time
        metrics = {
            "epoch": epoch,
            "loss": loss,
            "lr": config.lr * lr_scale(config, epoch),
            "loss_ln_k": float(np.log(config.k)),  # a loss still at ln k: the network predicts nothing
            "loss_over_ln_k": loss / float(np.log(config.k)),
            "kmeans_objective": objective,
            "clusters_empty_found": found_empty,
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
            save_checkpoint(path, embedder, optimizer, config, resolved, epoch + 1, labels, history, fingerprint,
                            online=net if average is not None else None)
        log_metrics(metrics, epoch)
        log(_epoch_line(epoch, config.epochs, metrics))
        if on_epoch_end is not None:
            on_epoch_end(epoch, metrics)

    t0 = time.perf_counter()
    features, fstats = compute_features(embedder, images, device=device, precision=precision,
                                        batch_size=config.batch_size, progress=progress, desc="deepcluster final")
    reduced = clustering_features(features, config.cluster_space, pca_dim)
    labels, objective = cluster(reduced, config.k, _epoch_seed(config.seed, config.epochs), config.kmeans_iter,
                                config.spherical)
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
    embedder.eval()
    return DeepClusterResult(embedder, features, reduced, labels, history, start_epoch,
                             str(path) if path is not None else None, info)
