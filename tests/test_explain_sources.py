"""``clusterbench explain`` names each image by the user's file: in the JSON and on the page, each
name goes with its own image (checked on files named after their colour)."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image
from test_sources import COLOURS, colour_folder

from clusterbench.cli import main


def dominant_colour(img: Image.Image) -> str | None:
    """The named colour of an image's vivid pixels (white margins and grey text left out)."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float64).reshape(-1, 3)
    vivid = arr[arr.max(axis=1) - arr.min(axis=1) > 100]
    if len(vivid) < 50:
        return None
    mean = vivid.mean(axis=0)
    return min(COLOURS, key=lambda c: np.linalg.norm(mean - np.array(COLOURS[c])))


def colour_named(source: str) -> str:
    return source.removesuffix(".png").split("_")[1]


@pytest.fixture(scope="module")
def explained(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    names = colour_folder(root, per_colour=3)
    out = tmp_path_factory.mktemp("explained")
    status = main(["explain", f"folder:root={root}", "-e", "alexnet:weights=none,size=64", "--n", "6",
                   "--json", str(out / "summary.json"), "--out", str(out / "panels")])
    assert status == 0
    return names, json.loads((out / "summary.json").read_text()), out / "panels"


@pytest.mark.slow
def test_json_names_each_image_by_its_file(explained):
    names, summary, _ = explained
    images = summary["images"]
    assert len(images) == 6 and len({r["source"] for r in images}) == 6
    for r in images:
        assert r["source"] in names and isinstance(r["index"], int)
        # the panel written for this record shows the colour its file name says
        panel = Image.open(r["file"])
        left = panel.crop((0, 0, panel.width // 3, panel.height))
        assert dominant_colour(left) == colour_named(r["source"]), r


@pytest.mark.slow
def test_page_rows_show_the_file_beside_the_index_and_its_own_image(explained):
    _, summary, out = explained
    page = (out / "index.html").read_text()
    rows = re.findall(r"<tr>\s*<td><b>#(\d+)</b> <span class=\"source\">([^<]+)</span>.*?"
                      r'data-col="input"><img alt="input of [^"]+" src="data:image/png;base64,([^"]+)"', page, re.S)
    assert len(rows) == 6
    by_index = {r["index"]: r["source"] for r in summary["images"]}
    for index, source, png in rows:
        assert by_index[int(index)] == source
        thumb = Image.open(io.BytesIO(base64.b64decode(png)))
        assert dominant_colour(thumb) == colour_named(source), source
    assert "<style>" in page and "span.source{" in page and 'src="http' not in page
