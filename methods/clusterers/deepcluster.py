"""DeepCluster as a clusterer: trains the network on the cell's images and returns its final
pseudo-labels (k-means at the overclustering ``k`` on the learned features).

``k`` here is DeepCluster's own K (overclustering, K >> classes). When the grid's K (``eval_k``,
by default ``context.grid_k``: --k, the suite's k or the number of classes) differs,
k-means at that K on the learned features is reported too, under the prefix ``kmeans_k<K>.``.
The cell's X (the embedder's features) is not used: DeepCluster learns its own.
"""

from __future__ import annotations

from clusterbench.core.errors import UserError
from clusterbench.methods.deepcluster.config import DeepClusterConfig, OwnK, spec_parameter, training_init

from .base import CLUSTERERS, ClustererBase, ClusterResult, Labeling


@CLUSTERERS.register("deepcluster")
class DeepCluster(ClustererBase):
    """DeepCluster (Caron et al. 2018): k-means on the CNN's features <-> training on the pseudo-labels."""

    needs = frozenset({"data", "work_dir", "log", "grid_k"})
    owns_k = True  # its k is the overclustering K; the grid's K only names the extra k-means labels
    tunable = False  # trains a network per fit: not refitted per Optuna trial

    # every training parameter as DeepClusterConfig declares it, and the K its extra labels are at
    __init__ = training_init(after=(spec_parameter("eval_k", OwnK | None, None),))

    def config(self) -> DeepClusterConfig:
        return DeepClusterConfig.from_params(self)

    @staticmethod
    def skip(cell) -> str | None:
        """It trains a network on the images: a cell over precomputed features has none."""
        from clusterbench.core.catalog import registries

        if registries().datasets.traits(cell.dataset).provides == "features":
            return f"trains on images, and dataset {cell.dataset.name!r} holds precomputed features"
        return None

    def fit(self, X=None, context=None) -> ClusterResult:
        from clusterbench.methods.deepcluster import nmi_figure, run_dir, train_deepcluster
        from clusterbench.methods.deepcluster.evaluate import evaluation_kmeans

        if context is None or context.data is None:
            raise UserError("deepcluster needs the images, not only features: run it through the harness "
                            "(fit(X, Context(data=..., work_dir=...)))")
        data = context.data
        config = self.config()
        eval_k = self.eval_k if self.eval_k is not None else context.grid_k
        if eval_k is not None and (not isinstance(eval_k, int) or eval_k < 2):
            raise UserError(f"deepcluster: eval_k={eval_k!r} must be an integer >= 2")
        checkpoint_dir = run_dir(context.work_dir, config, data.fingerprint) if context.work_dir else None
        result = train_deepcluster(data, config, checkpoint_dir=checkpoint_dir,
                                   log_metrics=context.log_metrics or (lambda metrics, step: None), eval_k=eval_k)
        if result.history and context.log_figure is not None:
            context.log_figure(nmi_figure(result.history, f"DeepCluster on {getattr(data, 'name', '')}, k={config.k}"),
                               "deepcluster_nmi.png")
        extra = {}
        if eval_k is not None and eval_k != config.k and eval_k <= len(result.labels):
            features = result.eval_features
            extra[f"kmeans_k{eval_k}"] = Labeling(evaluation_kmeans(features, eval_k, config.seed), features)
        info = {
            "k": config.k,
            "epochs": config.epochs,
            "resumed_from_epoch": result.resumed_from,
            "train_seconds": result.info.get("train_seconds"),
            "feature_dim": result.info.get("feature_dim"),
            "backbone": result.info.get("backbone"),
            "device": result.info.get("device"),  # where it trained, and in which precision
            "precision": result.info.get("precision"),
            "checkpoint": result.checkpoint,
        }
        # internal metrics in the learned representation k-means saw, not the cell's X
        return ClusterResult(result.labels, space=result.reduced, extra=extra, info=info)
