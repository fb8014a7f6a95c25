"""The cluster gallery: one row per cluster, the images nearest its centre, a few random ones and
the lowest-silhouette ones, captioned with size, majority label and purity, and each image with
its file name (the dataset's ``source``) where the thumbnail is wide enough. Images come from the
dataset (``ImageData.image(i)``); nothing is embedded again. Drawn with Pillow: it is a mosaic of
images, not a plot."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .common import NOISE, Cluster, class_name

N_NEAREST, N_RANDOM, N_WORST = 12, 3, 3
MAX_ROWS = 40
SILHOUETTE_SAMPLE = 3000  # silhouette is O(N^2): per-point values on a sample at most this big
GAP, PAD, CAPTION = 10, 2, 18
NAME_LINE, NAME_FONT, NAME_MIN_CHARS = 11, 9, 5  # file names under thumbnails when this many characters fit


def has_images(data) -> bool:
    """Whether the dataset holds images to show (a precomputed-features dataset has none). Its
    declaration decides, not a probe: images that cannot be read must fail the gallery with their
    reason, not pass for a dataset without images."""
    return bool(data.has_images)


def _thumb(img: np.ndarray, size: int):
    from PIL import Image

    img = np.asarray(img)
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    pil = Image.fromarray(np.ascontiguousarray(img[:, :, :3]))
    pil.thumbnail((size, size), Image.Resampling.LANCZOS) if max(pil.size) > size else None
    if max(pil.size) < size:  # small images (8x8 digits) grow with hard edges, not blur
        scale = size / max(pil.size)
        pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))), Image.Resampling.NEAREST)
    return pil


def silhouettes(space: np.ndarray, labels: np.ndarray, seed: int) -> dict[int, float]:
    """Index -> silhouette value for a sample of the clustered (non-noise) points."""
    from sklearn.metrics import silhouette_samples

    idx = np.flatnonzero(labels != NOISE)
    if len(idx) > SILHOUETTE_SAMPLE:
        idx = np.sort(np.random.default_rng(seed).choice(idx, SILHOUETTE_SAMPLE, replace=False))
    if not 2 <= len(np.unique(labels[idx])) < len(idx):  # silhouette needs 2..N-1 clusters
        return {}
    values = silhouette_samples(space[idx], labels[idx])
    return dict(zip(idx.tolist(), values.tolist(), strict=True))


def pick(space: np.ndarray, cluster: Cluster, sil: dict[int, float], rng) -> list[tuple[str, list[int]]]:
    """The groups shown for one cluster: nearest the centre, random, lowest silhouette."""
    members = cluster.members
    if cluster.id == NOISE:
        return [("random", sorted(rng.choice(members, min(N_NEAREST + N_RANDOM, len(members)), replace=False).tolist()))]
    pts = space[members]
    dist = np.linalg.norm(pts - pts.mean(axis=0), axis=1)
    nearest = members[np.argsort(dist, kind="stable")[:N_NEAREST]].tolist()
    rest = np.setdiff1d(members, nearest)
    random = rng.choice(rest, min(N_RANDOM, len(rest)), replace=False).tolist() if len(rest) else []
    scored = sorted((sil[i], i) for i in members if i in sil and i not in nearest and i not in random)
    worst = [i for _, i in scored[:N_WORST]]
    return [("nearest centre", nearest), ("random", random), ("lowest silhouette", worst)]


def short_name(source, width: float, font) -> str | None:
    """The file name of ``source`` (no folders) fitted into ``width`` pixels: whole, else without
    its extension, else its start and end (a frame time) around an ellipsis; None when too few
    characters fit."""
    name = str(source).rsplit("/", 1)[-1]
    if font.getlength(name) <= width:
        return name
    name = re.sub(r"\.[A-Za-z]{2,5}$", "", name)  # the extension says least about the picture
    if font.getlength(name) <= width:
        return name
    for keep in range(len(name) - 1, NAME_MIN_CHARS - 1, -1):
        text = name[:(keep + 1) // 2] + "…" + name[len(name) - keep // 2:]
        if font.getlength(text) <= width:
            return text
    return None


def _sources(data, size: int, font) -> np.ndarray | None:
    """The items' sources when a name of ``NAME_MIN_CHARS`` characters fits under a thumbnail."""
    from clusterbench.datasets.base import SOURCE_COLUMN

    sources = data.items.get(SOURCE_COLUMN)
    if sources is None or len(sources) != len(data) or font.getlength("0" * NAME_MIN_CHARS) > size:
        return None
    return sources


