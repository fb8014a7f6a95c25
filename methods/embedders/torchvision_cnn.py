"""torchvision ImageNet CNNs as embedders: ResNet-152, DenseNet-121/161/201, AlexNet.

Features are the globally pooled penultimate activations (the input of the classifier head),
or the output of any named submodule with ``layer=NAME``. Preprocessing is always the
transform that ships with the model's default torchvision weights.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal
from urllib.parse import urlparse

from clusterbench.core.errors import UserError
from clusterbench.core.params import BatchSize, Device, ExistingFile, ImageSize, Precision, Seed

from . import weights as weightlib
from .base import EMBEDDERS, Classes
from .torch_base import TorchEmbedder, imagenet_classes, tap

_RANDOM = (None, False, "none", "random")
_IMAGENET = ("imagenet", "default", True)


class TorchvisionCNN(TorchEmbedder):
    """Shared implementation; subclasses set ``arch`` and ``head`` (the classifier module).

    The embed() flow is :class:`~clusterbench.methods.embedders.torch_base.TorchEmbedder`'s;
    here: the weights (torchvision enum, seeded random init or a state dict file), the
    weights' own transform, and the ImageNet-1k classes of the head.
    """

    has_classifier = True  # an ImageNet head (with its weights): k=semantic
    arch: str = ""
    head: str = ""

    def __init__(
        self,
        # imagenet / default / true, none / random / false, a weights enum name (IMAGENET1K_V2) or a state dict file
        weights: Literal["imagenet", "default", "none", "random"] | bool | None
        | Annotated[str, ExistingFile(only_path_like=True)] = "imagenet",
        layer: str | None = None,
        size: ImageSize = None,
        device: Device = "auto",
        precision: Precision = "auto",
        batch_size: BatchSize = "auto",
        seed: Seed = 0,
        compile: bool = False,
    ):
        self.weights = weights
        self.layer = layer
        self.size = size
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self.seed = seed
        self.compile = compile

    # --- weights -------------------------------------------------------------------------

    def _weights_enum(self):
        from torchvision.models import get_model_weights

        return get_model_weights(self.arch)

    def _source(self) -> tuple[str, object]:
        """("random", None), ("torchvision", a weights enum member) or ("file", path)."""
        w = self.weights
        if w in _RANDOM or (isinstance(w, str) and w.lower() in _RANDOM):
            return "random", None
        if w in _IMAGENET or (isinstance(w, str) and w.lower() in _IMAGENET):
            return "torchvision", self._weights_enum().DEFAULT
        member = self._enum_member(str(w))
        if member is not None:
            return "torchvision", member
        path = os.path.expanduser(str(w))
        if not os.path.isfile(path):
            names = ", ".join(m.name for m in self._weights_enum())
            raise UserError(
                f"{self.arch}: weights={w!r} is not a file; expected imagenet, none, one of {names}, "
                "or the path of a state dict file"
            )
        return "file", path

    def _enum_member(self, text: str):
        enum = self._weights_enum()
        name = text.rsplit(".", 1)[-1] if text.startswith(enum.__name__ + ".") else text
        return enum.__members__.get(name.upper())

    def identity(self) -> str:
        """Names the exact weights: enum member, random seed, or file name + content hash."""
        kind, value = self._source()
        if kind == "random":
            return f"random:seed={self.seed}"
        if kind == "torchvision":
            return str(value)
        return self._file_identity(value)

    def classes(self) -> Classes:
        """The 1000 ImageNet categories in logit order, with their WordNet ids."""
        kind, value = self._source()
        member = value if kind == "torchvision" else self._weights_enum().DEFAULT
        return imagenet_classes(member.meta["categories"])

    @property
    def label(self) -> str:
        return self.arch

    # --- model and preprocessing ---------------------------------------------------------

    def transform(self):
        """The default weights' own preprocessing (uint8 CHW tensor in, normalised float out)."""
        kind, value = self._source()
        member = value if kind == "torchvision" else self._weights_enum().DEFAULT
        size = self._size()
        return member.transforms() if size is None else member.transforms(crop_size=size, resize_size=size)

    def _create(self):
        from torchvision.models import get_model

        kind, value = self._source()
        if kind == "torchvision":
            _require_download_possible(self.arch, value)
            try:
                return get_model(self.arch, weights=value)
            except OSError as exc:
                raise UserError(f"{self.arch}: downloading {value} failed: {exc}") from None
        model = self._seeded(lambda: get_model(self.arch, weights=None))
        if kind == "file":
            weightlib.apply_state_dict(model, weightlib.load_state_dict(value), f"file {value}")
        return model

    # --- features ------------------------------------------------------------------------

    def details(self) -> dict:
        return {"layer": self.layer or f"{self.head}:input"}

    def _forward(self, model, with_logits: bool):
        return tap(model, self._tapped_module(model), self.layer is None, with_logits)

    def _tapped_module(self, model):
        if self.layer is None:
            return model.get_submodule(self.head)
        try:
            return model.get_submodule(str(self.layer))
        except AttributeError:
            names = ", ".join(name for name, _ in model.named_children())
            raise UserError(
                f"{self.arch}: unknown layer {self.layer!r}; top-level layers: {names} (nested: e.g. layer3.0)"
            ) from None


def _require_download_possible(arch: str, member) -> None:
    """Fail in seconds, not minutes, when weights are neither cached nor downloadable."""
    import torch

    url = urlparse(member.url)
    filename = os.path.basename(url.path)
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", filename)
    if os.path.isfile(cached) or weightlib.host_reachable(url.hostname, timeout=3.0):
        return
    raise UserError(
        f"{arch}: {member} weights are not cached at {cached} and {url.hostname} is unreachable; "
        f"give weights=PATH (a state dict file) or copy {filename} to that path"
    )


@EMBEDDERS.register("resnet152")
class ResNet152(TorchvisionCNN):
    """ResNet-152 (torchvision), 2048-d pooled features."""

    arch, head = "resnet152", "fc"
    cam_layer = "layer4"


@EMBEDDERS.register("densenet121")
class DenseNet121(TorchvisionCNN):
    """DenseNet-121 (torchvision), 1024-d pooled features."""

    arch, head = "densenet121", "classifier"
    cam_layer = "features"


@EMBEDDERS.register("densenet161")
class DenseNet161(TorchvisionCNN):
    """DenseNet-161 (torchvision), 2208-d pooled features."""

    arch, head = "densenet161", "classifier"
    cam_layer = "features"


@EMBEDDERS.register("densenet201")
class DenseNet201(TorchvisionCNN):
    """DenseNet-201 (torchvision), 1920-d pooled features."""

    arch, head = "densenet201", "classifier"
    cam_layer = "features"


@EMBEDDERS.register("alexnet")
class AlexNet(TorchvisionCNN):
    """AlexNet (torchvision), 4096-d fc7 features."""

    # classifier.6 is the last Linear: its input is fc7 after ReLU (4096-d).
    arch, head = "alexnet", "classifier.6"
    cam_layer = "features"
