"""Seeing the clusters: pictures in every cell's MLflow run, aggregates on the suite's run, and the
report across seeds and datasets (Markdown and one self-contained HTML page)."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from clusterbench.cli import main
from clusterbench.datasets.base import FeatureData, ImageData
from clusterbench.track.aggregate import metric_labels, metric_name
from clusterbench.track.tracking import CELL_KEY_TAG, default_tracking_uri

SUITE = """name = "pics"
datasets = ["digits:limit=200", "digits:limit=260", "digits:limit=320"]
embedders = ["pixels"]
clusterers = ["kmeans:n_init=1", "agglomerative:linkage=ward"]
seeds = [0, 1, 2]
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One 3-dataset x 2-clusterer x 3-seed suite, shared by the tests here."""
    root = tmp_path_factory.mktemp("pics")
    (root / "pics.toml").write_text(SUITE)
    results = root / "results"
    assert main(["run", str(root / "pics.toml"), "--results", str(results), "--no-progress"]) == 0
    client = MlflowClient(default_tracking_uri(results))
    exp = client.get_experiment_by_name("clusterbench/pics")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    cells = [r for r in runs if r.data.tags.get("clusterbench.role") == "cell"]
    parent = next(r for r in runs if r.data.tags.get("clusterbench.role") == "suite")
    return root, results, client, cells, parent


def _png(client, run_id, name, dst) -> Image.Image:
    return Image.open(client.download_artifacts(run_id, name, str(dst))).convert("RGB")


@pytest.mark.slow
def test_every_cell_run_has_pictures_and_shows_its_dataset(store, tmp_path):
    _, _, client, cells, _ = store
    assert len(cells) == 18
    for run in cells:
        names = {a.path for a in client.list_artifacts(run.info.run_id, "pictures")}
        pngs = {n for n in names if n.endswith(".png")}
        assert {"pictures/gallery.png", "pictures/contingency.png", "pictures/embedding_map.png",
                "pictures/sizes.png"} <= pngs
        (inp,) = run.inputs.dataset_inputs
        assert inp.dataset.name == run.data.params["dataset"] and len(inp.dataset.digest) >= 8
    run = cells[0]
    for name in ("gallery", "contingency", "embedding_map", "sizes"):
        img = _png(client, run.info.run_id, f"pictures/{name}.png", tmp_path)
        assert img.width >= 400 and img.height >= 200, name
        colours = img.getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 20, name  # not a blank or one-colour image
        arr = np.asarray(img, dtype=np.float32)
        assert arr.std() > 10, name


@pytest.mark.slow
def test_contingency_numbers_are_sklearns(store, tmp_path):
    from sklearn.metrics.cluster import contingency_matrix

    _, _, client, cells, _ = store
    run = cells[0]
    rows = list(csv.reader(open(client.download_artifacts(run.info.run_id, "assignments.csv", str(tmp_path)))))
    assign = np.array([[int(v) for v in r[:3]] for r in rows[1:]])
    table = list(csv.reader(open(client.download_artifacts(run.info.run_id, "pictures/contingency.csv", str(tmp_path)))))
    ids = [int(r[0]) for r in table[1:]]
    counts = np.array([[int(v) for v in r[1:]] for r in table[1:]])
    expected = contingency_matrix(assign[:, 2], assign[:, 1]).T  # clusters x classes, ids ascending
    assert sorted(ids) == sorted(np.unique(assign[:, 1]).tolist())
    np.testing.assert_array_equal(counts[np.argsort(ids)], expected)
    # Hungarian order: the diagonal holds the assignment that linear_sum_assignment maximises
    from scipy.optimize import linear_sum_assignment

    r, c = linear_sum_assignment(-expected)
    assert np.trace(counts[: counts.shape[1]]) == expected[r, c].sum()


@pytest.mark.slow
def test_the_suite_run_holds_mean_and_std_over_seeds_as_numpy_gives_them(store, tmp_path):
    _, _, client, cells, parent = store
    by_config: dict[str, list[float]] = {}
    for run in cells:
        config = re.sub(r"\|seed=\d+", "", run.data.tags[CELL_KEY_TAG])
        by_config.setdefault(config, []).append(run.data.metrics["nmi"])
    assert len(by_config) == 6 and all(len(v) == 3 for v in by_config.values())
    labels = metric_labels(by_config)
    assert labels["digits:limit=200|pixels|kmeans:n_init=1|k=default|reduce=none"] == "kmeans on pixels in digits:limit 200"
    for config, values in by_config.items():
        assert parent.data.metrics[metric_name(labels[config], "nmi", "mean")] == pytest.approx(np.mean(values), abs=1e-12)
        assert parent.data.metrics[metric_name(labels[config], "nmi", "std")] == pytest.approx(np.std(values, ddof=1),
                                                                                               abs=1e-12)
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"aggregates.csv", "report.html"} <= names
    note = parent.data.tags["mlflow.note.content"]  # the run's Description in the UI: the best per dataset
    for dataset in ("digits:limit=200", "digits:limit=260", "digits:limit=320"):
        best = max(np.mean(v) for c, v in by_config.items() if c.startswith(dataset + "|"))
        assert re.search(rf"^- {dataset}: \*\*\w+ on pixels in {dataset.replace('=', ' ')}\*\* {best:.3f}$", note, re.M)


def _external_resources(text: str) -> list[str]:
    found = re.findall(r"""(?:src|srcset|poster|data)\s*=\s*["']?(?!data:)[^"'\s>]+""", text, re.I)
    found += re.findall(r"<(?:script|link|iframe|object|embed)\b[^>]*>", text, re.I)
    found += re.findall(r"@import|url\(\s*['\"]?(?!data:)", text, re.I)
    return found


@pytest.fixture(scope="module")
def html_report(store):
    root, results, *_ = store
    path = root / "report.html"
    assert main(["report", "--results", str(results), "--experiment", "pics", "--html", str(path),
                 "--markdown", str(root / "report.md")]) == 0
    return path


@pytest.mark.slow
def test_report_shows_mean_std_ranks_best_and_pictures_in_one_offline_file(html_report):
    text = html_report.read_text()
    assert not _external_resources(text), _external_resources(text)[:3]
    assert "Mean ± std over seeds" in text and re.search(r"\d\.\d{3} ± \d\.\d{3}", text)
    assert text.count("★") >= 3  # the best of each of the three datasets
    assert "Average rank across datasets" in text and "critical-difference" in text
    assert text.count("data:image/png;base64,") >= 6 * 4
    assert re.search(r'name="?viewport"? content="width=device-width', text)
    assert "/#/experiments/" in text  # links to the MLflow runs
    md = (html_report.parent / "report.md").read_text()
    assert "mean ± std over seeds" in md and "average rank" in md


@pytest.mark.slow
def test_report_options_of_before_still_work(store, capsys):
    _, results, *_ = store
    assert main(["report", "--results", str(results), "--suite", "pics", "--sort", "ari"]) == 0
    assert "## clusterbench/pics (18 cells, sorted by ari)" in capsys.readouterr().out
    assert main(["report", "--results", str(results), "--html", "/nonexistent/dir/r.html"]) == 2
    assert "clusterbench: error: --html" in capsys.readouterr().err


def _screenshot(url: str, out: Path) -> Image.Image:
    subprocess.run(["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                    "--virtual-time-budget=8000", f"--screenshot={out}", url], check=True, timeout=120,
                   capture_output=True)
    return Image.open(out).convert("RGB")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (apt-get install chromium)")
@pytest.mark.parametrize("width", [1400, 390])
def test_headless_chromium_renders_the_report(html_report, tmp_path, width):
    out = tmp_path / "shot.png"
    if width == 1400:
        img = _screenshot(html_report.as_uri(), out)
    else:  # a phone-width window
        subprocess.run(["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", f"--window-size={width},900",
                        "--virtual-time-budget=8000", f"--screenshot={out}", html_report.as_uri()], check=True,
                       timeout=120, capture_output=True)
        img = Image.open(out).convert("RGB")
    arr = np.asarray(img, dtype=np.float32)
    assert img.width == width
    assert arr.std() > 15 and len(img.getcolors(maxcolors=1 << 20) or range(99999)) > 50  # text, tables, images


@pytest.mark.slow
def test_pictures_false_leaves_none(run_cli, results_dir, tmp_path):
    status, _, err, summary = run_cli("-d", "digits:limit=150", "-e", "pixels", "-c", "kmeans", "--pictures", "false")
    assert status == 0, err
    client = MlflowClient(default_tracking_uri(results_dir))
    assert not client.list_artifacts(summary["cells"][0]["mlflow_run_id"], "pictures")
    suite = tmp_path / "off.toml"
    suite.write_text('datasets = ["digits:limit=150"]\nembedders = ["pixels"]\nclusterers = ["kmeans:k=5"]\npictures = false\n')
    status, _, err, summary = run_cli(str(suite))
    assert status == 0, err
    assert not client.list_artifacts(summary["cells"][0]["mlflow_run_id"], "pictures")


@pytest.mark.parametrize("args, message", [
    (["--pictures", "maybe"], "--pictures maybe: expected true or false"),
])
def test_bad_pictures_flag_is_one_line_exit_2(run_cli, args, message):
    status, out, err, _ = run_cli("-d", "digits:limit=150", "-e", "pixels", "-c", "kmeans", *args)
    assert status == 2 and err.strip() == f"clusterbench: error: {message}"


def test_a_suite_with_a_bad_pictures_key_is_refused(run_cli, tmp_path):
    suite = tmp_path / "bad.toml"
    suite.write_text('datasets = ["digits"]\nembedders = ["pixels"]\nclusterers = ["kmeans"]\npictures = "no"\n')
    status, _, err, _ = run_cli(str(suite))
    assert status == 2 and "'pictures' must be true or false" in err and len(err.strip().splitlines()) == 1


def test_without_images_the_other_pictures_and_a_note(tmp_path):
    from clusterbench.track.pictures import draw_all

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 0.3, (60, 5)) for c in range(4)]).astype(np.float32)
    truth = np.repeat(np.arange(4), 60)
    data = FeatureData(None, truth, None, "f", features=X)
    drawn = draw_all(data, X, truth, tmp_path)
    assert {f.name for f in drawn.files} == {"contingency.png", "contingency.csv", "embedding_map.png", "sizes.png"}
    assert drawn.notes == ["no gallery: the dataset has no images (precomputed features)"] and drawn.failed == {}


