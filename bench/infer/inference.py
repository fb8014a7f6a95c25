"""The one forward-pass path every torch embedder (and DeepCluster's feature pass) uses.

It owns device and precision choice, channels_last, batching (with back-off on CUDA OOM),
optional torch.compile, ``inference_mode``, a progress bar and honest throughput: warm-up
batches are excluded and CUDA work is synchronised before the clock stops.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from clusterbench.core.errors import UserError
from clusterbench.infer.preprocess import split_for_device
from clusterbench.run.perf import cuda_sync, peak_host_memory_mb
from clusterbench.run.seeding import worker_init

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device={device}: CUDA is not available on this machine (use device=cpu or auto)")
    if device != "cpu" and not device.startswith("cuda"):
        raise UserError(f"device={device!r}: expected auto, cpu or cuda[:N]")
    return device


def cpu_has_native_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: str) -> str:
    import torch

    if precision not in PRECISIONS:
        raise UserError(f"precision={precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        if precision == "fp16" and device == "cpu":
            raise UserError("precision=fp16 is for CUDA; on the CPU use bf16 or fp32")
        return precision
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def _autocast(device: str, precision: str):
    import contextlib

    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=dtype)


@dataclass
class InferenceResult:
    outputs: list[np.ndarray]
    stats: dict = field(default_factory=dict)


class _TransformedImages:
    """torch Dataset view of ImageData: uint8 HWC -> CHW tensor (gray -> RGB) -> transform
    (the whole transform, or only its geometry when normalisation runs batched on the device)."""

    def __init__(self, data, transform, rgb: bool):
        self.data, self.transform, self.rgb = data, transform, rgb

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        import torch

        img = torch.from_numpy(np.ascontiguousarray(self.data.image(i))).permute(2, 0, 1)
        if self.rgb and img.shape[0] == 1:
            img = img.expand(3, -1, -1)
        return self.transform(img) if self.transform is not None else img


def run_inference(
    model,
    data,
    transform,
    *,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int | str = "auto",
    channels_last: bool = True,
    compile: bool = False,
    num_workers: int | None = None,
    rgb: bool = True,
    progress: bool = True,
    desc: str = "embed",
    count_flops: bool = True,
) -> InferenceResult:
    """Run ``model`` over every image of ``data``; return its outputs (a tensor or tuple of them).
    ``stats`` holds seconds, images_per_s (warm-up batch excluded), device, precision,
    batch_size (the one that ran, after ``oom_backoffs`` halvings), peak host memory and, on CUDA,
    GPU peak memory and name. With ``compile`` the last, short batch is padded to full size so
    the compiled graph is not rebuilt inside the timed part.
    """
    import torch

    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    on_cuda = device.startswith("cuda")
    model = model.eval().to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    runner = torch.compile(model) if compile else model
    size = (256 if on_cuda else 32) if batch_size == "auto" else int(batch_size)
    if size < 1:
        raise UserError(f"batch_size={batch_size}: must be a positive integer or auto")
    if num_workers is None:  # on the CPU workers would steal cores from the model itself
        num_workers = cuda_loader_workers(-(-len(data) // size)) if on_cuda else 0
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    split = split_for_device(transform)
    images = _TransformedImages(data, split.geometry if split else transform, rgb)
    outputs, timing, size, backoffs = _with_oom_backoff(
        lambda n: _loop(runner, images, split, n, device, precision, channels_last, num_workers, progress, desc,
                        pad_last=compile), size, device, fixed=batch_size != "auto")
    stats = {
        "device": device,
        "precision": precision,
        "batch_size": size,
        "channels_last": channels_last,
        "compile": compile,
        "oom_backoffs": backoffs,
        "loader_workers": num_workers,
        "peak_host_memory_mb": peak_host_memory_mb(),
        **timing,
    }
    if on_cuda:
        stats.update(gpu_peak_memory_mb=torch.cuda.max_memory_allocated(device) / 2**20,
                     gpu_name=torch.cuda.get_device_name(device))
    if count_flops and len(images):
        stats.update(_flop_rates(model, images, split, device, stats["images_per_s"]))
    return InferenceResult(outputs, stats)


def _flop_rates(model, images, split, device: str, images_per_s: float) -> dict:
    """Multiply-adds of one image (as the model sees it on ``device``) and the rate they ran at."""
    sample = images[0]
    if split is not None:
        sample = split.normaliser(device)(sample.unsqueeze(0).to(device))[0]
    flops = flops_per_image(model, sample, device)
    return {"flops_per_image": flops, "gflops_per_s": flops * images_per_s / 1e9}


def _with_oom_backoff(attempt, size: int, device: str, fixed: bool):
    """``attempt(batch_size)`` -> (outputs, timing), halving the batch on CUDA out-of-memory
    (unless the batch size was given); returns (outputs, timing, the size that ran, halvings)."""
    import torch

    backoffs = 0
    while True:
        try:
            outputs, timing = attempt(size)
            return outputs, timing, size, backoffs
        except torch.cuda.OutOfMemoryError:
            if fixed or size == 1:
                raise
        # Outside the except block, so the failed attempt's tensors are already released.
        size //= 2
        backoffs += 1
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)  # report the peak of the size that ran


def cuda_loader_workers(n_batches: int) -> int:
    """Loader workers that resize and crop while the GPU computes: every core but the main
    process's, yet no more than half the batches, since a worker's start costs about as much as
    preparing one batch (measured on an H100 with 16 cores, ResNet152 on 320 px images: 4
    workers fed 1.5k img/s, 8 fed 3.4k, 15 fed 4.6k)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2  # third-party: Linux only
    return max(1, min(cores - 1, (n_batches + 1) // 2, 16))


def flops_per_image(model, image, device: str = "cpu") -> float:
    """Forward FLOPs of one image, by torch's own counter (a multiply-add counts as 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(image.unsqueeze(0).to(device))
    return float(counter.get_total_flops())


def _loop(model, images, split, batch_size, device, precision, channels_last, num_workers, progress, desc,
          pad_last=False):
    import torch

    from clusterbench.run.progress import progress_bar

    loader = torch.utils.data.DataLoader(
        images,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.startswith("cuda"),
        worker_init_fn=worker_init,  # workers seeded from torch's seed, so transforms repeat
    )
    normalise = split.normaliser(device) if split is not None else None
    chunks: list[list] = []
    n = len(images)
    warm_images, warm_seconds = 0, 0.0
    start = time.perf_counter()
    with torch.inference_mode(), _autocast(device, precision):
        for b, batch in enumerate(progress_bar(loader, desc, enabled=progress)):
            batch = batch.to(device, non_blocking=True)
            if normalise is not None:
                batch = normalise(batch)
            real = len(batch)
            if pad_last and real < batch_size:  # a compiled model would recompile for a new batch shape
                batch = torch.cat([batch, batch[-1:].expand(batch_size - real, *batch.shape[1:])])
            if channels_last and batch.ndim == 4:
                batch = batch.contiguous(memory_format=torch.channels_last)
            out = model(batch)
            out = out if isinstance(out, tuple | list) else (out,)
            # copied out without waiting (into pinned memory on CUDA): the GPU goes on with the next batch
            chunks.append([o[:real].float().to("cpu", non_blocking=True) for o in out])
            if b == 0:
                cuda_sync(device)
                warm_images, warm_seconds = real, time.perf_counter() - start
    cuda_sync(device)
    seconds = time.perf_counter() - start
    steady_images, steady_seconds = n - warm_images, seconds - warm_seconds
    if steady_images > 0 and steady_seconds > 0:
        rate = steady_images / steady_seconds
    else:  # a single batch: nothing to exclude
        rate = n / seconds if seconds > 0 else float("nan")
    outputs = [torch.cat([c[i] for c in chunks]).numpy() for i in range(len(chunks[0]))] if chunks else []
    return outputs, {"seconds": seconds, "images_per_s": rate, "warmup_seconds": warm_seconds}
