"""What running one cell gave: its status, parameters, metrics and MLflow run (JSON for --json)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from clusterbench.core.suite import Cell

JSON_METRICS = ("nmi", "ami", "ari", "acc", "purity", "silhouette", "calinski_harabasz", "davies_bouldin",
                "n_clusters", "noise_fraction", "embed_seconds", "throughput_img_per_s", "cluster_seconds")


@dataclass
class CellResult:
    cell: Cell
    status: str = "ok"
    error: str | None = None
    params: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    run_id: str | None = None
    cached: bool = False
    k_curve: dict = field(default_factory=dict)  # the K sweep's per-K score, NMI, AMI (k=auto, auto:NAME)
    # each item's cluster, kept in memory for the suite's recommendation (not in --json: assignments.csv has it)
    labels: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict:
        metrics = {k: self.metrics.get(k) for k in JSON_METRICS}
        metrics.update({k: v for k, v in self.metrics.items() if k not in metrics})
        return {
            "key": self.cell.key,
            "dataset": str(self.cell.dataset),
            "embedder": str(self.cell.embedder),
            "clusterer": str(self.cell.clusterer),
            "status": self.status,
            "error": self.error,
            "cached": self.cached,
            "params": self.params,
            "metrics": metrics,
            "mlflow_run_id": self.run_id,
            **({"k_curve": self.k_curve} if self.k_curve else {}),
        }
