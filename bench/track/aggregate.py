"""Across seeds and datasets: mean and std per configuration, the best per dataset, and each
method's average rank across datasets. Pure numbers (no MLflow), from cell records."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

AGG_METRICS = ("nmi", "ami", "ari", "acc", "purity", "silhouette", "n_clusters", "noise_fraction")
LOWER_IS_BETTER = {"davies_bouldin", "noise_fraction", "cluster_seconds", "embed_seconds"}
_SEED = re.compile(r"\|seed=-?\d+")
_UNSAFE = re.compile(r"[^\w.\-/ :]")


@dataclass
class CellRecord:
    """One finished cell: its key, the three specs, seed, metrics and MLflow run."""

    key: str
    dataset: str
    embedder: str
    clusterer: str
    seed: int | None
    metrics: dict
    run_id: str | None = None
    params: dict = field(default_factory=dict)

    @property
    def config(self) -> str:
        return configuration(self.key)

    @property
    def method(self) -> str:
        """The configuration without its dataset: what is ranked across datasets."""
        return self.config.split("|", 1)[1] if "|" in self.config else self.config


@dataclass
class Aggregate:
    config: str
    dataset: str
    method: str
    records: list[CellRecord]
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)
    n: dict[str, int] = field(default_factory=dict)

    @property
    def seeds(self) -> list:
        return sorted(r.seed for r in self.records if r.seed is not None)


def configuration(cell_key: str) -> str:
    """A cell key without its seed: the cells that differ only by seed share it."""
    return _SEED.sub("", cell_key)


def setting(config: str) -> str:
    """What a configuration asked beyond its three specs: K, the reducer, tuning (``k=auto:gap``)."""
    parts = config.split("|")[3:]
    return " ".join(p for p in parts if p not in ("k=default", "reduce=none")) or "-"


def short(method: str, sep: str = " / ") -> str:
    """A method or configuration for people: defaults dropped, parts joined by ``sep``."""
    parts = [p for p in method.split("|") if p not in ("k=default", "reduce=none")]
    return sep.join(parts)


def metric_name(config: str, metric: str, stat: str) -> str:
    """An MLflow-safe metric name for one configuration's statistic (e.g. ``...kmeans.nmi_mean``)."""
    return _UNSAFE.sub("_", f"{config}/{metric}_{stat}".replace("|", "/"))[:250]


def aggregate(records: list[CellRecord], metrics=AGG_METRICS) -> list[Aggregate]:
    """One row per configuration, in first-seen order: mean, sample std (ddof=1; 0 for one seed)
    and n per metric over its seeds."""
    groups: dict[str, list[CellRecord]] = {}
    for r in records:
        groups.setdefault(r.config, []).append(r)
    out = []
    for config, rows in groups.items():
        agg = Aggregate(config, rows[0].dataset, rows[0].method, rows)
        for m in metrics:
            values = np.array([float(r.metrics[m]) for r in rows if _finite(r.metrics.get(m))])
            if len(values):
                agg.mean[m] = float(values.mean())
                agg.std[m] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
                agg.n[m] = len(values)
        out.append(agg)
    return out


def _finite(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def best_per_dataset(aggs: list[Aggregate], metric: str) -> dict[str, str]:
    """dataset -> the configuration with the best mean ``metric``."""
    sign = -1 if metric in LOWER_IS_BETTER else 1
    best: dict[str, Aggregate] = {}
    for a in aggs:
        if metric in a.mean and (a.dataset not in best or sign * a.mean[metric] > sign * best[a.dataset].mean[metric]):
            best[a.dataset] = a
    return {d: a.config for d, a in best.items()}


def average_ranks(aggs: list[Aggregate], metric: str) -> tuple[dict[str, float], list[str]]:
    """(method -> average rank over the datasets where every ranked method ran, those datasets).
    Rank 1 is best; ties share the mean rank (as in Demsar's critical-difference diagrams)."""
    from scipy.stats import rankdata

    table: dict[str, dict[str, float]] = {}
    for a in aggs:
        if metric in a.mean:
            table.setdefault(a.dataset, {})[a.method] = a.mean[metric]
    methods = sorted({m for row in table.values() for m in row})
    full = [d for d, row in table.items() if set(row) == set(methods)]
    if not full or not methods:
        return {}, []
    sign = 1 if metric in LOWER_IS_BETTER else -1
    ranks = np.array([rankdata([sign * table[d][m] for m in methods]) for d in full])
    return dict(zip(methods, ranks.mean(axis=0).tolist(), strict=True)), full


def critical_difference(n_methods: int, n_datasets: int, alpha: float = 0.05) -> float | None:
    """Nemenyi's critical difference of average ranks (Demsar 2006): CD = q_a sqrt(k(k+1)/(6N))."""
    if n_methods < 2 or n_datasets < 1:
        return None
    from scipy.stats import studentized_range

    q = studentized_range.ppf(1 - alpha, n_methods, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(n_methods * (n_methods + 1) / (6 * n_datasets)))
