"""The cluster gallery: one row per cluster, the images nearest its centre, a few random ones and
the lowest-silhouette ones, captioned with size, majority label and purity. Images come from the
dataset (``ImageData.image(i)``); nothing is embedded again. Drawn with Pillow: it is a mosaic of
images, not a plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import NOISE, Cluster, class_name

N_NEAREST, N_RANDOM, N_WORST = 12, 3, 3
MAX_ROWS = 40
SILHOUETTE_SAMPLE = 3000  # silhouette is O(N^2): per-point values on a sample at most this big
GAP, PAD, CAPTION = 10, 2, 18


def has_images(data) -> bool:
    """Whether the dataset has images to show (a precomputed-features dataset has none)."""
    try:
        img = np.asarray(data.image(0))
    except Exception:  # noqa: BLE001 - no image() or no images: the non-image pictures only
        return False
    return img.ndim == 3 and img.shape[2] in (1, 3, 4) and img.dtype == np.uint8


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
    if len(np.unique(labels[idx])) < 2:
        return {}
    if len(idx) > SILHOUETTE_SAMPLE:
        idx = np.sort(np.random.default_rng(seed).choice(idx, SILHOUETTE_SAMPLE, replace=False))
    if len(np.unique(labels[idx])) < 2:
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
    slots = N_NEAREST + N_RANDOM + N_WORST
    width = PAD + slots * (size + PAD) + 2 * GAP + PAD + 200
    header = 2 * CAPTION + 6
    row_h = CAPTION + size + PAD + 4
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
                x += size + PAD
            x += (count - len(idx)) * (size + PAD) + GAP
        y += row_h
    if note:
        pen.text((PAD, y), f"Note: {note}.", fill="#a00", font=small)
    canvas.save(path, format="PNG", compress_level=3)
    return Path(path), note
