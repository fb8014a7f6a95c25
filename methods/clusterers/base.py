"""The clusterer base: scikit-learn shaped (logic-free ``__init__(**params)``), with the
defaults of the :class:`~clusterbench.core.contracts.Clusterer` contract.

``fit(X, context) -> ClusterResult``; ``fit_predict(X)`` gives the labels alone. A clusterer
that takes ``k`` declares it as an ``__init__`` parameter and the harness fills it in; one that
needs more than the features lists it in ``needs`` and finds it in the ``context``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from clusterbench.core.contracts import Clusterer, ClusterResult, Context, Labeling
from clusterbench.core.errors import UserError
from clusterbench.core.registry import Registry
from clusterbench.core.space import Param

CLUSTERERS = Registry("clusterer", group="clusterbench.clusterers", contract=Clusterer)

__all__ = ["CLUSTERERS", "ClusterResult", "ClustererBase", "Context", "Labeling", "Param", "check_features", "check_k"]


class ClustererBase:
    needs: ClassVar[frozenset[str]] = frozenset()
    owns_k: ClassVar[bool] = False
    tunable: ClassVar[bool] = True
    tune_keys: ClassVar[dict[str, str]] = {}

    def fit(self, X, context: Context | None = None) -> ClusterResult:
        raise NotImplementedError

    def plan(self, n: int, dim: int) -> str | None:
        """Nothing differs with size."""
        return None

    @staticmethod
    def skip(cell) -> str | None:
        """Why this clusterer declines ``cell`` (a dataset it cannot use, ...), said before anything
        runs and recorded as the cell's status; None: it runs every cell its parameters allow."""
        return None

    def fit_predict(self, X, context: Context | None = None) -> np.ndarray:
        return self.fit(X, context or Context()).labels

    @classmethod
    def search_space(cls, n: int, dim: int, tune: Mapping) -> list[Param]:
        """Nothing besides K (which the harness adds for every clusterer taking ``k``)."""
        return []


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
