"""MLflow: the only module that talks to it.

One experiment per suite, a parent run per invocation, a child run per cell. Runs carry the
host and pid that own them, so a run left RUNNING by a killed process can be recognised and
closed at the next start.
"""

from __future__ import annotations

import math
import os
import socket
import tempfile
from pathlib import Path

from clusterbench.core.errors import UserError
from clusterbench.run.locks import pid_alive

CELL_KEY_TAG = "clusterbench.cell_key"
ROLE_TAG = "clusterbench.role"
HOST_TAG = "clusterbench.host"
PID_TAG = "clusterbench.pid"
REASON_TAG = "clusterbench.failure_reason"
MAX_PARAM_CHARS = 6000


def default_tracking_uri(results_dir: Path) -> str:
    return f"sqlite:///{(Path(results_dir) / 'mlflow.db').resolve()}"


def _clean_metrics(metrics: dict) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float) and math.isfinite(value):
            out[key] = float(value)
    return out


class Tracker:
    def __init__(self, tracking_uri: str, experiment: str, artifact_root: Path | None = None):
        import logging

        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # schema-migration chatter on every new store

        self.uri = tracking_uri
        self.client = MlflowClient(tracking_uri)
        try:
            exp = self.client.get_experiment_by_name(experiment)
            if exp is None:
                location = Path(artifact_root).resolve().as_uri() if artifact_root else None
                self.experiment_id = self._create_experiment(experiment, location)
            else:
                self.experiment_id = exp.experiment_id
        except Exception as e:  # noqa: BLE001 - store problems of any kind get one line
            raise UserError(f"MLflow store {tracking_uri}: {type(e).__name__}: {str(e).splitlines()[0]}") from None

    def _create_experiment(self, name: str, location: str | None) -> str:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.create_experiment(name, artifact_location=location)
        except MlflowException:
            # Another process created it between our lookup and create.
            return self.client.get_experiment_by_name(name).experiment_id

    # -- runs ---------------------------------------------------------------------------------
    def start_run(self, name: str, tags: dict, parent_id: str | None = None) -> str:
        tags = {**tags, HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
        if parent_id:
            tags["mlflow.parentRunId"] = parent_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags={k: str(v) for k, v in tags.items()})
        return run.info.run_id

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status)

    def log_params(self, run_id: str, params: dict) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:MAX_PARAM_CHARS]) for k, v in sorted(params.items())]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i:i + 100])

    def log_metrics(self, run_id: str, metrics: dict, step: int = 0) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, step) for k, v in sorted(_clean_metrics(metrics).items())]
        for i in range(0, len(items), 500):
            self.client.log_batch(run_id, metrics=items[i:i + 500])

    def log_metric_steps(self, run_id: str, steps) -> None:
        """A metric history in few calls: ``steps`` is a list of (step, {name: value}) rows
        (e.g. one row per Optuna trial)."""
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, int(step)) for step, metrics in steps for k, v in sorted(_clean_metrics(metrics).items())]
        for i in range(0, len(items), 1000):
            self.client.log_batch(run_id, metrics=items[i:i + 1000])

    def set_tags(self, run_id: str, tags: dict) -> None:
        for key, value in tags.items():
            self.client.set_tag(run_id, key, str(value)[:5000])

    def log_json(self, run_id: str, name: str, obj) -> None:
        self.client.log_dict(run_id, obj, name)

    def log_text(self, run_id: str, name: str, text: str) -> None:
        self.client.log_text(run_id, text, name)

    def log_figure(self, run_id: str, figure, name: str) -> None:
        self.client.log_figure(run_id, figure, name)

    def log_file(self, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def log_array_csv(self, run_id: str, name: str, header: str, columns) -> None:
        import numpy as np

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            np.savetxt(path, np.column_stack(columns), fmt="%d", delimiter=",", header=header, comments="")
            self.log_file(run_id, path)

    # -- resume -------------------------------------------------------------------------------
    def finished_cells(self) -> dict[str, object]:
        """cell key -> the newest FINISHED child run with that key."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{ROLE_TAG}` = 'cell' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=50000,
        )
        done: dict[str, object] = {}
        for run in runs:
            done.setdefault(run.data.tags.get(CELL_KEY_TAG), run)
        return done

    def finished_run(self, cell_key: str):
        """The newest FINISHED run of one cell, or None (checked again under the cell's lock)."""
        key = cell_key.replace("'", "\\'")
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{CELL_KEY_TAG}` = '{key}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0] if runs else None

    def close_orphans(self) -> list[str]:
        """Mark KILLED the RUNNING runs of this host whose process no longer exists."""
        host = socket.gethostname()
        runs = self.client.search_runs([self.experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=50000)
        closed = []
        for run in runs:
            tags = run.data.tags
            if tags.get(HOST_TAG) != host:
                continue
            try:
                pid = int(tags.get(PID_TAG, "-1"))
            except ValueError:
                continue
            if pid != os.getpid() and not pid_alive(pid):
                self.client.set_tag(run.info.run_id, REASON_TAG, f"process {pid} ended without closing the run")
                self.end_run(run.info.run_id, "KILLED")
                closed.append(run.info.run_id)
        return closed
