"""One check of a whole suite before anything runs: every dataset, embedder and clusterer spec
against its entry's declared parameters, the reducer, K, and the tuning settings.

A mistake anywhere is one :class:`~clusterbench.core.errors.UserError` line (exit status 2)
before a single cell starts, so a typo in the last spec of a long suite costs nothing.

This module stays inside ``clusterbench.core``: the tuning settings' validator lives with the
tuning code and is passed in (``validate_tune=``) by the caller that imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from clusterbench.core.catalog import Registries, registries
from clusterbench.core.contracts import CheckedDataset, consumes, provides
from clusterbench.core.errors import UserError
from clusterbench.core.suite import Cell, Suite


def validate_specs(suite: Suite, found: Registries | None = None) -> None:
    """Each distinct spec once, in the suite's order: datasets, embedders, clusterers."""
    datasets, embedders, clusterers = found or registries()
    for registry, specs in ((datasets, suite.datasets), (embedders, suite.embedders), (clusterers, suite.clusterers)):
        for spec in dict.fromkeys(str(s) for s in specs):
            registry.validate(spec)


def validate_k(cells: Iterable[Cell]) -> None:
    for cell in cells:
        k = cell.requested_k
        if isinstance(k, int) and not isinstance(k, bool) and k < 2:
            raise UserError(f"k={k}: K must be at least 2 (cell {cell.key})")


def validate_cells(cells: list[Cell], found: Registries | None = None) -> None:
    """Every name and parameter of these cells, and their K."""
    datasets, embedders, clusterers = found or registries()
    seen: set[tuple[str, str]] = set()
    for cell in cells:
        for registry, spec in ((datasets, cell.dataset), (embedders, cell.embedder), (clusterers, cell.clusterer)):
            if (registry.kind, str(spec)) not in seen:
                seen.add((registry.kind, str(spec)))
                registry.validate(spec)
    validate_k(cells)


def validate_inputs(cells: list[Cell], found: Registries | None = None) -> None:
    """Each (dataset, embedder) pair holds what the embedder reads, and each dataset that can look
    at its files (:class:`CheckedDataset`) does so, once."""
    datasets, embedders, _ = found or registries()
    checked: set[str] = set()
    for cell in cells:
        has, reads = provides(datasets.get(cell.dataset.name)), consumes(embedders.get(cell.embedder.name))
        if has != reads:
            hint = "use -e identity" if has == "features" else "identity reads a features: dataset"
            raise UserError(f"embedder {cell.embedder.name!r} reads {reads}, but dataset {cell.dataset} holds {has}; {hint}")
        if str(cell.dataset) not in checked:
            checked.add(str(cell.dataset))
            dataset = datasets.create(cell.dataset)
            if isinstance(dataset, CheckedDataset):
                dataset.check()


def validate_suite(suite: Suite, *, validate_tune: Callable[[dict, list[Cell]], None] | None = None,
                   found: Registries | None = None) -> list[Cell]:
    """The whole suite, before anything runs; returns its cells.

    ``validate_tune(tune, cells)`` is the tuning settings' validator
    (:func:`clusterbench.k.tuning.validate_tune`); None skips that part.
    """
    validate_specs(suite, found)
    if suite.reduce is not None:
        suite.reduce.validate()
    cells = suite.cells()
    validate_k(cells)
    validate_inputs(cells, found)
    if validate_tune is not None:
        validate_tune(suite.tune, cells)
    return cells
