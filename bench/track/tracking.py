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
from clusterbench.core.faults import as_fault, faults_named
from clusterbench.core.interrupts import shielded
from clusterbench.core.locks import pid_alive

CELL_KEY_TAG = "clusterbench.cell_key"
ROLE_TAG = "clusterbench.role"
HOST_TAG = "clusterbench.host"
PID_TAG = "clusterbench.pid"
REASON_TAG = "clusterbench.failure_reason"
# The tag MLflow 3's UI reads to open an experiment on its runs table (model training), not on
# the GenAI "send your first trace" page.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
MAX_PARAM_CHARS = 6000


PROBE_TIMEOUT_S = 3.0
_ANSWERED: set[str] = set()  # servers that answered the probe in this process (asked once)


def default_tracking_uri(results_dir: Path) -> str:
    return f"sqlite:///{(Path(results_dir) / 'mlflow.db').resolve()}"


def store_file(uri: str | None) -> Path | None:
    """The database file behind a ``sqlite:///`` tracking URI (None for other stores)."""
    if not uri or not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def check_store(uri: str, write: bool) -> None:
    """Before anything runs: a sqlite store is sound, readable, not held locked and, to be
    written, writable (:class:`StoreFault`, exit status 2); a reading command's store must exist
    (it is never created by reading)."""
    from clusterbench.core.writable import check_sqlite

    path = store_file(uri)
    if path is None:
        return
    if not write and not path.exists():
        where = f"results directory {path.parent}" if path.parent.is_dir() else f"{path.parent} (it does not exist)"
        raise UserError(f"no MLflow store in {where}: nothing has run there yet; give --results or --tracking-uri")
    check_sqlite(path, "the MLflow store", write=write)


def metric_names(uri: str, experiment: str | None = None) -> set[str]:
    """Every metric a finished cell run of the store's clusterbench experiments (or of one) carries."""
    check_tracking_server(uri)  # an unreachable server: one line in seconds, not minutes of retries
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiments = client.search_experiments(filter_string="name LIKE 'clusterbench/%'")
    ids = [e.experiment_id for e in experiments if experiment in (None, e.name, e.name.removeprefix("clusterbench/"))]
    if not ids:
        return set()
    runs = client.search_runs(ids, filter_string=f"tags.`{ROLE_TAG}` = 'cell' and attributes.status = 'FINISHED'",
                              max_results=1000)
    return {name for run in runs for name in run.data.metrics}


def check_tracking_server(uri: str | None, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Ask an http(s) tracking server for ``/health`` once, with a short timeout, before anything
    else: no answer is one line (``UserError``) within seconds, where MLflow's own client would
    retry for minutes and end in a many-line exception. Other stores (sqlite, files) pass."""
    if not uri or not uri.lower().startswith(("http://", "https://")) or uri in _ANSWERED:
        return
    import ssl
    import urllib.error
    import urllib.request

    context = None
    if uri.lower().startswith("https://") and os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        context = ssl._create_unverified_context()  # as MLflow's client does with this setting
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout, context=context) as response:
            response.read(64)
        _ANSWERED.add(uri)
    except urllib.error.HTTPError as e:
        if e.code >= 500:  # a proxy in front of a server that is down; MLflow would retry these
            raise UserError(f"MLflow tracking server {uri} is unreachable (HTTP {e.code} {e.reason})") from None
        # any other answer means a server is there; what it says to MLflow's calls is the Tracker's to report
        _ANSWERED.add(uri)
    except (OSError, ValueError) as e:  # URLError is an OSError
        reason = getattr(e, "reason", e)  # third-party: urllib's URLError carries the socket error
        raise UserError(f"MLflow tracking server {uri} is unreachable ({_why(reason, timeout)})") from None


def _why(reason, timeout: float) -> str:
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return " ".join(str(reason).split()) or type(reason).__name__


def finished_cell_runs(client, experiment_id: str, cell_key: str | None = None) -> dict[str, object]:
    """cell key -> the newest FINISHED cell run with that key, in one experiment (only that cell's
    when ``cell_key`` is given). The one query behind resuming a suite and the leaderboard."""
    filters = [f"tags.`{ROLE_TAG}` = 'cell'", "attributes.status = 'FINISHED'"]
    if cell_key is not None:
        key = cell_key.replace("'", "\\'")
        filters.append(f"tags.`{CELL_KEY_TAG}` = '{key}'")
    latest: dict[str, object] = {}
    token = None
    while True:  # newest first, page by page: a store may hold more runs than one page
        page = client.search_runs([experiment_id], filter_string=" and ".join(filters),
                                  order_by=["attributes.start_time DESC"],
                                  max_results=1 if cell_key is not None else 10000, page_token=token)
        for run in page:
            latest.setdefault(run.data.tags.get(CELL_KEY_TAG), run)
        token = page.token
        if cell_key is not None or not token:
            return latest


def mark_experiment_kinds(tracking_uri: str) -> list[str]:
    """Tag the store's clusterbench experiments that lack the experiment kind (made by an older
    version), so the UI opens them on their runs; an experiment with a kind keeps it. A server, or
    a sqlite file not there yet, is left alone."""
    if tracking_uri.startswith(("http://", "https://")) or (
            tracking_uri.startswith("sqlite:///") and not Path(tracking_uri[len("sqlite:///"):]).exists()):
        return []
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    marked = []
    for exp in client.search_experiments(filter_string="name LIKE 'clusterbench/%'"):
        if exp.tags.get(EXPERIMENT_KIND_TAG) is None:
            client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
            marked.append(exp.name)
    return marked


def quiet_download(client, run_id: str, name: str, dst: str) -> str:
    """``download_artifacts`` without MLflow's progress bar on stderr."""
    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR as bar

    before = os.environ.get(bar.name)
    os.environ[bar.name] = "false"
    try:
        return client.download_artifacts(run_id, name, dst)
    finally:
        if before is None:
            os.environ.pop(bar.name, None)
        else:
            os.environ[bar.name] = before


