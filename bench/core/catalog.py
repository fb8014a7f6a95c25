"""The three registries, filled: the bundled methods and datasets, then installed plug-ins.

Importing the method and dataset packages registers their entries (one decorator per class);
other installed packages add theirs through entry points (:mod:`clusterbench.core.plugins`).
"""

from __future__ import annotations

from typing import NamedTuple

from clusterbench.core.registry import Registry


class Registries(NamedTuple):
    datasets: Registry
    embedders: Registry
    clusterers: Registry


def registries() -> Registries:
    from clusterbench.datasets import DATASETS
    from clusterbench.methods.clusterers import CLUSTERERS
    from clusterbench.methods.embedders import EMBEDDERS

    return Registries(DATASETS, EMBEDDERS, CLUSTERERS)
