"""Pictures for any number of items and any width: the 2-D map adapts its components to the data,
each picture is drawn on its own, and a picture that fails is named with its reason in the run
and in the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from test_sources import COLOURS

from clusterbench.datasets import DATASETS
from clusterbench.track.pictures import FAILED_TAG, FILES, draw_all, failed_file_note, log_cell_pictures

EVERY_PICTURE = {FILES["gallery"], FILES["contingency"], "contingency.csv", FILES["map"], FILES["sizes"]}


def colour_classes(root, n: int, seed: int = 0):
    """``n`` real PNGs in class sub-folders by colour (so the dataset is labelled), named by colour."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        colour = list(COLOURS)[i % len(COLOURS)]
        (root / colour).mkdir(parents=True, exist_ok=True)
        img = np.clip(np.array(COLOURS[colour]) + rng.normal(0, 12, (20, 20, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / colour / f"{colour}_{i:02d}.png")
    return DATASETS.create(f"folder:root={root}").load()


def wide_features(data, dim: int = 1000, seed: int = 0) -> np.ndarray:
    """A ``dim``-wide embedding of the real images (their pixels through a fixed random projection)."""
    pixels = np.asarray(data.images, dtype=np.float32).reshape(len(data), -1) / 255
    return pixels @ np.random.default_rng(seed).normal(size=(pixels.shape[1], dim)).astype(np.float32)


def assert_picture(path) -> None:
    img = Image.open(path).convert("RGB")
    colours = img.getcolors(maxcolors=1 << 20)
    assert img.width >= 300 and img.height >= 100 and colours is not None and len(colours) > 10, path


@pytest.mark.parametrize("n", [2, 3, 5, 30])
def test_every_picture_for_few_items_with_1000_features(tmp_path, n):
    data = colour_classes(tmp_path / "photos", n)
    space = wide_features(data)
    assert space.shape == (n, 1000)
    out = tmp_path / "out"
    out.mkdir()
    drawn = draw_all(data, space, data.labels, out, title=f"{n} items")
    assert drawn.failed == {} and {f.name for f in drawn.files} == EVERY_PICTURE, drawn.notes
    for name in EVERY_PICTURE - {"contingency.csv"}:
        assert_picture(out / name)
    rows = (out / "contingency.csv").read_text().splitlines()
    assert len(rows) == 1 + min(n, 3)  # a row per cluster (here: per colour)


@pytest.mark.slow
def test_umap_map_of_few_items_uses_fewer_neighbours(tmp_path):
    pytest.importorskip("umap")
    import umap  # noqa: F401 - loaded, so the map is UMAP's

    from clusterbench.track.pictures import embedding_map

    data = colour_classes(tmp_path / "photos", 8)
    idx, xy, how = embedding_map.layout(wide_features(data), seed=0)
    assert how.startswith("UMAP") and xy.shape == (8, 2) and np.isfinite(xy).all()


def test_gallery_names_each_thumbnail_by_its_file(tmp_path):
    from PIL import ImageFont

    from clusterbench.track.pictures.gallery import short_name

    font = ImageFont.load_default(size=9)
    assert short_name("photos/red_07.png", 56, font) == "red_07.png"
    assert short_name("photos/IMG_20240112_101533.jpg", 40, font).startswith("IMG")
    assert "…" in short_name("photos/IMG_20240112_101533.jpg", 40, font)
    assert short_name("clips/a.mp4@12.40s", 200, font) == "a.mp4@12.40s"
    assert short_name("IMG_20240112_101533.jpg", 10, font) is None
    # with names, every gallery row is taller by the name line, and text is drawn under the thumbnails
    data = colour_classes(tmp_path / "photos", 9)
    space = wide_features(data)
    named, plain = tmp_path / "named", tmp_path / "plain"
    named.mkdir()
    plain.mkdir()
    draw_all(data, space, data.labels, named)
    del data.items["source"]
    draw_all(data, space, data.labels, plain)
    a, b = Image.open(named / FILES["gallery"]), Image.open(plain / FILES["gallery"])
    assert a.height - b.height == 3 * 11
    band = np.asarray(a.convert("L"))[42 + 18 + 40 + 1:42 + 18 + 40 + 11, :40]  # under the first thumbnail
    assert (band < 128).sum() > 10


def test_one_failing_picture_leaves_the_others_and_is_named_in_the_run_and_report(tmp_path):
    """The files are gone by the time the gallery reads them (a folder too big to keep decoded):
    the gallery fails, the map, sizes and contingency are still drawn, logged and the failure is
    recorded on the run, in pictures/failed.json, and in the report."""
    from clusterbench.track.report import leaderboard
    from clusterbench.track.tracking import CELL_KEY_TAG, ROLE_TAG, Tracker, default_tracking_uri

    root = tmp_path / "photos"
    colour_classes(root, 12)
    data = DATASETS.create(f"folder:root={root},keep_decoded_mb=0").load()
    space = wide_features(DATASETS.create(f"folder:root={root}").load())
    for path in root.rglob("*.png"):
        path.unlink()
    uri = default_tracking_uri(tmp_path)
    tracker = Tracker(uri, "clusterbench/pictures-fail")
    run_id = tracker.start_run("cell", {ROLE_TAG: "cell", CELL_KEY_TAG: "folder|pixels|kmeans|0"})
    notes = log_cell_pictures(tracker, run_id, data, space, data.labels)
    tracker.end_run(run_id)
    assert any(n.startswith("gallery failed: ") and "cannot read file" in n for n in notes), notes
    client = tracker.client
    logged = {a.path for a in client.list_artifacts(run_id, "pictures")}
    assert {f"pictures/{FILES[k]}" for k in ("contingency", "map", "sizes")} <= logged
    assert "pictures/gallery.png" not in logged and "pictures/failed.json" in logged
    tag = client.get_run(run_id).data.tags[FAILED_TAG]
    assert tag.startswith("gallery: ") and "cannot read file" in tag and "\n" not in tag
    raw = open(client.download_artifacts(run_id, "pictures/failed.json", str(tmp_path)), "rb").read()
    assert list(json.loads(raw)) == ["gallery"]
    note = failed_file_note(raw)
    assert note.startswith("pictures that failed: gallery: ") and "cannot read file" in note
    assert failed_file_note(None) is None
    text = leaderboard(uri)
    section = text.split("pictures that failed")[1]
    assert "| folder|pixels|kmeans|0 | gallery | " in section and "cannot read file" in section


@pytest.mark.slow
def test_a_real_run_of_five_photos_logs_every_picture(run_cli, results_dir, tmp_path):
    from mlflow.tracking import MlflowClient

    colour_classes(tmp_path / "photos", 5)
    status, _, err, summary = run_cli("-d", f"folder:root={tmp_path / 'photos'}", "-e", "pixels:size=19", "-c", "kmeans")
    assert status == 0, err
    cell = summary["cells"][0]
    assert cell["params"]["n_images"] == 5 and cell["params"]["feature_dim"] >= 1000
    client = MlflowClient(f"sqlite:///{results_dir / 'mlflow.db'}")
    logged = {a.path.removeprefix("pictures/") for a in client.list_artifacts(cell["mlflow_run_id"], "pictures")}
    assert EVERY_PICTURE <= logged and "failed.json" not in logged
    assert FAILED_TAG not in client.get_run(cell["mlflow_run_id"]).data.tags
