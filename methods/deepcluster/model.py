"""DeepCluster networks: AlexNet with BatchNorm and the fixed Sobel front end (Caron et al., 2018),
a narrower AlexNet for small images (28-64 px), or any torchvision backbone.

Every network has the same four parts, named as in the reference implementation so that its
checkpoints load without renaming beyond the DataParallel ``module.`` component:

- ``sobel``: grayscale (1x1 conv, weights 1/3) then Sobel x/y (3x3 conv) -> 2 channels, frozen;
  ``None`` when ``sobel=False``.
- ``features``: the convolutional body.
- ``classifier``: the MLP ending in ReLU whose pre-ReLU output is the embedding that is
  clustered (as the reference does by dropping the last ReLU for its feature pass).
- ``top_layer``: the linear head over the K pseudo-classes, replaced every epoch.

Inputs are float tensors normalised with the ImageNet mean/std (:data:`MEAN`, :data:`STD`);
single-channel images are broadcast to three channels inside ``forward``.
"""

from __future__ import annotations

import math
import re

from clusterbench.core.errors import UserError

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

# (filters, kernel, stride, padding) or "M" (max-pool 3x3 stride 2): the paper's AlexNet ...
ALEXNET_CFG = [(96, 11, 4, 2), "M", (256, 5, 1, 2), "M", (384, 3, 1, 1), (384, 3, 1, 1), (256, 3, 1, 1), "M"]
# ... and the same five-conv / three-pool shape for 28-64 px images: stride-1 first conv,
# about a third of the width, a 1024-wide MLP. About 30 M multiply-adds per 28 px image.
ALEXNET_SMALL_CFG = [(32, 5, 1, 2), "M", (96, 5, 1, 2), "M", (128, 3, 1, 1), (128, 3, 1, 1), (96, 3, 1, 1), "M"]
ALEXNET_SMALL_FC = 1024
SMALL_MIN_SIZE, SMALL_MAX_SIZE = 28, 64  # alexnet-small's input range; backbone=auto picks it up to 64 px


def _nn():
    import torch.nn as nn

    return nn


def make_sobel():
    """Grayscale then Sobel x/y, frozen (the reference's layout: ``sobel.0``, ``sobel.1``)."""
    import torch

    nn = _nn()
    grayscale = nn.Conv2d(3, 1, kernel_size=1, stride=1, padding=0)
    sobel_filter = nn.Conv2d(1, 2, kernel_size=3, stride=1, padding=1)
    with torch.no_grad():
        grayscale.weight.fill_(1.0 / 3.0)
        grayscale.bias.zero_()
        sobel_filter.weight[0, 0].copy_(torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]))
        sobel_filter.weight[1, 0].copy_(torch.tensor([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]]))
        sobel_filter.bias.zero_()
    sobel = nn.Sequential(grayscale, sobel_filter)
    for p in sobel.parameters():
        p.requires_grad = False
    return sobel


def make_features(cfg, in_channels: int, bn: bool = True):
    nn = _nn()
    layers = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
            continue
        filters, kernel, stride, pad = v
        layers.append(nn.Conv2d(in_channels, filters, kernel_size=kernel, stride=stride, padding=pad))
        layers += [nn.BatchNorm2d(filters), nn.ReLU(inplace=True)] if bn else [nn.ReLU(inplace=True)]
        in_channels = filters
    return nn.Sequential(*layers)


def _module_base():
    import torch

    nn = _nn()

    class DeepClusterNet(nn.Module):
        """sobel? -> features -> pool/flatten -> classifier -> top_layer (if set)."""

        def __init__(self, features, classifier, feature_dim: int, sobel: bool, pool=None, arch: str = ""):
            super().__init__()
            self.sobel = make_sobel() if sobel else None
            self.features = features
            self.pool = pool if pool is not None else nn.Identity()
            self.classifier = classifier
            self.top_layer = None
            self.feature_dim = int(feature_dim)
            self.arch = arch

        def _prepare(self, x):
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            return self.sobel(x) if self.sobel is not None else x

        def body(self, x):
            """Input -> flattened output of the convolutional body (the classifier's input)."""
            return torch.flatten(self.pool(self.features(self._prepare(x))), 1)

        def embed(self, x):
            """The clustered representation: classifier output without its final ReLU."""
            return self.output(x, "fc7")

        def output(self, x, layer: str = "fc7"):
            """One layer's activations: ``fc7`` the classifier's output before its final ReLU (the
            clustered one), ``fc6`` the first fully connected layer after its ReLU, ``conv`` the body."""
            h = self.body(x)
            layers = list(self.classifier.children())
            if layer == "fc6" and not layers:
                raise UserError(f"deepcluster: layer=fc6 needs an AlexNet backbone; {self.arch} has no fc layers")
            if layer == "conv" or not layers:
                return h
            if layers and isinstance(layers[-1], nn.ReLU):
                layers = layers[:-1]
            if layer == "fc6":
                first_relu = next(i for i, m in enumerate(layers) if isinstance(m, nn.ReLU))
                layers = layers[:first_relu + 1]
            for module in layers:
                h = module(h)
            return h

        def forward(self, x):
            h = self.classifier(self.body(x))
            return self.top_layer(h) if self.top_layer is not None else h

    return DeepClusterNet


