"""A small labelled video set for the measurement: six classes (circle, square, triangle x red,
blue), six clips each, written with PyAV. Each clip moves its shape over a background of its own
brightness with pixel noise and a size of its own, so frames of one class differ by clip and the
clips themselves are a competing grouping (as in real video)."""

from __future__ import annotations

import os

import numpy as np

SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (220, 50, 40), "blue": (40, 60, 220)}
CLIPS, SECONDS, RATE, SIDE = 6, 3, 10, 64


def _mask(shape: str, y0: int, x0: int, size: int) -> np.ndarray:
    yy, xx = np.mgrid[:SIDE, :SIDE]
    y, x = yy - y0, xx - x0
    if shape == "circle":
        r = size / 2
        return (y - r) ** 2 + (x - r) ** 2 <= r * r
    if shape == "square":
        return (y >= 0) & (y < size) & (x >= 0) & (x < size)
    return (y >= 0) & (y < size) & (np.abs(x - size / 2) <= y / 2)  # apex up


def write_clip(path: str, shape: str, colour, seed: int) -> None:
    import av

    rng = np.random.default_rng(seed)
    size, y0, background = int(rng.integers(14, 26)), int(rng.integers(2, 30)), int(rng.integers(0, 90))
    with av.open(path, "w") as container:
        stream = container.add_stream("mpeg4", rate=RATE)
        stream.width = stream.height = SIDE
        stream.pix_fmt = "yuv420p"
        for i in range(SECONDS * RATE):
            x0 = 2 + (i * 2 + seed) % (SIDE - size - 4)
            img = rng.normal(background, 12, (SIDE, SIDE, 3)).clip(0, 255)
            img[_mask(shape, y0, x0, size)] = colour
            frame = av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make(root: str) -> str:
    """Write the clips under ``root/<shape>-<colour>/clipN.mp4`` once; return ``root``."""
    done = os.path.join(root, ".complete")
    if os.path.exists(done):
        return root
    seed = 0
    for shape in SHAPES:
        for name, colour in COLOURS.items():
            folder = os.path.join(root, f"{shape}-{name}")
            os.makedirs(folder, exist_ok=True)
            for clip in range(CLIPS):
                write_clip(os.path.join(folder, f"clip{clip}.mp4"), shape, colour, seed)
                seed += 1
    open(done, "w").close()
    return root
