"""Embedders: one file each, registered in ``EMBEDDERS``."""

from . import pixels  # noqa: F401
from .base import EMBEDDERS, Embedding

__all__ = ["EMBEDDERS", "Embedding"]
