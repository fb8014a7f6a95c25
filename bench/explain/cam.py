"""Grad-CAM / Grad-CAM++ heat maps and guided backprop of a torch embedder's classifier, with
:mod:`pytorch_grad_cam` (no hooks of our own).

Everything runs in fp32 (CAM needs gradients; bf16 gradients are coarse) on the embedder's
device: the CPU, or CUDA when ``device=auto`` finds it. The images are those the network sees:
the embedder's own transform (resize, crop, normalisation), so the explanation is of the same
predictions the benchmark uses.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from clusterbench.core.errors import UserError
from clusterbench.core.traits import NETWORK_API
from clusterbench.datasets.base import SOURCE_COLUMN

METHODS = ("gradcam", "gradcam++")


@dataclass
class Explained:
    """One image explained. ``view``: the network's input as float RGB in [0, 1] (H, W, 3);
    ``cam``: the heat map in [0, 1] (H, W); ``guided``: guided backprop as uint8 (H, W, 3);
    ``peak``: the heat map's argmax as (x, y) relative to the view (0..1, x right, y down);
    ``source``: where the image came from (the dataset's ``source`` column: a file name, ...)."""

    index: int
    label: str | None
    top: list[tuple[str, float]]  # (class name, softmax probability), best first
    top_index: int  # logit index of the top-1 class (the class explained)
    view: np.ndarray
    cam: np.ndarray
    guided: np.ndarray
    peak: tuple[float, float]
    wnid: str | None = None
    extra: dict = field(default_factory=dict)
    source: str | None = None

    @property
    def top1(self) -> str:
        return self.top[0][0]

    @property
    def prob(self) -> float:
        return self.top[0][1]

    def overlay(self, mark: bool = False) -> np.ndarray:
        """The heat map over the view (uint8 RGB), pytorch_grad_cam's ``show_cam_on_image``;
        with ``mark`` the peak is a white cross."""
        from pytorch_grad_cam.utils.image import show_cam_on_image

        img = show_cam_on_image(self.view.astype(np.float32), self.cam, use_rgb=True)
        if mark:
            h, w = self.cam.shape
            x, y = int(self.peak[0] * w), int(self.peak[1] * h)
            arm, half = max(3, w // 28), max(1, w // 224)
            img[max(0, y - half):y + half + 1, max(0, x - arm):x + arm + 1] = 255
            img[max(0, y - arm):y + arm + 1, max(0, x - half):x + half + 1] = 255
        return img

    def view_uint8(self) -> np.ndarray:
        return np.clip(np.rint(self.view * 255), 0, 255).astype(np.uint8)


def check_explainable(embedders, spec) -> None:
    """One line (UserError) unless ``spec`` names an embedder with a classifier head whose network
    can be reached (the torch embedders' ``build``, ``transform``, ``classes`` and ``cam_target``):
    asked before any data is read."""
    traits = embedders.traits(spec)
    if not traits.has_classifier:
        raise UserError(f"explain: embedder {spec.name!r} has no classifier head to explain "
                        "(clusterbench list embedders: the ImageNet networks have one)")
    if not traits.explainable:
        raise UserError(f"explain: embedder {spec.name!r} does not expose its torch network "
                        f"({', '.join(NETWORK_API)}) to explain")


def sample_indices(data, n: int, seed: int) -> np.ndarray:
    """``n`` image indices, stratified over the labels when there are labels; seeded, sorted."""
    from clusterbench.datasets.base import select_subset

    return select_subset(len(data), data.labels, n, seed)


def explain_images(embedder, data, indices, *, topk: int = 5, method: str = "gradcam",
                   batch_size: int = 8) -> list[Explained]:
    """Top-k classes, a CAM heat map of the top-1 class and guided backprop for each image."""
    import torch
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from clusterbench.infer.inference import resolve_device

    if method not in METHODS:
        raise UserError(f"explain: --method {method!r}: expected one of {', '.join(METHODS)}")
    device = resolve_device(str(embedder.device))
    transform = embedder.transform()
    model = embedder.build()
    embedder.check_head(model)  # e.g. a timm network built without its head
    # a copy of its own: the embed path folds BatchNorm into the cached network in place, and
    # guided backprop swaps activations; the embedder's network stays as it is
    model = copy.deepcopy(model).float().eval().to(device)
    classes = embedder.classes()
    names = classes.names if classes is not None else None
    wnids = classes.wnids if classes is not None else None
    layer = embedder.cam_target(model)
    guided_model = _guided_copy(model)
    cam_class = GradCAM if method == "gradcam" else GradCAMPlusPlus
    views = _Views(transform)
    out: list[Explained] = []
    indices = [int(i) for i in indices]
    with cam_class(model=model, target_layers=[layer]) as cam:
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            x = torch.stack([views.input(data, i) for i in chunk]).to(device)
            with torch.no_grad():
                probs = model(x).float().softmax(dim=1).cpu()
            if names is not None and probs.shape[1] != len(names):
                names = wnids = None  # a head of another size than its declared classes
            k = min(int(topk), probs.shape[1])
            top_p, top_i = probs.topk(k, dim=1)
            targets = [ClassifierOutputTarget(int(t)) for t in top_i[:, 0]]
            heat = cam(input_tensor=x, targets=targets)  # (B, H, W) in [0, 1], at the input size
            for row, i in enumerate(chunk):
                guided = guided_model(x[row:row + 1], target_category=int(top_i[row, 0]))
                out.append(_explained(data, i, views.view(data, i, x[row]), heat[row], guided,
                                      top_p[row], top_i[row], names, wnids))
    return out


def _explained(data, i, view, heat, guided, top_p, top_i, names, wnids) -> Explained:
    from pytorch_grad_cam.utils.image import deprocess_image

    heat = np.nan_to_num(np.asarray(heat, dtype=np.float32))
    h, w = heat.shape
    y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    label = None
    if data.labels is not None:
        lab = int(data.labels[i])
        label = data.class_names[lab] if data.class_names and lab < len(data.class_names) else str(lab)
    top = [((names[int(j)] if names is not None else f"class {int(j)}"), float(p)) for p, j in zip(top_p, top_i, strict=True)]
    sources = data.items.get(SOURCE_COLUMN)
    return Explained(index=i, label=label, top=top, top_index=int(top_i[0]), view=view, cam=heat,
                     guided=deprocess_image(np.asarray(guided, dtype=np.float32)), peak=((x + 0.5) / w, (y + 0.5) / h),
                     wnid=wnids[int(top_i[0])] if wnids is not None else None,
                     source=None if sources is None else str(sources[i]))


class _Views:
    """The network's input for an image, and the same image as the network sees it for display:
    the transform's geometry only (uint8), or the normalised input rescaled to [0, 1]."""

    def __init__(self, transform):
        from clusterbench.infer.preprocess import split_for_device

        self.transform = transform
        self.split = split_for_device(transform)

    @staticmethod
    def _chw(data, i):
        import torch

        img = torch.from_numpy(np.ascontiguousarray(data.image(i))).permute(2, 0, 1)
        return img.expand(3, -1, -1) if img.shape[0] == 1 else img[:3]

    def input(self, data, i):
        import torch

        img = self._chw(data, i)
        if self.split is not None:
            geo = self.split.geometry(img) if self.split.geometry is not None else img
            return self.split.normaliser("cpu")(geo.unsqueeze(0))[0]
        return self.transform(img).to(torch.float32)

    def view(self, data, i, x) -> np.ndarray:
        if self.split is not None:
            img = self._chw(data, i)
            geo = self.split.geometry(img) if self.split.geometry is not None else img
            return geo.permute(1, 2, 0).numpy().astype(np.float32) / 255.0
        v = x.detach().float().cpu().permute(1, 2, 0).numpy()
        lo, hi = float(v.min()), float(v.max())
        return (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)


def _guided_copy(model):
    """pytorch_grad_cam's ``GuidedBackpropReLUModel`` on a copy of ``model``. It swaps the
    ``nn.ReLU`` modules for its guided ReLU; ReLU6 (MobileNet/EfficientNet-Lite) gets the same
    rule (a gradient passes only where the input is in the active range and the gradient > 0)."""
    import torch
    from pytorch_grad_cam import GuidedBackpropReLUModel
    from pytorch_grad_cam.utils.find_layers import replace_all_layer_type_recursive

    guided = copy.deepcopy(model)
    replace_all_layer_type_recursive(guided, torch.nn.ReLU6, _guided_relu6_module())
    return GuidedBackpropReLUModel(guided, device=next(guided.parameters()).device)


def _guided_relu6_module():
    """A module applying ReLU6 with the guided-backprop gradient rule."""
    import torch

    class GuidedReLU6(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.clamp(0.0, 6.0)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * ((x > 0) & (x < 6) & (grad > 0)).to(grad.dtype)

    class GuidedReLU6Module(torch.nn.Module):
        def forward(self, x):
            return GuidedReLU6.apply(x)

    return GuidedReLU6Module()
