"""Faults of the disk and the stores, each made real: a damaged or locked sqlite file, a full
file system (a small tmpfs), a folder turned read-only (a read-only bind mount), before a run and
in the middle of one. Each is one line naming the file and the cause, no traceback, the status
says when it was found (2 before anything ran, 1 mid-run), nothing finished is lost, and a rerun
with the fault removed completes the suite."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clusterbench.cli import main

GRID = ["-d", "digits:limit=200", "-e", "pixels", "-c", "kmeans", "--k", "10", "--pictures", "false", "--no-progress"]
SEEDS = ["--seed", "0", "--seed", "1", "--seed", "2"]


def _console(*args: str, stop_on: str | None = None, fault=None, timeout: float = 300):
    """``clusterbench ...`` in its own process; with ``stop_on``, the process is stopped when a
    line of its stderr starts with it, ``fault()`` is made, and it goes on: (status, stderr)."""
    script = Path(sys.executable).with_name("clusterbench")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "clusterbench"]
    proc = subprocess.Popen([*command, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "CLUSTERBENCH_STORE_WAIT_S": "1"})
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if stop_on and line.startswith(stop_on):
                proc.send_signal(signal.SIGSTOP)
                try:
                    fault()
                finally:
                    proc.send_signal(signal.SIGCONT)
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, "".join(lines)


def _mount(*args: str) -> None:
    """``mount ARGS``, or skip: faults of the file system need root and a container that lets it mount."""
    if os.geteuid() != 0:
        pytest.skip("making a file system full or read-only needs root (mount)")
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mount {' '.join(args)} is not permitted here: {done.stderr.strip()}")


def _read_only(folder: Path):
    _mount("--bind", str(folder), str(folder))
    subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)


def _umount(folder: Path) -> None:
    subprocess.run(["umount", str(folder)], check=False)


def _one_line(err: str) -> str:
    """The error line, after asserting it is the only one and no traceback came with it."""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("clusterbench: error: ")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err
    return errors[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A results folder where the quick grid's seed 0 finished: what the faults must not lose."""
    from conftest import run_cli_once

    results = tmp_path_factory.mktemp("finished") / "results"
    status, _, err, _ = run_cli_once(results, *GRID, "--seed", "0")
    assert status == 0, err
    return results


@pytest.fixture
def results(finished, tmp_path) -> Path:
    copy = tmp_path / "results"
    shutil.copytree(finished, copy)
    return copy


def _rerun_completes(results: Path) -> None:
    status, err = _console("run", *GRID, *SEEDS, "--results", str(results))
    assert status == 0, err
    assert "seed=0|k=10|reduce=none: finished earlier" in err, err
    for seed in (1, 2):
        assert f"seed={seed}|k=10|reduce=none: ok" in err, err
    assert not [p for p in results.rglob("*.part")], "a half-written file stayed behind"


# -- damaged, unreadable or locked stores ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_mlflow_store_is_one_line_naming_it_for_run_and_report(results, damage, capsys):
    db = results / "mlflow.db"
    if damage == "garbage":
        db.write_bytes(np.random.default_rng(0).bytes(100_000))
    else:
        db.write_bytes(db.read_bytes()[:50_000])
    before = db.read_bytes()
    status, err = _console("run", *GRID, "--results", str(results))
    line = _one_line(err)
    assert status == 2
    assert line.startswith(f"clusterbench: error: {db} is damaged: sqlite says ")
    assert line.endswith("; move it aside to start a new store")
    assert main(["report", "--results", str(results)]) == 2
    assert capsys.readouterr().err == line + "\n"
    assert db.read_bytes() == before  # refused, never written over


def test_a_damaged_optuna_store_is_refused_before_any_cell(results, capsys):
    db = results / "optuna.db"
    db.write_bytes(b"not a database" * 100)
    assert main(["run", *GRID, "--seed", "1", "--results", str(results)]) == 2
    assert capsys.readouterr().err == (f"clusterbench: error: {db} is damaged: sqlite says file is not a database; "
                                       "move it aside to start a new store\n")


def test_a_store_held_locked_is_one_line_after_the_wait(results, capsys, monkeypatch):
    import clusterbench.core.writable as writable

    monkeypatch.setattr(writable, "STORE_WAIT_S", 0.5)
    holder = sqlite3.connect(results / "mlflow.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process's transaction that never ends
    try:
        assert main(["run", *GRID, "--seed", "1", "--results", str(results)]) == 2
        err = capsys.readouterr().err
        assert err == (f"clusterbench: error: {results / 'mlflow.db'} stays locked (0.5 s waited) by another process "
                       "(sqlite says database is locked); stop that process, or wait for it, then rerun\n")
        assert main(["report", "--results", str(results)]) == 2
        assert "stays locked" in capsys.readouterr().err
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert main(["report", "--results", str(results)]) == 0  # released: read as usual


def test_a_store_that_is_a_folder_is_named(results, capsys):
    (results / "mlflow.db").unlink()
    (results / "mlflow.db").mkdir()
    assert main(["report", "--results", str(results)]) == 2
    assert capsys.readouterr().err == f"clusterbench: error: {results / 'mlflow.db'} is a folder, not the MLflow store\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file: as another user, a mode-000 store is unreadable")
def test_an_unreadable_store_is_one_line_naming_it(results, capsys):
    db = results / "mlflow.db"
    db.chmod(0)
    try:
        assert main(["report", "--results", str(results)]) == 2
        assert capsys.readouterr().err == (f"clusterbench: error: {db} cannot be read or written by this user "
                                           "(permission denied)\n")
    finally:
        db.chmod(0o644)


# -- reading commands never create what they read ---------------------------------------------------


