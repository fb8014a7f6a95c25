"""Memory and CUDA synchronisation for the numbers every cell reports."""

from __future__ import annotations

import resource
import sys


def peak_host_memory_mb() -> float:
    """Peak resident memory of this process so far (MiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024.0 / (1024.0 if sys.platform == "darwin" else 1.0)


def cuda_sync(device) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)
