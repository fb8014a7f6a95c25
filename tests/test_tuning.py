"""--k auto: real Optuna studies on sqlite (and PostgreSQL where one can be started), real digits,
real MLflow stores through the CLI."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient

from clusterbench.cli import main
from clusterbench.core.registry import Spec
from clusterbench.core.suite import Cell
from clusterbench.k.tuning import Tuner, tune_cell

KM = ("-d", "digits", "-e", "pixels", "-c", "kmeans")


def study_of(url) -> optuna.Study:
    (summary,) = optuna.get_all_study_summaries(url)
    return optuna.load_study(study_name=summary.study_name, storage=url)


def finished(study) -> list:
    return [t for t in study.get_trials() if t.state.is_finished()]


def child_run(store: str, run_id: str):
    client = MlflowClient(store)
    return client, client.get_run(run_id)


@pytest.mark.slow
def test_k_auto_on_digits_finds_the_silhouette_peak(cli, store, results_dir, tmp_path, capsys):
    status, _, err, summary = cli(*KM, "--k", "auto", "--tune", "objective=silhouette")  # an objective: the study
    assert status == 0, err
    (cell,) = summary["cells"]
    p = cell["params"]
    # Silhouette of k-means on digits pixels peaks at K=9..11 (0.189-0.190; REFERENCE.md: K=9 0.189, K=10 0.187).
    assert p["k"] in (9, 10, 11) and p["k_source"] == "optuna"
    assert p["objective"] == "silhouette" and p["sampler"] == "grid"
    assert p["n_trials"] == p["n_trials_complete"] == p["n_trials_requested"] == 49  # K = 2..min(50, 1797/10)
    assert p["n_trials_run_now"] == 49 and p["silhouette_sample"] == 2000
    assert cell["metrics"]["silhouette"] == pytest.approx(p["best_silhouette"], abs=1e-4)
    assert cell["metrics"]["silhouette"] > 0.185 and cell["metrics"]["n_clusters"] == p["k"]

    url = f"sqlite:///{results_dir / 'optuna.db'}"
    study = study_of(url)
    assert study.study_name == p["study_name"]
    trials = finished(study)
    assert sorted(t.params["k"] for t in trials) == list(range(2, 51))  # every K once
    sil = {t.params["k"]: t.values[0] for t in trials}
    assert sil[p["k"]] == max(sil.values())
    assert sil[9] == pytest.approx(0.189, abs=0.003) and sil[2] == pytest.approx(0.117, abs=0.01)

    # MLflow: chosen parameters, the trial history by step, the figure and the trial table.
    client, run = child_run(store, cell["mlflow_run_id"])
    assert run.data.params["k_source"] == "optuna" and run.data.params["n_trials"] == "49"
    assert run.data.params["sampler"] == "grid" and run.data.params["objective"] == "silhouette"
    history = client.get_metric_history(run.info.run_id, "trial.silhouette")
    assert sorted(m.step for m in history) == sorted(t.number for t in trials)
    ks = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "trial.k")}
    assert sorted(ks.values()) == list(range(2, 51))
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "tuning")}
    assert {"tuning/objective_vs_k.png", "tuning/trials.json"} <= artifacts
    table = json.loads(Path(client.download_artifacts(run.info.run_id, "tuning/trials.json", str(tmp_path))).read_text())
    assert len(table["trials"]) == 49 and all(0 < t["nmi_after_the_fact"] < 1 for t in table["trials"])
    nmi_at_k = next(t["nmi_after_the_fact"] for t in table["trials"] if t["k"] == p["k"])
    assert nmi_at_k == pytest.approx(cell["metrics"]["nmi"], abs=1e-6)  # same fit, scored after the fact

    # The leaderboard: K, how it was chosen, the true number of classes.
    assert main(["report", "--tracking-uri", store]) == 0
    assert f"| digits | pixels | kmeans | 0 | {p['k']} | optuna | 10 |" in capsys.readouterr().out



@pytest.mark.slow
def test_the_same_command_again_resumes_the_stored_study(cli, store, results_dir):
    args = ("-d", "digits:limit=400", "-e", "pixels", "-c", "kmeans", "--k", "auto", "--tune", "k_max=8,objective=silhouette")
    status, _, err, first = cli(*args)
    assert status == 0, err
    p = first["cells"][0]["params"]
    assert "new study" in err and p["n_trials_run_now"] == p["n_trials"] == 7
    # While MLflow holds the finished cell a rerun skips it; without that record (deleted, or
    # another machine's store) the cell runs again and its study resumes instead of restarting.
    MlflowClient(store).delete_run(first["cells"][0]["mlflow_run_id"])
    status, _, err, again = cli(*args, json_name="again.json")
    assert status == 0, err
    q = again["cells"][0]["params"]
    assert "resuming study" in err and q["study_name"] == p["study_name"]
    assert q["n_trials_run_now"] == 0 and q["n_trials"] == 7 and q["k"] == p["k"]
    assert len(study_of(f"sqlite:///{results_dir / 'optuna.db'}").get_trials()) == 7  # not doubled


def digits_cell(clusterer="kmeans:max_iter=30", limit=None, **tune):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (np.rint(X * 255 / 16) / 255).astype(np.float32)
    if limit:
        X, y = X[:limit], y[:limit]
    data = SimpleNamespace(labels=y, fingerprint=f"digits-{limit}", n_classes=10)
    cell = Cell(Spec.parse("digits"), Spec.parse("pixels"), Spec.parse(clusterer), 0, "auto", None, tune)
    return cell, data, X


def clusterers():
    from clusterbench.methods.clusterers import CLUSTERERS

    return CLUSTERERS


@pytest.mark.slow
def test_more_trials_later_continue_the_study_and_dead_workers_trials_are_redone(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    quiet = {"log": lambda msg: None}
    cell, data, X = digits_cell(k_max=15, n_trials=5)
    first = tune_cell(cell, data, X, clusterers(), storage=url, **quiet)
    assert first.params["n_trials"] == 5 and first.params["sampler"] == "grid"

    # A worker that died mid-trial: it took a queued trial, its heartbeat beat once, then stopped.
    cell, data, X = digits_cell(k_max=15, n_trials=14, heartbeat=1)  # dead after 3 s without a heartbeat
    tuner = Tuner(cell, data, X, clusterers(), url, log=lambda msg: None)
    tuner.prepare()  # queues the 9 new slots
    taken = tuner.shared.study.ask()
    tuner.shared.storage.record_heartbeat(taken._trial_id)
    time.sleep(4.5)  # sqlite's clock has whole seconds

    lines = []
    second = tune_cell(cell, data, X, clusterers(), storage=url, log=lines.append)
    assert any("dead worker" in line for line in lines)
    assert second.params["study_name"] == first.params["study_name"]  # more trials: the same study
    assert second.params["n_trials"] == second.params["n_trials_complete"] == 14
    assert second.params["n_trials_run_now"] == 9  # 14 - 5, the dead worker's slot included
    trials = study_of(url).get_trials()
    dead = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert [t.number for t in dead] == [taken.number]
    (redo,) = [t for t in trials if t.system_attrs.get("failed_trial") == taken.number]
    assert redo.state == optuna.trial.TrialState.COMPLETE and redo.user_attrs["slot"] == dead[0].user_attrs["slot"]
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.params["k"] for t in done) == list(range(2, 16))


@pytest.mark.parametrize(
    "args, message",
    [
        (("--tune", "objective=nmi"), "objective=nmi is a label-based metric"),
        (("--tune", "objective=silhouette+ari"), "objective=ari is a label-based metric"),
        (("--tune", "objective=inertia"), "objective='inertia': unknown"),
        (("--tune", "n_trial=5"), "unknown tune key(s) ['n_trial']"),
        (("--tune", "sampler=cmaes"), "sampler='cmaes'"),
    ],
)
def test_bad_tuning_settings_exit_2_with_one_line(cli, results_dir, args, message):
    status, out, err, summary = cli(*KM, "--k", "auto", *args)
    assert status == 2 and summary is None
    assert err.count("\n") == 1 and err.startswith("clusterbench: error: ") and message in err
    assert not (results_dir / "optuna.db").exists()  # refused before anything ran


def test_label_objective_in_a_suite_file_is_refused(run_cli, tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text('datasets = ["digits"]\nembedders = ["pixels"]\nclusterers = ["kmeans"]\nk = "auto"\n'
                     '[tune]\nobjective = ["silhouette", "acc"]\n')
    status, _, err, _ = run_cli(str(suite))
    assert status == 2 and "label-based" in err and "leak" in err


@pytest.mark.slow
def test_failing_trials_are_recorded_and_the_study_goes_on(cli, store, results_dir):
    # Micro-clusters: 12 of them, so every K above 12 fails inside the clusterer.
    status, _, err, summary = cli("-d", "digits:limit=500", "-e", "pixels", "-c", "agglomerative:linkage=ward,max_points=100,n_micro=12",
                                      "--k", "auto", "--tune", "k_max=16,objective=silhouette")
    assert status == 0, err
    p = summary["cells"][0]["params"]
    assert p["n_trials"] == 15 and p["n_trials_failed"] == 4 and p["n_trials_complete"] == 11
    assert 2 <= p["k"] <= 12 and p["k_source"] == "optuna"
    failed = [t for t in study_of(f"sqlite:///{results_dir / 'optuna.db'}").get_trials()
              if t.state == optuna.trial.TrialState.FAIL]
    assert sorted(t.params["k"] for t in failed) == [13, 14, 15, 16]
    assert all("exceeds the number of points (12)" in t.user_attrs["error"] for t in failed)
    client, run = child_run(store, summary["cells"][0]["mlflow_run_id"])
    flags = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "trial.failed")}
    assert sum(flags.values()) == 4


@pytest.mark.slow
def test_agglomerative_tunes_its_linkage_and_hdbscan_its_density_parameters(cli):
    status, _, err, summary = cli("-d", "digits:limit=300", "-e", "pixels", "-c", "agglomerative", "-c", "hdbscan",
                                      "--k", "auto", "--tune", "k_max=6,n_trials=8")
    assert status == 0, err
    agglo, hdb = (c["params"] for c in summary["cells"])
    assert agglo["sampler"] == "grid" and agglo["n_trials"] == 8  # a seeded 8 of the 5 x 4 grid
    assert agglo["search_space"] == "k=2..6; linkage in {ward,average,complete,single}"
    assert agglo["tuned.linkage"] in ("ward", "average", "complete", "single") and 2 <= agglo["k"] <= 6
    assert hdb["sampler"] == "tpe" and hdb["n_trials"] == 8 and hdb["k_source"] == "optuna"
    assert "min_cluster_size=5..30 (log)" in hdb["search_space"] and "min_samples=1..50 (log)" in hdb["search_space"]
    assert {"tuned.min_cluster_size", "tuned.min_samples"} <= set(hdb)
    # K for HDBSCAN is what its best trial found; the final fit (same parameters) finds it again.
    assert hdb["k"] == summary["cells"][1]["metrics"]["n_clusters"] >= 2


@pytest.mark.slow
def test_several_objectives_and_a_tuned_pca_dimension(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    cell, data, X = digits_cell(limit=500, objective="silhouette+davies_bouldin", k_max=10, pca_dims="8+16")
    choice = tune_cell(cell, data, X, clusterers(), storage=url, log=lambda msg: None)
    p = choice.params
    assert p["objective"] == "silhouette+davies_bouldin" and p["select"] == "rank" and p["n_trials"] == 18
    assert p["tuned.pca"] in (8, 16) and choice.reduce.pca == p["tuned.pca"] == p["feature_dim"]
    assert "pca" not in choice.overrides and choice.overrides["k"] == p["k"]
    study = study_of(url)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["silhouette", "davies_bouldin"]
    chosen = next(t for t in study.trials if t.number == p["best_trial"])
    assert chosen.number in {t.number for t in study.best_trials}  # on the Pareto front


# -- several processes on one storage ----------------------------------------------------------------
# Each worker is a fresh Python process (importing only the tuner, the clusterers and sklearn) that
# starts tuning when both are ready, as two `clusterbench run` processes on two machines would.
WORKER = """
import json, os, sys, time
from types import SimpleNamespace
import numpy as np
from sklearn.datasets import load_digits
from clusterbench.methods.clusterers import CLUSTERERS
from clusterbench.core.registry import Spec
from clusterbench.core.suite import Cell
from clusterbench.k.tuning import tune_cell