def init_weights(model) -> None:
    """The reference initialisation: conv N(0, sqrt(2/(k*k*out))), BN (1, 0), linear N(0, 0.01)."""
    import torch

    nn = _nn()
    for name, m in model.named_modules():
        if name.startswith("sobel"):
            continue
        with torch.no_grad():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.normal_(0, math.sqrt(2.0 / n))
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1)
                m.bias.zero_()
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0, 0.01)
                m.bias.zero_()


def alexnet(sobel: bool = True, bn: bool = True, fc: int = 4096):
    """The paper's AlexNet (conv 96-256-384-384-256, fc 4096-4096, dropout 0.5), for ~224 px."""
    nn = _nn()
    features = make_features(ALEXNET_CFG, 2 if sobel else 3, bn)
    classifier = nn.Sequential(
        nn.Dropout(0.5), nn.Linear(256 * 6 * 6, fc), nn.ReLU(inplace=True),
        nn.Dropout(0.5), nn.Linear(fc, fc), nn.ReLU(inplace=True),
    )
    model = _module_base()(features, classifier, fc, sobel, pool=nn.AdaptiveMaxPool2d((6, 6)), arch="alexnet")
    init_weights(model)
    return model


def alexnet_small(sobel: bool = True, bn: bool = True, size: int = 32, fc: int = ALEXNET_SMALL_FC):
    """AlexNet's shape at a quarter of its width for 28-64 px images (stride-1 first conv)."""
    import torch

    nn = _nn()
    features = make_features(ALEXNET_SMALL_CFG, 2 if sobel else 3, bn)
    with torch.no_grad():
        flat = features(torch.zeros(1, 2 if sobel else 3, size, size)).numel()
    classifier = nn.Sequential(
        nn.Dropout(0.5), nn.Linear(flat, fc), nn.ReLU(inplace=True),
        nn.Dropout(0.5), nn.Linear(fc, fc), nn.ReLU(inplace=True),
    )
    model = _module_base()(features, classifier, fc, sobel, arch="alexnet-small")
    init_weights(model)
    return model


