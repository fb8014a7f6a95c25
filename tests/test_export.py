"""``clusterbench export``: a real run over PNGs named after their colour, exported as one folder
per cluster of links (or copies) to those very files, with an offline browser page; items without
files get members.csv; every user mistake is one line and exit status 2."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_sources import COLOURS, colour_folder, colour_of_file

from clusterbench.cli import main

# every test here exports a real run (a module-scoped one, or its own): the slow tier
pytestmark = pytest.mark.slow


def colour_named(name: str) -> str:
    return name.removesuffix(".png").split("_")[1]


def export(capsys, *args: str) -> tuple[int, str]:
    status = main(["export", *args])
    return status, capsys.readouterr().err


@pytest.fixture(scope="module")
def photos_run(tmp_path_factory):
    """15 colour PNGs clustered at K=2 and K=3 in one suite run (two finished cells)."""
    base = tmp_path_factory.mktemp("export")
    root = base / "photos"
    names = colour_folder(root, per_colour=5)
    results = base / "results"
    assert main(["run", "-d", f"folder:root={root}", "-e", "pixels:size=8", "-c", "kmeans", "--k", "2", "--k", "3",
                 "--results", str(results), "--no-progress"]) == 0
    return root, names, results


def recommended_key(results: Path) -> str | None:
    found = list(results.rglob("recommendations.json"))
    if not found:
        return None
    import json

    return json.loads(found[0].read_text())[0]["cell_key"]


def k3_key(root) -> str:
    return f"folder:root={root}|pixels:size=8|kmeans|seed=0|k=3|reduce=none"


def test_links_one_folder_per_cluster_to_the_right_files(photos_run, tmp_path, capsys):
    root, names, results = photos_run
    out = tmp_path / "clusters"
    status, err = export(capsys, "--results", str(results), "--cell", k3_key(root), "--out", str(out))
    assert status == 0, err
    assert "3 cluster folder(s), 15 file(s) linked" in err
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert folders == ["cluster_00", "cluster_01", "cluster_02"]
    seen = []
    for folder in folders:
        files = sorted((out / folder).iterdir())
        colours = {colour_named(f.name) for f in files}
        assert len(colours) == 1  # one colour per cluster, named by the files it holds
        for link in files:
            assert link.is_symlink() and Path(os.readlink(link)) == root / link.name
            assert link.samefile(root / link.name)
            assert colour_of_file(link) == colour_named(link.name)  # it opens the file its name says
            seen.append(link.name)
    assert sorted(seen) == sorted(names)


def test_copy_copies_the_files(photos_run, tmp_path, capsys):
    root, names, results = photos_run
    out = tmp_path / "copies"
    status, err = export(capsys, "--results", str(results), "--cell", k3_key(root), "--out", str(out), "--copy")
    assert status == 0 and "15 file(s) copied" in err
    copies = [p for p in out.glob("cluster_*/*.png")]
    assert len(copies) == 15
    for path in copies:
        assert not path.is_symlink() and path.read_bytes() == (root / path.name).read_bytes()
    # exporting again into the same folder replaces the earlier export
    status, err = export(capsys, "--results", str(results), "--cell", k3_key(root), "--out", str(out))
    assert status == 0 and all(p.is_symlink() for p in out.glob("cluster_*/*.png"))


def test_default_cell_is_the_suites_recommendation(photos_run, tmp_path, capsys):
    root, _, results = photos_run
    expected = recommended_key(results)
    status, err = export(capsys, "--results", str(results), "--out", str(tmp_path / "o"))
    if expected is None:  # a suite run without recommendations: two cells, so the user must choose
        assert status == 2 and "--cell KEY" in err
    else:
        assert status == 0 and f"export: {expected} (recommended by the suite" in err, err


def test_without_recommendations_two_cells_need_a_key(tmp_path, capsys):
    """A store whose suite run recorded no recommendations (made before they existed): with two
    finished cells the user names one, and the line lists the keys."""
    root = tmp_path / "photos"
    colour_folder(root, per_colour=2)
    results = tmp_path / "results"
    assert main(["run", "-d", f"folder:root={root}", "-e", "pixels:size=8", "-c", "kmeans", "--k", "2", "--k", "3",
                 "--results", str(results), "--no-progress"]) == 0
    for path in results.rglob("recommendations.json"):
        path.unlink()
    capsys.readouterr()  # the run's own output
    status, err = export(capsys, "--results", str(results), "--out", str(tmp_path / "o"))
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and "2 finished cells" in lines[0] and "--cell KEY" in lines[0], err
    assert k3_key(root) in lines[0] and k3_key(root).replace("k=3", "k=2") in lines[0]
    assert not (tmp_path / "o").exists()


def test_browser_page_shows_every_cluster_file_and_picture(photos_run, tmp_path, capsys):
    root, names, results = photos_run
    out = tmp_path / "b"
    assert export(capsys, "--results", str(results), "--cell", k3_key(root), "--out", str(out))[0] == 0
    page = (out / "index.html").read_text()
    assert not re.search(r"<(link|script)\b", page) and 'src="http' not in page
    for name in names:
        assert f"<figcaption>{name}</figcaption>" in page
        assert re.search(rf'<a href="cluster_0\d/{re.escape(name)}"><img alt="{re.escape(name)}" src="data:image/', page)
    assert page.count("5 items (33.3 %)") == 3
    for picture in ("gallery.png", "embedding_map.png", "sizes.png"):
        assert f'<img alt="{picture}" src="data:image/png;base64,' in page
    # each thumbnail shows the colour its caption names
    import base64
    import io

    for name, uri in re.findall(r'<img alt="(\d\d_\w+\.png)" src="data:image/\w+;base64,([^"]+)"', page):
        thumb = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri))).convert("RGB"), dtype=float)
        mean = thumb.reshape(-1, 3).mean(axis=0)
        assert min(COLOURS, key=lambda c: np.linalg.norm(mean - np.array(COLOURS[c]))) == colour_named(name)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
@pytest.mark.parametrize("width", [1400, 400])
def test_browser_page_in_chromium(photos_run, tmp_path, capsys, width):
    root, _, results = photos_run
    out = tmp_path / "b"
    assert export(capsys, "--results", str(results), "--cell", k3_key(root), "--out", str(out))[0] == 0
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", f"--window-size={width},900",
                    "--virtual-time-budget=8000", f"--screenshot={shot}", (out / "index.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[1] == width
    for colour, rgb in COLOURS.items():  # the thumbnails are on screen in their colours
        near = (np.abs(img - np.array(rgb)).sum(axis=2) < 90).sum()
        assert near > 2000, colour


def test_items_without_files_get_members_csv_and_dataset_thumbnails(tmp_path, capsys):
    results = tmp_path / "results"
    assert main(["run", "-d", "digits:limit=300", "-e", "pixels", "-c", "hdbscan:min_cluster_size=10",
                 "--results", str(results), "--no-progress"]) == 0
    out = tmp_path / "digits"
    status, err = export(capsys, "--results", str(results), "--out", str(out))
    assert status == 0, err
    assert (out / "noise" / "members.csv").is_file()
    listed, shown = [], 0
    for members in out.glob("*/members.csv"):
        rows = list(csv.DictReader(open(members)))
        assert {r["cluster"] for r in rows} == {"-1" if members.parent.name == "noise"
                                                else str(int(members.parent.name.split("_")[1]))}
        listed += [r["source"] for r in rows]
        shown += min(len(rows), 60)
        assert all(re.fullmatch(r"digits#\d+", s) for s in listed)
    assert len(listed) == len(set(listed)) == 300
    page = (out / "index.html").read_text()
    thumbs = re.findall(r'<img alt="(digits#\d+)" src="data:image/png', page)
    assert len(thumbs) == shown  # drawn from the dataset loaded again (at most 60 per cluster)
    # a thumbnail shows the digit its name points at: digits#i is sklearn's image i
    import base64
    import io

    from sklearn.datasets import load_digits

    name, uri = re.search(r'<img alt="(digits#\d+)" src="data:image/png;base64,([^"]+)"', page).groups()
    thumb = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri))).convert("L"))[::12, ::12]
    expected = np.rint(load_digits().images[int(name.split("#")[1])] * 255 / 16)
    assert np.abs(thumb.astype(float) - expected).max() <= 1


@pytest.mark.parametrize(("args", "message"), [
    (["--results", "{tmp}/nowhere"], "{tmp}/nowhere"),
    (["--experiment", "folder x pixel"], "--experiment folder x pixel: no such experiment (closest: folder x pixels x"),
    (["--cell", "folder:root=x|pixels:size=8|kmeans|seed=0|k=4|reduce=none"], "no finished cell with this key"),
    (["--out", "/proc/clusterbench-export"], "/proc"),
])
def test_bad_input_is_one_line_and_exit_2(photos_run, tmp_path, capsys, args, message):
    _, _, results = photos_run
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    message = message.replace("{tmp}", str(tmp_path))
    full = ["--results", str(results), "--out", str(tmp_path / "o"), *args]
    status, err = export(capsys, *full)
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("clusterbench: error: ") and message in lines[0], err
    if "--cell" in args:
        assert "(closest: folder:root=" in lines[0] and "k=3|reduce=none)" in lines[0]


def test_out_holding_other_files_is_refused(photos_run, tmp_path, capsys):
    root, _, results = photos_run
    status, err = export(capsys, "--results", str(results), "--cell", k3_key(root), "--out", str(root))
    assert status == 2 and "folder is not empty" in err
    assert sorted(p.name for p in root.iterdir()) == sorted(p.name for p in root.glob("*.png"))
