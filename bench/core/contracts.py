"""The contracts between the harness and what it compares: datasets, embedders, clusterers.

Every method is a class registered in its kind's registry (``DATASETS``, ``EMBEDDERS``,
``CLUSTERERS``) whose ``__init__`` takes the spec's parameters and does nothing else (the
parameters are declared by its signature: see :mod:`clusterbench.core.params`). Beyond that:

- a **Dataset** has ``load() -> ImageData`` (``clusterbench.datasets.base``): images (or
  precomputed features), optional labels and class names, per-item metadata, a fingerprint;
- an **Embedder** has ``identity() -> str`` (the weights' identity, part of the cache key) and
  ``embed(data, request) -> Embedding``: float32 ``(N, D)`` features with a typed
  :class:`EmbedStats` record, and logits plus their classes when asked for them and the
  embedder ``has_classifier``;
- a **Clusterer** has ``fit(X, context) -> ClusterResult``: labels (noise = -1), optionally
  the space they were made in, extra labelings and info. It declares which parameters the
  harness may tune (:meth:`Clusterer.search_space`), whether its ``k`` is the grid's K
  (``owns_k``), and what it needs besides the features (``needs``).

``needs`` is a frozenset of :data:`NEEDS` keys. The runner fills exactly those fields of the
:class:`Context` it passes; the others stay ``None``, so a method cannot come to rely on
something it did not declare.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from clusterbench.core.traits import declared

if TYPE_CHECKING:
    from clusterbench.core.space import Param

NEEDS = {
    "data": "the dataset itself (its images), not only the features",
    "work_dir": "a directory that outlives the run (checkpoints, trained weights)",
    "log": "callbacks for per-step metrics and figures, routed to the cell's tracked run",
    "grid_k": "the grid's K (--k, the suite's k or the number of classes), for a method whose own k differs",
}


# The per-item metadata column (``ImageData.items``) naming the group each item was cut from (the
# video or snippet of a frame): where a dataset provides it, clusters are also scored against it.
GROUP_COLUMN = "video"


@dataclass
class Context:
    """What a method declared in ``needs``; the fields it did not declare are ``None``."""

    seed: int = 0
    data: Any = None
    work_dir: str | None = None
    log_metrics: Callable[[dict, int], None] | None = None
    log_figure: Callable[[object, str], None] | None = None
    grid_k: int | None = None


@dataclass
class EmbedRequest:
    """What the harness asks of one embedding pass."""

    with_logits: bool = False  # also return classifier logits and their classes (k=semantic, explanations)
    context: Context = field(default_factory=Context)


@dataclass
class EmbedStats:
    """How an embedding was computed. Every torch embedder fills the forward-pass fields from
    the shared inference path; ``details`` holds what is particular to one embedder."""

    device: str = "cpu"
    precision: str = "fp32"
    weights: str = "none"  # the weights' identity (file hash, torchvision enum, random seed, ...)
    model: str | None = None
    seconds: float | None = None
    images_per_s: float | None = None  # warm-up batch excluded
    warmup_seconds: float | None = None
    batch_size: int | None = None  # after any out-of-memory halvings
    oom_backoffs: int = 0
    loader_workers: int | None = None
    channels_last: bool | None = None
    compile: bool | None = None
    flops_per_image: float | None = None
    gflops_per_s: float | None = None
    peak_host_memory_mb: float | None = None
    gpu_peak_memory_mb: float | None = None
    gpu_name: str | None = None
    feature_dim: int | None = None
    image_size: int | None = None
    n_images: int | None = None
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(out.pop("details"))
        return {k: v for k, v in out.items() if v is not None}

    @classmethod
    def from_dict(cls, record: Mapping) -> EmbedStats:
        known = {f.name for f in fields(cls)} - {"details"}
        details = {k: v for k, v in record.items() if k not in known and k != "details"}
        return cls(**{k: v for k, v in record.items() if k in known}, details={**record.get("details", {}), **details})

    @classmethod
    def from_pass(cls, stats: Mapping, **more) -> EmbedStats:
        """From the inference path's record plus the embedder's own fields."""
        return cls.from_dict({**stats, **more})


@dataclass
class Classes:
    """What a classifier head's outputs mean: names in logit order, and WordNet ids where known."""

    names: list[str]
    wnids: list[str] | None = None


@dataclass
class Embedding:
    features: np.ndarray  # float32 (N, D)
    stats: EmbedStats = field(default_factory=EmbedStats)
    logits: np.ndarray | None = None  # (N, C) classifier scores when asked for and available
    classes: Classes | None = None


