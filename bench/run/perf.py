"""Memory and CUDA synchronisation for the numbers every cell reports."""

from __future__ import annotations

import resource
import sys


def peak_host_memory_mb() -> float:
    """Peak resident memory of this process so far (MiB). On Linux the memory map's high-water mark
    (``VmHWM``): ``ru_maxrss`` survives ``exec``, so a run started from a large process (a test
    worker, a notebook) would report its parent's peak as its own."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024.0 / (1024.0 if sys.platform == "darwin" else 1.0)


def cuda_sync(device) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)
