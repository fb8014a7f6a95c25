"""End to end through the CLI: real digits, real faiss/hdbscan, a real MLflow sqlite store."""

import json
import re
import subprocess
import sys

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

from clusterbench.cli import main
from clusterbench.track.tracking import CELL_KEY_TAG, default_tracking_uri


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """The default job (the quick suite on digits) run once for the tests that only read what it wrote."""
    from conftest import run_cli_once

    results_dir = tmp_path_factory.mktemp("quick") / "results"
    return (*run_cli_once(results_dir), results_dir)


def test_default_job_runs_quick_suite_and_tracks_everything(quick_run, tmp_path, monkeypatch):
    status, out, err, summary, results_dir = quick_run
    assert status == 0, err
    cells = summary["cells"]
    assert [c["clusterer"] for c in cells] == ["kmeans:n_init=5", "agglomerative:linkage=ward", "hdbscan:min_cluster_size=10"]
    km = cells[0]
    assert km["status"] == "ok" and km["error"] is None
    assert km["params"]["k"] == 10 and km["params"]["k_source"] == "classes" and km["params"]["seed"] == 0
    assert km["metrics"]["nmi"] == pytest.approx(0.74, abs=0.03)
    for key in ("nmi", "ami", "ari", "acc", "purity", "silhouette", "calinski_harabasz", "davies_bouldin",
                "n_clusters", "noise_fraction", "embed_seconds", "throughput_img_per_s", "cluster_seconds"):
        assert key in km["metrics"]
    hdb = cells[2]
    assert hdb["params"]["k_source"] == "clusterer"
    assert 0 < hdb["metrics"]["noise_fraction"] < 1
    assert "digits x pixels" in out and re.search(r"kmeans:n_init=5\s+0\s+10\s+classes\s+0\.74\d", out)

    uri = default_tracking_uri(results_dir)
    assert (results_dir / "mlflow.db").exists()
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("clusterbench/quick")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    runs = mlflow.search_runs([exp.experiment_id], output_format="list")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 3
    child = next(r for r in children if r.info.run_id == km["mlflow_run_id"])
    assert child.info.status == "FINISHED"
    assert child.data.params["k"] == "10" and child.data.params["k_source"] == "classes"
    assert child.data.params["clusterer.n_init"] == "5" and child.data.params["nmi_average"] == "arithmetic"
    assert child.data.metrics["nmi"] == pytest.approx(km["metrics"]["nmi"])
    assert child.data.tags[CELL_KEY_TAG] == km["key"]
    assert "version.torch" in child.data.tags and "git_commit" in child.data.tags and child.data.tags["device"] == "cpu"
    assert child.data.tags["cluster.engine"] == "sklearn" and child.data.tags["cluster.init"] == "k-means++"
    assert 1 <= child.data.metrics["cluster.n_iter"] <= 100
    artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
    assert {"assignments.csv", "metrics.json", "embedding_info.json"} <= artifacts
    path = client.download_artifacts(child.info.run_id, "assignments.csv", str(tmp_path))
    lines = open(path).read().splitlines()
    assert lines[0] == "index,cluster,label,source" and len(lines) == 1798
    assert lines[18].endswith(",digits#17")  # every digit named by its place in sklearn's set


@pytest.mark.slow
def test_rerun_skips_finished_cells_and_reuses_embeddings(run_cli, results_dir):
    run_cli("-d", "digits", "-e", "pixels", "-c", "kmeans")
    status, _, err, summary = run_cli("-d", "digits", "-e", "pixels", "-c", "kmeans", "-c", "kmeans:k=12")
    assert status == 0
    first, second = summary["cells"]
    assert first["cached"] is True and "finished earlier" in err
    assert second["cached"] is False and second["metrics"]["embed_cached"] == 1.0
    status, _, _, forced = run_cli("-d", "digits", "-e", "pixels", "-c", "kmeans", "--force")
    assert forced["cells"][0]["cached"] is False


@pytest.mark.slow
def test_a_network_cell_records_its_throughput_flops_and_how_it_ran(run_cli, results_dir):
    import torchvision
    from torch.utils.flop_counter import FlopCounterMode

    status, _, err, summary = run_cli("-d", "digits:limit=100", "-e", "resnet152:weights=none,size=32,batch_size=16",
                                      "-c", "kmeans", "--k", "10")
    assert status == 0, err
    cell = summary["cells"][0]
    run = MlflowClient(default_tracking_uri(results_dir)).get_run(cell["mlflow_run_id"])
    m = run.data.metrics
    assert run.data.tags["device"] == "cpu" and run.data.params["precision"] in ("fp32", "bf16")
    # FLOPs per image are the network's own count at the input size that ran
    counter = FlopCounterMode(display=False)
    with counter:
        torchvision.models.resnet152(weights=None).eval()(torch.zeros(1, 3, 32, 32))
    assert m["flops_per_image"] == pytest.approx(counter.get_total_flops(), rel=0.01)
    assert m["gflops_per_s"] == pytest.approx(m["flops_per_image"] * m["throughput_img_per_s"] / 1e9, rel=1e-6)
    assert m["throughput_img_per_s"] > 0 and m["peak_host_memory_mb"] > 100 and m["embed_warmup_seconds"] > 0
    assert (m["embed_batch_size"], m["embed_oom_backoffs"], m["embed_loader_workers"]) == (16, 0, 0)
    assert "gpu_peak_memory_mb" not in m


