"""Any timm image model as an embedder: pooled pre-logits features.

``timm:model=NAME`` with ``pretrained=true`` (timm's weights through the Hugging Face cache),
``false`` (seeded random init) or a path to a state dict file.
"""

from __future__ import annotations

import difflib
import os
from contextlib import contextmanager
from typing import Annotated, Literal

from clusterbench.core.errors import UserError
from clusterbench.core.params import BatchSize, Device, ExistingFile, ImageSize, Precision, Seed

from . import weights as weightlib
from .base import EMBEDDERS, Classes
from .torch_base import TorchEmbedder, imagenet_info_classes

_HF_HOST = "huggingface.co"


@EMBEDDERS.register("timm")
class TimmModel(TorchEmbedder):
    """Any timm model; the embed() flow is :class:`~clusterbench.methods.embedders.torch_base.TorchEmbedder`'s.

    Logits need a network with a head: pretrained weights (``pretrained=false`` or a file give
    the features only, ``num_classes=0``).
    """

    has_classifier = True  # the pretrained head (ImageNet classes from its pretrained cfg)

    def __init__(
        self,
        model: str,
        # true (timm's weights), false / none / random (seeded init) or the path of a state dict file
        pretrained: bool | None | Literal["imagenet", "random"] | Annotated[str, ExistingFile()] = True,
        size: ImageSize = None,
        device: Device = "auto",
        precision: Precision = "auto",
        batch_size: BatchSize = "auto",
        seed: Seed = 0,
        compile: bool = False,
    ):
        self.model = model
        self.pretrained = pretrained
        self.size = size
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self.seed = seed
        self.compile = compile

    # --- weights -------------------------------------------------------------------------

    def _source(self) -> tuple[str, str | None]:
        """("pretrained", None), ("random", None) or ("file", path)."""
        p = self.pretrained
        if p is True or (isinstance(p, str) and p.lower() in ("true", "yes", "imagenet")):
            return "pretrained", None
        if p in (False, None) or (isinstance(p, str) and p.lower() in ("false", "no", "none", "random")):
            return "random", None
        path = os.path.expanduser(str(p))
        if not os.path.isfile(path):
            raise UserError(
                f"timm {self.model}: pretrained={p!r} is not a file; expected true, false or the path of a state dict file"
            )
        return "file", path

    def pretrained_cfg(self):
        """timm's configuration for the model (resolves the default weights tag); validates the name."""
        import timm
        from timm.models import get_pretrained_cfg, split_model_name_tag

        name = str(self.model)
        arch, tag = split_model_name_tag(name)
        if not timm.is_model(arch):
            match = difflib.get_close_matches(arch, timm.list_models(), n=3, cutoff=0.5)
            hint = f" (closest: {', '.join(match)})" if match else ""
            raise UserError(f"unknown timm model {name!r}{hint}; see timm.list_models()")
        try:
            cfg = get_pretrained_cfg(name)
        except RuntimeError:
            tags = ", ".join(timm.list_pretrained(f"{arch}.*")) or "none"
            raise UserError(f"timm model {arch!r} has no weights tagged {tag!r}; available: {tags}") from None
        if self._source()[0] == "pretrained" and not timm.is_model_pretrained(name):
            raise UserError(
                f"timm model {name!r} has no pretrained weights; use pretrained=false or pretrained=PATH"
            )
        return cfg

    def identity(self) -> str:
        kind, path = self._source()
        if kind == "random":
            return f"random:seed={self.seed}"
        if kind == "pretrained":
            cfg = self.pretrained_cfg()
            return (
                f"timm:{cfg.architecture}.{cfg.tag}:pretrained"
                if cfg.tag
                else f"timm:{cfg.architecture}:pretrained"
            )
        return self._file_identity(path)

    def classes(self) -> Classes | None:
        """Names and WordNet ids of the pretrained head's classes, when it is an ImageNet head; else None."""
        if self._source()[0] != "pretrained":
            return None
        from timm.data import infer_imagenet_subset

        subset = infer_imagenet_subset(self.pretrained_cfg().to_dict())
        return imagenet_info_classes(subset) if subset is not None else None

    @property
    def label(self) -> str:
        return f"timm {self.model}"

    @property
    def model_name(self) -> str:
        return f"timm:{self.model}"

    # --- model and preprocessing ---------------------------------------------------------

    def _create(self):
        import timm

        cfg = self.pretrained_cfg()
        kind, path = self._source()
        kwargs = {}
        if self.size is not None and cfg.fixed_input_size:
            kwargs["img_size"] = int(self.size)  # e.g. ViTs: timm resamples position embeddings
        if kind == "pretrained":
            return self._create_pretrained(cfg, kwargs)
        net = self._seeded(lambda: timm.create_model(str(self.model), pretrained=False, num_classes=0, **kwargs))
        if kind == "file":
            state = _without_classifier(weightlib.load_state_dict(path), cfg.classifier)
            weightlib.apply_state_dict(net, state, f"file {path}")
        return net

    def _create_pretrained(self, cfg, kwargs):
        import huggingface_hub.constants
        import timm

        try:
            with _offline_when_unreachable():
                return timm.create_model(str(self.model), pretrained=True, **kwargs)
        except OSError:
            cache = huggingface_hub.constants.HF_HUB_CACHE
            raise UserError(
                f"timm {self.model}: pretrained weights ({cfg.hf_hub_id or cfg.url}) are not in the "
                f"Hugging Face cache {cache} and could not be downloaded; give pretrained=PATH (a state dict file)"
            ) from None

    def transform(self):
        """timm's eval preprocessing for this model, applied to uint8 CHW tensors."""
        from timm.data import resolve_data_config

        config = resolve_data_config({}, pretrained_cfg=self.pretrained_cfg().to_dict())
        size = self._size()
        if size is not None:
            config = {**config, "input_size": (3, size, size), "crop_pct": 1.0, "crop_mode": "center"}
        return _tensor_transform(config)

    # --- features ------------------------------------------------------------------------

    def details(self) -> dict:
        return {"layer": "pre_logits"}

    def check_head(self, net) -> None:
        if getattr(net, "num_classes", 0) <= 0:
            raise UserError(f"timm {self.model}: this network has no classifier head (num_classes=0) to give logits "
                            "with; k=semantic needs pretrained=true")

    def _forward(self, net, with_logits: bool):
        return _pooled(net, with_logits), lambda: None


