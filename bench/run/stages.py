"""A cell is a row of stages: load → embed → reduce → choose K → fit → score (→ pictures, which
the recorder draws). Each stage is a public function or method returning a typed record; none of
them writes a run: the recorder (:mod:`clusterbench.track.recorder`) does. The local runner and a
Ray worker call the same stages.

:class:`Inputs` holds what cells share within one process: datasets and embeddings, loaded once
(a failure is remembered, so the other cells fail fast with the same reason) and cached on disk.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clusterbench.core.catalog import registries
from clusterbench.core.contracts import (
    GROUP_COLUMN,
    ClusterResult,
    Context,
    Embedding,
    EmbedRequest,
    EmbedStats,
)
from clusterbench.core.errors import UserError
from clusterbench.core.suite import Cell
from clusterbench.k.choice import KChoice
from clusterbench.k.kchoice import resolve_k
from clusterbench.run.cache import EmbeddingCache, embedding_key, reduced_key
from clusterbench.run.perf import peak_host_memory_mb
from clusterbench.run.seeding import seed_everything
from clusterbench.scoring import metrics as M

ContextFor = Callable[[frozenset], Context]  # a method's declared needs -> what it is given


@dataclass
class Embedded:
    embedding: Embedding
    seconds: float
    cached: bool  # read from the on-disk cache, no forward pass
    key: str  # the embedding cache key (a UMAP output's key derives from it)


@dataclass
class Fitted:
    labels: np.ndarray
    outcome: ClusterResult
    seconds: float
    plan: str | None  # what the clusterer does differently at this size, said before it starts

    @property
    def space(self) -> np.ndarray | None:
        return self.outcome.space


class Inputs:
    """Datasets and embeddings shared by the cells of a process."""

    def __init__(self, results_dir: str | Path, force: bool = False, fresh: bool = False):
        self.results_dir = Path(results_dir)
        self.force = force
        self.fresh = fresh  # True in a worker: the suite's embedding stage wrote the cache
        self.cache = EmbeddingCache(self.results_dir / "cache" / "embeddings")
        self.reduced_cache = EmbeddingCache(self.results_dir / "cache" / "reduced")  # UMAP outputs
        self._reduced_now: set[str] = set()  # computed by this run (reused even under --force)
        self._data: dict[str, object] = {}
        self._embeddings: dict[tuple[str, str], object] = {}

    def load(self, cell: Cell):
        """Stage 1: the cell's dataset."""
        key = str(cell.dataset)
        if key not in self._data:
            try:
                self._data[key] = registries().datasets.create(cell.dataset).load()
            except Exception as exc:  # noqa: BLE001 - remembered so other cells fail fast with the same reason
                self._data[key] = exc
        value = self._data[key]
        if isinstance(value, Exception):
            raise value
        if len(value) == 0:
            raise UserError(f"dataset {key}: no images")
        return value

    def embed(self, cell: Cell, data, context_for: ContextFor | None = None) -> Embedded:
        """Stage 2: the features of the cell's (dataset, embedder), from the cache when there."""
        key = (str(cell.dataset), str(cell.embedder))
        held = self._embeddings.get(key)
        if isinstance(held, Embedded) and cell.requested_k == "semantic" and held.embedding.logits is None:
            del self._embeddings[key]  # computed for an earlier cell without the classifier's logits
        if key not in self._embeddings:
            try:
                self._embeddings[key] = self._compute(cell, data, context_for)
            except Exception as exc:  # noqa: BLE001
                self._embeddings[key] = exc
        value = self._embeddings[key]
        if isinstance(value, Exception):
            raise value
        return value

    def _compute(self, cell: Cell, data, context_for: ContextFor | None) -> Embedded:
        embedders = registries().embedders
        traits = embedders.traits(cell.embedder)
        wants_logits = cell.requested_k == "semantic"
        if wants_logits and not traits.has_classifier:
            raise UserError(f"k=semantic: embedder {cell.embedder.name!r} has no classifier head to predict labels with")
        embedder = embedders.create(cell.embedder)
        context = context_for(traits.needs) if context_for is not None else Context(seed=cell.seed)
        cache_key = embedding_key(data.fingerprint, str(cell.embedder), embedder.identity())
        start = time.perf_counter()
        hit = None if (self.force and not self.fresh) or not traits.cache_features else self.cache.load(cache_key)
        if hit is not None and not (wants_logits and (hit.logits is None or hit.classes is None)):
            return Embedded(hit, time.perf_counter() - start, True, cache_key)
        embedding = embedder.embed(data, EmbedRequest(with_logits=wants_logits, context=context))
        features = np.ascontiguousarray(embedding.features, dtype=np.float32)
        if features.ndim != 2 or len(features) != len(data):
            raise UserError(f"embedder {cell.embedder}: returned shape {features.shape} for {len(data)} images")
        embedding.features = features
        if traits.cache_features:
            self.cache.store(cache_key, embedding)
        return Embedded(embedding, time.perf_counter() - start, False, cache_key)

    def reduce(self, cell: Cell, embedded: Embedded) -> np.ndarray:
        """Stage 3: the cell's reducer; a UMAP one is seeded by the cell and cached like an
        embedding (keyed by the embedding's key, the reducer and the seed). Every random source is
        seeded by the cell from here on (reducer, K search, fit)."""
        seed_everything(cell.seed)
        X = embedded.embedding.features
        if cell.reduce is None:
            return X
        if not cell.reduce.umap:
            return cell.reduce.fit_transform(X)
        reducer = dataclasses.replace(cell.reduce, seed=cell.seed)
        key = reduced_key(embedded.key, reducer.describe(), cell.seed)
        hit = None if self.force and key not in self._reduced_now else self.reduced_cache.load(key)
        if hit is not None:
            return hit.features
        features = reducer.fit_transform(X)
        self.reduced_cache.store(key, Embedding(features, EmbedStats(details={"reducer": reducer.describe()})))
        self._reduced_now.add(key)
        return features


