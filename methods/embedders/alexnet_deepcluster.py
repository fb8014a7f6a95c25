"""Features of a DeepCluster-trained AlexNet (Caron et al., 2018).

Three sources of weights:

- trained in-line on the cell's dataset (``epochs=``, ``k=`` and the other training
  parameters): the training is cached under ``<results>/cache/work/deepcluster/<config>-<dataset>``
  with a checkpoint per epoch, so it happens once and an interrupted one resumes;
- ``checkpoint=PATH`` of one of our trainings (``.../checkpoint.pt``);
- ``checkpoint=PATH`` of the official DeepCluster AlexNet file (``{'arch', 'state_dict', ...}``,
  DataParallel ``module.`` keys, Sobel layer): mapped onto the same network.

Features are by default the penultimate layer (the last fc before its ReLU, ``layer=fc7``), the
representation DeepCluster itself clusters; ``layer=fc6`` takes the first fc after its ReLU and
``layer=conv`` the convolutional body (the README's 70k Fashion-MNIST runs score each: no layer
wins at every training seed). Rows are L2-normalised as DeepCluster normalises them before its k-means
(``l2=false`` for the raw activations).
"""

from __future__ import annotations

import os
import time
from typing import Annotated, Literal

from clusterbench.core.errors import UserError
from clusterbench.core.hashing import file_sha256
from clusterbench.core.params import ExistingFile
from clusterbench.methods.deepcluster.config import DeepClusterConfig, spec_parameter, training_init

from .base import EMBEDDERS, EmbedderBase, Embedding, EmbedRequest, EmbedStats

Layer = Literal["fc7", "fc6", "conv"]
_HAS_FC = ("auto", "alexnet", "alexnet-small")  # the backbones with fc layers (torchvision ones end at the body)