def torchvision_backbone(name: str, sobel: bool = True, size: int = 32):
    """Any torchvision classification model, randomly initialised, with its head removed."""
    import torch

    nn = _nn()
    from torchvision.models import get_model, list_models

    if name not in list_models():
        import difflib

        close = difflib.get_close_matches(name, list_models(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"deepcluster: unknown backbone {name!r}{hint}; use alexnet, alexnet-small or a torchvision model name")
    body = get_model(name, weights=None)
    _drop_head(body, name)
    if sobel:
        _adapt_first_conv(body, 2)
    model = _module_base()(body, nn.Sequential(), 0, sobel, arch=name)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        dim = model.body(torch.zeros(2, 3, size, size)).shape[1]
    model.train(was_training)
    model.feature_dim = int(dim)
    return model


def _drop_head(model, name: str) -> None:
    nn = _nn()
    for attr in ("fc", "head", "heads", "classifier"):
        head = getattr(model, attr, None)
        if head is None:
            continue
        if isinstance(head, nn.Linear):
            setattr(model, attr, nn.Identity())
            return
        if isinstance(head, nn.Sequential):
            children = list(head.children())
            for i in range(len(children) - 1, -1, -1):
                if isinstance(children[i], nn.Linear | nn.Conv2d):
                    # keep what precedes the last linear (pooling, flatten, norm); drop the rest
                    setattr(model, attr, nn.Sequential(*children[:i], nn.Flatten(1)))
                    return
    raise UserError(f"deepcluster: cannot find the classification head of torchvision model {name!r}")


def _adapt_first_conv(model, in_channels: int) -> None:
    nn = _nn()
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                if child.groups != 1:
                    raise UserError("deepcluster: the backbone's first conv is grouped; use sobel=false")
                new = nn.Conv2d(in_channels, child.out_channels, child.kernel_size, child.stride, child.padding,
                                child.dilation, 1, child.bias is not None, child.padding_mode)
                setattr(parent, child_name, new)
                return
    raise UserError("deepcluster: backbone has no Conv2d to feed the Sobel channels")


def resolve_backbone(backbone: str, image_size: int | None) -> str:
    """``auto`` -> alexnet-small for images up to 64 px, else the paper's alexnet."""
    if backbone != "auto":
        return backbone
    return "alexnet-small" if image_size is None or image_size <= SMALL_MAX_SIZE else "alexnet"


def resolve_size(backbone: str, size: int | None, image_size: int | None) -> int:
    """Network input size: ``size`` if given; else 224 for alexnet, the images' own size within
    28-64 px for alexnet-small (Fashion-MNIST 28, CIFAR 32, digits upsampled to 28), and at least
    32 px for torchvision backbones."""
    if size is not None:
        if int(size) < 16:
            raise UserError(f"deepcluster: size={size}: at least 16 px")
        return int(size)
    if backbone == "alexnet":
        return 224
    if backbone == "alexnet-small":
        return min(max(int(image_size or SMALL_MIN_SIZE), SMALL_MIN_SIZE), SMALL_MAX_SIZE)
    return max(32, int(image_size or 32))


def resolve_pca_dim(backbone: str, pca_dim: int | None) -> int:
    """The paper's 256 for its AlexNet (4096-d features); 32 for alexnet-small, where 256 whitened
    directions of a 1024-d embedding of small images are mostly noise that k-means then splits on:
    on Fashion-MNIST (k=30, 5 epochs) 32 kept the pseudo-labels stable (NMI between epochs 0.83)
    and improving (NMI vs labels 0.49 -> 0.56), while 256 made them drift (0.64; 0.52 -> 0.47)."""
    if pca_dim is not None:
        return int(pca_dim)
    return 32 if backbone == "alexnet-small" else 256


def build_model(backbone: str, sobel: bool = True, size: int = 32):
    """A DeepCluster network (no top layer yet) for ``size`` x ``size`` inputs."""
    if backbone == "alexnet":
        return alexnet(sobel=sobel)
    if backbone == "alexnet-small":
        return alexnet_small(sobel=sobel, size=size)
    return torchvision_backbone(backbone, sobel=sobel, size=size)


# -- the official checkpoint format -----------------------------------------------------------

def strip_data_parallel(key: str) -> str:
    """``features.module.0.weight`` / ``module.features.0.weight`` -> ``features.0.weight``."""
    return re.sub(r"(^|\.)module\.", r"\1", key)


def is_official_checkpoint(obj) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict) and "config" not in obj


def load_official_checkpoint(obj, size: int = 224):
    """Build the network an official DeepCluster checkpoint describes and load its weights.

    The file is ``{'epoch', 'arch', 'state_dict', 'optimizer'}`` with DataParallel ``module.``
    components in the keys and, for Sobel models, the ``sobel.0`` / ``sobel.1`` layers. Only
    AlexNet checkpoints are supported (the reference's VGG-16 is not built here).
    """
    state = {strip_data_parallel(k): v for k, v in obj["state_dict"].items()}
    arch = str(obj.get("arch", "alexnet"))
    if arch != "alexnet":
        raise UserError(f"deepcluster checkpoint: arch {arch!r} is not supported (alexnet only)")
    sobel = "sobel.0.weight" in state
    first = state.get("features.0.weight")
    if first is None:
        raise UserError("deepcluster checkpoint: no features.0.weight in its state_dict; not an AlexNet checkpoint")
    if first.shape[1] != (2 if sobel else 3):
        raise UserError(f"deepcluster checkpoint: first conv takes {first.shape[1]} channels but sobel={sobel}")
    fc = int(state["classifier.4.weight"].shape[0]) if "classifier.4.weight" in state else 4096
    model = alexnet(sobel=sobel, fc=fc)
    state = {k: v for k, v in state.items() if not k.startswith("top_layer.")}
    load_state(model, state, "official DeepCluster checkpoint")
    return model, {"arch": arch, "sobel": sobel, "epoch": obj.get("epoch"), "size": size}


def load_state(model, state: dict, what: str) -> None:
    """Strict load that tolerates only BatchNorm's ``num_batches_tracked`` (absent in old files)."""
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        first = str(exc).strip().splitlines()
        raise UserError(f"{what}: weights do not fit the network ({' '.join(first[1:3]).strip() or first[0]})") from None
    missing = [k for k in missing if not k.endswith("num_batches_tracked") and not k.startswith("top_layer.")]
    unexpected = [k for k in unexpected if not k.startswith("top_layer.")]
    if missing or unexpected:
        raise UserError(f"{what}: weights do not fit the network (missing {missing[:5]}, unexpected {unexpected[:5]})")