def caption(cluster: Cluster, n: int, names: list[str] | None) -> str:
    head = "noise" if cluster.id == NOISE else f"cluster {cluster.id}"
    text = f"{head}: {cluster.size} items ({cluster.size / max(n, 1):.1%})"
    if cluster.majority is not None:
        text += f", majority {class_name(cluster.majority, names)!r}, purity {cluster.purity:.0%}"
    return text


def draw(data, space: np.ndarray, labels: np.ndarray, clusters: list[Cluster], path: Path, seed: int = 0,
         title: str = "", thumb: int | None = None) -> tuple[Path, str | None]:
    """The gallery PNG; returns the path and a note (shown clusters capped), or None."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    real = [c for c in clusters if c.id != NOISE]
    noise = [c for c in clusters if c.id == NOISE]
    note = None
    if len(real) > MAX_ROWS:
        note = f"the {MAX_ROWS} largest of {len(real)} clusters are shown"
        real = real[:MAX_ROWS]
    rows = real + noise
    sil = silhouettes(space, labels, seed)
    size = thumb or (40 if max(np.asarray(data.image(0)).shape[:2]) <= 32 else 56)
    tiny = ImageFont.load_default(size=NAME_FONT)
    sources = _sources(data, size, tiny)
    slots = N_NEAREST + N_RANDOM + N_WORST
    width = PAD + slots * (size + PAD) + 2 * GAP + PAD + 200
    header = 2 * CAPTION + 6
    row_h = CAPTION + size + PAD + 4 + (NAME_LINE if sources is not None else 0)
    height = header + len(rows) * row_h + (CAPTION if note else 0) + PAD
    canvas = Image.new("RGB", (max(width, 480), height), "white")
    pen = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=13)
    small = ImageFont.load_default(size=11)
    pen.text((PAD, 2), title or "cluster gallery", fill="black", font=font)
    x = PAD
    for name, count in (("nearest centre", N_NEAREST), ("random", N_RANDOM), ("lowest silhouette", N_WORST)):
        pen.text((x, CAPTION + 2), name, fill="#555", font=small)
        x += count * (size + PAD) + GAP
    truth = data.labels
    if truth is not None:
        pen.text((x, CAPTION + 2), "red frame: not the majority label", fill="#d62728", font=small)
    y = header
    for cluster in rows:
        pen.text((PAD, y), caption(cluster, len(labels), data.class_names), fill="black", font=small)
        x = PAD
        groups = pick(space, cluster, sil, rng)
        for (_, idx), count in zip(groups, (N_NEAREST, N_RANDOM, N_WORST), strict=False):
            for i in idx:
                canvas.paste(_thumb(data.image(int(i)), size), (x, y + CAPTION))
                if truth is not None and cluster.majority is not None and truth[i] != cluster.majority:
                    pen.rectangle([x - 1, y + CAPTION - 1, x + size, y + CAPTION + size], outline="#d62728", width=2)
                name = None if sources is None else short_name(sources[int(i)], size, tiny)
                if name:
                    pen.text((x, y + CAPTION + size + 1), name, fill="#444", font=tiny)
                x += size + PAD
            x += (count - len(idx)) * (size + PAD) + GAP
        y += row_h
    if note:
        pen.text((PAD, y), f"Note: {note}.", fill="#a00", font=small)
    canvas.save(path, format="PNG", compress_level=3)
    return Path(path), note
