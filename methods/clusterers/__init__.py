"""Clusterers: one file each, registered in ``CLUSTERERS``; a plain scikit-learn style class
registered there (a plug-in's) is wrapped by the estimator adapter."""

from . import agglomerative, deepcluster, hdbscan_density, kmeans, sklearn_estimator  # noqa: F401
from .base import CLUSTERERS

CLUSTERERS.adapt = sklearn_estimator.adapt

__all__ = ["CLUSTERERS"]