def choose_k(cell: Cell, data, X: np.ndarray, embedded: Embedded, *, results_dir, storage=None,
             force: bool = False, log=None) -> KChoice:
    """Stage 4: the cell's K (given, the classes, a study, an estimator, label semantics)."""
    return resolve_k(cell, data, X, embedded.embedding, registries().clusterers, results_dir=results_dir,
                     storage=storage, force=force, log=log)


def fit(cell: Cell, X: np.ndarray, choice: KChoice, context_for: ContextFor, announce=None) -> Fitted:
    """Stage 5: the clusterer, at the chosen K, seeded by the cell."""
    clusterers = registries().clusterers
    clusterer = clusterers.create(cell.clusterer, **cell.seed_override(clusterers), **choice.overrides)
    plan = clusterer.plan(*X.shape)
    if plan and announce is not None:
        announce(plan)
    context = context_for(clusterers.traits(cell.clusterer).needs)
    start = time.perf_counter()
    outcome = clusterer.fit(X, context)
    seconds = time.perf_counter() - start
    labels = np.asarray(outcome.labels)
    if len(labels) != len(X):
        raise UserError(f"{cell.clusterer}: returned {len(labels)} labels for {len(X)} points")
    if len(labels) and (labels < 0).all():
        raise UserError(f"{cell.clusterer}: every point was labelled noise; lower min_cluster_size / min_samples")
    return Fitted(labels, outcome, seconds, plan)


def score(cell: Cell, data, X: np.ndarray, fitted: Fitted) -> dict:
    """Stage 6: external metrics where labels exist, internal ones in the space the labels were
    made in, group metrics where items come in groups, and each extra labelling's."""
    labels, outcome = fitted.labels, fitted.outcome
    scored = M.score(X if outcome.space is None else outcome.space, labels, data.labels, seed=cell.seed)
    groups = data.items.get(GROUP_COLUMN)  # the videos frames were cut from: clusters scored against them too
    if groups is not None and len(groups) == len(labels):
        scored.update(M.group_metrics(labels, groups, GROUP_COLUMN))
    scored.update({f"cluster.{k}": v for k, v in outcome.info.items() if isinstance(v, int | float) and not isinstance(v, bool)})
    for name, extra in outcome.extra.items():
        extra_X = X if extra.space is None else extra.space
        scored.update({f"{name}.{k}": v for k, v in M.score(extra_X, extra.labels, data.labels, seed=cell.seed).items()})
    return scored


def perf_metrics(embedded: Embedded, fitted: Fitted) -> dict:
    """How fast and how big: the forward pass as the inference path ran it, the fit, the memory."""
    stats = embedded.embedding.stats
    return {
        "embed_seconds": embedded.seconds,
        "embed_cached": float(embedded.cached),
        "throughput_img_per_s": stats.images_per_s,
        "cluster_seconds": fitted.seconds,
        "peak_host_memory_mb": peak_host_memory_mb(),
        "gpu_peak_memory_mb": stats.gpu_peak_memory_mb,
        "flops_per_image": stats.flops_per_image,
        "gflops_per_s": stats.gflops_per_s,
        "embed_batch_size": stats.batch_size,  # after any out-of-memory halvings
        "embed_oom_backoffs": stats.oom_backoffs if stats.batch_size is not None else None,
        "embed_loader_workers": stats.loader_workers,
        "embed_warmup_seconds": stats.warmup_seconds,
    }


def cell_params(cell: Cell, data, embedded: Embedded, X: np.ndarray) -> dict:
    """What the cell is: its specs and their parameters, seed, reducer, the forward pass's settings,
    and where the data really came from (resolved paths, files skipped)."""
    stats = embedded.embedding.stats
    params = {f"dataset.{k}": v for k, v in cell.dataset.params.items()}
    params.update({f"embedder.{k}": v for k, v in cell.embedder.params.items()})
    params.update({f"clusterer.{k}": v for k, v in cell.clusterer.params.items()})
    params.update({
        "dataset": str(cell.dataset), "embedder": str(cell.embedder), "clusterer": str(cell.clusterer),
        "seed": cell.seed, "reducer": cell.reduce.describe() if cell.reduce else "none",
        "precision": stats.precision, "weights": stats.weights, "device": stats.device, "n_images": len(data),
        "feature_dim": int(X.shape[1]), "n_classes": data.n_classes, "nmi_average": M.NMI_AVERAGE,
        **{f"data.{k}": v for k, v in data.info.items() if isinstance(v, str | int | float) and not isinstance(v, bool)},
    })
    if data.info.get("skipped"):
        params["data.skipped"] = len(data.info["skipped"])
    return params


def assignments(data, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Each item's cluster, its label where known, and its metadata (file, video, timestamp)."""
    columns = {"index": np.arange(len(labels)), "cluster": labels,
               **({"label": data.labels} if data.labels is not None else {})}
    columns.update({k: v for k, v in data.items.items() if k not in columns and len(v) == len(labels)})
    return columns