def test_report_on_a_missing_results_folder_creates_nothing(tmp_path, capsys, monkeypatch):
    missing = tmp_path / "MISSING"
    assert main(["report", "--results", str(missing)]) == 2
    assert capsys.readouterr().err.startswith(f"clusterbench: error: --results {missing} does not exist")
    monkeypatch.setenv("CLUSTERBENCH_RESULTS", str(missing))  # the default folder, named by the environment
    assert main(["report"]) == 2 and main(["export", "--out", str(tmp_path / "out")]) == 2
    capsys.readouterr()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", "--results", str(empty)]) == 2
    assert capsys.readouterr().err == (f"clusterbench: error: no MLflow store in results directory {empty}: nothing "
                                       "has run there yet; give --results or --tracking-uri\n")
    assert not missing.exists() and list(empty.iterdir()) == []


def test_report_sort_names_the_closest_metric_the_store_holds(results, capsys):
    assert main(["report", "--results", str(results), "--sort", "nmii"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("clusterbench: error: --sort nmii is not a known metric (did you mean nmi")
    assert "silhouette" in err and err.count("\n") == 1
    assert main(["report", "--results", str(results), "--sort", "silhouette"]) == 0


# -- the disk: read-only or full, before a run and in the middle of one -----------------------------


@pytest.mark.slow
def test_a_read_only_cache_is_refused_before_the_embedding_is_computed(results):
    _read_only(results / "cache")
    try:
        status, err = _console("run", *GRID, *SEEDS, "--results", str(results))
    finally:
        _umount(results / "cache")
    assert status == 2
    assert _one_line(err) == (f"clusterbench: error: {results / 'cache' / 'embeddings'} is on a read-only file "
                              "system (needed for the embedding cache)")
    assert "seed=1" not in err  # refused before the first cell
    _rerun_completes(results)


def test_a_full_disk_before_the_run_is_refused(results, tmp_path, capsys):
    small = tmp_path / "small"
    small.mkdir()
    _mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small))
    try:
        with open(small / "filler", "wb") as f, pytest.raises(OSError):
            f.write(b"\0" * (3 << 20))  # until the file system refuses
        assert main(["run", *GRID, "--results", str(small / "results")]) == 2
        assert capsys.readouterr().err == (f"clusterbench: error: --results {small / 'results'} cannot be written: "
                                           f"the disk holding {small} is full\n")
    finally:
        _umount(small)


@pytest.fixture
def small_disk(finished, tmp_path):
    """The finished results folder on a file system of its own, 16 MB."""
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount("-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk))
    shutil.copytree(finished, disk / "results")
    yield disk
    _umount(disk)


@pytest.mark.slow
def test_a_disk_full_mid_run_stops_with_one_line_and_a_rerun_completes(small_disk):
    results, filler = small_disk / "results", small_disk / "filler"

    def fill():
        with open(filler, "wb") as f:
            with pytest.raises(OSError):
                f.write(b"\0" * (32 << 20))

    status, err = _console("run", *GRID, *SEEDS, "--results", str(results), stop_on="[1/3]", fault=fill)
    assert status == 1
    line = _one_line(err)
    assert line.startswith(f"clusterbench: error: the disk holding {results}") and line.endswith(" is full"), line
    assert "seed=0|k=10|reduce=none: finished earlier" in err
    filler.unlink()
    _rerun_completes(results)


@pytest.mark.slow
def test_a_folder_turned_read_only_mid_run_stops_with_one_line_and_a_rerun_completes(results):
    artifacts = results / "mlartifacts"
    status, err = _console("run", *GRID, *SEEDS, "--results", str(results), stop_on="[1/3]",
                           fault=lambda: _read_only(artifacts))
    _umount(artifacts)
    assert status == 1
    line = _one_line(err)
    assert line.startswith(f"clusterbench: error: {artifacts}") and line.endswith(" is on a read-only file system")
    _rerun_completes(results)


def test_a_cache_write_on_a_full_disk_names_the_file_and_leaves_no_part(tmp_path):
    from clusterbench.core.contracts import Embedding, EmbedStats
    from clusterbench.core.faults import StoreFault
    from clusterbench.run.cache import EmbeddingCache

    disk = tmp_path / "disk"
    disk.mkdir()
    _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk))
    try:
        cache = EmbeddingCache(disk / "embeddings")
        features = np.ones((1000, 784), dtype=np.float32)  # 3 MB: more than the disk holds
        with pytest.raises(StoreFault, match=rf"^the disk holding {disk / 'embeddings' / 'k.features.npy'} is full$"):
            cache.store("k", Embedding(features, EmbedStats()))
        assert list((disk / "embeddings").iterdir()) == []  # the temp file is gone, nothing half-written
    finally:
        _umount(disk)


def test_an_artifact_copy_on_a_full_disk_names_it_and_leaves_nothing_half_written(tmp_path):
    from clusterbench.core.faults import StoreFault
    from clusterbench.track.tracking import Tracker, default_tracking_uri

    disk = tmp_path / "disk"
    disk.mkdir()
    _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk))
    try:
        tracker = Tracker(default_tracking_uri(tmp_path), "clusterbench/faults", disk / "mlartifacts")
        run_id = tracker.start_run("cell", {})
        big = tmp_path / "big.bin"
        big.write_bytes(b"\1" * (3 << 20))  # 3 MB onto a 1 MB disk
        with pytest.raises(StoreFault, match=r"^the disk holding .* is full$"):
            tracker.log_file(run_id, big)
        assert [p for p in (disk / "mlartifacts").rglob("*") if p.is_file()] == []
        tracker.log_text(run_id, "small.txt", "fits\n")  # the store itself still works
        assert [p.name for p in (disk / "mlartifacts").rglob("*") if p.is_file()] == ["small.txt"]
    finally:
        _umount(disk)