url, tune, ready, me = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
X, y = load_digits(return_X_y=True)
X = (np.rint(X * 255 / 16) / 255).astype(np.float32)
data = SimpleNamespace(labels=y, fingerprint="digits-None", n_classes=10)
cell = Cell(Spec.parse("digits"), Spec.parse("pixels"), Spec.parse("kmeans:max_iter=30"), 0, "auto", None, tune)
open(os.path.join(ready, me), "w").close()
while len(os.listdir(ready)) < 2:
    time.sleep(0.01)
choice = tune_cell(cell, data, X, CLUSTERERS, storage=url, log=lambda msg: None)
print(json.dumps([os.getpid(), choice.params["k"], choice.params["n_trials_run_now"], choice.params["n_trials"]]))
"""


def run_two_workers(url: str, tune: dict, tmp_path: Path) -> list[tuple]:
    ready = tmp_path / "ready"
    ready.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, url, json.dumps(tune), str(ready), f"w{i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    return [tuple(json.loads(out.strip().splitlines()[-1])) for out, _ in outs]


def check_shared_study(url, reports: list[tuple], n: int) -> None:
    assert sum(r[2] for r in reports) == n  # every trial run by exactly one of them
    assert len({r[1] for r in reports}) == 1 and all(r[3] == n for r in reports)  # the same choice
    trials = study_of(url).get_trials()
    assert len(trials) == n and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    ks = [t.params["k"] for t in trials]
    assert len(set(ks)) == n  # no grid point evaluated twice
    assert sorted(t.user_attrs["slot"] for t in trials) == list(range(n))


@pytest.mark.slow
def test_two_processes_complete_one_study_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    reports = run_two_workers(url, {"k_max": 25, "n_trials": 16, "sampler": "grid"}, tmp_path)
    check_shared_study(url, reports, 16)


@pytest.mark.slow
def test_two_processes_complete_one_study_on_a_journal_file(tmp_path):
    url = f"journal:{tmp_path / 'optuna.journal'}"
    reports = run_two_workers(url, {"k_max": 17, "n_trials": 10, "sampler": "grid"}, tmp_path)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "optuna.journal")))
    check_shared_study(storage, reports, 10)


def _pg_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return str(Path(found[-1]).parent) if found else (os.path.dirname(shutil.which("initdb") or "") or None)


@pytest.fixture
def postgres(tmp_path_factory):
    """A throwaway PostgreSQL server on 127.0.0.1 (as 'nobody' when we are root: initdb refuses root)."""
    pytest.importorskip("psycopg2", reason="psycopg2-binary not installed (needed for a PostgreSQL storage URL)")
    bindir = _pg_bin()
    if not bindir:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed")
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="cb-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        if not shutil.which("runuser"):
            pytest.skip("running as root and runuser is missing: initdb refuses to run as root")
        os.chmod(root, 0o755)
        shutil.chown(root, "nobody")
        prefix = ["runuser", "-u", "nobody", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"
    try:
        subprocess.run([*prefix, f"{bindir}/initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
                       check=True, capture_output=True, timeout=60)
        subprocess.run([*prefix, f"{bindir}/pg_ctl", "-D", str(data), "-l", str(root / "log"), "-w", "-t", "30",
                        "-o", f"-k {root} -p {port} -h 127.0.0.1 -F", "start"], check=True, capture_output=True, timeout=60)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"could not start a throwaway PostgreSQL server: {e}")
    try:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE optuna")
        conn.close()
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run([*prefix, f"{bindir}/pg_ctl", "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_two_processes_complete_one_study_on_postgresql(postgres, tmp_path):
    started = time.monotonic()
    reports = run_two_workers(postgres, {"k_max": 21, "n_trials": 12, "sampler": "grid"}, tmp_path)
    check_shared_study(postgres, reports, 12)
    assert time.monotonic() - started < 120
