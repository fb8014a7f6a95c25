"""Crashes, kills, concurrency and determinism: nothing computed is lost or duplicated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from clusterbench.track.tracking import CELL_KEY_TAG, ROLE_TAG, default_tracking_uri

SUITE = """
name = "reliability"
datasets = ["digits"]
embedders = ["pixels"]
clusterers = ["kmeans", "agglomerative:linkage=average", "hdbscan:min_cluster_size=15"]
seeds = [0, 1, 2]
"""


def _suite(tmp_path, seeds=(0, 1, 2)):
    path = tmp_path / "suite.toml"
    path.write_text(SUITE.replace("seeds = [0, 1, 2]", f"seeds = {list(seeds)}"))
    return path


def _start(suite, results, *extra):
    from clusterbench.core.locks import exclusive
    from clusterbench.track.tracking import Tracker

    # The store exists before the test starts polling it, as the runner would create it.
    with exclusive(results, "tracking-store"):
        Tracker(default_tracking_uri(results), "clusterbench/reliability", results / "mlartifacts")
    return subprocess.Popen([sys.executable, "-m", "clusterbench", "run", str(suite), "--results", str(results),
                             "--no-progress", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _cell_runs(results):
    client = MlflowClient(default_tracking_uri(results))
    exp = client.get_experiment_by_name("clusterbench/reliability")
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], filter_string=f"tags.`{ROLE_TAG}` = 'cell'", max_results=1000)


def _wait_for_finished_cells(results, n, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if sum(r.info.status == "FINISHED" for r in _cell_runs(results)) >= n:
                return
        except Exception:  # noqa: BLE001 - the store may be mid-creation
            pass
        time.sleep(0.3)
    raise AssertionError(f"fewer than {n} cells finished within {timeout}s")


def _assert_each_cell_finished_once(results, n_cells):
    runs = _cell_runs(results)
    finished = Counter(r.data.tags[CELL_KEY_TAG] for r in runs if r.info.status == "FINISHED")
    assert len(finished) == n_cells and set(finished.values()) == {1}
    assert not [r for r in runs if r.info.status == "RUNNING"]
    client = MlflowClient(default_tracking_uri(results))
    all_runs = client.search_runs([_cell_runs(results)[0].info.experiment_id], max_results=1000)
    assert not [r for r in all_runs if r.info.status == "RUNNING"]


@pytest.mark.slow
def test_sigkill_mid_suite_then_rerun_finishes_every_cell_exactly_once(tmp_path):
    suite, results = _suite(tmp_path), tmp_path / "results"
    proc = _start(suite, results)
    _wait_for_finished_cells(results, 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    before = _cell_runs(results)
    done_before = sum(r.info.status == "FINISHED" for r in before)
    assert 2 <= done_before < 9

    rerun = _start(suite, results)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert err.count("finished earlier") == done_before
    assert "Traceback" not in err
    _assert_each_cell_finished_once(results, 9)


@pytest.mark.slow
def test_sigterm_marks_the_current_run_killed_and_exits(tmp_path):
    # Many cells, so the signal always arrives while the suite is still running.
    suite, results = _suite(tmp_path, seeds=range(20)), tmp_path / "results"
    proc = _start(suite, results)
    _wait_for_finished_cells(results, 1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    assert sum(r.info.status == "FINISHED" for r in _cell_runs(results)) < 60
    statuses = {r.info.status for r in _cell_runs(results)}
    assert "RUNNING" not in statuses


@pytest.mark.slow
def test_two_processes_on_one_results_dir_split_the_cells(tmp_path):
    suite, results = _suite(tmp_path), tmp_path / "results"
    # Create the store first so both processes race on cells, not on schema creation.
    first = _start(suite, results)
    _wait_for_finished_cells(results, 1)
    second = _start(suite, results)
    for proc in (first, second):
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    _assert_each_cell_finished_once(results, 9)


@pytest.mark.slow
def test_same_command_twice_gives_identical_assignments(run_cli, results_dir):
    args = ("-d", "digits", "-e", "pixels", "-c", "kmeans", "-c", "agglomerative", "-c", "hdbscan", "-c", "kmeans:backend=sklearn")
    _, _, _, first = run_cli(*args)
    _, _, _, second = run_cli(*args, "--force")
    client = MlflowClient(default_tracking_uri(results_dir))
    for a, b in zip(first["cells"], second["cells"], strict=True):
        assert a["mlflow_run_id"] != b["mlflow_run_id"]
        files = [Path(client.download_artifacts(c["mlflow_run_id"], "assignments.csv",
                                                str(results_dir.parent / c["mlflow_run_id"]))).read_text() for c in (a, b)]
        assert files[0] == files[1] and files[0].count("\n") == 1798  # every item, its cluster and its file
        assert a["metrics"]["nmi"] == b["metrics"]["nmi"]


def test_half_written_cache_entry_is_never_read(tmp_path):
    from clusterbench.core.contracts import Embedding, EmbedStats
    from clusterbench.run.cache import EmbeddingCache

    cache = EmbeddingCache(tmp_path)
    features = np.arange(12, dtype=np.float32).reshape(3, 4)
    (tmp_path / "k1.npz").write_bytes(b"PK\x03\x04 truncated")  # arrays without their info file
    assert cache.load("k1") is None
    cache.store("k1", Embedding(features, EmbedStats(seconds=1.0, details={"layer": "fc"})))
    got = cache.load("k1")
    np.testing.assert_array_equal(got.features, features)
    assert got.logits is None and got.classes is None
    assert got.stats.seconds == 1.0 and got.stats.details == {"layer": "fc"}
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".part")]


@pytest.mark.slow
def test_deepcluster_twice_gives_identical_assignments(tmp_path):
    # Two separate results directories: the second run trains from scratch, no checkpoint reuse.
    import json

    from clusterbench.cli import main

    from test_deepcluster import TINY_SPEC

    assignments = []
    for name in ("a", "b"):
        results = tmp_path / name
        status = main(["run", "-d", "digits:limit=200", "-e", "pixels", "-c", f"deepcluster:epochs=2,{TINY_SPEC}",
                       "--results", str(results), "--json", str(tmp_path / f"{name}.json"), "--no-progress"])
        cell = json.loads((tmp_path / f"{name}.json").read_text())["cells"][0]
        assert status == 0, cell["error"]
        client = MlflowClient(default_tracking_uri(results))
        path = client.download_artifacts(cell["mlflow_run_id"], "assignments.csv", str(tmp_path / f"dl-{name}"))
        assignments.append(Path(path).read_text())
    assert assignments[0] == assignments[1] and assignments[0].count("\n") == 201  # each item, its cluster, its file
