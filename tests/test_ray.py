"""Suites on a real local Ray cluster: the same metrics as the local executor, each cell once in
MLflow, an Optuna K search with exactly n_trials across workers, and an unreachable head refused fast."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

pytest.importorskip("ray")

GRID = ["-d", "digits", "-e", "pixels", "-e", "alexnet:weights=none", "-c", "kmeans", "-c", "agglomerative", "--k", "10"]
QUALITY = ("nmi", "ami", "ari", "acc", "n_clusters")


def _run(tmp_path, name: str, *args: str) -> tuple[subprocess.CompletedProcess, dict | None]:
    out = tmp_path / f"{name}.json"
    done = subprocess.run([sys.executable, "-m", "clusterbench.cli", "run", *args, "--results", str(tmp_path / name),
                           "--json", str(out), "--no-progress", "--pictures", "false"],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path)
    return done, (json.loads(out.read_text()) if out.exists() else None)


def _active_cell_runs(results) -> list:
    import mlflow

    from clusterbench.track.tracking import ROLE_TAG, default_tracking_uri

    client = mlflow.tracking.MlflowClient(default_tracking_uri(results))
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, filter_string=f"tags.`{ROLE_TAG}` = 'cell'", max_results=1000)


@pytest.mark.slow
def test_ray_gives_the_local_metrics_with_each_cell_once(tmp_path):
    local, here = _run(tmp_path, "local", *GRID)
    ray, there = _run(tmp_path, "ray", *GRID, "--executor", "ray")
    assert local.returncode == 0 and ray.returncode == 0, ray.stderr[-2000:]
    by_key = {c["key"]: c for c in there["cells"]}
    assert len(by_key) == 4
    for cell in here["cells"]:
        other = by_key[cell["key"]]
        assert other["status"] == "ok"
        for name in QUALITY:
            assert other["metrics"][name] == cell["metrics"][name], (cell["key"], name)
        assert other["metrics"]["silhouette"] == pytest.approx(cell["metrics"]["silhouette"], abs=1e-5)
    runs = _active_cell_runs(tmp_path / "ray")
    assert sorted(r.data.tags["clusterbench.cell_key"] for r in runs) == sorted(by_key)
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags["mlflow.parentRunId"] for r in runs}) == 1  # one suite run shows every child


@pytest.mark.slow
def test_an_optuna_k_search_on_ray_runs_exactly_n_trials_in_total(tmp_path):
    done, summary = _run(tmp_path, "tune", "-d", "digits:limit=600", "-e", "pixels", "-c", "agglomerative",
                         "--k", "auto", "--tune", "n_trials=12,k_min=5,k_max=15", "--executor", "ray")
    assert done.returncode == 0, done.stderr[-2000:]
    (cell,) = summary["cells"]
    assert cell["status"] == "ok" and cell["params"]["n_trials"] == 12 and cell["params"]["n_trials_requested"] == 12
    assert 5 <= cell["params"]["k"] <= 15


@pytest.mark.slow
def test_an_unreachable_ray_address_is_one_line_exit_2_within_seconds(tmp_path):
    start = time.monotonic()
    done, summary = _run(tmp_path, "nowhere", "-d", "digits", "-e", "pixels", "-c", "kmeans", "--k", "10",
                         "--executor", "ray", "--ray-address", "10.255.255.1:6379")
    assert time.monotonic() - start < 20
    assert done.returncode == 2 and summary is None
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach a Ray head at 10.255.255.1:6379" in lines[0]


@pytest.mark.slow
def test_a_worker_killed_mid_suite_is_retried_and_every_cell_recorded_once(tmp_path):
    import os
    import signal

    import psutil

    out = tmp_path / "killed.json"
    suite = subprocess.Popen([sys.executable, "-m", "clusterbench.cli", "run", *GRID, "-e", "alexnet:weights=none,layer=features",
                              "--executor", "ray", "--results", str(tmp_path / "killed"), "--json", str(out),
                              "--no-progress", "--pictures", "false"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, cwd=tmp_path)
    killed = None
    deadline = time.monotonic() + 600
    while killed is None and suite.poll() is None and time.monotonic() < deadline:
        for proc in psutil.process_iter(["pid", "cmdline"]):
            title = " ".join(proc.info["cmdline"] or [])
            if title.startswith("ray::cell ") or title.startswith("ray::run_cell"):  # a cell task at work
                os.kill(proc.info["pid"], signal.SIGKILL)
                killed = title
                break
        time.sleep(0.02)
    _, err = suite.communicate(timeout=900)
    assert killed is not None, "no cell task was caught running"
    assert suite.returncode == 0, err[-2000:]
    summary = json.loads(out.read_text())
    assert len(summary["cells"]) == 6 and {c["status"] for c in summary["cells"]} == {"ok"}
    runs = _active_cell_runs(tmp_path / "killed")
    keys = [r.data.tags["clusterbench.cell_key"] for r in runs]
    assert sorted(keys) == sorted(c["key"] for c in summary["cells"])  # each cell once, the dead attempt gone
    assert {r.info.status for r in runs} == {"FINISHED"}


@pytest.mark.slow
def test_ray_workers_report_to_a_clusterbench_server(tmp_path):
    import socket
    import urllib.request

    import mlflow

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "clusterbench.cli", "server", "--results", str(tmp_path / "srv"),
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "the server did not come up"
                time.sleep(0.5)
        done, summary = _run(tmp_path, "served", "-d", "digits:limit=300", "-e", "pixels", "-c", "kmeans",
                             "-c", "agglomerative", "--k", "10", "--executor", "ray", "--tracking-uri", url)
        assert done.returncode == 0, done.stderr[-2000:]
        client = mlflow.tracking.MlflowClient(url)
        experiment = client.get_experiment_by_name("clusterbench/digits x pixels x kmeans+agglomerative")
        runs = client.search_runs([experiment.experiment_id], filter_string="tags.`clusterbench.role` = 'cell'")
        assert sorted(r.info.run_id for r in runs) == sorted(c["mlflow_run_id"] for c in summary["cells"])
        assert client.list_artifacts(runs[0].info.run_id)  # artifacts went through the server too
    finally:
        server.terminate()
        server.wait(timeout=30)
