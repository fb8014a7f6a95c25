"""What a stage produced for a run besides its parameters: files, figures, metric histories.

Stages return this record and never write anywhere themselves; the recorder
(:mod:`clusterbench.track.recorder`) is the one place that turns it into MLflow artifacts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Artifacts:
    json: dict[str, object] = field(default_factory=dict)  # artifact path -> JSON-able object
    text: dict[str, str] = field(default_factory=dict)
    # artifact path -> a function drawing the figure, called when written: a figure that fails is
    # never worth a failed cell, and becomes ``<path stem>_error.txt`` with the reason instead
    figures: dict[str, Callable[[], object]] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    steps: list[tuple[int, dict]] = field(default_factory=list)  # metric histories: (step, {name: value})

    def update(self, other: Artifacts) -> Artifacts:
        self.json.update(other.json)
        self.text.update(other.text)
        self.figures.update(other.figures)
        self.metrics.update(other.metrics)
        self.steps.extend(other.steps)
        return self
