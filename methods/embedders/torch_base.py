"""What every torch embedder shares: the embed() flow and its helpers.

A torch embedder (torchvision CNNs, timm models, ...) subclasses :class:`TorchEmbedder` and
supplies only what is its own:

- ``identity()`` (with :meth:`TorchEmbedder._file_identity` for a weights file),
- ``transform()``: uint8 CHW tensor in, normalised float tensor out (with ``crop_size`` or
  ``input_size`` so the image size can be read back: :meth:`image_size`),
- ``_create()``: the network with its weights (:meth:`_seeded` for a seeded random init),
- ``classes()``: what the classifier head's outputs mean, or None,
- ``label`` (for messages and progress) and ``model_name`` (the stats' ``model``),
- optionally ``_forward()`` (which activations are the features; by default the input of the
  submodule named by the class attribute ``head``, globally average-pooled when spatial),
  ``check_head()`` (refuse logits a given network cannot give) and ``details()``.

The flow of :meth:`TorchEmbedder.embed`: transform -> identity -> build -> fold BatchNorm ->
the shared inference path (:func:`clusterbench.infer.inference.run_inference`) -> features
and logits -> :class:`EmbedStats`. Subclasses keep their own ``__init__`` (the registry reads
its signature); it must set ``device``, ``precision``, ``batch_size``, ``compile``, ``seed``
and ``size``.
"""

from __future__ import annotations

import os
from typing import ClassVar

from clusterbench.core.errors import UserError

from . import weights as weightlib
from .base import Classes, EmbedderBase, Embedding, EmbedRequest, EmbedStats

# What ImageNet-1k's 1000 classes are called in torchvision's category lists but not among
# the synonyms of the WordNet descriptions (timm's ImageNetInfo): the order is the same.
_KNOWN_RENAMES = 5


class TorchEmbedder(EmbedderBase):
    """The shared embed() flow of the torch embedders (see the module docstring)."""

    has_classifier: ClassVar[bool] = True
    head: ClassVar[str] = ""  # the classifier submodule whose input is the feature vector
    cam_layer: ClassVar[str] = ""  # the submodule Grad-CAM explains (``explain``); "": the last Conv2d

    device: str
    precision: str
    batch_size: int | str
    compile: bool
    seed: int
    size: int | None

    # --- what a subclass supplies -----------------------------------------------------------

    @property
    def label(self) -> str:
        """How messages and progress bars name this embedder."""
        raise NotImplementedError

    @property
    def model_name(self) -> str:
        """The stats' ``model``."""
        return self.label

    def transform(self):
        raise NotImplementedError

    def _create(self):
        """The network with the chosen weights (train or eval mode: :meth:`build` sets eval)."""
        raise NotImplementedError

    def classes(self) -> Classes | None:
        """What the classifier head's outputs mean, in logit order; None when unknown."""
        return None

    def details(self) -> dict:
        """Stats particular to this embedder (feature layer, ...): scalar values only."""
        return {}

    def check_head(self, model) -> None:
        """Raise a UserError when this network cannot give logits (called only when asked for them)."""

    def _forward(self, model, with_logits: bool):
        """(module whose forward returns features, or (features, logits); a cleanup callable)."""
        return tap(model, model.get_submodule(self.head), take_input=True, with_logits=with_logits)

    def cam_target(self, model):
        """The module whose activations Grad-CAM weighs: ``cam_layer``, else the last Conv2d."""
        import torch

        if self.cam_layer:
            return model.get_submodule(self.cam_layer)
        convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        if not convs:
            raise UserError(f"{self.label}: no convolution to explain with Grad-CAM")
        return convs[-1]

    # --- shared helpers ---------------------------------------------------------------------

    def _file_identity(self, path: str) -> str:
        """``file:<name>:<content hash>``, hashed once per instance."""
        cached = getattr(self, "_file_identity_cache", None)
        if cached is None or cached[0] != path:
            cached = (path, f"file:{os.path.basename(path)}:{weightlib.file_sha256(path)}")
            self._file_identity_cache = cached
        return cached[1]

    def _size(self) -> int | None:
        """``size=`` as a positive number of pixels, or None (the model's own)."""
        if self.size is None:
            return None
        size = int(self.size)
        if size < 1:
            raise UserError(f"{self.label}: size={self.size} must be a positive number of pixels")
        return size

    def _seeded(self, create):
        """``create()`` under ``torch.manual_seed(seed)``, without disturbing the caller's RNG."""
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.seed))
            return create()

    @staticmethod
    def image_size(transform) -> int:
        """The side of the images the network sees, from the transform."""
        crop = getattr(transform, "crop_size", None)
        if crop is not None:
            return int(crop[0] if isinstance(crop, list | tuple) else crop)
        return int(transform.input_size[-1])

    def build(self):
        """The network with the chosen weights, in eval mode (built once per instance)."""
        if getattr(self, "_model", None) is None:
            self._model = self._create().eval()
        return self._model

    # --- the flow ---------------------------------------------------------------------------

    def embed(self, data, request: EmbedRequest | None = None) -> Embedding:
        from clusterbench.infer.fold_bn import fold_batchnorm
        from clusterbench.infer.inference import run_inference

        request = request if request is not None else EmbedRequest()
        with_logits = bool(request.with_logits)
        transform = self.transform()
        identity = self.identity()
        model = self.build()
        if with_logits:
            self.check_head(model)
        folded = fold_batchnorm(model)
        forward, cleanup = self._forward(model, with_logits)
        size = self.image_size(transform)
        try:
            result = run_inference(forward, data, transform, device=self.device, precision=self.precision,
                                   batch_size=self.batch_size, compile=self.compile, desc=self.label)
        except RuntimeError as exc:
            if "too small" in str(exc):
                raise UserError(f"{self.label}: images of {size} px are too small for this network; "
                                "use a larger size") from None
            raise
        finally:
            cleanup()
        features, logits = result.outputs if with_logits else (result.outputs[0], None)
        stats = EmbedStats.from_pass(result.stats, weights=identity, model=self.model_name,
                                     feature_dim=int(features.shape[1]), image_size=size, n_images=len(data),
                                     batchnorm_folded=folded, **self.details())
        classes = self.classes() if with_logits else None
        return Embedding(features.astype("float32", copy=False), stats, logits, classes)


