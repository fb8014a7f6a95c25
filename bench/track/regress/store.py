"""Sides read from a results folder's MLflow store: each configuration's newest finished cells (or
those of one revision), or one suite run by its id."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from clusterbench.core.errors import UserError

from ..portable import relocate_store
from ..tracking import CELL_KEY_TAG, ROLE_TAG, default_tracking_uri, finished_cell_runs
from .sides import Collector, Side, _number, from_summary

REVISION_TAG = "clusterbench.revision"  # written by clusterbench.run.revision
PARENT_TAG = "mlflow.parentRunId"


def open_store(results: Path):
    """The MLflow client over ``results``'s own store (pointed at its artifacts if the folder moved)."""
    import logging

    from mlflow.tracking import MlflowClient

    if not (results / "mlflow.db").is_file():
        raise UserError(f"{results}: not a results folder (no mlflow.db in it)")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    uri = default_tracking_uri(results)
    relocate_store(uri, results / "mlartifacts")
    return MlflowClient(uri)


def experiments(client, results: Path, name: str | None) -> list:
    found = client.search_experiments(filter_string="name LIKE 'clusterbench/%'")
    if name is None:
        if not found:
            raise UserError(f"{results}: no clusterbench experiment in this results folder")
        return found
    chosen = [e for e in found if e.name in (name, f"clusterbench/{name}")]
    if not chosen:
        known = ", ".join(e.name.removeprefix("clusterbench/") for e in found) or "none"
        raise UserError(f"--experiment {name}: no such experiment in {results} (there: {known})")
    return chosen


def suite_runs(client, experiment_ids: list[str], revision: str | None = None) -> list:
    """The FINISHED suite runs, oldest first (of one revision when given)."""
    filters = [f"tags.`{ROLE_TAG}` = 'suite'", "attributes.status = 'FINISHED'"]
    if revision is not None:
        label = revision.replace("'", "\\'")
        filters.append(f"tags.`{REVISION_TAG}` = '{label}'")
    return list(client.search_runs(experiment_ids, " and ".join(filters), max_results=50000,
                                   order_by=["attributes.start_time ASC"]))


def cell_runs_of(client, experiment_ids: list[str], parents: list) -> list:
    """FINISHED cell runs whose suite run is one of ``parents``, newest first."""
    wanted = {p.info.run_id for p in parents}
    runs = client.search_runs(experiment_ids, f"tags.`{ROLE_TAG}` = 'cell' and attributes.status = 'FINISHED'",
                              max_results=50000, order_by=["attributes.start_time DESC"])
    return [r for r in runs if r.data.tags.get(PARENT_TAG) in wanted]


def side_of_runs(label: str, cells: list, parents: list) -> Side:
    """A side from cell runs (the newest of each cell key counts) and the suite runs they belong to."""
    by_id = {p.info.run_id: p for p in parents}
    collected, seen = Collector(), set()
    for run in cells:  # newest first
        key = run.data.tags.get(CELL_KEY_TAG)
        if key is None or key in seen:
            continue
        seen.add(key)
        parent = by_id.get(run.data.tags.get(PARENT_TAG))
        collected.add_cell(key, run.data.params, run.data.metrics, calibration_of(parent))
    newest = parents[-1] if parents else None
    if newest is not None:
        collected.add_suite(newest.data.tags.get("suite", "suite"), newest.data.metrics)
    cals = [c for c in (calibration_of(p) for p in parents) if c is not None]
    versions = {k.removeprefix("version."): v for k, v in (cells[0].data.tags.items() if cells else ())
                if k.startswith("version.")}
    return Side(label, collected.configs(), revision=newest.data.tags.get(REVISION_TAG) if newest else None,
                calibration=cals[-1] if cals else None, versions=versions,
                suite=newest.data.tags.get("suite") if newest else None)


def calibration_of(parent) -> float | None:
    if parent is None:
        return None
    return _number(parent.data.metrics.get("calibration_seconds", parent.data.params.get("calibration_seconds")))


def from_store(results: Path, experiment: str | None = None, revision: str | None = None) -> Side:
    client = open_store(results)
    ids = [e.experiment_id for e in experiments(client, results, experiment)]
    parents = suite_runs(client, ids, revision)
    if revision is not None:
        if not parents:
            raise UserError(f"--revision {revision}: no finished suite run of that revision in {results}")
        cells = cell_runs_of(client, ids, parents)
    else:
        cells = sorted((run for i in ids for run in finished_cell_runs(client, i).values()),
                       key=lambda r: r.info.start_time, reverse=True)
    return side_of_runs(str(results) + (f" @ {revision}" if revision else ""), cells, parents)


def from_run(results: Path, run_id: str) -> Side:
    """A suite run by its id: what it reported (its summary.json: the cells it ran and those
    finished earlier), with its calibration and revision."""
    from mlflow.exceptions import MlflowException

    client = open_store(results)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise UserError(f"{run_id}: no such file, results folder or run in {results}") from None
    if run.data.tags.get(ROLE_TAG) != "suite":
        raise UserError(f"{run_id} is a cell's run; give its suite's run id ({run.data.tags.get(PARENT_TAG)})")
    try:
        with tempfile.TemporaryDirectory(prefix="clusterbench-compare-") as tmp:
            summary = json.loads(Path(client.download_artifacts(run_id, "summary.json", tmp)).read_text())
    except (OSError, MlflowException, ValueError):
        raise UserError(f"run {run_id} has no readable summary.json (a suite run that did not finish)") from None
    summary.update(suite=run.data.tags.get("suite"), revision=run.data.tags.get(REVISION_TAG),
                   calibration_seconds=calibration_of(run))
    return from_summary(summary, f"run {run_id[:12]}")
