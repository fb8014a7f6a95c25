"""``k=auto:NAME[:key=value,...]``: the K estimator a cell asks for, and its checks before anything
runs (its own module: the tuning settings' validator imports it, the sweep too)."""

from __future__ import annotations

from clusterbench.core.errors import UserError
from clusterbench.core.registry import Spec

PREFIX = "auto:"


def estimator_spec(requested_k) -> Spec | None:
    """The estimator spec of ``auto:NAME[:key=value,...]``; None for anything else."""
    if not (isinstance(requested_k, str) and requested_k.startswith(PREFIX)):
        return None
    return Spec.parse(requested_k[len(PREFIX):])


def check_estimator_cell(cell, clusterers, estimators) -> None:
    """Before anything runs: the estimator and its parameters, no label leak, a clusterer taking K."""
    spec = estimators.validate(estimator_spec(cell.requested_k))
    if estimators.traits(spec).needs_labels:
        raise UserError(f"k=auto:{spec}: this k estimator needs the dataset's labels; choosing K with them "
                        "would leak the labels into the result (choose another: "
                        f"{', '.join(n for n in estimators.list() if not estimators.traits(n).needs_labels)})")
    name = cell.clusterer.name
    if not clusterers.traits(cell.clusterer).takes_k:
        raise UserError(f"k=auto:{spec}: clusterer {name!r} does not take the grid's K, so there is no K to sweep")