def tap(model, module, take_input: bool, with_logits: bool):
    """Wrap ``model`` so one forward pass returns features (and logits); also returns the cleanup.

    A hook on ``module`` keeps either its input (the pooled penultimate activations feeding
    the classifier) or its output (a chosen layer, globally average-pooled when spatial).
    """
    import torch

    seen: dict = {}

    class Tapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            logits = self.model(x)
            features = pool(seen.pop("x"))
            return (features, logits) if with_logits else features

    def keep_input(_module, args):
        seen["x"] = args[0]

    def keep_output(_module, _args, output):
        seen["x"] = output

    handle = module.register_forward_pre_hook(keep_input) if take_input else module.register_forward_hook(keep_output)
    return Tapped(), handle.remove


def pool(x):
    """Global average pooling of spatial maps; other shapes flattened to (N, D)."""
    if x.ndim == 4:
        return x.mean(dim=(2, 3))
    return x.flatten(1) if x.ndim > 2 else x


def imagenet_classes(names: list[str]) -> Classes:
    """``names`` with their WordNet ids when they are ImageNet-1k's 1000 classes in the standard
    (sorted-wnid) order, checked against timm's :class:`~timm.data.ImageNetInfo`; else no wnids."""
    names = list(names)
    wnids = None
    if len(names) == 1000:
        try:
            from timm.data import ImageNetInfo
        except ImportError:  # timm is optional for the torchvision embedders
            return Classes(names)
        info = ImageNetInfo("imagenet-1k")
        described = [{s.strip().lower() for s in info.index_to_description(i).split(",")} for i in range(1000)]
        renamed = sum(name.lower() not in synonyms for name, synonyms in zip(names, described, strict=True))
        if renamed <= _KNOWN_RENAMES:
            wnids = list(info.label_names())
    return Classes(names, wnids)


def imagenet_info_classes(subset: str) -> Classes:
    """Names (first synonym: "tench, Tinca tinca" -> "tench", like torchvision's) and WordNet ids
    of one of timm's ImageNet subsets (``imagenet-1k``, ``imagenet-22k``, ...)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo(subset)
    n = info.num_classes()
    return Classes([info.index_to_description(i).split(",")[0] for i in range(n)],
                   [info.index_to_label_name(i) for i in range(n)])
