"""The one place that writes runs: a suite's parent run and each cell's run, from the records the
stages return (:mod:`clusterbench.run.stages`). Nothing else in the harness writes MLflow; a method
that logs while it trains (DeepCluster's per-epoch curves) gets callbacks made here."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from clusterbench.core.artifacts import Artifacts
from clusterbench.core.errors import UserError, one_line_reason

from .run_names import cell_run_name, suite_run_name
from .tracking import CELL_KEY_TAG, REASON_TAG, ROLE_TAG, Tracker, read_assignments


class Recorder:
    def __init__(self, tracker: Tracker, log: Callable[[str], None] | None = None):
        self.tracker = tracker
        self.log = log or (lambda message: None)

    @property
    def experiment_name(self) -> str:
        return self.tracker.experiment_name

    # -- the suite ----------------------------------------------------------------------------------
    def start_suite(self, name: str, source: str, params: dict, tags: dict, calibration: float | None = None) -> str:
        parent = self.tracker.start_run(suite_run_name(name, datetime.now()),
                                        {ROLE_TAG: "suite", "suite": name, "suite_file": source, **tags})
        self.tracker.log_params(parent, params)
        if calibration is not None:  # the machine's speed beside the timings (clusterbench compare)
            self.tracker.log_params(parent, {"calibration_seconds": f"{calibration:.6g}"})
            self.tracker.log_metrics(parent, {"calibration_seconds": calibration})
        return parent

    def finish_suite(self, parent: str, results, status: str, title: str, html: bool,
                     artifacts: Artifacts | None = None, recommendations: list | None = None) -> None:
        """Cell counts, the summary JSON, the recommendations, aggregates over seeds and
        report.html, then the status."""
        from .suite_summary import log_suite_summary

        counts = {s: sum(r.status == s for r in results) for s in ("ok", "failed", "skipped")}
        self.tracker.log_metrics(parent, {f"cells_{s}": n for s, n in counts.items()})
        self.tracker.log_json(parent, "summary.json", {"cells": [r.to_json() for r in results],
                                                        "recommendations": recommendations or []})
        if recommendations:
            self.tracker.log_json(parent, "recommendations.json", recommendations)
            self.tracker.set_tags(parent, {"recommendation": "; ".join(
                f"{r['dataset']}: {r['cell_key']}" for r in recommendations)[:5000]})
            regrets = [r["selection_regret_nmi"] for r in recommendations if "selection_regret_nmi" in r]
            if regrets:
                self.tracker.log_metrics(parent, {"selection_regret_nmi": sum(regrets) / len(regrets)})
        if artifacts is not None:
            self.write(parent, artifacts)
        log_suite_summary(self.tracker, parent, results, title, html=html, log=self.log)
        self.tracker.end_run(parent, status)

    # -- a cell -------------------------------------------------------------------------------------
    def start_cell(self, cell, parent: str, tags: dict) -> str:
        reduce = cell.reduce.describe() if cell.reduce else None
        name = cell_run_name(cell.dataset, cell.embedder, cell.clusterer, cell.requested_k, reduce, cell.seed)
        return self.tracker.start_run(name, {ROLE_TAG: "cell", CELL_KEY_TAG: cell.key, "dataset": str(cell.dataset),
                                             "embedder": str(cell.embedder), "clusterer": str(cell.clusterer),
                                             **tags}, parent)

    def start_embedding(self, cell, parent: str) -> str:
        """A run of its own for an embedding computed apart from its cells (a worker's embed task)
        by a method that logs while it trains."""
        return self.tracker.start_run(f"embed {cell.dataset.name}/{cell.embedder.name}",
                                      {ROLE_TAG: "embedding", "dataset": str(cell.dataset),
                                       "embedder": str(cell.embedder)}, parent)

    def dataset(self, run_id: str, cell, data) -> None:
        """The runs table's Dataset column, and the files a dataset skipped."""
        source = str(data.info.get("root") or data.name or cell.dataset)
        self.tracker.log_dataset(run_id, str(cell.dataset), data.fingerprint, source, n=len(data))
        if data.info.get("skipped"):
            self.tracker.log_text(run_id, "skipped_files.txt", "\n".join(data.info["skipped"]))

    def params(self, run_id: str, params: dict) -> None:
        self.tracker.log_params(run_id, params)

    def tags(self, run_id: str, tags: dict) -> None:
        self.tracker.set_tags(run_id, {k: v for k, v in tags.items() if v is not None})

    def step_loggers(self, run_id: str | None):
        """(log_metrics(metrics, step), log_figure(figure, name)) writing into ``run_id``."""
        if run_id is None:
            return None, None
        return (lambda metrics, step: self.tracker.log_metrics(run_id, metrics, step=step),
                lambda figure, name: self.tracker.log_figure(run_id, figure, name))

    def write(self, run_id: str, artifacts: Artifacts) -> None:
        """A stage's artifacts; a figure that fails becomes ``<stem>_error.txt`` with the reason."""
        if artifacts.steps:
            self.tracker.log_metric_steps(run_id, artifacts.steps)
        if artifacts.metrics:
            self.tracker.log_metrics(run_id, artifacts.metrics)
        for name, obj in artifacts.json.items():
            self.tracker.log_json(run_id, name, obj)
        for name, text in artifacts.text.items():
            self.tracker.log_text(run_id, name, text)
        for name, draw in artifacts.figures.items():
            try:
                self.tracker.log_figure(run_id, draw(), name)
            except Exception as e:  # noqa: BLE001 - a figure is never worth a failed cell
                self.tracker.log_text(run_id, f"{name.rsplit('.', 1)[0]}_error.txt", one_line_reason(e))

    def scores(self, run_id: str, metrics: dict, tags: dict, stats: dict, columns: dict) -> None:
        """A finished cell's numbers: metrics, tags, metrics.json, the embedding's stats and each
        item's assignment."""
        self.tracker.log_metrics(run_id, metrics)
        self.tags(run_id, tags)
        self.tracker.log_json(run_id, "metrics.json", metrics)
        self.tracker.log_json(run_id, "embedding_info.json", stats)
        self.tracker.log_table_csv(run_id, "assignments.csv", columns)

    def pictures(self, run_id: str, data, X, labels, seed: int, title: str) -> None:
        """Gallery, contingency, map and sizes under pictures/ (a failure is tagged, not fatal)."""
        from .pictures import log_cell_pictures

        log_cell_pictures(self.tracker, run_id, data, X, labels, seed=seed, title=title, log=self.log)

    def files(self, run_id: str, paths, folder: str) -> None:
        for path in paths:
            self.tracker.log_file(run_id, Path(path), folder)

    def note(self, run_id: str, name: str, text: str) -> None:
        self.tracker.log_text(run_id, name, text)

    def failed(self, run_id: str, exc: BaseException) -> str:
        """The cell failed: its reason as a tag (and the traceback, unless a user's mistake)."""
        reason = one_line_reason(exc)
        self.tracker.set_tags(run_id, {REASON_TAG: reason})
        if not isinstance(exc, UserError):
            self.tracker.log_text(run_id, "traceback.txt", "".join(traceback.format_exception(exc)))
        self.tracker.end_run(run_id, "FAILED")
        return reason

    def killed(self, run_id: str) -> None:
        self.tracker.set_tags(run_id, {REASON_TAG: "interrupted"})
        self.tracker.end_run(run_id, "KILLED")

    def finished(self, run_id: str) -> None:
        self.tracker.end_run(run_id, "FINISHED")

    # -- what is already there ----------------------------------------------------------------------
    def close_orphans(self) -> list[str]:
        return self.tracker.close_orphans()

    def finished_cells(self) -> dict:
        return self.tracker.finished_cells()

    def finished_run(self, cell_key: str):
        return self.tracker.finished_run(cell_key)

    def delete_unfinished(self, cell_key: str) -> list[str]:
        return self.tracker.delete_unfinished(cell_key)

    def labels_of(self, run_id: str):
        """The cluster of each item a finished cell recorded (its assignments.csv), or None."""
        import tempfile

        import numpy as np

        try:
            with tempfile.TemporaryDirectory(prefix="clusterbench-labels-") as tmp:
                rows = read_assignments(self.tracker.client, run_id, tmp)
            return np.array([int(row["cluster"]) for row in rows], dtype=np.int64)
        except Exception:  # noqa: BLE001 - an older run without the file is left out of the recommendation
            return None
