"""Two sides, configuration by configuration: each tracked metric's base, head, delta and verdict.

Quality: worse by more than max(tolerance, z x pooled std x sqrt(1/n_base + 1/n_head)) (the seed
noise of a difference of two means; the plain tolerance with one seed a side). K chosen: any change
beyond its tolerance. Speed: the ratio of the timings each divided by its own run's calibration
seconds, worse beyond a factor. Memory: the plain ratio, worse beyond a factor."""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import rules
from .rules import Tolerances
from .sides import Config, Side, Stat

WORSE = ("regressed", "changed")


@dataclass(frozen=True)
class Row:
    config: str
    metric: str
    base: float
    head: float
    delta: str  # "-0.100" for quality, "x1.62" for speed and memory
    verdict: str  # ok, improved, regressed, changed, not judged
    note: str = ""

    @property
    def worse(self) -> bool:
        return self.verdict in WORSE


@dataclass
class Comparison:
    rows: list[Row]
    only_base: list[str]
    only_head: list[str]

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.worse]


def compare(base: Side, head: Side, tolerances: Tolerances) -> Comparison:
    rows = []
    for config in sorted(set(base.configs) & set(head.configs)):
        b, h = base.configs[config], head.configs[config]
        for metric in rules.TRACKED:
            if metric in b.metrics and metric in h.metrics:
                rows.append(judge(config, metric, b, h, tolerances))
    return Comparison(rows, sorted(set(base.configs) - set(head.configs)), sorted(set(head.configs) - set(base.configs)))


def judge(config: str, metric: str, b: Config, h: Config, tolerances: Tolerances) -> Row:
    kind = rules.kind_of(metric)
    if kind in ("quality", "k"):
        return _quality(config, metric, b.metrics[metric], h.metrics[metric], tolerances)
    if kind == "memory":
        return _memory(config, metric, b.metrics[metric].mean, h.metrics[metric].mean, tolerances.of(metric))
    return _speed(config, metric, b, h, tolerances.of(metric))


def noise_tolerance(b: Stat, h: Stat, tolerance: float, z: float) -> float:
    dof = b.n + h.n - 2
    if dof <= 0 or max(b.n, h.n) < 2:
        return tolerance
    pooled = math.sqrt(((b.n - 1) * b.std ** 2 + (h.n - 1) * h.std ** 2) / dof)
    return max(tolerance, z * pooled * math.sqrt(1 / b.n + 1 / h.n))


def _quality(config: str, metric: str, b: Stat, h: Stat, tolerances: Tolerances) -> Row:
    allowed = noise_tolerance(b, h, tolerances.of(metric), tolerances.z)
    delta = h.mean - b.mean
    note = f"tolerance {allowed:.3g}" + (f" (seeds {b.n}/{h.n})" if max(b.n, h.n) > 1 else "")
    if metric == rules.K_CHOSEN:
        verdict = "changed" if abs(delta) > allowed + 1e-12 else "ok"
    else:
        better = delta if metric in rules.HIGHER_IS_BETTER else -delta
        verdict = "regressed" if better < -allowed - 1e-12 else "improved" if better > allowed + 1e-12 else "ok"
    shown = f"{delta:+g}" if metric == rules.K_CHOSEN else f"{delta:+.4f}"
    return Row(config, metric, b.mean, h.mean, shown, verdict, note)


def _speed(config: str, metric: str, b: Config, h: Config, factor: float) -> Row:
    bv, hv = b.metrics[metric].mean, h.metrics[metric].mean
    if (b.embedding_cached or h.embedding_cached) and metric != "cluster_seconds":
        return Row(config, metric, bv, hv, "-", "not judged", "embedding read from the cache")
    calibrated = b.calibration and h.calibration
    scale = (h.calibration / b.calibration) if calibrated else 1.0  # how much slower the head's machine is
    note = f"calibrated (machine x{scale:.2f})" if calibrated else "uncalibrated: a side has no calibration"
    bs, hs = (b.metrics.get("embed_seconds"), h.metrics.get("embed_seconds")) if metric in rules.RATES else \
        (b.metrics[metric], h.metrics[metric])
    if bs is not None and hs is not None and abs(hs.mean - bs.mean * scale) < rules.SPEED_FLOOR_S:
        return Row(config, metric, bv, hv, "-", "ok", f"{note}; within {rules.SPEED_FLOOR_S:g} s")
    # slowdown: > 1 is worse; a time grows with a slower machine, a rate shrinks
    slowdown = hv / (bv * scale) if metric in rules.TIMES else (bv / scale) / hv if hv > 0 else math.inf
    verdict = "regressed" if slowdown > factor else "improved" if slowdown < 1 / factor else "ok"
    return Row(config, metric, bv, hv, f"x{slowdown:.2f} slower" if slowdown >= 1 else f"x{1 / slowdown:.2f} faster",
               verdict, f"{note}; threshold x{factor:g}")


def _memory(config: str, metric: str, bv: float, hv: float, factor: float) -> Row:
    ratio = hv / bv if bv > 0 else math.inf
    if abs(hv - bv) < rules.MEMORY_FLOOR_MB:
        verdict = "ok"
    else:
        verdict = "regressed" if ratio > factor else "improved" if ratio < 1 / factor else "ok"
    return Row(config, metric, bv, hv, f"x{ratio:.2f}", verdict, f"threshold x{factor:g}")
