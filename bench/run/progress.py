"""Progress bars for the whole process: tqdm, drawn only on a terminal, and off everywhere
while a run was started with ``--no-progress``."""

from __future__ import annotations

import contextlib

_shown = True


@contextlib.contextmanager
def bars_shown(shown: bool):
    """Within the block, every bar of ours (embedding, DeepCluster) follows ``shown``."""
    global _shown
    before, _shown = _shown, shown
    try:
        yield
    finally:
        _shown = before


def progress_bar(iterable, desc: str, *, enabled: bool = True, unit: str = "batch"):
    from tqdm.auto import tqdm

    # disable=None lets tqdm hide the bar when stderr is not a terminal (CI logs, pipes)
    return tqdm(iterable, desc=desc, unit=unit, leave=False, disable=None if enabled and _shown else True)