@EMBEDDERS.register("alexnet-deepcluster")
class AlexNetDeepCluster(EmbedderBase):
    """DeepCluster-trained AlexNet: trained in-line (epochs=, k=) or checkpoint=PATH (ours or official)."""

    # in-line training: where its checkpoints live, its per-epoch metrics and figure, the evaluation K
    needs = frozenset({"work_dir", "log", "grid_k"})
    has_classifier = False  # trained on pseudo-labels: no head whose classes mean anything

    # every training parameter as DeepClusterConfig declares it, a checkpoint to read instead of
    # training, and which layer's features to return
    __init__ = training_init(
        before=(spec_parameter("checkpoint", Annotated[str, ExistingFile()] | None, None),),
        after=(spec_parameter("layer", Layer, "fc7"), spec_parameter("l2", bool, True)))

    def config(self) -> DeepClusterConfig:
        return DeepClusterConfig.from_params(self)

    def _checkpoint_path(self) -> str:
        path = os.path.expanduser(str(self.checkpoint))
        if not os.path.isfile(path):
            raise UserError(f"alexnet-deepcluster: checkpoint={self.checkpoint!r} is not a file")
        return path

    def identity(self) -> str:
        """``file:<name>:<sha256>`` for a checkpoint, else ``deepcluster:<training config hash>``
        (the dataset fingerprint is part of the embedding cache key already)."""
        if self.checkpoint is not None:
            if getattr(self, "_file_identity", None) is None:
                path = self._checkpoint_path()
                self._file_identity = f"file:{os.path.basename(path)}:{file_sha256(path)}"
            return self._file_identity
        return f"deepcluster:{self.config().key()}"

    def embed(self, data, request: EmbedRequest | None = None) -> Embedding:
        from clusterbench.methods.deepcluster.evaluate import evaluation_features

        request = request if request is not None else EmbedRequest()
        if request.with_logits:
            raise UserError("alexnet-deepcluster has no ImageNet classifier head: k=semantic is not available")
        if self.layer == "fc6" and self.checkpoint is None and self.backbone not in _HAS_FC:
            raise UserError(f"alexnet-deepcluster: layer=fc6 needs an AlexNet backbone; {self.backbone} has no fc layers")
        start = time.perf_counter()
        if self.checkpoint is not None:
            features, record = self._from_checkpoint(data)
        else:
            features, record = self._train(data, request.context)
        if self.l2:
            features = evaluation_features(features)
        stats = EmbedStats.from_pass(record, weights=self.identity(), n_images=len(data),
                                     feature_dim=int(features.shape[1]), l2=bool(self.l2),
                                     embed_seconds_total=time.perf_counter() - start)
        return Embedding(features.astype("float32", copy=False), stats)

    def _train(self, data, context):
        """Train (or resume, or load) under ``context.work_dir`` (the runner's ``<results>/cache/work``,
        shared with the ``deepcluster`` clusterer); without one, in memory only."""
        from clusterbench.methods.deepcluster import (
            compute_features,
            nmi_figure,
            prepare_images,
            run_dir,
            train_deepcluster,
        )

        config = self.config()
        checkpoint_dir = run_dir(context.work_dir, config, data.fingerprint) if context.work_dir else None
        result = train_deepcluster(data, config, checkpoint_dir=checkpoint_dir, log_metrics=context.log_metrics,
                                   eval_k=context.grid_k)
        if result.history and context.log_figure is not None:
            context.log_figure(nmi_figure(result.history, f"DeepCluster on {getattr(data, 'name', '')}, k={config.k}"),
                               "deepcluster_nmi.png")
        record = {k: v for k, v in result.info.items() if isinstance(v, str | int | float | bool) or v is None}
        record["checkpoint"] = result.checkpoint
        record["model"] = f"{result.info.get('backbone')}-deepcluster"
        record["image_size"] = result.info.get("size")
        features = result.features
        if self.layer != "fc7":  # the training's own pass is the clustered fc7; another layer needs its own
            features, _ = compute_features(result.model, prepare_images(data, int(result.info["size"])),
                                           device=result.info["device"], precision=result.info["precision"],
                                           batch_size=self.batch_size, desc=f"alexnet-deepcluster {self.layer}",
                                           layer=self.layer)
        record["layer"] = self.layer
        return features, record

    def _from_checkpoint(self, data):
        import torch

        from clusterbench.infer.inference import resolve_device, resolve_precision
        from clusterbench.methods.deepcluster import (
            compute_features,
            load_official_checkpoint,
            prepare_images,
        )
        from clusterbench.methods.deepcluster.checkpoint import (
            is_our_checkpoint,
            model_from_checkpoint,
            read_checkpoint,
        )

        path = self._checkpoint_path()
        obj = read_checkpoint(path)
        if is_our_checkpoint(obj):
            net, config, resolved = model_from_checkpoint(obj)
            size, source = int(self.size or resolved["size"]), "clusterbench"
            trained = {"trained_epochs": int(obj.get("epoch", 0)), "trained_k": config.k}
        elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            net, meta = load_official_checkpoint(obj)
            size, source = int(self.size or 224), "official"
            trained = {"trained_epochs": meta.get("epoch")}
        else:
            raise UserError(f"alexnet-deepcluster: {path} is neither a clusterbench DeepCluster checkpoint "
                            "nor an official one (a dict with 'state_dict')")
        device = resolve_device(self.device)
        precision = resolve_precision(self.precision, device)
        net = net.to(device).to(memory_format=torch.channels_last)
        images = prepare_images(data, size)
        features, stats = compute_features(net, images, device=device, precision=precision,
                                           batch_size=self.batch_size, desc="alexnet-deepcluster", layer=self.layer)
        record = {**stats, "layer": self.layer, "checkpoint": path, "checkpoint_format": source, "image_size": size,
                  "model": f"{getattr(net, 'arch', 'alexnet')}-deepcluster", "sobel": net.sobel is not None, **trained}
        return features, record
