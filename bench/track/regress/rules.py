"""What counts as worse, per metric: quality beyond a tolerance that allows for seed noise, K chosen
changing at all, speed and memory beyond a factor. Defaults here; ``--tolerance KEY=VALUE`` and a
suite's ``[gate]`` table override them (a metric name, or a group: quality, speed, memory, z)."""

from __future__ import annotations

from dataclasses import dataclass

from clusterbench.core.errors import UserError

HIGHER_IS_BETTER = ("nmi", "ami", "ari", "acc", "silhouette")
LOWER_IS_BETTER = ("k_regret_nmi", "selection_regret_nmi")
K_CHOSEN = "k"  # the param: any change beyond its tolerance (default 0) is flagged
TIMES = ("embed_seconds", "cluster_seconds")  # lower is better, divided by the calibration
RATES = ("throughput_img_per_s",)  # higher is better, multiplied by the calibration
MEMORY = ("peak_host_memory_mb",)  # lower is better, not calibrated (memory does not scale with speed)
TRACKED = HIGHER_IS_BETTER + LOWER_IS_BETTER + (K_CHOSEN,) + TIMES + RATES + MEMORY

DEFAULTS = {"quality": 0.01, "k": 0.0, "speed": 1.5, "memory": 1.5, "z": 3.0}
# A timing that changed by less than this many seconds (on the head's machine) is scheduler and
# timer noise, not a speed (a pixel copy's 20 ms taking 120 ms on a busy runner); memory
# differences under this many MB are allocator noise.
SPEED_FLOOR_S = 0.25
MEMORY_FLOOR_MB = 64.0


def kind_of(metric: str) -> str:
    if metric == K_CHOSEN:
        return "k"
    if metric in TIMES or metric in RATES:
        return "speed"
    if metric in MEMORY:
        return "memory"
    return "quality"


@dataclass(frozen=True)
class Tolerances:
    values: dict  # group or metric -> number

    def of(self, metric: str) -> float:
        return float(self.values.get(metric, self.values[kind_of(metric)]))

    @property
    def z(self) -> float:
        return float(self.values["z"])


def _check(key: str, value, where: str) -> float:
    if key not in DEFAULTS and key not in TRACKED:
        raise UserError(f"{where} {key}: unknown metric; known: {', '.join(sorted(set(DEFAULTS) | set(TRACKED)))}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{where} {key}={value!r}: expected a number") from None
    if isinstance(value, bool) or number != number or number < 0:
        raise UserError(f"{where} {key}={value!r}: expected a number >= 0")
    if key in ("speed", "memory") or kind_of(key) in ("speed", "memory") and key not in DEFAULTS:
        if number < 1:
            raise UserError(f"{where} {key}={value!r}: speed and memory take a factor >= 1 (1.5: 50 % worse)")
    return number


def parse_tolerances(items: list[str] | None, gate: dict | None = None, where: str = "[gate]") -> Tolerances:
    """Defaults, then the suite's ``[gate]`` table, then ``--tolerance`` items (``nmi=0.01``, commas allowed)."""
    values = dict(DEFAULTS)
    for key, value in (gate or {}).items():
        values[key] = _check(key, value, where)
    for item in items or []:
        for part in filter(None, (p.strip() for p in item.split(","))):
            key, sep, value = part.partition("=")
            if not sep:
                raise UserError(f"--tolerance {part}: expected METRIC=NUMBER (e.g. nmi=0.01 or speed=2)")
            values[key.strip()] = _check(key.strip(), value.strip(), "--tolerance")
    return Tolerances(values)
