"""Datasets: one file each, registered in ``DATASETS``."""

from . import digits, fashion_mnist, folder, torchvision_sets  # noqa: F401
from .base import DATASETS, ImageData
from .images import IMAGE_EXTENSIONS, decode_image

__all__ = ["DATASETS", "IMAGE_EXTENSIONS", "ImageData", "decode_image"]