@pytest.mark.slow
def test_seeds_and_k_flags_shape_the_grid(run_cli):
    status, _, _, summary = run_cli("-d", "digits:limit=500", "-e", "pixels", "-c", "kmeans", "--k", "7", "--seed", "1", "--seed", "2")
    assert status == 0
    assert [(c["params"]["seed"], c["params"]["k"], c["params"]["k_source"]) for c in summary["cells"]] == [(1, 7, "given"), (2, 7, "given")]
    assert all(c["metrics"]["n_clusters"] == 7 for c in summary["cells"])


@pytest.mark.slow
def test_reducer_is_applied_and_recorded(run_cli):
    status, _, _, summary = run_cli("-d", "digits", "-e", "pixels", "-c", "kmeans", "--reduce", "pca=16,whiten=true,l2=true")
    cell = summary["cells"][0]
    assert status == 0 and cell["params"]["reducer"] == "pca=16,whiten=true,l2=true" and cell["params"]["feature_dim"] == 16


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-d", "digitz", "-e", "pixels", "-c", "kmeans"], "unknown dataset 'digitz' (did you mean 'digits'?)"),
        (["-d", "digits", "-e", "pixels", "-c", "kmeans:kk=3"], "unknown parameter 'kk' for clusterer 'kmeans'"),
        (["-d", "digits", "-e", "pixels", "-c", "kmeans", "--k", "1"], "K must be at least 2"),
        (["-d", "digits", "-e", "pixels", "-c", "kmeans", "--k", "many"], "expected an integer, 'auto'"),
        (["-d", "digits", "-e", "pixels"], "missing -c"),
        (["no/such/suite.toml"], "suite file not found"),
    ],
)
def test_usage_errors_exit_2_with_one_line(run_cli, args, message):
    status, out, err, summary = run_cli(*args)
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("clusterbench: error: ") and message in err
    assert summary is None


@pytest.mark.slow
def test_cell_failures_are_isolated_and_exit_1(run_cli, results_dir, tmp_path):
    (tmp_path / "empty").mkdir()  # exists (a missing root is refused before anything runs) but holds no images
    status, out, err, summary = run_cli("-d", "digits:limit=50", "-d", f"folder:root={tmp_path}/empty",
                                        "-e", "pixels", "-c", "kmeans:k=60", "-c", "kmeans:k=5")
    assert status == 1
    by_key = {(c["dataset"], c["clusterer"]): c for c in summary["cells"]}
    assert by_key[("digits:limit=50", "kmeans:k=60")]["error"] == "kmeans: k=60 exceeds the number of points (50)"
    assert by_key[("digits:limit=50", "kmeans:k=5")]["status"] == "ok"
    empty = by_key[(f"folder:root={tmp_path}/empty", "kmeans:k=5")]
    assert empty["status"] == "failed" and "no images" in empty["error"]
    client = MlflowClient(default_tracking_uri(results_dir))
    failed = client.get_run(by_key[("digits:limit=50", "kmeans:k=60")]["mlflow_run_id"])
    assert failed.info.status == "FAILED"
    assert failed.data.tags["clusterbench.failure_reason"].startswith("kmeans: k=60 exceeds")
    assert "Traceback" not in err


