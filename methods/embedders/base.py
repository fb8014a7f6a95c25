"""The embedder registry and the records every embedder returns (see :mod:`clusterbench.core.contracts`)."""

from __future__ import annotations

from typing import ClassVar

from clusterbench.core.contracts import Classes, Embedder, Embedding, EmbedRequest, EmbedStats
from clusterbench.core.registry import Registry

EMBEDDERS = Registry("embedder", group="clusterbench.embedders", contract=Embedder)

__all__ = ["EMBEDDERS", "Classes", "EmbedRequest", "EmbedStats", "Embedding", "EmbedderBase"]


class EmbedderBase:
    """Defaults of the :class:`~clusterbench.core.contracts.Embedder` contract."""

    needs: ClassVar[frozenset[str]] = frozenset()
    has_classifier: ClassVar[bool] = False
    consumes: ClassVar[str] = "images"  # or "features": what the dataset must hold (see contracts.INPUTS)
    cache_features: ClassVar[bool] = True  # False: its output is already on disk (no cache copy)

    def identity(self) -> str:
        raise NotImplementedError

    def embed(self, data, request: EmbedRequest) -> Embedding:
        raise NotImplementedError
