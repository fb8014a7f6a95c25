"""The recommendation for one dataset and, where labels exist, how good it was (selection regret)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .candidate import Candidate, check_candidates
from .criteria import DEFAULT, get


@dataclass(frozen=True)
class Recommendation:
    key: str  # the recommended configuration's cell key
    dataset: str
    criterion: str
    score: float
    ranking: tuple[tuple[str, float], ...]  # every candidate, best first (NaN last, ties by key)

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "key": self.key, "criterion": self.criterion, "score": self.score,
                "ranking": [{"key": k, "score": s} for k, s in self.ranking]}


def _order(item: tuple[str, float]):
    key, value = item
    return (math.isnan(value), -value if not math.isnan(value) else 0.0, key)


def recommend(candidates: Sequence[Candidate], criterion: str = DEFAULT, shared_space=None,
              seed: int = 0) -> Recommendation:
    """The configuration ``criterion`` scores highest among one dataset's ``candidates``.
    Ties go to the first key in sorted order, so the answer never depends on the candidates' order."""
    candidates = check_candidates(candidates)
    scores = get(criterion)(candidates, shared_space=shared_space, seed=seed)
    ranking = tuple(sorted(((k, float(v)) for k, v in scores.items()), key=_order))
    key, value = ranking[0]
    return Recommendation(key, candidates[0].dataset, criterion, value, ranking)


def selection_regret(recommendation: Recommendation, nmi_by_key: Mapping[str, float],
                     ami_by_key: Mapping[str, float] | None = None) -> dict:
    """Best NMI (AMI) among the dataset's configurations minus the recommended one's: 0 when the
    recommendation is the best there was. Computed afterwards, from the labels' scores only."""
    out = {}
    for name, by_key in (("nmi", nmi_by_key), ("ami", ami_by_key)):
        if by_key is None:
            continue
        if recommendation.key not in by_key:
            raise ValueError(f"no {name.upper()} for the recommended configuration {recommendation.key!r}")
        best_key = max(sorted(by_key), key=lambda k: by_key[k])
        out[f"selection_regret_{name}"] = float(by_key[best_key] - by_key[recommendation.key])
        out[f"best_{name}"] = float(by_key[best_key])
        out[f"best_{name}_key"] = best_key
        out[f"recommended_{name}"] = float(by_key[recommendation.key])
    return out