@pytest.mark.slow
def test_unlabeled_data_without_k_gets_the_default_k_estimator(run_cli, tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(6):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(folder / f"{i}.png")
    status, _, _, summary = run_cli("-d", f"folder:root={folder}", "-e", "pixels", "-c", "kmeans")
    p = summary["cells"][0]["params"]
    assert status == 0 and p["k"] == 2 and p["k_source"].endswith("(default: no labels)")  # 6 images: K in 2..2
    status, _, _, summary = run_cli("-d", f"folder:root={folder}", "-e", "pixels", "-c", "kmeans", "--k", "2")
    cell = summary["cells"][0]
    assert status == 0 and cell["metrics"]["nmi"] is None and cell["metrics"]["silhouette"] is not None


def test_list_shows_parameters(capsys):
    assert main(["list", "clusterers"]) == 0
    out = capsys.readouterr().out
    assert "kmeans" in out and "n_init=1" in out and "linkage=ward" in out and "min_cluster_size=10" in out


def test_report_prints_a_leaderboard(quick_run, capsys):
    results_dir = quick_run[-1]
    assert main(["report", "--results", str(results_dir)]) == 0
    out = capsys.readouterr().out
    assert "## clusterbench/quick (3 cells, sorted by nmi)" in out
    rows = [line for line in out.splitlines() if line.startswith("| digits")]
    assert rows[0].split(" | ")[2] == "agglomerative:linkage=ward"  # ward beats k-means on digits pixels
    assert "| 10 | classes | 10 |" in rows[0]


def test_console_script_no_traceback_for_bad_results_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = subprocess.run([sys.executable, "-m", "clusterbench", "run", "--results", str(blocker / "sub")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == (f"clusterbench: error: --results {blocker / 'sub'} cannot be written: {blocker} is a file "
                           "where a folder is needed\n")


@pytest.mark.slow
def test_json_summary_is_valid_for_failed_cells_too(run_cli):
    _, _, _, summary = run_cli("-d", "digits:limit=30", "-e", "pixels", "-c", "kmeans:k=40")
    cell = summary["cells"][0]
    assert cell["status"] == "failed" and all(v is None for v in cell["metrics"].values())
    json.dumps(summary)


def test_ui_binds_to_localhost_over_the_project_store(monkeypatch, results_dir):
    import os

    captured = {}
    monkeypatch.setattr(os, "execv", lambda exe, argv: captured.update(argv=argv))
    assert main(["ui", "--results", str(results_dir)]) == 2  # nothing has run there: ui never creates a store
    MlflowClient(default_tracking_uri(results_dir)).search_experiments()  # a store, as a run leaves one
    assert main(["ui", "--results", str(results_dir)]) == 0
    argv = captured["argv"]
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--backend-store-uri") + 1] == default_tracking_uri(results_dir)
    assert argv[argv.index("--default-artifact-root") + 1] == (results_dir / "mlartifacts").as_uri()


class _Terminal:
    """A stderr that says it is a terminal, so tqdm draws its bars into it."""

    def __init__(self):
        self.text = []

    def write(self, s):
        self.text.append(s)
        return len(s)

    def flush(self):
        pass

    def isatty(self):
        return True


@pytest.mark.slow
@pytest.mark.parametrize("flags", [(), ("--no-progress",)])
def test_progress_bars_on_a_terminal_unless_no_progress(results_dir, monkeypatch, flags):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    status = main(["run", "-d", "digits:limit=40", "-e", "timm:model=resnet18,pretrained=false,size=32",
                   "-c", "kmeans:k=3", "--results", str(results_dir), *flags])
    assert status == 0
    drawn = "".join(terminal.text)
    assert "[1/1]" in drawn  # the per-cell log line goes to stderr either way
    assert ("%|" in drawn and "batch/s" in drawn) == (not flags)


@pytest.mark.slow
def test_bench_prints_the_figures_page(capsys):
    assert main(["bench", "--quick"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "| figure | ours | reference | ratio | note |"
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:])}
    names = list(rows)
    for start in ("matmul GFLOP/s (torch", "ResNet152 224px img/s", "ResNet152 img/s vs bf16", "k-means K=1000 seconds",
                  "k-means K=1000 GFLOP/s", "k-means K=10 seconds", "exact silhouette", "machine"):
        assert any(n.startswith(start) for n in names), start
    for name, (ours, reference, ratio, _note) in rows.items():
        if ratio != "-":  # every ratio is ours against its reference, measured now (to the digits printed)
            (o_lo, o_hi), (r_lo, r_hi), (q_lo, q_hi) = (_printed_range(v) for v in (ours, reference, ratio))
            low, high = sorted((_ratio(name, o_lo, r_hi), _ratio(name, o_hi, r_lo)))
            assert q_lo <= high and low <= q_hi, name
    silhouette = next(v for n, v in rows.items() if n.startswith("exact silhouette"))
    assert float(silhouette[3].split()[-1]) < 1e-6  # the same value as scikit-learn's


def _printed_range(text: str) -> tuple[float, float]:
    """The values a printed number stands for: itself +- half a unit of its last digit."""
    half = 0.5 * 10.0 ** -(len(text.split(".")[1]) if "." in text else 0)
    return float(text) - half, float(text) + half


def _ratio(name: str, ours: float, reference: float) -> float:
    """Times are better when smaller (reference / ours); rates when larger (ours / reference)."""
    return reference / ours if "seconds" in name else ours / reference


@pytest.mark.slow
def test_a_skipped_file_is_one_warning_line_from_the_console_script(tmp_path):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "broken.png").write_text("not an image")
    proc = subprocess.run([sys.executable, "-m", "clusterbench", "run", "-d", f"folder:root={folder}", "-e", "pixels",
                           "-c", "kmeans", "--k", "2", "--results", str(tmp_path / "results"), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    warned = [line for line in proc.stderr.splitlines() if "broken.png" in line]
    assert warned == [f"clusterbench: warning: skipping unreadable image {folder / 'broken.png'}: not a recognised image file"]
    assert "UserWarning" not in proc.stderr and "warnings.warn" not in proc.stderr
