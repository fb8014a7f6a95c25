"""Clusterers: one file each, registered in ``CLUSTERERS``."""

from . import agglomerative, deepcluster, hdbscan_density, kmeans  # noqa: F401
from .base import CLUSTERERS

__all__ = ["CLUSTERERS"]
