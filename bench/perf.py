"""Timing and memory: the numbers every cell reports."""

from __future__ import annotations

import resource
import sys
import time
from contextlib import contextmanager


def peak_host_memory_mb() -> float:
    """Peak resident memory of this process so far (MiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024.0 / (1024.0 if sys.platform == "darwin" else 1.0)


def cuda_sync(device) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)


@contextmanager
def stopwatch(result: dict, key: str, device=None):
    """Wall time of the block in ``result[key]`` (seconds), with CUDA work finished first."""
    if device is not None:
        cuda_sync(device)
    start = time.perf_counter()
    try:
        yield
    finally:
        if device is not None:
            cuda_sync(device)
        result[key] = time.perf_counter() - start