def _pooled(net, with_logits: bool):
    """Wrap a timm model so one forward pass returns pooled pre-logits features (and logits)."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            x = self.net.forward_features(x)
            features = self.net.forward_head(x, pre_logits=True)
            return (features, self.net.forward_head(x)) if with_logits else features

    return Pooled()


def _tensor_transform(config: dict):
    """timm's resize/crop geometry on uint8 tensors, then scaling and normalisation.

    timm's own eval transform expects PIL images (its Normalize rejects uint8 tensors), so its
    geometry is kept and the tensor conversion replaced.
    """
    import torch
    from timm.data import create_transform
    from timm.data.transforms import CenterCropOrPad, MaybePILToTensor
    from torchvision.transforms import v2

    geometry = create_transform(**config, use_prefetcher=True).transforms
    steps = [t for t in geometry if not isinstance(t, MaybePILToTensor | CenterCropOrPad)]
    # "border" crop mode pads with the mean colour, which fails on tensors; zero padding after
    # normalisation is the same colour.
    border = any(isinstance(t, CenterCropOrPad) for t in geometry)
    tail = [v2.CenterCrop(config["input_size"][1:])] if border else []
    compose = v2.Compose(
        [*steps, v2.ToDtype(torch.float32, scale=True), v2.Normalize(config["mean"], config["std"]), *tail]
    )
    compose.input_size = config["input_size"]
    return compose


def _without_classifier(state: dict, classifier) -> dict:
    """Drop the classification head's weights: features never use it, and fine-tuned heads differ in size."""
    prefixes = (classifier,) if isinstance(classifier, str) else tuple(classifier or ())
    return {k: v for k, v in state.items() if not any(k == p or k.startswith(p + ".") for p in prefixes)}


@contextmanager
def _offline_when_unreachable():
    """Switch the Hugging Face hub to offline mode when it cannot be reached.

    Without it timm spends about 45 s in retries before failing; offline mode still serves
    files already in the cache.
    """
    import huggingface_hub.constants as hf

    if (
        os.environ.get("HF_HUB_OFFLINE")
        or hf.HF_HUB_OFFLINE
        or weightlib.host_reachable(_HF_HOST, timeout=3.0)
    ):
        yield
        return
    os.environ["HF_HUB_OFFLINE"] = "1"
    hf.HF_HUB_OFFLINE = True  # read once at import: the variable alone would not take effect now
    try:
        yield
    finally:
        del os.environ["HF_HUB_OFFLINE"]
        hf.HF_HUB_OFFLINE = False