def test_many_clusters_show_the_largest_with_a_note(tmp_path):
    from clusterbench.track.pictures import draw_all

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(60), rng.integers(3, 12, 60))
    labels[::17] = -1
    images = rng.integers(0, 255, (len(labels), 16, 16, 3), dtype=np.uint8)
    data = ImageData(images, None, None, "x")
    notes = draw_all(data, rng.normal(size=(len(labels), 8)).astype(np.float32), labels, tmp_path).notes
    assert notes[0] == "gallery: the 40 largest of 60 clusters are shown"
    assert "no contingency matrix: the dataset has no labels" in notes
    assert Image.open(tmp_path / "gallery.png").height > 40 * 16


def test_the_terminal_table_fits_100_columns_and_shows_throughput_only_for_networks(capsys):
    from clusterbench.core.registry import Spec
    from clusterbench.core.suite import Cell
    from clusterbench.run.runner import CellResult
    from clusterbench.track.report import print_table

    results = []
    for emb, stats in (("pixels", {"throughput_img_per_s": 4.5e7}),
                       ("resnet152", {"throughput_img_per_s": 31.25, "embed_batch_size": 32.0})):
        r = CellResult(Cell(Spec.parse("digits"), Spec.parse(emb), Spec.parse("agglomerative:linkage=ward"), 0, None))
        r.params = {"k": 10, "k_source": "classes"}
        r.metrics = {"nmi": 0.868234, "ari": 0.79, "acc": 0.84, "silhouette": 0.1786, "n_clusters": 10.0,
                     "noise_fraction": 0.0, **stats}
        results.append(r)
    print_table(results, width=100)
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100
    assert "0.868" in out and "0.868234" not in out
    pixels, network = out.split("digits x resnet152")
    assert "img/s" not in pixels and "45000000" not in pixels.replace(",", "")
    assert "img/s" in network and "31.2" in network
    assert re.search(r"agglomerative:linkage=ward\s+0\s+10\s+classes\s+0\.868", out)


@pytest.mark.slow
def test_report_html_needs_no_network_even_in_its_style(html_report):
    text = html_report.read_text()
    style = re.search(r"<style>(.*?)</style>", text, re.S).group(1)
    assert "http" not in style and "font-face" not in style
    img = Image.open(io.BytesIO(__import__("base64").b64decode(
        re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text).group(1))))
    assert img.width > 100
