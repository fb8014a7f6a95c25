"""``k=auto:NAME``: K chosen by a K estimator (:mod:`clusterbench.k.estimators`) from a sweep over K
run as the cell's Optuna study (the same shared, resumable study as ``k=auto``; see
:mod:`clusterbench.k.tuning`).

The sweep is over K alone (every K of ``k_min..k_max``, grid sampler): each trial fits the cell's
clusterer at its K and records the estimator's score as the trial's value and the estimator's other
numbers as user attributes (``est.*``); the estimator's rule then picks K from the finished sweep.
The study's name carries the estimator's spec, so each estimator has its own study. The labels are
used only afterwards, for the K-regret (:mod:`clusterbench.k.regret`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import time

import numpy as np
import optuna

from clusterbench.core.errors import UserError
from clusterbench.k.choice import KChoice
from clusterbench.k.estimator_spec import estimator_spec
from clusterbench.k.study import default_storage_url, redact, trial_k
from clusterbench.k.tuning import Tuner, run_study
from clusterbench.scoring import metrics as M


class EstimatorTuner(Tuner):
    """The cell's study with a K estimator's score as its objective."""

    def __init__(self, cell, data, X, clusterers, storage_url: str, log=None, estimator: str | None = None):
        from clusterbench.k.estimators import K_ESTIMATORS

        self.spec = K_ESTIMATORS.validate(estimator_spec(f"auto:{estimator}" if estimator else cell.requested_k))
        self.estimator = K_ESTIMATORS.create(self.spec)
        super().__init__(cell, data, X, clusterers, storage_url, log=log)

    def _config(self, cfg):
        return dataclasses.replace(cfg, objectives=(self.spec.name,), pca_dims=None, sampler="grid", select="rank")

    def _space(self, space):
        space = [p for p in space if p.name == "k"]
        if not space:
            raise UserError(f"k=auto:{self.spec}: {self.cell.clusterer} has no free K to sweep")
        return space

    def _directions(self):
        return [self.estimator.direction]

    def _study_name(self) -> str:
        return f"{super()._study_name()}|estimator={self.spec}"

    def refit(self, X, k: int, seed: int) -> np.ndarray:
        """The cell's clusterer at ``k`` on other points (reference sets, subsamples)."""
        overrides = {"k": int(k)}
        if self.cell.seed_override(self.clusterers):
            overrides["seed"] = int(seed)
        return self.labels_at(X, overrides)

    def _evaluate(self, trial, params: dict) -> list[float]:
        start, k = time.perf_counter(), int(params["k"])
        labels = self.fit_labels(params)
        if len(labels) * max(1, len(self.labels) + 1) <= 50_000_000:
            self.labels[trial.number] = labels
        stats = M.cluster_stats(labels)
        record = {"host": socket.gethostname(), "pid": os.getpid(), "n_clusters": stats["n_clusters"],
                  "noise_fraction": stats["noise_fraction"]}
        reason = f"{stats['n_clusters']} cluster(s) found" if stats["n_clusters"] < 2 else None
        if reason is None:
            out = self.estimator.score(self.X, labels, k, self.refit, self.cell.seed)
            value = out.get("value")
            if value is None or not math.isfinite(value):
                reason = f"{self.spec.name} undefined at k={k}"
            record.update({f"est.{n}": float(v) for n, v in out.items() if n != "value" and isinstance(v, int | float)})
        record["seconds"] = time.perf_counter() - start
        for key, v in {**record, **({"reason": reason} if reason else {})}.items():
            trial.set_user_attr(key, v)
        if reason:
            raise optuna.TrialPruned(reason)
        return [float(value)]

    def choose(self):
        complete = [t for t in self.shared.trials() if t.state.name == "COMPLETE" and trial_k(t) is not None]
        if not complete:
            raise UserError(f"k=auto:{self.spec}: no trial of study {self.shared.name!r} completed")
        curve = {trial_k(t): {"value": t.values[0], **{n[4:]: v for n, v in t.user_attrs.items() if n.startswith("est.")}}
                 for t in complete}
        k = int(self.estimator.choose(curve))
        return next(t for t in complete if trial_k(t) == k)


def estimate_cell(cell, data, X, clusterers, results_dir=None, storage=None,
                  force: bool = False, log=None, estimator: str | None = None, why: str | None = None, **_) -> KChoice:
    """Run (or resume, or join) the cell's sweep; K by the estimator's rule; the K-regret.
    ``estimator`` overrides the cell's ``auto:NAME`` (a default standing in), ``why`` says why."""
    from clusterbench.k.bounds import bound_record
    from clusterbench.k.figure import k_curve_figure
    from clusterbench.k.regret import curve_artifacts, k_regret, sweep_labels

    tuner, best, trials = run_study(
        lambda: EstimatorTuner(cell, data, X, clusterers, storage or default_storage_url(results_dir), log=log,
                               estimator=estimator),
        lambda tuner: tuner.choose(), force)
    states, k = [t.state.name for t in trials], trial_k(best)
    source = f"auto:{tuner.spec}" + (f" (default: {why})" if why else "")
    params = {"k": k, "k_source": source, "k_estimator": str(tuner.spec), "sampler": tuner.sampler_kind,
              "n_trials": len(trials), "n_trials_complete": states.count("COMPLETE"),
              "n_trials_failed": states.count("FAIL"), "n_trials_pruned": states.count("PRUNED"),
              "n_trials_run_now": len(tuner.shared.run_here), "study_name": tuner.shared.name,
              "optuna_storage": redact(tuner.url), "best_trial": best.number,
              "search_space": "; ".join(p.describe() for p in tuner.space), "k_score": round(float(best.values[0]), 6)}
    metrics, curve = k_regret(sweep_labels(tuner, trials, best, tuner.estimator.direction), data.labels,
                              k, data.n_classes, str(tuner.spec))
    bound_params, bound_metrics = bound_record(k, tuner.space, f"k estimator {tuner.spec}", tuner.log)
    params.update(bound_params)
    metrics.update(bound_metrics)
    tuner.log(f"k estimator {tuner.spec}: chose k={k} ({tuner.spec.name}={best.values[0]:.4g}; {len(trials)} trials, "
              f"{params['n_trials_run_now']} run now)"
              + (f"; k_error={metrics['k_error']:+.0f}, k_regret_nmi={metrics['k_regret_nmi']:.4f}" if "k_error" in metrics else ""))
    artifacts = curve_artifacts(curve)
    title = f"{cell.dataset} / {cell.embedder} / {cell.clusterer}"
    artifacts.figures["k/estimator_vs_k.png"] = lambda: k_curve_figure(curve, title)
    return KChoice(overrides={"k": k}, params=params, metrics=metrics, curve=curve, artifacts=artifacts)
