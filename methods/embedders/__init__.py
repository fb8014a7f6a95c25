"""Embedders: one file each, registered in ``EMBEDDERS``."""

from . import alexnet_deepcluster, efficientnet_lite0, identity, pixels, timm_model, torchvision_cnn  # noqa: F401
from .base import EMBEDDERS, Embedding

__all__ = ["EMBEDDERS", "Embedding"]
