"""The three registries, filled: the bundled methods and datasets, then installed plug-ins.

Importing the method and dataset packages registers their entries (one decorator per class);
other installed packages add theirs through entry points (:mod:`clusterbench.core.plugins`).
"""

from __future__ import annotations

from typing import NamedTuple

from clusterbench.core.plugins import load_plugins
from clusterbench.core.registry import Registry


class Registries(NamedTuple):
    datasets: Registry
    embedders: Registry
    clusterers: Registry


def registries() -> Registries:
    from clusterbench.datasets import DATASETS
    from clusterbench.methods.clusterers import CLUSTERERS
    from clusterbench.methods.embedders import EMBEDDERS

    found = Registries(DATASETS, EMBEDDERS, CLUSTERERS)
    load_plugins(found)  # once per process; a broken plug-in is one warning, never an error
    return found
