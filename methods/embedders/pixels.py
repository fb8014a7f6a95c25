"""Raw pixels scaled to [0, 1] and flattened: the baseline every paper reports."""

from __future__ import annotations

import time

import numpy as np

from clusterbench.core.errors import UserError
from clusterbench.core.params import ImageSize

from .base import EMBEDDERS, EmbedderBase, Embedding, EmbedRequest, EmbedStats


@EMBEDDERS.register("pixels")
class Pixels(EmbedderBase):
    def __init__(self, size: ImageSize = None, grayscale: bool = False):
        self.size = size
        self.grayscale = grayscale

    def identity(self) -> str:
        return "pixels"

    def embed(self, data, request: EmbedRequest | None = None) -> Embedding:
        start = time.perf_counter()
        images = data.images
        if self.size is not None or self.grayscale or not isinstance(images, np.ndarray):
            prepared = [self._prepare(data.image(i)) for i in range(len(data))]
            if len({p.shape for p in prepared}) > 1:
                raise UserError("pixels: images differ in size; give pixels:size=N to resize them to N x N")
            images = np.stack(prepared)
        features = images.reshape(len(images), -1).astype(np.float32) / 255.0
        seconds = time.perf_counter() - start
        stats = EmbedStats(seconds=seconds, images_per_s=len(data) / max(seconds, 1e-9), model="pixels",
                           feature_dim=int(features.shape[1]), n_images=len(data))
        return Embedding(features, stats)

    def _prepare(self, img: np.ndarray) -> np.ndarray:
        from PIL import Image

        if self.grayscale and img.shape[2] == 3:
            img = np.asarray(Image.fromarray(img).convert("L"))[:, :, None]
        if self.size is not None:
            mode_img = Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img)
            img = np.asarray(mode_img.resize((self.size, self.size), Image.BILINEAR))
            img = img if img.ndim == 3 else img[:, :, None]
        return img
