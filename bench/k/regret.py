"""K-regret: how far a cell's chosen K is from the best K by the labels, from the sweep itself.

After the sweep (never fed to the estimator or the study's objective): NMI and AMI vs the labels of
the clustering at every K swept; ``k_best_nmi`` the K of the highest NMI; ``k_error`` = chosen K -
number of classes; ``k_regret_nmi`` = best NMI - NMI at the chosen K (>= 0: the chosen K is one of
the swept). ``k=semantic`` is scored the same way from a sweep run after its choice
(:func:`semantic_regret`). Where a K has several trials (other tuned parameters), its best trial by the objective
stands for it; the chosen trial stands for the chosen K.
"""

from __future__ import annotations

import contextlib

import numpy as np

from clusterbench.core.artifacts import Artifacts
from clusterbench.k.study import trial_k
from clusterbench.scoring import metrics as M


def sweep_labels(tuner, trials, best, direction: str) -> dict[int, tuple]:
    """K -> (trial, labels): the best complete trial at each K (the chosen one at its K)."""
    sign = 1.0 if direction == "maximize" else -1.0
    per_k: dict[int, object] = {}
    for t in trials:
        if t.state.name != "COMPLETE" or trial_k(t) is None:
            continue
        k = trial_k(t)
        if k not in per_k or sign * t.values[0] > sign * per_k[k].values[0]:
            per_k[k] = t
    per_k[trial_k(best)] = best
    out = {}
    for k, t in per_k.items():
        with contextlib.suppress(Exception):  # a trial run elsewhere that cannot be refitted: left out
            out[k] = (t, tuner.labels[t.number] if t.number in tuner.labels else tuner.fit_labels(dict(t.params)))
    return out


def k_regret(by_k: dict[int, tuple], truth, chosen_k: int, n_classes: int | None, estimator: str):
    """(metrics, curve) of a sweep: metrics only where the data has labels."""
    scores = {k: float(t.values[0]) for k, (t, _) in by_k.items()}
    return regret_of({k: labels for k, (_, labels) in by_k.items()}, truth, chosen_k, n_classes, estimator, scores)


def regret_of(labels_by_k: dict[int, np.ndarray], truth, chosen_k: int, n_classes: int | None, estimator: str,
              scores: dict[int, float] | None = None):
    """(metrics, curve) from the clustering at each K (and the way of choosing's per-K score, if any)."""
    from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score

    ks = sorted(labels_by_k)
    curve = {"estimator": estimator, "chosen_k": int(chosen_k), "k": ks,
             **({"score": [scores[k] for k in ks]} if scores is not None else {})}
    if truth is None or chosen_k not in labels_by_k:
        return {}, curve
    truth = np.asarray(truth)
    nmi = [float(normalized_mutual_info_score(truth, M.noise_as_group(labels_by_k[k]), average_method=M.NMI_AVERAGE))
           for k in ks]
    ami = [float(adjusted_mutual_info_score(truth, M.noise_as_group(labels_by_k[k]))) for k in ks]
    best = ks[int(np.argmax(nmi))]
    at = ks.index(chosen_k)
    curve.update({"nmi": nmi, "ami": ami, "n_classes": n_classes, "k_best_nmi": best})
    metrics = {"k_chosen": float(chosen_k), "k_best_nmi": float(best), "k_nmi_at_chosen": nmi[at],
               "k_best_nmi_value": max(nmi), "k_regret_nmi": max(nmi) - nmi[at], "k_ami_at_chosen": ami[at],
               "k_regret_ami": max(ami) - ami[at]}
    if n_classes:
        metrics["k_error"] = float(chosen_k - n_classes)
    return metrics, curve


def semantic_regret(choice, cell, data, X, clusterers):
    """``k=semantic`` scored like an estimator where labels exist: the cell's clusterer refitted at
    every K of the default range (``k_min..k_max``, as ``k=auto`` sweeps it) and at the chosen K,
    after K was chosen and never fed back; NMI/AMI at each, the error and regret of the chosen K."""
    from clusterbench.k.config import TuneConfig
    from clusterbench.k.space import K_MAX_CAP

    choice.params["k_estimator"] = "semantic"
    if data.labels is None or not clusterers.traits(cell.clusterer).tunable:
        return choice
    cfg, n, k = TuneConfig.parse(cell.tune, clusterers), len(X), int(choice.params["k"])
    k_max = min(cfg.k_max if cfg.k_max is not None else max(cfg.k_min, min(K_MAX_CAP, n // 10)), n - 1)
    labels_by_k = {}
    for each in sorted({*range(cfg.k_min, k_max + 1), k}):
        overrides = {**cell.seed_override(clusterers), "k": each}
        with contextlib.suppress(Exception):  # a K the clusterer cannot make is left out of the curve
            labels_by_k[each] = np.asarray(clusterers.create(cell.clusterer, **overrides).fit_predict(X))
    metrics, curve = regret_of(labels_by_k, data.labels, k, data.n_classes, "semantic")
    choice.metrics.update(metrics)
    choice.curve = curve
    choice.artifacts.update(curve_artifacts(curve))
    return choice


def curve_artifacts(curve: dict) -> Artifacts:
    """Per-K series as metric histories (step = K) and the curve as JSON."""
    steps = []
    for i, k in enumerate(curve["k"]):
        values = {f"k_curve.{name}": curve[name][i] for name in ("score", "nmi", "ami") if name in curve}
        steps.append((int(k), values))
    return Artifacts(json={"k/curve.json": {**curve, "note": "nmi/ami use the labels after the sweep; "
                                                          "the estimator never saw them"}}, steps=steps)
