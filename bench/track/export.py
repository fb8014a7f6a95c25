"""What ``clusterbench export`` reads from MLflow: which cell (named, the suite's recommendation,
or the only one), its assignments (with each item's ``source``), its params (the dataset spec and
root) and the pictures logged under ``pictures/``. Everything a user can get wrong here (no
store, an unknown experiment or cell) is one line naming what exists."""

from __future__ import annotations

import difflib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from clusterbench.core.errors import UserError

from .pictures import ARTIFACT_DIR
from .tracking import ROLE_TAG, check_tracking_server, finished_cell_runs, quiet_download, read_assignments

PREFIX = "clusterbench/"
RECOMMENDATIONS = "recommendations.json"  # on the suite's run: [{dataset, cell_key, ...}, ...]
LISTED_KEYS = 12  # cell keys named in one error line at most


@dataclass
class CellExport:
    """One finished cell, as the export needs it."""

    experiment: str
    key: str
    run_id: str
    params: dict
    rows: list[dict]  # assignments.csv: index, cluster, [label], source, ...
    pictures: dict[str, bytes] = field(default_factory=dict)  # file name -> PNG bytes
    chosen_by: str = ""  # how the cell was picked, for the user


def store_exists(tracking_uri: str) -> bool:
    """A sqlite store is a file that must already be there (MLflow would create an empty one)."""
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri[len("sqlite:///"):]).is_file()
    return True


def fetch_cell(tracking_uri: str, experiment: str | None = None, cell: str | None = None) -> CellExport:
    """The cell to export: ``cell`` by key, else the newest suite run's recommendation, else the
    only finished cell; ``UserError`` (one line) when that cannot be decided."""
    check_tracking_server(tracking_uri)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiments = _experiments(client, experiment)
    finished = {}  # key -> (experiment name, run), newest run of each key
    for exp in experiments:
        for key, run in finished_cell_runs(client, exp.experiment_id).items():
            if key not in finished or run.info.start_time > finished[key][1].info.start_time:
                finished[key] = (exp.name, run)
    if not finished:
        raise UserError(f"no finished cell in {_where(experiments)}; run a suite first")
    key, chosen_by = _choose(client, experiments, finished, cell)
    name, run = finished[key]
    with tempfile.TemporaryDirectory(prefix="clusterbench-export-") as tmp:
        rows = _assignments(client, run.info.run_id, tmp)
        pictures = _pictures(client, run.info.run_id, tmp)
    return CellExport(name, key, run.info.run_id, dict(run.data.params), rows, pictures, chosen_by)


def _experiments(client, experiment: str | None) -> list:
    ours = [e for e in client.search_experiments() if e.name.startswith(PREFIX)]
    if not ours:
        raise UserError("no clusterbench results in this store; run a suite first")
    if experiment is None:
        return ours
    named = [e for e in ours if e.name in (experiment, PREFIX + experiment)]
    if not named:
        names = [e.name.removeprefix(PREFIX) for e in ours]
        raise UserError(f"--experiment {experiment}: no such experiment{_closest(experiment, names)}; "
                        f"known: {', '.join(sorted(names))}")
    return named


def _choose(client, experiments, finished: dict, cell: str | None) -> tuple[str, str]:
    keys = sorted(finished)
    if cell is not None:
        if cell in finished:
            return cell, "--cell"
        raise UserError(f"--cell {cell}: no finished cell with this key in {_where(experiments)}"
                        f"{_closest(cell, keys)}")
    recommended = [k for k in _recommended(client, experiments) if k in finished]
    if len(recommended) == 1:
        return recommended[0], "recommended by the suite"
    if len(keys) == 1:
        return keys[0], "the only finished cell"
    choices = recommended if len(recommended) > 1 else keys
    what = "the suite recommends one cell per dataset" if len(recommended) > 1 else f"{len(keys)} finished cells"
    shown = ", ".join(choices[:LISTED_KEYS]) + (f", ... ({len(choices)} in all)" if len(choices) > LISTED_KEYS else "")
    raise UserError(f"{what} in {_where(experiments)}: name one with --cell KEY ({shown})")


def _recommended(client, experiments) -> list[str]:
    """The cell keys the newest suite run recommends (none when it recorded no recommendations)."""
    import json

    runs = client.search_runs([e.experiment_id for e in experiments], filter_string=f"tags.`{ROLE_TAG}` = 'suite'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        return []
    with tempfile.TemporaryDirectory(prefix="clusterbench-export-") as tmp:
        try:
            text = Path(quiet_download(client, runs[0].info.run_id, RECOMMENDATIONS, tmp)).read_text()
            entries = json.loads(text)
        except Exception:  # noqa: BLE001 - a suite run without recommendations: fall back
            return []
    keys = [e.get("cell_key") for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
    return list(dict.fromkeys(k for k in keys if isinstance(k, str)))


def _assignments(client, run_id: str, tmp: str) -> list[dict]:
    try:
        return read_assignments(client, run_id, tmp)
    except Exception as e:  # noqa: BLE001 - the run's artifacts are gone or unreachable
        raise UserError(f"run {run_id}: cannot read its assignments.csv ({str(e).splitlines()[0][:200]})") from None


def _pictures(client, run_id: str, tmp: str) -> dict[str, bytes]:
    out = {}
    try:
        listed = client.list_artifacts(run_id, ARTIFACT_DIR)
    except Exception:  # noqa: BLE001 - no pictures: the browser shows the clusters without them
        return out
    for item in listed:
        if item.path.endswith(".png"):
            out[Path(item.path).name] = Path(quiet_download(client, run_id, item.path, tmp)).read_bytes()
    return out


def _where(experiments) -> str:
    return ", ".join(e.name for e in experiments)


def _closest(given: str, known: list[str]) -> str:
    match = difflib.get_close_matches(given, known, n=1, cutoff=0.3)
    return f" (closest: {match[0]})" if match else ""