@dataclass
class Labeling:
    labels: np.ndarray
    space: np.ndarray | None = None  # the features these labels were made in; None: the cell's X


@dataclass
class ClusterResult:
    """``labels``: int64 (N,), noise = -1. ``space``: the features the labels were made in when
    they are not the input (DeepCluster learns its own); internal metrics are computed there.
    ``extra``: further labelings to score, by name (scored as ``NAME.metric``). ``info``: what
    was done (numbers become ``cluster.*`` metrics, strings ``cluster.*`` tags)."""

    labels: np.ndarray
    space: np.ndarray | None = None
    extra: dict[str, Labeling] = field(default_factory=dict)
    info: dict = field(default_factory=dict)


# What a dataset holds and an embedder reads: a dataset declares ``provides`` and an embedder
# ``consumes``, one of these (undeclared: images). A pair that does not match is refused before
# anything runs.
INPUTS = ("images", "features")


@runtime_checkable
class Dataset(Protocol):
    def load(self): ...  # -> clusterbench.datasets.base.ImageData


@runtime_checkable
class Embedder(Protocol):
    needs: ClassVar[frozenset[str]]
    has_classifier: ClassVar[bool]  # can return logits and their Classes
    cache_features: ClassVar[bool]  # False: its output is already on disk (no cache copy)

    def identity(self) -> str: ...

    def embed(self, data, request: EmbedRequest) -> Embedding: ...


@runtime_checkable
class Clusterer(Protocol):
    needs: ClassVar[frozenset[str]]
    owns_k: ClassVar[bool]  # its k is its own (e.g. overclustering), not the grid's K
    tunable: ClassVar[bool]  # may be refitted per Optuna trial (False for one that trains a network)
    tune_keys: ClassVar[dict[str, str]]  # its own --tune keys -> what they do

    def fit(self, X: np.ndarray, context: Context) -> ClusterResult: ...

    def plan(self, n: int, dim: int) -> str | None:
        """What it will do differently for ``n`` points of ``dim`` dimensions (an approximation
        it takes above a size), said and recorded before it starts; None when nothing."""
        ...

    @classmethod
    def search_space(cls, n: int, dim: int, tune: Mapping) -> list[Param]:
        """The parameters (besides K) the harness may tune for ``n`` points of ``dim`` dimensions,
        narrowed by this clusterer's own ``tune`` keys."""
        ...


_ABSENT = object()


def breaches(protocol: type, cls: type) -> list[str]:
    """How ``cls`` falls short of ``protocol``: each name the protocol declares (its annotated
    class attributes and its methods) that ``cls`` lacks or, for a method, has but cannot call;
    and ``needs`` keys that are not in :data:`NEEDS`. Empty when it honours the contract."""
    methods = {n for n, v in vars(protocol).items() if callable(v) or isinstance(v, classmethod | staticmethod)}
    names = set(protocol.__dict__.get("__annotations__", {})) | methods
    out = []
    for name in sorted(n for n in names if not n.startswith("_")):
        value = declared(cls, name, _ABSENT)
        if value is _ABSENT:
            out.append(f"no {name!r}")
        elif name in methods and not callable(value):
            out.append(f"{name!r} is not callable")
    needs = declared(cls, "needs", frozenset())
    if "needs" in names and needs is not None:
        if isinstance(needs, str) or not isinstance(needs, set | frozenset | tuple | list):
            out.append(f"'needs' must be a set of {', '.join(NEEDS)}, not {needs!r}")
        elif unknown := sorted(set(needs) - set(NEEDS)):
            out.append(f"'needs' has unknown key(s) {', '.join(map(repr, unknown))} (known: {', '.join(NEEDS)})")
    return out


@runtime_checkable
class KEstimator(Protocol):
    """A way of choosing K from a sweep over K (``--k auto:NAME``): the per-K ``score`` (the
    sweep's objective; extra numbers in its dict are kept with the trial) and the ``choose`` rule
    that picks K from the finished sweep. ``needs_labels`` True is refused before anything runs:
    an estimator that reads the dataset's labels would leak them into the result."""

    needs_labels: ClassVar[bool]
    direction: ClassVar[str]  # "maximize" or "minimize": the score's, for the study

    def score(self, X: np.ndarray, labels: np.ndarray, k: int, fit: Callable, seed: int) -> dict:
        """``{"value": float, ...}`` for the cell's clustering ``labels`` of ``X`` at ``k``;
        ``fit(X2, k, seed) -> labels`` refits the cell's clusterer on other points."""
        ...

    def choose(self, curve: Mapping[int, Mapping]) -> int:
        """K from ``{k: score dict}`` of the finished sweep."""
        ...
