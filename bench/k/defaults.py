"""Which way of choosing K a cell gets when it does not name one.

``k=auto`` and a dataset without labels given no K both mean the K estimator that measured best in
the K table of ``docs/choosing-k.md`` (:data:`DEFAULT_ESTIMATOR`). ``k=auto`` stays the Optuna study
of internal criteria when the tuning settings ask for one (an ``objective``, several trials' worth
of a sampler, a PCA dimension, a clusterer's own tuned parameters) or when the clusterer finds its
own K (HDBSCAN: the study tunes its density parameters).
"""

from __future__ import annotations

DEFAULT_ESTIMATOR = "gap"
# [tune] keys that only an Optuna study over several parameters uses: naming one asks for it
STUDY_KEYS = frozenset({"objective", "select", "n_trials", "sampler", "pca_dims"})


def auto_estimator(cell, clusterers) -> str | None:
    """The estimator ``k=auto`` stands for in this cell, or None where it means the Optuna study."""
    traits = clusterers.traits(cell.clusterer)
    if not traits.takes_k:
        return None
    asked = set(cell.tune or {})
    if asked & (STUDY_KEYS | traits.tune_keys):
        return None
    return DEFAULT_ESTIMATOR
