"""The transform split: per-image geometry on uint8, then batched normalisation on the device,
must give exactly what the whole transform gives per image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from clusterbench.datasets import DATASETS
from clusterbench.infer.inference import run_inference
from clusterbench.infer.preprocess import split_for_device
from clusterbench.methods.deepcluster.images import Normalize
from clusterbench.methods.embedders.timm_model import TimmModel, _tensor_transform
from clusterbench.methods.embedders.torchvision_cnn import TorchvisionCNN


def _images():
    """Real digits (grey, 8x8) widened to RGB, and random RGB images of other shapes."""
    digits = DATASETS.create("digits:limit=3").load()
    grey = [torch.from_numpy(digits.image(i)).permute(2, 0, 1).expand(3, -1, -1) for i in range(3)]
    rng = np.random.default_rng(0)
    colour = [torch.from_numpy(rng.integers(0, 256, (3, h, w), dtype=np.uint8)) for h, w in ((40, 60), (57, 31))]
    return grey + colour


def _resnet(size):
    model = TorchvisionCNN.__new__(TorchvisionCNN)
    model.__init__(weights="none", size=size)
    model.arch = "resnet152"
    return model


TRANSFORMS = {
    "torchvision preset 224": lambda: _resnet(None).transform(),
    "torchvision preset 32": lambda: _resnet(32).transform(),
    "timm": lambda: TimmModel("resnet18", pretrained=False, size=48).transform(),
    "v2 compose": lambda: v2.Compose([v2.Resize(20), v2.CenterCrop(16), v2.ToDtype(torch.float32, scale=True),
                                      v2.Normalize([0.5, 0.4, 0.3], [0.2, 0.25, 0.3])]),
    "deepcluster": lambda: Normalize(3),
}


@pytest.mark.parametrize("name", TRANSFORMS)
def test_split_transform_gives_the_whole_transforms_pixels(name):
    transform = TRANSFORMS[name]()
    split = split_for_device(transform)
    assert split is not None, name
    for img in _images() if name != "deepcluster" else [torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)]:
        whole = transform(img)
        part = split.geometry(img) if split.geometry is not None else img
        assert part.dtype == torch.uint8  # only bytes cross to the device
        batched = split.normaliser("cpu")(part.unsqueeze(0))[0]
        assert torch.equal(batched, whole), name


def test_transforms_of_other_shapes_run_whole_per_image():
    border = _tensor_transform({"input_size": (3, 32, 32), "interpolation": "bilinear", "mean": (0.5,) * 3,
                                "std": (0.25,) * 3, "crop_pct": 1.0, "crop_mode": "border"})
    assert split_for_device(border) is None  # its crop pads after normalising
    assert split_for_device(lambda img: img.float()) is None


def test_inference_gives_the_same_outputs_whichever_way_the_transform_runs():
    data = DATASETS.create("digits:limit=20").load()
    transform = v2.Compose([v2.Resize(24), v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.4] * 3, [0.3] * 3)])
    opaque = lambda img: transform(img)  # noqa: E731 - not recognisable: runs whole, per image
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    kwargs = dict(device="cpu", precision="fp32", batch_size=8, progress=False)
    split = run_inference(model, data, transform, **kwargs)
    whole = run_inference(model, data, opaque, **kwargs)
    np.testing.assert_array_equal(split.outputs[0], whole.outputs[0])
    assert split.stats["flops_per_image"] == whole.stats["flops_per_image"] > 0
