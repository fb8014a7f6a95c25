"""How a cell gets its K: given, the number of classes, Optuna, a K estimator, or label semantics."""

from __future__ import annotations

from clusterbench.core.errors import UserError
from clusterbench.k.choice import KChoice

__all__ = ["KChoice", "resolve_k"]


def resolve_k(cell, data, X, embedding, clusterers, **tuning_context) -> KChoice:
    name = cell.clusterer.name
    given = cell.requested_k
    traits = clusterers.traits(cell.clusterer)
    takes_k = traits.takes_k
    if traits.owns_k:
        # e.g. DeepCluster: its own k (spec or default) is not the grid's K, which it receives separately
        own = cell.clusterer.params.get("k", clusterers.parameters(name).get("k"))
        return KChoice(params={"k": own, "k_source": "spec" if "k" in cell.clusterer.params else "default"})
    if isinstance(given, str) and given.startswith("auto:"):
        from clusterbench.k.sweep import estimate_cell

        return estimate_cell(cell, data, X, clusterers, **tuning_context)
    if given == "auto":
        from clusterbench.k.tuning import tune_cell

        return tune_cell(cell, data, X, clusterers, **tuning_context)
    if given == "semantic":
        if not takes_k:
            raise UserError(f"k=semantic: clusterer {name!r} does not take a K")
        from clusterbench.k.semantic_k import semantic_k

        return semantic_k(cell, data, embedding, **tuning_context)
    if not takes_k:
        # Density clusterers find K themselves; the grid's K is not theirs to use.
        return KChoice(params={"k": None, "k_source": "clusterer"})
    if given is not None:
        source = "spec" if "k" in cell.clusterer.params else "given"
        return KChoice(overrides={"k": given}, params={"k": given, "k_source": source})
    if data.labels is None:
        raise UserError(f"dataset {cell.dataset} has no labels, so K cannot default to the number of classes: "
                        "give --k N, --k auto (Optuna) or k= in the clusterer spec")
    k = data.n_classes
    if k < 2:
        raise UserError(f"dataset {cell.dataset} has a single class, so K cannot default to the number of classes: "
                        "give --k N or --k auto")
    return KChoice(overrides={"k": k}, params={"k": k, "k_source": "classes"})
