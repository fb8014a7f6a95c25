"""Faults fail fast and honestly: a bad value anywhere in a suite is refused before anything runs,
an unreachable tracking server is one line in seconds, a damaged cache entry is one warning and
is recomputed, and a damaged root= is never silently replaced by another copy."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clusterbench.core.errors import UserError
from clusterbench.track.tracking import check_tracking_server


def _console(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``clusterbench ...`` as a user runs it (the console script, its own process and warnings)."""
    script = Path(sys.executable).with_name("clusterbench")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "clusterbench"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


GOOD = {"-d": "digits:limit=100", "-e": "pixels", "-c": "kmeans:k=3"}


@pytest.mark.parametrize(("bad", "message"), [
    ({"-c": "agglomerative:linkage=foo"},
     "clusterer 'agglomerative': linkage=foo is not allowed; choose one of ward, average, complete, single"),
    ({"-c": "kmeans:n_init=-3"}, "clusterer 'kmeans': n_init=-3 must be >= 1"),
    ({"-d": "digits:limit=0"}, "dataset 'digits': limit=0 must be >= 1"),
    ({"-d": "folder:root=/no/such/folder"}, "dataset 'folder': root=/no/such/folder does not exist"),
    ({"-e": "resnet152:weights=/no/such/weights.pth"}, "embedder 'resnet152': weights=/no/such/weights.pth does not exist"),
    ({"--reduce": "pca=0"}, "reducer: pca=0 must be >= 1"),
    ({"--tune": "n_trials=0"}, "n_trials=0"),
])
def test_a_bad_value_anywhere_is_refused_before_anything_runs(run_cli, results_dir, bad, message):
    # a sound spec of each kind first, the bad one last: the whole suite is checked before any cell
    args = [x for flag, spec in GOOD.items() for x in (flag, spec)]
    args += [x for flag, value in bad.items() for x in (flag, value)]
    status, out, err, summary = run_cli(*args)
    assert status == 2, err
    assert err.startswith("clusterbench: error: ") and err.count("\n") == 1 and message in err, err
    assert "Traceback" not in err and summary is None
    assert not (results_dir / "mlflow.db").exists() and not (results_dir / "cache").exists()


@pytest.mark.parametrize("command", ["run", "report"])
def test_an_unreachable_tracking_server_is_one_line_within_seconds(tmp_path, command):
    uri = f"http://127.0.0.1:{_closed_port()}"
    args = ["run", "-d", "digits:limit=100", "-e", "pixels", "-c", "kmeans"] if command == "run" else ["report"]
    start = time.monotonic()
    proc = _console(*args, "--tracking-uri", uri, "--results", str(tmp_path / "results"), cwd=tmp_path)
    elapsed = time.monotonic() - start
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == f"clusterbench: error: MLflow tracking server {uri} is unreachable (connection refused)\n"
    assert elapsed < 15
    assert not (tmp_path / "results").exists()  # nothing written


def test_a_server_that_never_answers_times_out_in_the_probe():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)  # connections queue, nothing ever answers
        uri = f"http://127.0.0.1:{server.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(UserError, match=r"is unreachable \(no answer within 0.5 s\)"):
            check_tracking_server(uri, timeout=0.5)
        assert time.monotonic() - start < 5


@pytest.mark.slow
def test_a_damaged_embedding_cache_entry_is_one_warning_and_recomputed(tmp_path):
    results = tmp_path / "results"
    specs = ["-d", "digits:limit=300", "-e", "pixels", "-c", "kmeans:k=10"]
    first = _console("run", *specs, "--results", str(results), "--json", "first.json", "--no-progress", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    entries = list((results / "cache" / "embeddings").glob("*.features.npy"))
    assert len(entries) == 1
    data = bytearray(entries[0].read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: a damaged entry, still the same size
    entries[0].write_bytes(bytes(data))
    # the same cell in another suite (another experiment), so it runs again and reads the cache
    (tmp_path / "again.toml").write_text('name = "again"\ndatasets = ["digits:limit=300"]\nembedders = ["pixels"]\n'
                                         'clusterers = ["kmeans:k=10"]\n')
    second = _console("run", "again.toml", "--results", str(results), "--json", "second.json", "--no-progress",
                      cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    warnings = [line for line in second.stderr.splitlines() if line.startswith("clusterbench: warning: ")]
    assert len(warnings) == 1 and "damaged" in warnings[0] and str(entries[0]) in warnings[0], second.stderr
    assert "Traceback" not in second.stderr
    before, after = (json.loads((tmp_path / name).read_text())["cells"][0] for name in ("first.json", "second.json"))
    assert after["status"] == "ok" and not after["cached"] and after["metrics"]["embed_cached"] == 0.0
    assert after["metrics"]["nmi"] == before["metrics"]["nmi"]
    third = _console("run", "again.toml", "--results", str(results), "--force", "--no-progress", cwd=tmp_path)
    assert third.returncode == 0 and "clusterbench: warning:" not in third.stderr  # rewritten sound


@pytest.mark.slow
def test_a_damaged_fashion_mnist_root_fails_naming_the_file(run_cli, tmp_path):
    root = tmp_path / "fashion"
    root.mkdir()
    bad = root / "train-images-idx3-ubyte.gz"
    whole = gzip.compress(b"\x00\x00\x08\x03" + os.urandom(60000))
    bad.write_bytes(whole[: len(whole) // 2])  # a truncated gzip
    status, _, err, summary = run_cli("-d", f"fashion-mnist:root={root},split=train", "-e", "pixels", "-c", "kmeans:k=10")
    assert status == 1, err
    cell = summary["cells"][0]
    assert cell["status"] == "failed" and str(bad) in cell["error"] and "unreadable" in cell["error"]
    assert "/usr/share/datasets" not in cell["error"] and "Traceback" not in err


def test_a_missing_fashion_mnist_root_is_refused_before_anything_runs(run_cli, results_dir, tmp_path):
    status, _, err, summary = run_cli("-d", f"fashion-mnist:root={tmp_path}/nowhere", "-e", "pixels", "-c", "kmeans")
    assert status == 2 and summary is None
    assert err == f"clusterbench: error: dataset 'fashion-mnist': root={tmp_path}/nowhere does not exist\n"
    assert not (results_dir / "mlflow.db").exists()
