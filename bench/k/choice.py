"""What choosing a cell's K produced (its own module: the ways of choosing import it, and
:mod:`clusterbench.k.kchoice` imports them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from clusterbench.core.artifacts import Artifacts


@dataclass
class KChoice:
    overrides: dict = field(default_factory=dict)  # passed to the clusterer's constructor
    params: dict = field(default_factory=dict)  # recorded with the cell (k, k_source, ...)
    reduce: object | None = None  # a tuned reducer (Optuna's PCA dimension) applied before the final fit
    metrics: dict = field(default_factory=dict)  # K-regret of a labelled cell (k_error, k_regret_nmi, ...)
    curve: dict = field(default_factory=dict)  # per-K score, NMI and AMI of the sweep (clusterbench.k.regret)
    artifacts: Artifacts = field(default_factory=Artifacts)  # curves, trials, figures for the cell's run
