"""DeepCluster's training configuration and where a training (config x dataset) lives on disk."""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Annotated, Literal

from clusterbench.core.params import Device, Interval, PositiveInt, Precision, Seed, check_all, declared

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

    k: OwnK = 30  # k-means clusters per epoch (overclustering: a few times the classes expected)
    epochs: Count = 10
    backbone: str = "auto"  # auto | alexnet | alexnet-small | any torchvision model name
    sobel: bool = True
    size: NetSize | None = None  # network input size; None: 32 (alexnet-small), 224 (alexnet)
    pca_dim: OwnK | None = None  # None: 256 (the paper's) for alexnet and torchvision backbones, 32 for alexnet-small
    lr: Rate = 0.05
    lr_schedule: Schedule = "cosine"  # cosine: decayed over the epochs (DeepCluster-v2's) | constant (the reference's)
    momentum: Momentum = 0.9
    weight_decay: Strength = 1e-5
    batch_size: PositiveInt = 256
    kmeans_iter: PositiveInt = 20
    # pca: the reference's PCA-whitened, L2-normalised features | l2: DeepCluster-v2's L2-normalised features
    cluster_space: ClusterSpace = "pca"
    spherical: bool = False  # spherical k-means (centroids kept on the unit sphere, DeepCluster-v2's)
    crop_min: CropMin = 0.5  # random-resized-crop minimum area fraction (0.08 in the paper, at 224 px)
    flip: bool | None = None  # horizontal flips; None: where the dataset declares mirror images the same class
    jitter: Strength = 0.5  # random contrast/brightness strength (0: off)
    # Small-data dynamics (the reference trains ~5,000 steps an epoch on ImageNet; 1,797 digits give 7):
    min_steps: Count = 30  # at least this many SGD steps an epoch: the uniform-over-clusters sample is drawn again
    reassign_empty: bool = True  # an empty cluster takes half of a cluster picked with probability ~ size - 1
    top_lr: Rate | None = None  # the fresh top layer's learning rate (None: lr)
    warmup_steps: Count = 0  # steps at each epoch's start that train the fresh top layer only (body frozen)
    # k-means clusterings per epoch, each with its own seed and top layer, the loss their mean (DeepCluster-v2's
    # several heads): the body learns what the clusterings agree on, not one k-means run's local optimum
    heads: PositiveInt = 1
    head: Head = "centroids"  # centroids: cosine to the k-means centroids | random: the reference's fresh linear layer
    ema: Momentum = 0.0  # per-step decay of a weight average whose features are clustered and returned (0: off)
    temperature: Rate = 0.1  # head=centroids: logits are cosine / temperature (DeepCluster-v2's 0.1)
    precision: Precision = "auto"  # feature pass and training: auto | fp32 | bf16 (| fp16: feature pass on CUDA)
    seed: Seed = 0
    device: Device = "auto"

    @classmethod
    def from_params(cls, owner) -> DeepClusterConfig:
        """The config from an estimator's same-named attributes (the clusterer's and the
        embedder's spec parameters); fields they do not expose keep their defaults."""
        return cls(**{f.name: getattr(owner, f.name) for f in fields(cls) if hasattr(owner, f.name)})

    def __post_init__(self):
        # the fields' own declarations, checked (a config built from a checkpoint or by hand)
        check_all("deepcluster", {f.name: self.__dict__[f.name] for f in fields(self)}, declared(type(self)))

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


def training_init(before: tuple[inspect.Parameter, ...] = (), after: tuple[inspect.Parameter, ...] = ()):
    """A logic-free ``__init__`` taking every training parameter as :class:`DeepClusterConfig`
    declares it (annotation and default), with an entry's own parameters ``before`` and ``after``:
    the clusterer and the embedder share one declaration instead of spelling it out twice."""
    hints = declared(DeepClusterConfig)
    training = [inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=f.default,
                                  annotation=hints[f.name]) for f in fields(DeepClusterConfig)]
    params = [*before, *training, *after]

    def __init__(self, **values):
        unknown = set(values) - {p.name for p in params}
        if unknown:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword argument(s) {sorted(unknown)}")
        for param in params:
            setattr(self, param.name, values.get(param.name, param.default))

    __init__.__signature__ = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *params])
    __init__.__annotations__ = {p.name: p.annotation for p in params}
    return __init__


def spec_parameter(name: str, annotation, default) -> inspect.Parameter:
    """One of an entry's own parameters beside the training ones (for :func:`training_init`)."""
    return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=annotation)


def run_dir(root: str | Path, config: DeepClusterConfig, fingerprint: str) -> Path:
    """Where one training (config x dataset) keeps its checkpoint, in the harness's work dir."""
    return Path(root) / "deepcluster" / f"{config.key()}-{fingerprint}"
