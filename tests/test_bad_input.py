"""Bad input through the CLI: one clear line naming the cause, the right exit status, no traceback."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image


def _folder(tmp_path, classes=("a", "b"), n=6):
    root = tmp_path / "imgs"
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (12, 12), (c * 200, i * 30, 0)).save(root / name / f"{i}.png")
    return root


@pytest.mark.slow
def test_corrupt_files_are_skipped_named_and_the_run_goes_on(run_cli, tmp_path):
    root = _folder(tmp_path)
    (root / "a" / "empty.png").write_bytes(b"")
    (root / "b" / "notes.jpg").write_text("not an image")
    png = (root / "a" / "0.png").read_bytes()
    (root / "b" / "cut.png").write_bytes(png[: len(png) // 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status, _, err, summary = run_cli("-d", f"folder:root={root}", "-e", "pixels", "-c", "kmeans")
    assert status == 0, err
    text = " ".join(str(w.message) for w in caught)
    assert "empty.png" in text and "notes.jpg" in text and "cut.png" in text
    cell = summary["cells"][0]
    assert cell["params"]["n_images"] == 12 and cell["params"]["data.skipped"] == 3
    assert cell["params"]["data.root"] == str(root.resolve())


@pytest.mark.slow
def test_strict_folder_fails_the_cell_with_the_file_named(run_cli, tmp_path):
    root = _folder(tmp_path)
    (root / "a" / "empty.png").write_bytes(b"")
    status, _, err, summary = run_cli("-d", f"folder:root={root},strict=true", "-e", "pixels", "-c", "kmeans")
    assert status == 1
    assert "empty.png" in summary["cells"][0]["error"] and "Traceback" not in err


@pytest.mark.slow
def test_single_class_folder_asks_for_k(run_cli, tmp_path):
    root = _folder(tmp_path, classes=("only",))
    status, _, _, summary = run_cli("-d", f"folder:root={root}", "-e", "pixels", "-c", "kmeans")
    assert status == 1 and "single class" in summary["cells"][0]["error"]


@pytest.mark.slow
def test_empty_folder(run_cli, tmp_path):
    (tmp_path / "void").mkdir()
    status, _, _, summary = run_cli("-d", f"folder:root={tmp_path / 'void'}", "-e", "pixels", "-c", "kmeans:k=2")
    assert status == 1 and "no images" in summary["cells"][0]["error"]


@pytest.mark.slow
def test_all_noise_hdbscan_is_a_clear_failure(run_cli):
    status, _, _, summary = run_cli("-d", "digits:limit=60", "-e", "pixels", "-c", "hdbscan:min_cluster_size=60")
    assert status == 1
    assert summary["cells"][0]["error"] == "hdbscan:min_cluster_size=60: every point was labelled noise; lower min_cluster_size / min_samples"


@pytest.mark.slow
def test_mixed_sizes_need_a_pixel_size(run_cli, tmp_path):
    root = tmp_path / "mixed"
    root.mkdir()
    for i, size in enumerate((8, 8, 10, 10)):
        Image.fromarray(np.full((size, size, 3), i * 60, np.uint8)).save(root / f"{i}.png")
    status, _, _, summary = run_cli("-d", f"folder:root={root}", "-e", "pixels", "-c", "kmeans:k=2")
    assert status == 1 and "give pixels:size=N" in summary["cells"][0]["error"]
    status, _, _, summary = run_cli("-d", f"folder:root={root}", "-e", "pixels:size=8", "-c", "kmeans:k=2")
    assert status == 0 and summary["cells"][0]["params"]["feature_dim"] == 8 * 8 * 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('datasets = ["digits"\n', "malformed TOML"),
        ('datasets = ["digits"]\nembedders = ["pixels"]\nclusterers = ["kmeans"]\nexec = "rm -rf /"\n', "unknown key(s) ['exec']"),
        ('datasets = []\nembedders = ["pixels"]\nclusterers = ["kmeans"]\n', "'datasets' must be a non-empty list"),
        ('datasets = ["digits"]\nembedders = ["pixels"]\nclusterers = ["kmeans"]\nseeds = [1, 1]\n', "lists a seed twice"),
        ('datasets = ["digits"]\nembedders = ["pixels"]\nclusterers = ["kmeans"]\nseeds = ["a"]\n', "'seeds' must be a non-empty list of integers"),
        ('datasets = ["digits"]\nembedders = ["pixels"]\nclusterers = ["kmeans"]\nk = 1\n', "K must be at least 2"),
        ('datasets = ["digits"]\nembedders = ["pixels"]\nclusterers = ["kmeans"]\nreduce = "pca=8,foo=1"\n', "unknown reducer parameter"),
    ],
)
def test_bad_suite_files(run_cli, tmp_path, text, message):
    suite = tmp_path / "bad.toml"
    suite.write_text(text)
    status, _, err, _ = run_cli(str(suite))
    assert status == 2 and message in err
    assert err.count("\n") == 1


def test_suite_and_grid_together_is_a_usage_error(run_cli):
    status, _, err, _ = run_cli("quick", "-d", "digits")
    assert status == 2 and "not both" in err
