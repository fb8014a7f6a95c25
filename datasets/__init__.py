"""Datasets: one file each, registered in ``DATASETS``."""

from . import digits, fashion_mnist, features, folder, imagenet_vid, torchvision_sets, video  # noqa: F401
from .base import DATASETS, ImageData
from .images import IMAGE_EXTENSIONS, decode_image

__all__ = ["DATASETS", "IMAGE_EXTENSIONS", "ImageData", "decode_image"]
