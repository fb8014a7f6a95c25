"""Every item keeps where it came from (the ``source`` column), and a real run's assignments.csv
names the user's files: checked on inputs whose answer is known by name, not by position."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from clusterbench.datasets import DATASETS
from clusterbench.datasets.base import SOURCE_COLUMN

from conftest import needs_fashion

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def colour_folder(root, per_colour: int = 4, seed: int = 0):
    """PNGs named after their content, the colours interleaved in name order (``00_red.png``,
    ``01_green.png``, ...), each with a little noise so no two files are equal."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(per_colour * len(COLOURS)):
        colour = list(COLOURS)[i % len(COLOURS)]
        img = np.clip(np.array(COLOURS[colour]) + rng.normal(0, 12, (16, 16, 3)), 0, 255).astype(np.uint8)
        name = f"{i:02d}_{colour}.png"
        Image.fromarray(img).save(root / name)
        names.append(name)
    return names


def colour_of_file(path) -> str:
    """The colour a file really holds (its mean pixel), whatever its name says."""
    mean = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)
    return min(COLOURS, key=lambda c: np.linalg.norm(mean - np.array(COLOURS[c])))


def test_folder_sources_are_paths_relative_to_the_root(tmp_path):
    for cls in ("cats", "dogs"):
        (tmp_path / cls / "deep").mkdir(parents=True)
        Image.new("RGB", (4, 4), (9, 9, 9)).save(tmp_path / cls / "deep" / f"{cls}-x.png")
        Image.new("RGB", (4, 4), (200, 9, 9)).save(tmp_path / cls / f"{cls}-y.jpg")
    data = DATASETS.create(f"folder:root={tmp_path}").load()
    assert list(data.items[SOURCE_COLUMN]) == ["cats/cats-y.jpg", "cats/deep/cats-x.png",
                                               "dogs/dogs-y.jpg", "dogs/deep/dogs-x.png"]
    # each name leads to the very image at its position
    for i, source in enumerate(data.items[SOURCE_COLUMN]):
        assert np.array_equal(data.image(i), np.asarray(Image.open(tmp_path / source).convert("RGB")))


def test_folder_sources_survive_limit(tmp_path):
    colour_folder(tmp_path, per_colour=5)
    data = DATASETS.create(f"folder:root={tmp_path},limit=6,seed=3").load()
    assert len(data) == 6
    for i, source in enumerate(data.items[SOURCE_COLUMN]):
        assert np.array_equal(data.image(i), np.asarray(Image.open(tmp_path / source).convert("RGB")))


def test_digits_sources_name_the_place_in_sklearns_set():
    from sklearn.datasets import load_digits

    images = load_digits().images
    data = DATASETS.create("digits:limit=30,seed=2").load()
    for i, source in enumerate(data.items[SOURCE_COLUMN]):
        name, number = source.split("#")
        assert name == "digits"
        assert np.array_equal(data.image(i)[:, :, 0], np.rint(images[int(number)] * 255 / 16).astype(np.uint8))


@needs_fashion
def test_fashion_mnist_sources_name_split_and_position():
    test_only = DATASETS.create("fashion-mnist:split=test").load()
    both = DATASETS.create("fashion-mnist:split=all,limit=40,seed=1").load()
    parts = {s.split("#")[0] for s in both.items[SOURCE_COLUMN]}
    assert parts == {"fashion-mnist/train", "fashion-mnist/test"}
    for i, source in enumerate(both.items[SOURCE_COLUMN]):
        part, number = source.split("#")
        if part.endswith("/test"):
            assert np.array_equal(both.image(i), test_only.image(int(number)))
    assert test_only.items[SOURCE_COLUMN][17] == "fashion-mnist/test#17"


def test_feature_rows_keep_their_row_and_name(tmp_path):
    X = np.arange(24, dtype=np.float32).reshape(8, 3)
    np.save(tmp_path / "emb.npy", X)
    (tmp_path / "names.txt").write_text("".join(f"photo-{i}.jpg\n" for i in range(8)))
    data = DATASETS.create(f"features:path={tmp_path / 'emb.npy'},names={tmp_path / 'names.txt'},limit=3,seed=5").load()
    for i, source in enumerate(data.items[SOURCE_COLUMN]):
        row = int(source.split("#")[1].split(" ")[0])
        assert source == f"emb.npy#{row} (photo-{row}.jpg)"
        np.testing.assert_array_equal(data.features[i], X[row])
    np.savez(tmp_path / "bundle.npz", features=X, names=np.array([f"n{i}" for i in range(8)]))
    data = DATASETS.create(f"features:path={tmp_path / 'bundle.npz'}").load()
    assert data.items[SOURCE_COLUMN][6] == "bundle.npz#6 (n6)"
    plain = DATASETS.create(f"features:path={tmp_path / 'emb.npy'}").load()
    assert plain.items[SOURCE_COLUMN][7] == "emb.npy#7"


def test_video_frames_name_their_video_and_time(tmp_path):
    av = pytest.importorskip("av")
    from test_video import _write_video

    (tmp_path / "clips").mkdir()
    _write_video(tmp_path / "clips" / "a.mp4", "square", (255, 40, 40), seed=0)
    data = DATASETS.create(f"video:root={tmp_path},fps=2,size=16").load()
    assert av is not None and len(data) == 6
    expected = [f"clips/a.mp4@{t:.2f}s" for t in data.items["time"]]
    assert list(data.items[SOURCE_COLUMN]) == expected and expected[1] == "clips/a.mp4@0.50s"


@pytest.mark.slow
def test_a_real_run_names_each_file_beside_its_cluster(run_cli, results_dir, tmp_path):
    """Files named after their colour, interleaved: each name must sit in the row of its own
    cluster, the files of one colour share a cluster, and different colours do not."""
    root = tmp_path / "photos"
    names = colour_folder(root)
    status, _, err, summary = run_cli("-d", f"folder:root={root}", "-e", "pixels:size=8", "-c", "kmeans:k=3",
                                      "--pictures", "false")
    assert status == 0, err
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{results_dir / 'mlflow.db'}")
    path = client.download_artifacts(summary["cells"][0]["mlflow_run_id"], "assignments.csv", str(tmp_path))
    rows = list(csv.DictReader(open(path)))
    assert sorted(r[SOURCE_COLUMN] for r in rows) == sorted(names)
    cluster_of_colour: dict[str, str] = {}
    for r in rows:
        colour = r[SOURCE_COLUMN].split("_")[1].removesuffix(".png")
        assert colour_of_file(root / r[SOURCE_COLUMN]) == colour  # the name leads to the file holding it
        assert cluster_of_colour.setdefault(colour, r["cluster"]) == r["cluster"], rows
    assert len(set(cluster_of_colour.values())) == 3
