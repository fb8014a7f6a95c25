"""Frames sampled from the video files under a folder, decoded with PyAV (FFmpeg).

``root/<class>/.../*.mp4`` gives labelled frames (classes are the sorted sub-folder names);
videos directly in ``root`` with no class sub-folders give an unlabelled set. Frames are taken
``fps`` times per second of video time (the first frame, then the first frame at or after each
further 1/fps s; default 1 per second) or every ``every``-th decoded frame, at most
``max_frames`` per video, and decoded straight to ``size`` pixels on the shorter side (aspect
kept; FFmpeg's scaler does the resize). Each frame keeps its video (path relative to ``root``),
timestamp (seconds) and frame number as per-item metadata (``ImageData.items``); the video
column lets clusters be scored against the videos too. A video that cannot be opened, has no
video stream, yields no frame or fails mid-stream is skipped with a warning naming it, or is an
error with ``strict=true``.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from typing import Annotated

import numpy as np

from clusterbench.core.contracts import GROUP_COLUMN
from clusterbench.core.errors import DataError, DataWarning
from clusterbench.core.params import ExistingDir, Interval, Limit, PositiveInt, Seed

from .base import DATASETS, SOURCE_COLUMN, finish
from .folder import scan

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov")
DEFAULT_FPS = 1.0


def is_video_file(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def target_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) with the shorter side ``size`` and the aspect ratio kept."""
    if width <= height:
        return size, max(1, round(height * size / width))
    return max(1, round(width * size / height)), size


def decode_video(path: str, size: int, fps: float | None, every: int | None, max_frames: int | None):
    """(frames, timestamps, frame numbers) sampled from ``path``; ``DataError`` naming the file
    when it cannot be used."""
    import av

    if os.path.getsize(path) == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    frames, times, numbers = [], [], []
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise DataError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            start = next_time = None
            for number, frame in enumerate(container.decode(stream)):
                t = frame.time if frame.time is not None else number / float(stream.average_rate or 25)
                if every is not None:
                    take = number % every == 0
                else:
                    start = t if start is None else start
                    take = next_time is None or t - start >= next_time - 1e-6
                    if take:  # the next frame due at the first multiple of 1/fps after this one
                        next_time = (np.floor((t - start) * fps + 1e-6) + 1) / fps
                if not take:
                    continue
                w, h = target_size(frame.width, frame.height, size)
                frames.append(frame.reformat(width=w, height=h, format="rgb24").to_ndarray())
                times.append(float(t))
                numbers.append(number)
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except DataError:
        raise
    except MemoryError:
        raise
    except Exception as e:  # PyAV's FFmpegError family, and anything a broken container raises
        text = " ".join(str(e).split()) or type(e).__name__
        raise DataError(f"{path}: cannot decode video ({text[:200]})") from None
    if not frames:
        raise DataError(f"{path}: no frames decoded (zero-length or corrupt video)")
    return frames, times, numbers


def file_digest(path: str) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.digest()


@DATASETS.register("video")
class Video:
    def __init__(self, root: Annotated[str, ExistingDir()],
                 fps: Annotated[float, Interval(0, None, closed="neither")] | None = None,
                 every: PositiveInt | None = None, max_frames: PositiveInt | None = None,
                 size: PositiveInt = 128, limit: Limit = None, seed: Seed = 0, strict: bool = False):
        self.root = root
        self.fps = fps
        self.every = every
        self.max_frames = max_frames
        self.size = size
        self.limit = limit
        self.seed = seed
        self.strict = strict

    @staticmethod
    def check_params(params: dict) -> str | None:
        """What the declarations cannot say: fps= and every= are two ways of one choice."""
        if params.get("fps") is not None and params.get("every") is not None:
            return "give fps= (frames per second) or every= (every Nth frame), not both"
        return None

    def load(self):
        root = os.path.abspath(os.path.expanduser(str(self.root)))
        if not os.path.isdir(root):
            raise DataError(f"video: {root} is not a directory")
        problem = self.check_params({"fps": self.fps, "every": self.every})
        if problem:
            raise DataError(f"video: {problem}")
        fps = None if self.every is not None else float(self.fps or DEFAULT_FPS)
        files, ids, names = scan(root, accept=is_video_file, noun="video")
        if not files:
            raise DataError(f"video: no videos found in {root} (looked for {' '.join(VIDEO_EXTENSIONS)}, any case)")
        digest = hashlib.sha256()
        frames, labels, videos, times, numbers, skipped = [], [], [], [], [], []
        for i, path in enumerate(files):
            rel = os.path.relpath(path, root)
            digest.update(rel.encode("utf-8", "surrogateescape") + b"\0" + file_digest(path))
            try:
                got, t, n = decode_video(path, self.size, fps, self.every, self.max_frames)
            except DataError as error:
                if self.strict:
                    raise
                warnings.warn(f"skipping unreadable video {error}", DataWarning, stacklevel=2)
                skipped.append(str(error))
                continue
            frames += got
            times += t
            numbers += n
            videos += [rel.replace(os.sep, "/")] * len(got)
            if ids is not None:
                labels += [ids[i]] * len(got)
        if not frames:
            raise DataError(f"video: none of the {len(files)} video(s) in {root} could be read (first: {skipped[0]})")
        images = np.stack(frames) if len({f.shape for f in frames}) == 1 else frames
        items = {GROUP_COLUMN: np.asarray(videos, dtype=object), "time": np.asarray(times),
                 "frame": np.asarray(numbers, dtype=np.int64),
                 SOURCE_COLUMN: np.asarray([f"{v}@{t:.2f}s" for v, t in zip(videos, times, strict=True)], dtype=object)}
        data = finish("video", images, labels or None, names, digest.hexdigest()[:16], self.limit, self.seed,
                      items=items, fps=fps if fps is not None else "none", every=self.every or "none",
                      max_frames=self.max_frames or "none", size=self.size)
        data.info.update(root=root, skipped=skipped, n_videos=len(files) - len(skipped))
        return data
