"""Split an image transform into per-image geometry and batched normalisation.

The loader's workers then only resize and crop uint8 images; scaling to [0, 1] and the mean/std
normalisation run on whole batches on the model's device. On a GPU this sends a quarter of the
bytes over PCIe and leaves the CPU no float work per image (the data path, not the GPU, limited
throughput before); on the CPU it is the same arithmetic, batched.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DeviceSplit:
    """``geometry`` (uint8 CHW -> uint8 CHW, or None) per image; then ``(x / 255 - mean) / std``
    per batch. ``scale`` names how the transform scaled: torchvision's v1 functions divide by
    255, its v2 ``ToDtype`` multiplies by 1/255; the last bit differs, so each is kept."""

    geometry: object
    mean: tuple
    std: tuple
    scale: str = "div"

    def normaliser(self, device: str):
        """uint8 (B, C, H, W) on ``device`` -> normalised float32, the same values as per image;
        mean and std are put on the device once here, not copied over for every batch."""
        import torch

        mean = torch.tensor(self.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        divide = self.scale == "div"

        def normalise(batch):
            x = batch.to(torch.float32)
            x = x.div_(255.0) if divide else x.mul_(1.0 / 255.0)
            return x.sub_(mean).div_(std)

        return normalise


class PresetGeometry:
    """The resize and centre crop of a torchvision weights preset (``weights.transforms()``),
    with the very calls the preset makes, so the pixels are unchanged."""

    def __init__(self, preset):
        self.resize_size, self.crop_size = preset.resize_size, preset.crop_size
        self.interpolation, self.antialias = preset.interpolation, preset.antialias

    def __call__(self, img):
        from torchvision.transforms import functional as F

        img = F.resize(img, self.resize_size, interpolation=self.interpolation, antialias=self.antialias)
        return F.center_crop(img, self.crop_size)


def split_for_device(transform) -> DeviceSplit | None:
    """A ``DeviceSplit`` equal to ``transform``, or None when its shape is not one of: None
    (scaling only), an object with ``device_split()``, a torchvision v2 ``Compose`` ending in
    ``ToDtype(float32, scale=True), Normalize``, or a torchvision weights preset."""
    from torchvision.transforms import v2

    if transform is None:
        return DeviceSplit(None, (0.0,), (1.0,))
    if hasattr(transform, "device_split"):  # third-party: a torchvision transform, or our own split
        return transform.device_split()
    if isinstance(transform, v2.Compose):
        steps = list(transform.transforms)
        if len(steps) >= 2 and _scales_to_float32(steps[-2]) and type(steps[-1]) is v2.Normalize:
            rest = steps[:-2]
            geometry = v2.Compose(rest) if rest else None
            return DeviceSplit(geometry, tuple(steps[-1].mean), tuple(steps[-1].std), scale="mul")
        return None
    # third-party: torchvision's weights presets carry these
    if all(hasattr(transform, a) for a in ("resize_size", "crop_size", "mean", "std", "interpolation", "antialias")):
        return DeviceSplit(PresetGeometry(transform), tuple(transform.mean), tuple(transform.std))
    return None


def _scales_to_float32(step) -> bool:
    import torch
    from torchvision.transforms import v2

    return type(step) is v2.ToDtype and bool(step.scale) and step.dtype == torch.float32
