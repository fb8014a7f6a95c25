"""Shared fixtures: a real results directory (sqlite MLflow store) per test, real data."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

# torch and faiss each bring an OpenMP runtime; with busy-waiting threads they slow each other
# (and every other process) down badly on a 2-core host. Passive waiting keeps timings honest.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not (FASHION_DIR / "train-images-idx3-ubyte.gz").exists()
    and not os.environ.get("CLUSTERBENCH_DATA"),
    reason="Fashion-MNIST not installed: apt-get install dataset-fashion-mnist",
)


def pytest_collection_modifyitems(items):
    """Files with the most slow tests first (a stable sort: each file keeps its own order). Under
    ``-n 2 --dist loadfile --no-loadscope-reorder`` the heaviest files then start at once instead of
    last, so neither worker is left alone with a long tail."""
    slow = Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.path])


@pytest.fixture
def results_dir(tmp_path) -> Path:
    path = tmp_path / "results"
    path.mkdir()
    return path


def run_cli_once(results_dir: Path, *args: str, json_name: str = "summary.json"):
    """``clusterbench run ...`` in-process, output captured without capsys, so module- and
    session-scoped fixtures can run a suite once and share what it wrote: (status, out, err, json)."""
    import contextlib
    import io
    import json

    from clusterbench.cli import main

    results_dir.mkdir(parents=True, exist_ok=True)
    json_path = results_dir.parent / json_name
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["run", *args, "--results", str(results_dir), "--json", str(json_path), "--no-progress"])
    summary = json.loads(json_path.read_text()) if json_path.exists() else None
    return status, out.getvalue(), err.getvalue(), summary


@pytest.fixture
def run_cli(results_dir, capsys):
    """Run ``clusterbench run ...`` in-process against a fresh results dir; return (status, out, err, json)."""
    import json

    from clusterbench.cli import main

    def _run(*args: str, json_name: str = "summary.json"):
        json_path = results_dir.parent / json_name
        status = main(["run", *args, "--results", str(results_dir), "--json", str(json_path), "--no-progress"])
        captured = capsys.readouterr()
        summary = json.loads(json_path.read_text()) if json_path.exists() else None
        return status, captured.out, captured.err, summary

    return _run


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One MLflow store for a module's CLI runs (a new sqlite store costs seconds to create)."""
    from clusterbench.track.tracking import default_tracking_uri

    return default_tracking_uri(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture
def cli(run_cli, store):
    """``run_cli`` against the module's shared MLflow store."""
    return lambda *args, **kw: run_cli(*args, "--tracking-uri", store, **kw)
