"""How a cell gets its K: given, the number of classes, Optuna, a K estimator, or label semantics.
Without labels and without a K, and for ``k=auto``, the default estimator
(:mod:`clusterbench.k.defaults`) chooses it."""

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
        from clusterbench.k.defaults import auto_estimator

        if (estimator := auto_estimator(cell, clusterers)) is not None:
            from clusterbench.k.sweep import estimate_cell

            return estimate_cell(cell, data, X, clusterers, estimator=estimator, why="auto", **tuning_context)
        from clusterbench.k.tuning import tune_cell

        return tune_cell(cell, data, X, clusterers, **tuning_context)
    if given == "semantic":
        if not takes_k:
            raise UserError(f"k=semantic: clusterer {name!r} does not take a K")
        from clusterbench.k.regret import semantic_regret
        from clusterbench.k.semantic_k import semantic_k

        return semantic_regret(semantic_k(cell, data, embedding, **tuning_context), cell, data, X, clusterers)
    if not takes_k:
        # Density clusterers find K themselves; the grid's K is not theirs to use.
        return KChoice(params={"k": None, "k_source": "clusterer"})
    if given is not None:
        source = "spec" if "k" in cell.clusterer.params else "given"
        return KChoice(overrides={"k": given}, params={"k": given, "k_source": source})
    if data.labels is None:
        from clusterbench.k.defaults import DEFAULT_ESTIMATOR

        if not traits.tunable:
            raise UserError(f"dataset {cell.dataset} has no labels, so K cannot default to the number of classes, and "
                            f"clusterer {name!r} cannot be refitted per K to estimate it: give --k N or k= in its spec")
        from clusterbench.k.sweep import estimate_cell

        return estimate_cell(cell, data, X, clusterers, estimator=DEFAULT_ESTIMATOR, why="no labels", **tuning_context)
    k = data.n_classes
    if k < 2:
        raise UserError(f"dataset {cell.dataset} has a single class, so K cannot default to the number of classes: "
                        "give --k N or --k auto")
    return KChoice(overrides={"k": k}, params={"k": k, "k_source": "classes"})
