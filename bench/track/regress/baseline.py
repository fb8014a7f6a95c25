"""Baseline files: a side written into the user's repository as small, diff-friendly JSON (sorted
keys, one block per configuration, numbers rounded), so ``compare BASELINE RESULTS`` gates a pull
request without the store that measured it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from clusterbench.core.atomic import atomic_file
from clusterbench.core.errors import UserError

from .sides import Config, Side, Stat

FORMAT = "clusterbench-baseline"
VERSION = 1


_ONE_LINE = re.compile(r'\{\s+"mean": [^{}]*?\}')


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else float(f"{value:.{digits}g}")


def to_json(side: Side) -> dict:
    configs = {}
    for key, config in side.configs.items():
        configs[key] = {
            "calibration_seconds": _round(config.calibration),
            "embedding_cached": config.embedding_cached,
            "metrics": {m: {"mean": _round(s.mean), "std": _round(s.std), "n": s.n} for m, s in config.metrics.items()},
        }
    return {"format": FORMAT, "version": VERSION, "suite": side.suite, "revision": side.revision,
            "calibration_seconds": _round(side.calibration), "versions": side.versions, "configurations": configs}


def write(side: Side, path: Path) -> None:
    if not side.configs:
        raise UserError(f"{side.label}: no finished cell to write a baseline from")
    text = json.dumps(to_json(side), sort_keys=True, indent=2)
    text = _ONE_LINE.sub(lambda m: " ".join(m.group(0).split()), text)  # a metric per line: short diffs
    with atomic_file(path, "w") as f:
        f.write(text + "\n")


def is_baseline(obj) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def from_json(obj: dict, label: str) -> Side:
    if obj.get("version") != VERSION:
        raise UserError(f"{label}: baseline format version {obj.get('version')!r}; this clusterbench reads {VERSION}")
    configs = {}
    try:
        for key, block in obj["configurations"].items():
            metrics = {m: Stat(float(s["mean"]), float(s["std"]), int(s["n"])) for m, s in block["metrics"].items()}
            configs[key] = Config(metrics, block.get("calibration_seconds"), bool(block.get("embedding_cached")))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UserError(f"{label}: not a readable baseline ({type(e).__name__}: {e})") from None
    return Side(label, configs, revision=obj.get("revision"), calibration=obj.get("calibration_seconds"),
                versions=obj.get("versions") or {}, suite=obj.get("suite"))
