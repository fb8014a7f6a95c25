"""The suite's answer without labels: per dataset, the configuration (embedder x reducer x
clusterer x K) the label-free criterion ranks first among the cells that finished, and, where the
dataset has labels (never shown to the criterion), how much better the best one was."""

from __future__ import annotations

from collections.abc import Callable

from clusterbench.select import DEFAULT, Candidate, Recommendation, recommend, selection_regret
from clusterbench.select.shared_space import umap_space


def recommendations(results, features_of: Callable | None = None, criterion: str = DEFAULT,
                    seed: int = 0) -> list[dict]:
    """One entry per dataset with at least one finished cell whose labels are at hand.
    ``features_of(cell)``: the embedder's features of the cell's dataset (None when not at hand);
    the default criterion judges each configuration in the UMAP of its embedder's features."""
    by_dataset: dict[str, list] = {}
    for r in results:
        if r.status == "ok" and r.labels is not None:
            by_dataset.setdefault(str(r.cell.dataset), []).append(r)
    return [_recommend(dataset, cells, criterion, seed, features_of) for dataset, cells in by_dataset.items()]


def _spaces(cells: list, features_of: Callable | None, seed: int) -> dict[str, object]:
    """Per embedder of a dataset, the seeded UMAP of its features (the criterion's shared space)."""
    spaces = {}
    for r in cells:
        name = str(r.cell.embedder)
        if name not in spaces and features_of is not None and (X := features_of(r.cell)) is not None:
            spaces[name] = umap_space(X, seed)
    return spaces


def _recommend(dataset: str, cells: list, criterion: str, seed: int, features_of: Callable | None) -> dict:
    # several seeds of one configuration are several candidates: each cell is judged on its own
    candidates = [Candidate(r.cell.key, dataset, r.labels, own_silhouette=r.metrics.get("silhouette"),
                            embedder=str(r.cell.embedder)) for r in cells]
    if len(candidates) == 1:  # nothing to compare with: the only configuration there is
        chosen = Recommendation(candidates[0].key, dataset, "only configuration", None, ())
    else:
        chosen = recommend(candidates, criterion, shared_space=_spaces(cells, features_of, seed) or None, seed=seed)
    entry = {"dataset": dataset, "cell_key": chosen.key, "criterion": chosen.criterion, "score": chosen.score}
    nmi = {r.cell.key: r.metrics["nmi"] for r in cells if r.metrics.get("nmi") is not None}
    ami = {r.cell.key: r.metrics["ami"] for r in cells if r.metrics.get("ami") is not None}
    if len(nmi) == len(cells):  # labels exist: scored afterwards, like K-regret
        regret = selection_regret(chosen, nmi, ami if len(ami) == len(cells) else None)
        entry.update({"nmi": nmi[chosen.key], "best_nmi": regret["best_nmi"],
                      "selection_regret_nmi": regret["selection_regret_nmi"],
                      **({"selection_regret_ami": regret["selection_regret_ami"]} if "selection_regret_ami" in regret
                         else {})})
    result = next(r for r in cells if r.cell.key == chosen.key)
    entry.update({"embedder": str(result.cell.embedder), "clusterer": str(result.cell.clusterer),
                  "k": result.params.get("k"), "seed": result.cell.seed,
                  "reducer": result.cell.reduce.describe() if result.cell.reduce else "none",
                  "mlflow_run_id": result.run_id})
    return entry


def summary_line(entry: dict) -> str:
    """The terminal's last word for one dataset."""
    text = (f"recommended for {entry['dataset']}: {entry['embedder']} + {entry['clusterer']}, k={entry['k']}"
            f" (reducer {entry['reducer']}, seed {entry['seed']}) by {entry['criterion']}")
    if entry.get("score") is not None:
        text += f" {entry['score']:.3f}"
    if "selection_regret_nmi" in entry:
        text += (f"; with the hidden labels: NMI {entry['nmi']:.3f}, best {entry['best_nmi']:.3f}, "
                 f"selection regret {entry['selection_regret_nmi']:.3f}")
    return text
