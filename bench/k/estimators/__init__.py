"""K estimators: one file each, registered in ``K_ESTIMATORS``."""

from . import (  # noqa: F401
    bic,
    calinski_harabasz,
    davies_bouldin,
    elbow,
    gap,
    prediction_strength,
    silhouette,
    silhouette_umap,
    stability,
)
from .base import K_ESTIMATORS

__all__ = ["K_ESTIMATORS"]
