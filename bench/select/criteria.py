"""The label-free criteria by name: ``score(candidates, shared_space=None, seed=0) -> {key: float}``,
higher is better. None of them takes the dataset's labels.

``own-silhouette`` is the naive picker (each configuration's silhouette in its own space) kept for
comparison; ``consensus+shared-silhouette`` and the other ``+`` names average the criteria's ranks
(each scaled to 0..1, NaN last), so that neither scale dominates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .agreement import consensus, consensus_ari, consensus_within, stability
from .candidate import Candidate, check_candidates
from .shared_space import own_umap_silhouette, shared_silhouette

Criterion = Callable[..., dict[str, float]]


def own_silhouette(candidates: Sequence[Candidate], shared_space=None, seed: int = 0) -> dict[str, float]:
    """The silhouette each configuration reported in its own space (NaN where it has none)."""
    return {c.key: float("nan") if c.own_silhouette is None else float(c.own_silhouette)
            for c in check_candidates(candidates)}


def ranks01(scores: dict[str, float]) -> dict[str, float]:
    """Scores as ranks scaled to 0 (worst) .. 1 (best); ties share their mean rank; NaN is worst."""
    from scipy.stats import rankdata

    keys = list(scores)
    values = np.array([scores[k] for k in keys], dtype=float)
    values = np.where(np.isnan(values), -np.inf, values)
    if len(keys) == 1:
        return {keys[0]: 1.0}
    r = (rankdata(values) - 1) / (len(keys) - 1)
    return dict(zip(keys, r.tolist(), strict=True))


def rank_mean(*parts: Criterion) -> Criterion:
    """A criterion that averages the 0..1 ranks of ``parts``."""
    def score(candidates, shared_space=None, seed=0):
        ranked = [ranks01(part(candidates, shared_space=shared_space, seed=seed)) for part in parts]
        return {key: float(np.mean([r[key] for r in ranked])) for key in ranked[0]}

    score.__doc__ = "mean rank of " + ", ".join(p.__name__ for p in parts)
    return score


CRITERIA: dict[str, Criterion] = {
    "consensus": consensus,
    "consensus-ari": consensus_ari,
    "consensus-within": consensus_within,
    "stability": stability,
    "shared-silhouette": shared_silhouette,
    "own-umap-silhouette": own_umap_silhouette,
    "own-silhouette": own_silhouette,
    "consensus+shared-silhouette": rank_mean(consensus, shared_silhouette),
    "consensus+stability": rank_mean(consensus, stability),
    "consensus-within+own-umap-silhouette": rank_mean(consensus_within, own_umap_silhouette),
    "consensus-within+shared-silhouette": rank_mean(consensus_within, shared_silhouette),
    "consensus+stability+shared-silhouette": rank_mean(consensus, stability, shared_silhouette),
}
NAIVE = ("own-silhouette",)  # registered for comparison, not to be the default
DEFAULT = "consensus-within+own-umap-silhouette"  # lowest mean selection regret measured (docs/recommendation.md)


def get(name: str) -> Criterion:
    """The criterion called ``name``; ValueError naming the known ones otherwise."""
    if name not in CRITERIA:
        raise ValueError(f"unknown selection criterion {name!r}; known: {', '.join(CRITERIA)}")
    return CRITERIA[name]