def read_assignments(client, run_id: str, dst: str) -> list[dict]:
    """A cell run's ``assignments.csv`` (each item's index, cluster, label and source) as rows."""
    import csv

    with open(quiet_download(client, run_id, "assignments.csv", dst), newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _clean_metrics(metrics: dict) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float) and math.isfinite(value):
            out[key] = float(value)
    return out


_ARTIFACT_CALLS = frozenset({"log_artifact", "log_artifacts", "log_dict", "log_text", "log_figure", "log_image"})


class _Shielded:
    """The MLflow client with every call shielded from Ctrl-C / SIGTERM: a stop waits for the
    write in progress, so the store is never left locked mid-transaction. A full disk, a
    read-only or damaged store becomes one line naming the store file (or the artifacts' folder;
    MLflow writes each artifact through a temp file, so a failed copy leaves nothing behind)."""

    def __init__(self, client, store: Path | None = None, artifacts: Path | None = None):
        self._client, self._store, self._artifacts = client, store, artifacts

    def __getattr__(self, name):
        attr = getattr(self._client, name)  # third-party: MlflowClient's methods, shielded
        if not callable(attr):
            return attr
        where = self._artifacts if name in _ARTIFACT_CALLS and self._artifacts else self._store

        def call(*args, **kwargs):
            with shielded(), faults_named(where):
                return attr(*args, **kwargs)

        return call


class Tracker:
    def __init__(self, tracking_uri: str, experiment: str, artifact_root: Path | None = None):
        import logging

        check_tracking_server(tracking_uri)  # before importing MLflow: an unreachable server fails in seconds

        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # schema-migration chatter on every new store
        # it logs each failed query with a traceback before raising it: the raised error is named in one line
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)

        self.uri = tracking_uri
        self.experiment_name = experiment
        if artifact_root is not None:  # a moved or restored results folder writes into itself
            from .portable import relocate_store

            with faults_named(store_file(tracking_uri), status=2):
                relocate_store(tracking_uri, artifact_root)
        self.client = _Shielded(MlflowClient(tracking_uri), store_file(tracking_uri),
                                artifact_root and Path(artifact_root).resolve())
        try:
            exp = self.client.get_experiment_by_name(experiment)
            if exp is None:
                location = Path(artifact_root).resolve().as_uri() if artifact_root else None
                self.experiment_id = self._create_experiment(experiment, location)
            else:
                self.experiment_id = exp.experiment_id
                if exp.tags.get(EXPERIMENT_KIND_TAG) is None:  # made before the tag, or by plain MLflow
                    self.client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        except Exception as e:  # noqa: BLE001 - store problems of any kind get one line
            fault = as_fault(e, store_file(tracking_uri), status=2)  # found before any cell ran
            raise fault or UserError(f"MLflow store {tracking_uri}: {type(e).__name__}: {str(e).splitlines()[0]}") from None

    def _create_experiment(self, name: str, location: str | None) -> str:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.create_experiment(name, artifact_location=location,
                                                 tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
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

    def log_dataset(self, run_id: str, name: str, digest: str, source: str, n: int | None = None) -> None:
        """The run's input dataset (what ``mlflow.log_input`` records), so the runs table shows it."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        profile = None if n is None else f'{{"num_rows": {int(n)}}}'
        dataset = Dataset(name=name, digest=str(digest)[:36], source_type="clusterbench", source=source, profile=profile)
        self.client.log_inputs(run_id, datasets=[DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "eval")])])

    def log_array_csv(self, run_id: str, name: str, header: str, columns) -> None:
        import numpy as np

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            np.savetxt(path, np.column_stack(columns), fmt="%d", delimiter=",", header=header, comments="")
            self.log_file(run_id, path)

    def log_table_csv(self, run_id: str, name: str, columns: dict) -> None:
        """A CSV of named columns of any type (ints, floats, strings quoted where needed)."""
        import csv

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            with open(path, "w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f, lineterminator="\n")
                writer.writerow(list(columns))
                writer.writerows(zip(*(_plain(v) for v in columns.values()), strict=True))
            self.log_file(run_id, path)

    # -- resume -------------------------------------------------------------------------------
    def finished_cells(self) -> dict[str, object]:
        """cell key -> the newest FINISHED child run with that key."""
        return finished_cell_runs(self.client, self.experiment_id)

    def finished_run(self, cell_key: str):
        """The newest FINISHED run of one cell, or None (checked again under the cell's lock)."""
        return finished_cell_runs(self.client, self.experiment_id, cell_key).get(cell_key)

    def delete_unfinished(self, cell_key: str) -> list[str]:
        """Delete the cell's runs still RUNNING (attempts that died with their worker; the caller
        holds the cell's lock, so none is alive): the cell's retry is then its only record."""
        key = cell_key.replace("'", "\\'")
        runs = self.client.search_runs([self.experiment_id], max_results=1000, filter_string=(
            f"tags.`{CELL_KEY_TAG}` = '{key}' and attributes.status = 'RUNNING'"))
        for run in runs:
            self.client.delete_run(run.info.run_id)
        return [run.info.run_id for run in runs]

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


def _plain(column) -> list:
    """A column's values as Python scalars (numpy's int64 and float64 print as plain numbers)."""
    return [v.item() if hasattr(v, "item") else v for v in column]  # third-party: numpy scalars
