"""What choosing a cell's K produced (its own module: the ways of choosing import it, and
:mod:`clusterbench.k.kchoice` imports them)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class KChoice:
    overrides: dict = field(default_factory=dict)  # passed to the clusterer's constructor
    params: dict = field(default_factory=dict)  # recorded with the cell (k, k_source, ...)
    reduce: object | None = None  # a tuned reducer (Optuna's PCA dimension) applied before the final fit
