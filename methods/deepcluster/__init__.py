"""DeepCluster (Caron et al., 2018): k-means on the network's own features, then training the
network on the resulting pseudo-labels, alternately. The algorithm lives here; the clusterer
``deepcluster`` and the embedder ``alexnet-deepcluster`` are thin faces over it."""

from .model import build_model, load_official_checkpoint, strip_data_parallel
from .train import (
    DeepClusterConfig,
    DeepClusterResult,
    compute_features,
    model_from_checkpoint,
    nmi_figure,
    prepare_images,
    read_checkpoint,
    run_dir,
    train_deepcluster,
)

__all__ = [
    "DeepClusterConfig",
    "DeepClusterResult",
    "build_model",
    "compute_features",
    "load_official_checkpoint",
    "model_from_checkpoint",
    "nmi_figure",
    "prepare_images",
    "read_checkpoint",
    "run_dir",
    "strip_data_parallel",
    "train_deepcluster",
]
