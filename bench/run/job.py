"""What a worker process of a suite needs to act as the suite's runner would (picklable)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to act as the suite's runner would."""

    results_dir: str
    tracking_uri: str
    experiment: str
    parent_run_id: str
    force: bool = False
    optuna_storage: str | None = None
    explain: int = 0
    pictures: bool = True

    def recorder(self):
        from pathlib import Path

        from clusterbench.track.recorder import Recorder
        from clusterbench.track.tracking import Tracker

        return Recorder(Tracker(self.tracking_uri, self.experiment, Path(self.results_dir) / "mlartifacts"))
