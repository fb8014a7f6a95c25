"""The images DeepCluster trains on: prepared once as a uint8 tensor, normalised per batch,
augmented on the fly (batched random resized crop, flip, contrast jitter)."""

from __future__ import annotations

import numpy as np

from clusterbench.core.errors import UserError

from . import model as M


def prepare_images(data, size: int):
    """uint8 tensor (N, C, size, size), C = 1 (all grayscale) or 3, resized with antialiasing."""
    import torch
    import torch.nn.functional as F

    n = len(data)
    if n == 0:
        raise UserError("deepcluster: no images")
    images = data.images
    stacked = isinstance(images, np.ndarray) and images.ndim in (3, 4)

    def resize(batch):  # uint8 (B, C, H, W) -> uint8 (B, C, size, size)
        if batch.shape[-2:] == (size, size):
            return batch
        x = F.interpolate(batch.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return x.round_().clamp_(0, 255).to(torch.uint8)

    if stacked:
        arr = images if images.ndim == 4 else images[:, :, :, None]
        _check_channels(arr.shape[3])
        out = torch.empty((n, arr.shape[3], size, size), dtype=torch.uint8)
        for s in range(0, n, 4096):
            chunk = torch.from_numpy(np.ascontiguousarray(arr[s:s + 4096])).permute(0, 3, 1, 2)
            out[s:s + len(chunk)] = resize(chunk)
        return out
    # one read per image (a folder may decode from disk on every read); grayscale images are
    # widened to 3 channels afterwards if any image is in colour
    small = [resize(torch.from_numpy(np.ascontiguousarray(data.image(i))).permute(2, 0, 1)[None])[0]
             for i in range(n)]
    channels = max(img.shape[0] for img in small)
    _check_channels(channels)
    return torch.stack([img.expand(channels, -1, -1) for img in small])


def _check_channels(channels: int) -> None:
    if channels not in (1, 3):
        raise UserError(f"deepcluster: images with {channels} channels; expected 1 or 3")


class TensorImages:
    """The ImageData face (``len``, ``image(i)`` -> uint8 HWC) of a prepared uint8 tensor."""

    def __init__(self, tensor):
        self.tensor = tensor

    def __len__(self):
        return len(self.tensor)

    def image(self, i):
        return self.tensor[i].permute(1, 2, 0).numpy()


def _norm_stats(channels: int):
    import torch

    mean, std = (M.MEAN, M.STD) if channels == 3 else ((sum(M.MEAN) / 3,), (sum(M.STD) / 3,))
    return torch.tensor(mean).view(-1, 1, 1), torch.tensor(std).view(-1, 1, 1)


class Normalize:
    """uint8 CHW tensor -> float, ImageNet mean/std (per-image transform for the feature pass)."""

    def __init__(self, channels: int):
        self.mean, self.std = _norm_stats(channels)

    def __call__(self, img):
        return (img.float().div_(255.0) - self.mean) / self.std

    def device_split(self):
        """The shared inference path normalises whole batches on the device instead."""
        from clusterbench.infer.preprocess import DeviceSplit

        return DeviceSplit(None, tuple(self.mean.flatten().tolist()), tuple(self.std.flatten().tolist()))


def augment(batch, crop_min: float, flip: bool, generator=None, jitter: float = 0.0):
    """Random resized crop (area in [crop_min, 1], aspect in [3/4, 4/3]) + horizontal flip, for a
    whole float batch (B, C, H, W) at once via ``affine_grid``/``grid_sample``."""
    import torch
    import torch.nn.functional as F

    b = batch.shape[0]
    area = torch.empty(b).uniform_(crop_min, 1.0, generator=generator)
    log_ratio = torch.empty(b).uniform_(float(np.log(3 / 4)), float(np.log(4 / 3)), generator=generator)
    ratio = log_ratio.exp()
    w = (area * ratio).sqrt().clamp(max=1.0)  # crop width / image width
    h = (area / ratio).sqrt().clamp(max=1.0)
    cx = (torch.rand(b, generator=generator) * 2 - 1) * (1 - w)
    cy = (torch.rand(b, generator=generator) * 2 - 1) * (1 - h)
    sx = w * (torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0) if flip else 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, cx, h, cy
    grid = F.affine_grid(theta.to(batch.device), list(batch.shape), align_corners=False)
    out = F.grid_sample(batch, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if jitter > 0:
        contrast = torch.empty(b, 1, 1, 1).uniform_(1 - jitter, 1 + jitter, generator=generator).to(batch.device)
        bright = torch.empty(b, 1, 1, 1).uniform_(-jitter / 2, jitter / 2, generator=generator).to(batch.device)
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = ((out - mean) * contrast + mean + bright).clamp_(0, 1)
    return out
