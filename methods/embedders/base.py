"""The embedder contract: ``embed(data) -> Embedding``; ``identity()`` names the weights used."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from clusterbench.registry import Registry

EMBEDDERS = Registry("embedder")


@dataclass
class Embedding:
    """``features`` is float32 (N, D); ``info`` records what was done (device, precision,
    seconds, images_per_s, weights identity, ...). ``logits`` are ImageNet class scores when the
    embedder has a classifier head and was asked for them."""

    features: np.ndarray
    info: dict = field(default_factory=dict)
    logits: np.ndarray | None = None
