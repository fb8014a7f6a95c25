"""The clusterer contract (scikit-learn shaped): logic-free ``__init__(**params)``,
``fit_predict(X) -> labels`` with noise as -1, and an ``info_`` dict of what was done.

A clusterer that takes ``k`` declares it as an ``__init__`` parameter; the runner fills it in.
A clusterer that needs more than the features (DeepCluster: the images and a network) sets
``needs_context = True`` and receives a :class:`ClusterContext`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from clusterbench.errors import UserError
from clusterbench.registry import Registry

CLUSTERERS = Registry("clusterer")


@dataclass
class ClusterContext:
    """What a context-needing clusterer gets besides X: the images, where to keep state, and
    a callback for step-wise metrics (the harness routes it to its tracker)."""

    data: object
    work_dir: str
    seed: int = 0
    log_metrics: Callable[[dict, int], None] = lambda metrics, step: None
    log_figure: Callable[[object, str], None] = lambda figure, name: None
    extra: dict = field(default_factory=dict)


def check_features(X, k: int | None = None, name: str = "clusterer") -> np.ndarray:
    """Validated float32 C-contiguous 2-D features; K within [2, N]."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0:
        raise UserError(f"{name}: features must be a non-empty 2-D array, got shape {X.shape}")
    X = np.ascontiguousarray(X, dtype=np.float32)
    if not np.isfinite(X).all():
        bad = int((~np.isfinite(X)).any(axis=1).sum())
        raise UserError(f"{name}: {bad} of {len(X)} feature rows contain NaN or inf")
    if k is not None:
        check_k(k, len(X), name)
    return X


def check_k(k, n: int, name: str = "clusterer") -> int:
    if k is None:
        raise UserError(f"{name}: no K given (use --k N or k=N)")
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise UserError(f"{name}: k={k!r} must be an integer")
    if k < 2:
        raise UserError(f"{name}: k={k} must be at least 2")
    if k > n:
        raise UserError(f"{name}: k={k} exceeds the number of points ({n})")
    return int(k)
