"""DeepCluster (Caron et al., 2018): k-means on the network's own features, then training the
network on the resulting pseudo-labels, alternately. The algorithm lives here; the clusterer
``deepcluster`` and the embedder ``alexnet-deepcluster`` are thin faces over it."""

from .checkpoint import model_from_checkpoint, read_checkpoint
from .config import DeepClusterConfig, run_dir
from .evaluate import nmi_figure
from .images import prepare_images
from .model import build_model, load_official_checkpoint, strip_data_parallel
from .steps import compute_features
from .train import DeepClusterResult, train_deepcluster

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
