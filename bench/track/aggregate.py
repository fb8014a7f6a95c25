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


def metric_labels(configs) -> dict[str, str]:
    """configuration -> a short label for the suite run's metric names, unique among ``configs``:
    clusterer and embedder always (``kmeans on pixels``), the dataset, K, reducer and tuning only
    where the suite has several; a spec's parameters only where its bare name would be ambiguous."""
    configs = list(dict.fromkeys(configs))
    columns = list(zip(*(_axes(c) for c in configs), strict=True))
    shown = [_shown_values(col, spec=i < 3, always=i < 2) for i, col in enumerate(columns)]
    labels = {}
    for i, config in enumerate(configs):
        clusterer, embedder, *rest = (values[i] if values else "" for values in shown)
        dataset = rest.pop(0)
        words = [clusterer, f"on {embedder}"] + ([f"in {dataset}"] if dataset else []) + [w for w in rest if w]
        labels[config] = _safe(" ".join(words))
    return labels


def metric_name(label: str, metric: str, stat: str) -> str:
    """The suite run's metric for one configuration's statistic, metric first so MLflow groups
    them (``nmi/kmeans on pixels``, ``nmi_std/...``, ``n_seeds/...``); ``label`` from
    :func:`metric_labels`."""
    head = metric if stat in ("mean", "count") else f"{metric}_{stat}"
    return _safe(f"{head}/{label}")[:250]


def _axes(config: str) -> tuple[str, ...]:
    """(clusterer, embedder, dataset, K, reducer, tuning) of a configuration, defaults as ''."""
    parts = config.split("|")
    specs = (parts + ["", "", ""])[:3]
    extra = {p.split("=", 1)[0] + "=": p.split("=", 1)[1] for p in parts[3:] if "=" in p}
    k = extra.get("k=", "default")
    reduce = extra.get("reduce=", "none")
    words = ["" if k == "default" else f"k:{k}",
             "" if reduce == "none" else " ".join(p.removesuffix("=true").replace("=", ":") for p in reduce.split(",")),
             "tune " + extra["tune="] if "tune=" in extra else ""]
    return specs[2], specs[1], specs[0], *words


def _shown_values(column, spec: bool, always: bool) -> list[str] | None:
    """One axis as shown: a spec by its bare name where that tells the values apart, else in full;
    None when the axis does not vary (and need not be shown)."""
    if not always and len(set(column)) <= 1:
        return None
    bare = [v.split(":", 1)[0] for v in column] if spec else list(column)
    full = len(set(bare)) < len(set(column))
    return [_cut(v if full else b) for v, b in zip(column, bare, strict=True)]


def _cut(text: str, limit: int = 48) -> str:
    """A long spec keeps its head and a digest of the whole, so two labels never collide."""
    if len(text) <= limit:
        return text
    import hashlib

    return f"{text[:limit - 6]}~{hashlib.sha1(text.encode()).hexdigest()[:5]}"


def _safe(text: str) -> str:
    """MLflow metric names allow letters, digits, ``_ - . / :`` and spaces: ``=`` and ``,`` of a
    spec become spaces, anything else ``_``."""
    return _UNSAFE.sub("_", text.replace("=", " ").replace(",", " "))


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
