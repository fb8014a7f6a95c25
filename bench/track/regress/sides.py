"""One side of a comparison: each configuration's tracked metrics (mean, std and count over its
seeds), the calibration seconds its timings were measured beside, and what was measured."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from .rules import K_CHOSEN, LOWER_IS_BETTER, TRACKED

_SEED = re.compile(r"\|seed=-?\d+")


def configuration(cell_key: str) -> str:
    """A cell's key with its seed removed: the seeds of a configuration are pooled."""
    return _SEED.sub("", cell_key, count=1)


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float  # sample standard deviation over seeds (0 with one)
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Stat:
        n = len(values)
        mean = sum(values) / n
        var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
        return cls(mean, math.sqrt(var), n)


@dataclass
class Config:
    metrics: dict[str, Stat] = field(default_factory=dict)
    calibration: float | None = None  # mean calibration seconds of the suite runs that measured it
    embedding_cached: bool = False  # its embed_seconds time a cache read, not the embedder


@dataclass
class Side:
    label: str  # where it came from: a file, a folder, a run id
    configs: dict[str, Config] = field(default_factory=dict)
    revision: str | None = None
    calibration: float | None = None
    versions: dict = field(default_factory=dict)
    suite: str | None = None


class Collector:
    """Cells in, configurations out: values gathered per configuration, summarised at the end."""

    def __init__(self):
        self.values: dict[str, dict[str, list[float]]] = {}
        self.calibrations: dict[str, list[float]] = {}
        self.cached: dict[str, bool] = {}

    def add_cell(self, key: str, params: dict, metrics: dict, calibration: float | None) -> None:
        config = configuration(key)
        row = self.values.setdefault(config, {})
        for name in TRACKED:
            value = _number(params.get(name) if name == K_CHOSEN else metrics.get(name))
            if value is not None:
                row.setdefault(name, []).append(value)
        if calibration is not None:
            self.calibrations.setdefault(config, []).append(calibration)
        self.cached[config] = self.cached.get(config, False) or bool(_number(metrics.get("embed_cached")))

    def add_suite(self, suite: str, metrics: dict) -> None:
        """Suite-level numbers (the recommendation's selection regret) as a configuration of their own."""
        for name in LOWER_IS_BETTER:
            value = _number(metrics.get(name))
            if value is not None and name != "k_regret_nmi":
                self.values.setdefault(f"{suite} (recommendation)", {}).setdefault(name, []).append(value)

    def configs(self) -> dict[str, Config]:
        out = {}
        for config, row in self.values.items():
            cal = self.calibrations.get(config)
            out[config] = Config({m: Stat.of(v) for m, v in row.items()}, sum(cal) / len(cal) if cal else None,
                                 self.cached.get(config, False))
        return out


def _number(value) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None  # k=auto before it was chosen, a param that is not a number
    return number if math.isfinite(number) else None


def from_summary(summary: dict, label: str) -> Side:
    """What ``clusterbench run --json`` writes (and a suite run's summary.json)."""
    calibration = _number(summary.get("calibration_seconds"))
    collected = Collector()
    for cell in summary.get("cells", []):
        if cell.get("status") == "ok" and cell.get("key"):
            collected.add_cell(cell["key"], cell.get("params") or {}, cell.get("metrics") or {}, calibration)
    regrets = [r["selection_regret_nmi"] for r in summary.get("recommendations") or [] if "selection_regret_nmi" in r]
    if regrets:
        collected.add_suite(summary.get("suite", "suite"), {"selection_regret_nmi": sum(regrets) / len(regrets)})
    return Side(label, collected.configs(), revision=summary.get("revision"), calibration=calibration,
                suite=summary.get("suite"))
