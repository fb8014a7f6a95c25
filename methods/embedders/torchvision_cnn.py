"""torchvision ImageNet CNNs as embedders: ResNet-152, DenseNet-121/161/201, AlexNet.

Features are the globally pooled penultimate activations (the input of the classifier head),
or the output of any named submodule with ``layer=NAME``. Preprocessing is always the
transform that ships with the model's default torchvision weights.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

from clusterbench.core.errors import UserError
from clusterbench.infer.fold_bn import fold_batchnorm
from clusterbench.infer.inference import run_inference

from . import weights as weightlib
from .base import EMBEDDERS, Embedding

_RANDOM = (None, False, "none", "random")
_IMAGENET = ("imagenet", "default", True)


class TorchvisionCNN:
    """Shared implementation; subclasses set ``arch`` and ``head`` (the classifier module)."""

    arch: str = ""
    head: str = ""

    def __init__(
        self,
        weights="imagenet",
        layer=None,
        size=None,
        device="auto",
        precision="auto",
        batch_size="auto",
        seed=0,
        compile=False,
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
        if getattr(self, "_file_identity", None) is None:
            self._file_identity = f"file:{os.path.basename(value)}:{weightlib.file_sha256(value)}"
        return self._file_identity

    def class_names(self) -> list[str]:
        """The 1000 ImageNet category names, in logit order."""
        kind, value = self._source()
        member = value if kind == "torchvision" else self._weights_enum().DEFAULT
        return list(member.meta["categories"])

    # --- model and preprocessing ---------------------------------------------------------

    def transform(self):
        """The default weights' own preprocessing (uint8 CHW tensor in, normalised float out)."""
        kind, value = self._source()
        member = value if kind == "torchvision" else self._weights_enum().DEFAULT
        if self.size is None:
            return member.transforms()
        size = int(self.size)
        if size < 1:
            raise UserError(f"{self.arch}: size={self.size} must be a positive number of pixels")
        return member.transforms(crop_size=size, resize_size=size)

    def build(self):
        """The classification network with the chosen weights, in eval mode (cached)."""
        if getattr(self, "_model", None) is None:
            self._model = self._create().eval()
        return self._model

    def _create(self):
        import torch
        from torchvision.models import get_model

        kind, value = self._source()
        if kind == "torchvision":
            _require_download_possible(self.arch, value)
            try:
                return get_model(self.arch, weights=value)
            except OSError as exc:
                raise UserError(f"{self.arch}: downloading {value} failed: {exc}") from None
        with torch.random.fork_rng(devices=[]):  # seeded init without disturbing the caller's RNG
            torch.manual_seed(int(self.seed))
            model = get_model(self.arch, weights=None)
        if kind == "file":
            weightlib.apply_state_dict(model, weightlib.load_state_dict(value), f"file {value}")
        return model

    # --- embedding -----------------------------------------------------------------------

    def embed(self, data, with_logits: bool = False) -> Embedding:
        transform = self.transform()
        identity = self.identity()
        model = self.build()
        folded = fold_batchnorm(model)
        tapped, hook = _tap(model, self._tapped_module(model), self.layer is None, with_logits)
        try:
            result = run_inference(
                tapped,
                data,
                transform,
                device=self.device,
                precision=self.precision,
                batch_size=self.batch_size,
                compile=self.compile,
                desc=self.arch,
            )
        except RuntimeError as exc:
            if "too small" in str(exc):
                raise UserError(
                    f"{self.arch}: images of {_crop(transform)} px are too small for this network; use a larger size"
                ) from None
            raise
        finally:
            hook.remove()
        features, logits = result.outputs if with_logits else (result.outputs[0], None)
        info = {
            **result.stats,
            "weights": identity,
            "model": self.arch,
            "feature_dim": int(features.shape[1]),
            "layer": self.layer or f"{self.head}:input",
            "batchnorm_folded": folded,
            "image_size": _crop(transform),
            "n_images": len(data),
        }
        return Embedding(features.astype("float32", copy=False), info, logits)

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


def _crop(transform) -> int:
    return int(transform.crop_size[0])


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


def _tap(model, module, take_input: bool, with_logits: bool):
    """Wrap ``model`` so one forward pass returns features (and logits); also returns the hook handle.

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
            features = _pool(seen.pop("x"))
            return (features, logits) if with_logits else features

    def keep_input(_module, args):
        seen["x"] = args[0]

    def keep_output(_module, _args, output):
        seen["x"] = output

    handle = (
        module.register_forward_pre_hook(keep_input)
        if take_input
        else module.register_forward_hook(keep_output)
    )
    return Tapped(), handle


def _pool(x):
    if x.ndim == 4:
        return x.mean(dim=(2, 3))
    return x.flatten(1) if x.ndim > 2 else x


@EMBEDDERS.register("resnet152")
class ResNet152(TorchvisionCNN):
    """ResNet-152 (torchvision), 2048-d pooled features."""

    arch, head = "resnet152", "fc"


@EMBEDDERS.register("densenet121")
class DenseNet121(TorchvisionCNN):
    """DenseNet-121 (torchvision), 1024-d pooled features."""

    arch, head = "densenet121", "classifier"


@EMBEDDERS.register("densenet161")
class DenseNet161(TorchvisionCNN):
    """DenseNet-161 (torchvision), 2208-d pooled features."""

    arch, head = "densenet161", "classifier"


@EMBEDDERS.register("densenet201")
class DenseNet201(TorchvisionCNN):
    """DenseNet-201 (torchvision), 1920-d pooled features."""

    arch, head = "densenet201", "classifier"


@EMBEDDERS.register("alexnet")
class AlexNet(TorchvisionCNN):
    """AlexNet (torchvision), 4096-d fc7 features."""

    # classifier.6 is the last Linear: its input is fc7 after ReLU (4096-d).
    arch, head = "alexnet", "classifier.6"
