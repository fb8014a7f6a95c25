"""sklearn's bundled 8x8 handwritten digits (1797 images, 10 classes)."""

import numpy as np

from clusterbench.core.params import Limit, Seed

from .base import DATASETS, SOURCE_COLUMN, content_hash, finish, indexed_sources


@DATASETS.register("digits")
class Digits:
    def __init__(self, limit: Limit = None, seed: Seed = 0):
        self.limit = limit
        self.seed = seed

    def load(self):
        from sklearn.datasets import load_digits

        bunch = load_digits()
        # Pixel values are 0..16; scale to the uint8 range every other dataset uses.
        images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
        names = [str(t) for t in bunch.target_names]
        return finish("digits", images, bunch.target, names, content_hash(images, bunch.target), self.limit, self.seed,
                      items={SOURCE_COLUMN: indexed_sources("digits", len(images))}, mirror_invariant=False)
