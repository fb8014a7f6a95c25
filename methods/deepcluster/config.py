"""DeepCluster's training configuration and where a training (config x dataset) lives on disk."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Annotated, Literal

from clusterbench.core.errors import UserError
from clusterbench.core.params import Interval

# The declared constraints of the training parameters, once for the embedder and the clusterer
Count = Annotated[int, Interval(0, None)]  # epochs, steps
OwnK = Annotated[int, Interval(2, None)]  # DeepCluster's own k, the PCA dimension, the evaluation K
NetSize = Annotated[int, Interval(16, None)]
Rate = Annotated[float, Interval(0, None, closed="neither")]  # learning rates, the temperature
CropMin = Annotated[float, Interval(0, 1, closed="right")]
Strength = Annotated[float, Interval(0, None)]  # jitter, weight decay
Head = Literal["random", "centroids"]
Schedule = Literal["constant", "cosine"]
Momentum = Annotated[float, Interval(0, 1, closed="left")]
ClusterSpace = Literal["pca", "l2"]

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
    cannot form on image contrast, which survives the Sobel filter). Two rest on the 3-seed
    ablation in the README: ``head=centroids`` (Fashion-MNIST 10k: NMI 0.618 vs 0.568 with the
    reference's random head) and ``flip`` following the dataset (flipped digits are other
    shapes: on digits flips held training below the untrained network).
    """

    k: int = 30  # k-means clusters per epoch (overclustering: a few times the classes expected)
    epochs: int = 10
    backbone: str = "auto"  # auto | alexnet | alexnet-small | any torchvision model name
    sobel: bool = True
    size: int | None = None  # network input size; None: 32 (alexnet-small), 224 (alexnet)
    pca_dim: int | None = None  # None: 256 (the paper's) for alexnet and torchvision backbones, 32 for alexnet-small
    lr: float = 0.05
    lr_schedule: str = "cosine"  # cosine: decayed over the epochs (DeepCluster-v2's) | constant (the reference's)
    momentum: float = 0.9
    weight_decay: float = 1e-5
    batch_size: int = 256
    kmeans_iter: int = 20
    # pca: the reference's PCA-whitened, L2-normalised features | l2: DeepCluster-v2's L2-normalised features
    cluster_space: str = "pca"
    spherical: bool = False  # spherical k-means (centroids kept on the unit sphere, DeepCluster-v2's)
    crop_min: float = 0.5  # random-resized-crop minimum area fraction (0.08 in the paper, at 224 px)
    flip: bool | None = None  # horizontal flips; None: where the dataset declares mirror images the same class
    jitter: float = 0.5  # random contrast/brightness strength (0: off)
    # Small-data dynamics (the reference trains ~5,000 steps an epoch on ImageNet; 1,797 digits give 7):
    min_steps: int = 30  # at least this many SGD steps an epoch: the uniform-over-clusters sample is drawn again
    reassign_empty: bool = True  # an empty cluster takes half of a cluster picked with probability ~ size - 1
    top_lr: float | None = None  # the fresh top layer's learning rate (None: lr)
    warmup_steps: int = 0  # steps at each epoch's start that train the fresh top layer only (body frozen)
    # k-means clusterings per epoch, each with its own seed and top layer, the loss their mean (DeepCluster-v2's
    # several heads): the body learns what the clusterings agree on, not one k-means run's local optimum
    heads: int = 1
    head: str = "centroids"  # centroids: cosine to the k-means centroids | random: the reference's fresh linear layer
    ema: float = 0.0  # per-step decay of a weight average whose features are clustered and returned (0: off)
    temperature: float = 0.1  # head=centroids: logits are cosine / temperature (DeepCluster-v2's 0.1)
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
        if self.min_steps < 0 or self.warmup_steps < 0 or (self.top_lr is not None and not self.top_lr > 0):
            raise UserError("deepcluster: min_steps and warmup_steps must be >= 0 and top_lr > 0")
        if not isinstance(self.heads, int) or isinstance(self.heads, bool) or self.heads < 1:
            raise UserError(f"deepcluster: heads={self.heads!r} must be an integer >= 1")
        if self.head not in ("random", "centroids") or not self.temperature > 0:
            raise UserError(f"deepcluster: head={self.head!r} must be random or centroids and temperature > 0")
        if self.lr_schedule not in ("constant", "cosine"):
            raise UserError(f"deepcluster: lr_schedule={self.lr_schedule!r} must be constant or cosine")
        if not 0 <= self.ema < 1:
            raise UserError(f"deepcluster: ema={self.ema} must be in [0, 1)")
        if self.cluster_space not in ("pca", "l2"):
            raise UserError(f"deepcluster: cluster_space={self.cluster_space!r} must be pca or l2")
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
    """Where one training (config x dataset) keeps its checkpoint, in the harness's work dir."""
    return Path(root) / "deepcluster" / f"{config.key()}-{fingerprint}"
