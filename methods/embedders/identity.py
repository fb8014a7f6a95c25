"""The features a ``features:`` dataset holds, passed through: precomputed embeddings clustered as they are."""

from __future__ import annotations

import time

from clusterbench.core.errors import UserError

from .base import EMBEDDERS, EmbedderBase, Embedding, EmbedRequest, EmbedStats


@EMBEDDERS.register("identity")
class Identity(EmbedderBase):
    consumes = "features"
    # the features file is already on disk, memory-mapped: a cache copy would only double it
    cache_features = False

    def __init__(self):
        pass

    def identity(self) -> str:
        return "identity"

    def embed(self, data, request: EmbedRequest | None = None) -> Embedding:
        if data.has_images:
            raise UserError(f"identity: dataset {data.name!r} holds images; identity passes a features: dataset through")
        start = time.perf_counter()
        features = data.features
        seconds = time.perf_counter() - start
        stats = EmbedStats(seconds=seconds, images_per_s=len(features) / max(seconds, 1e-9), model="identity",
                           weights=f"file:{data.info.get('root')}", feature_dim=int(features.shape[1]),
                           n_images=len(features), details={"opened": data.info.get("opened")})
        return Embedding(features, stats)
