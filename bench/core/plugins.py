"""Plug-ins: other installed packages add datasets, embedders and clusterers through entry points.

A package declares, in its ``pyproject.toml``, entry points in the groups ``clusterbench.datasets``,
``clusterbench.embedders`` and ``clusterbench.clusterers`` (each registry's ``group``)::

    [project.entry-points."clusterbench.clusterers"]
    my-clusterer = "my_package.clusterer"          # a module: importing it registers its classes
    other = "my_package.other:OtherClusterer"      # a class: registered as 'other' unless it is already

They are loaded once per process, after the bundled entries, the first time
:func:`clusterbench.core.catalog.registries` is called. Each entry is credited to its
distribution (name and version: ``clusterbench list`` shows it). A plug-in that fails to import,
breaks its kind's contract or takes a name already registered is skipped as a whole, with one
warning line; it never stops the harness.
"""

from __future__ import annotations

import threading
import types
import warnings
from collections.abc import Callable, Iterable
from importlib import metadata

from clusterbench.core.errors import DataWarning, one_line_reason
from clusterbench.core.registry import Origin, Registry, loading_plugin

_LOCK = threading.RLock()  # re-entrant: a plug-in may call registries() while it loads
_LOADED = False


class PluginWarning(DataWarning):
    """A plug-in that could not be used and was skipped (shown as one line on the command line)."""


def load_plugins(registries) -> None:
    """Load every installed entry point of every registry's group, once per process."""
    global _LOADED
    with _LOCK:
        if _LOADED:
            return
        _LOADED = True
        load_entry_points(registries, lambda group: metadata.entry_points(group=group))


def load_entry_points(registries, find: Callable[[str], Iterable[metadata.EntryPoint]]) -> None:
    """Load the entry points ``find(group)`` gives for each registry's group, in name order."""
    failed_modules: set[str] = set()
    for registry in registries:
        if registry.group:
            for entry in sorted(find(registry.group), key=lambda e: e.name):
                _load(registry, entry, failed_modules)


def _origin(entry: metadata.EntryPoint) -> Origin:
    dist = getattr(entry, "dist", None)  # third-party: importlib.metadata gives it only for installed ones
    if dist is None:
        return Origin(entry.module.partition(".")[0])
    return Origin(dist.name, dist.version)


def _load(registry: Registry, entry: metadata.EntryPoint, failed_modules: set[str]) -> None:
    if entry.module in failed_modules:
        return  # another entry point of the same module: already reported
    origin = _origin(entry)
    with loading_plugin(origin) as load:
        try:
            obj = entry.load()
        except Exception as e:  # noqa: BLE001 - whatever a plug-in raises, the harness goes on
            failed_modules.add(entry.module)
            load.undo()
            load.problems = [f"failed to import {entry.value}: {one_line_reason(e)}"]
        else:
            if isinstance(obj, type):
                if not registry.holds(obj):
                    registry.register(entry.name)(obj)
            elif not isinstance(obj, types.ModuleType):
                load.problems.append(f"{entry.value} is {type(obj).__name__}, not a module or a class")
    if load.problems:
        load.undo()
        warnings.warn(f"plug-in {entry.name!r} from {origin.package}: {'; '.join(load.problems)}; skipped",
                      PluginWarning, stacklevel=2)
