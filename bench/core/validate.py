"""One check of a whole suite before anything runs: every dataset, embedder and clusterer spec
against its entry's declared parameters, the reducer, K, the tuning settings, and which cells the
methods themselves decline (their declared ``skip``).

A mistake anywhere is one :class:`~clusterbench.core.errors.UserError` line (exit status 2)
before a single cell starts, so a typo in the last spec of a long suite costs nothing. What comes
back is checked: its specs are marked so, and creating from them checks nothing again.

This module stays inside ``clusterbench.core``: the tuning settings' validator lives with the
tuning code and is passed in (``validate_tune=``) by the caller that imports it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from clusterbench.core.catalog import Registries, registries
from clusterbench.core.errors import UserError
from clusterbench.core.suite import Cell, Suite


@dataclass
class CheckedSuite:
    """A suite's cells, every spec checked, and the cells a method declined with its reason."""

    cells: list[Cell]
    skipped: list[tuple[Cell, str]] = field(default_factory=list)


def check_cell_specs(cells: list[Cell], found: Registries | None = None) -> list[Cell]:
    """Each distinct spec once, in the suite's order; the cells again, holding checked specs."""
    datasets, embedders, clusterers = found or registries()
    checked: dict[tuple[str, str], object] = {}

    def once(registry, spec):
        key = (registry.kind, str(spec))
        if key not in checked:
            checked[key] = registry.validate(spec)
        return checked[key]

    return [dataclasses.replace(cell, dataset=once(datasets, cell.dataset), embedder=once(embedders, cell.embedder),
                                clusterer=once(clusterers, cell.clusterer)) for cell in cells]


def validate_k(cells: Iterable[Cell]) -> None:
    for cell in cells:
        k = cell.requested_k
        if isinstance(k, int) and not isinstance(k, bool) and k < 2:
            raise UserError(f"k={k}: K must be at least 2 (cell {cell.key})")


def validate_inputs(cells: list[Cell], found: Registries | None = None) -> None:
    """Each (dataset, embedder) pair holds what the embedder reads, and each dataset that can look
    at its files (a declared ``check()``) does so, once."""
    datasets, embedders, _ = found or registries()
    looked: set[str] = set()
    for cell in cells:
        has, reads = datasets.traits(cell.dataset).provides, embedders.traits(cell.embedder).consumes
        if has != reads:
            hint = "use -e identity" if has == "features" else "identity reads a features: dataset"
            raise UserError(f"embedder {cell.embedder.name!r} reads {reads}, but dataset {cell.dataset} holds {has}; {hint}")
        if str(cell.dataset) not in looked:
            looked.add(str(cell.dataset))
            if datasets.traits(cell.dataset).checks_files:
                datasets.create(cell.dataset).check()


def declined(cell: Cell, found: Registries) -> str | None:
    """Why one of the cell's methods declines it (its declared ``skip(cell)``), or None."""
    for registry, spec in zip(found, (cell.dataset, cell.embedder, cell.clusterer), strict=True):
        skip = registry.traits(spec).skip
        reason = skip(cell) if skip is not None else None
        if reason:
            return f"{registry.kind} {spec.name!r}: {reason}"
    return None


def validate_suite(suite: Suite, *, validate_tune: Callable[[dict, list[Cell]], None] | None = None,
                   found: Registries | None = None) -> CheckedSuite:
    """The whole suite, before anything runs.

    ``validate_tune(tune, cells)`` is the tuning settings' validator
    (:func:`clusterbench.k.config.validate_tune`); None skips that part.
    """
    found = found or registries()
    if suite.reduce is not None:
        suite.reduce.validate()
    cells = check_cell_specs(suite.cells(), found)
    validate_k(cells)
    skipped = [(cell, reason) for cell in cells if (reason := declined(cell, found))]
    gone = {id(cell) for cell, _ in skipped}
    cells = [cell for cell in cells if id(cell) not in gone]
    validate_inputs(cells, found)
    if validate_tune is not None:
        validate_tune(suite.tune, cells)
    return CheckedSuite(cells, skipped)
