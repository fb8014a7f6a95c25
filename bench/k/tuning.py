"""``k=auto``: K and the clusterer's other free parameters, chosen per cell by an Optuna study.

Trials see internal criteria only (labels are used afterwards, for the figure's NMI). The space
(:mod:`~clusterbench.k.space`) and the shared study (:mod:`~clusterbench.k.study`) are elsewhere;
here are the trials: the cell's embedding, the clusterer refitted, silhouette exact up to
``silhouette_sample`` points (sampled above, the same sample each trial); with noise the metrics
use clustered points, silhouette counts noise as 0 and a trial with more than ``max_noise`` noise or
fewer than 2 clusters is pruned. The study name depends on the cell, the data's fingerprint, the
space, objectives and sampler, not on ``n_trials``: a rerun resumes and more trials continue it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import sys
import time
import warnings

import numpy as np
import optuna

from clusterbench.core.artifacts import Artifacts
from clusterbench.core.errors import UserError, one_line_reason
from clusterbench.k.choice import KChoice
from clusterbench.k.config import OBJECTIVES, TuneConfig, check_tunable
from clusterbench.k.space import build_space, choose_sampler, grid_points, suggest
from clusterbench.k.study import SharedStudy, default_storage_url, make_sampler, redact, trial_k
from clusterbench.scoring import metrics as M


class Tuner:
    """One cell's space, shared study and trial objective."""

    def __init__(self, cell, data, X, clusterers, storage_url: str, log=None):
        self.cell, self.data, self.clusterers, self.url = cell, data, clusterers, storage_url
        self.X = np.ascontiguousarray(X, dtype=np.float32)
        self.cfg = self._config(TuneConfig.parse(cell.tune, clusterers))
        check_tunable(clusterers, cell.clusterer.name)
        if len(self.X) < 3:
            raise UserError(f"k=auto: {len(self.X)} points are too few to choose K")
        self.space = self._space(build_space(cell, self.cfg, clusterers, *self.X.shape))
        self.sampler_kind, self.n_slots = choose_sampler(self.cfg, self.space)
        self.directions = self._directions()
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        slots = grid_points(self.space, self.n_slots, cell.seed) if self.sampler_kind == "grid" else [{}] * self.n_slots
        self.seed = int(cell.seed) * 100_003
        self.shared = SharedStudy(storage_url, self._study_name(), self.directions, slots,
                                  make_sampler(self.sampler_kind, self.seed), self.cfg, self.log)
        self.labels: dict[int, np.ndarray] = {}  # trial number -> assignment, for the figure
        self._reduced: dict[int, np.ndarray] = {}
        # work a clusterer shares across K (one tree for every K): per (features, parameters besides
        # K), holding the features so their id stays theirs while the entry lives
        self._sweeps: dict[tuple, tuple[np.ndarray, object]] = {}

    # hooks for a sweep whose objective is a K estimator's (clusterbench.k.sweep)
    def _config(self, cfg: TuneConfig) -> TuneConfig:
        return cfg

    def _space(self, space: list) -> list:
        return space

    def _directions(self) -> list[str]:
        return [OBJECTIVES[o] for o in self.cfg.objectives]

    def _study_name(self) -> str:
        c, reduce = self.cell, self.cell.reduce.describe() if self.cell.reduce else "none"
        ident = json.dumps({"dataset": str(c.dataset), "embedder": str(c.embedder), "clusterer": str(c.clusterer),
                            "seed": c.seed, "reduce": reduce, "data": self.data.fingerprint,
                            "shape": list(self.X.shape), "space": [p.describe() for p in self.space],
                            "objectives": list(self.cfg.objectives), "sampler": self.sampler_kind,
                            "silhouette_sample": self.cfg.silhouette_sample, "max_noise": self.cfg.max_noise}, sort_keys=True)
        return (f"clusterbench|{c.dataset}|{c.embedder}|{c.clusterer}|seed={c.seed}|reduce={reduce}"
                f"|{'+'.join(self.cfg.objectives)}|{self.sampler_kind}|{hashlib.sha256(ident.encode()).hexdigest()[:10]}")

    def prepare(self, force: bool = False) -> None:
        created, added = self.shared.prepare(force, {
            "cell": self.cell.key, "objectives": list(self.cfg.objectives), "sampler": self.sampler_kind,
            "search_space": [p.describe() for p in self.space], "silhouette_sample": self.cfg.silhouette_sample,
            "max_noise": self.cfg.max_noise, "n_points": len(self.X)})
        done = sum(t.state.is_finished() for t in self.shared.trials())
        self.log(f"tuning {self.cell.key}: {'new study' if created else 'resuming study'} {self.shared.name!r} "
                 f"({self.sampler_kind}, {self.n_slots} trials, {done} finished earlier, {added} queued now)")

    def objective(self, trial):
        # seeded per trial: workers sharing the study never draw alike, whoever runs a trial draws the same
        trial.study.sampler = make_sampler(self.sampler_kind, self.seed + trial.number)
        try:
            return self._evaluate(trial, {p.name: suggest(trial, p) for p in self.space})
        except optuna.TrialPruned:
            raise
        except (Exception, KeyboardInterrupt) as e:  # recorded; interrupted trials are queued again by the next run
            trial.set_user_attr("error", "interrupted" if isinstance(e, KeyboardInterrupt) else one_line_reason(e))
            raise

    def features(self, pca: int | None) -> np.ndarray:
        if pca and pca not in self._reduced:
            from clusterbench.core.reduce import Reducer

            self._reduced[pca] = Reducer(pca=pca, seed=self.cell.seed).fit_transform(self.X)
        return self._reduced[pca] if pca else self.X

    def fit_labels(self, params: dict) -> np.ndarray:
        overrides = {**self.cell.seed_override(self.clusterers), **{k: v for k, v in params.items() if k != "pca"}}
        return self.labels_at(self.features(params.get("pca")), overrides)

    def labels_at(self, X: np.ndarray, overrides: dict) -> np.ndarray:
        """The cell's clusterer on ``X`` with ``overrides``. One that shares work across K (its
        ``sweeps_k`` trait) does that work once per (features, parameters besides K) and answers
        every K from it; the others are fitted afresh."""
        if "k" not in overrides or not self.clusterers.traits(self.cell.clusterer).sweeps_k:
            return np.asarray(self.clusterers.create(self.cell.clusterer, **overrides).fit_predict(X))
        rest = tuple(sorted((name, value) for name, value in overrides.items() if name != "k"))
        key = (id(X), X.shape, rest)
        if key not in self._sweeps:
            self._sweeps[key] = (X, self.clusterers.create(self.cell.clusterer, **dict(rest)).sweep(X))
        return np.asarray(self._sweeps[key][1](int(overrides["k"])))

    def _evaluate(self, trial, params: dict) -> list[float]:
        X, start = self.features(params.get("pca")), time.perf_counter()
        labels = self.fit_labels(params)
        stats = M.cluster_stats(labels)
        record = {"host": socket.gethostname(), "pid": os.getpid(), "n_clusters": stats["n_clusters"],
                  "noise_fraction": stats["noise_fraction"], "seconds": time.perf_counter() - start}
        if len(labels) * max(1, len(self.labels) + 1) <= 50_000_000:
            self.labels[trial.number] = labels
        n, noise = stats["n_clusters"], stats["noise_fraction"]
        reason = f"{n} cluster(s) found" if n < 2 else None
        if reason is None and noise > self.cfg.max_noise:
            reason = f"noise fraction {noise:.2f} > max_noise={self.cfg.max_noise}"
        if reason is None:
            keep = labels >= 0
            internal = M.internal_metrics(X[keep], labels[keep], sample_size=self.cfg.silhouette_sample, seed=self.cell.seed)
            if internal["silhouette"] is None:
                reason = "internal metrics undefined (as many clusters as points)"
            else:
                internal["silhouette"] *= 1.0 - noise  # noise scores 0
                record.update({k: internal[k] for k in (*OBJECTIVES, "silhouette_sample_size")})
        for key, value in {**record, **({"reason": reason} if reason else {})}.items():
            trial.set_user_attr(key, value)
        if reason:
            raise optuna.TrialPruned(reason)
        return [float(internal[o]) for o in self.cfg.objectives]

    def posthoc_nmi(self, trials) -> dict[int, float]:
        """NMI vs the labels of each completed trial, after the study, for the figure only (trials
        run elsewhere are refitted)."""
        if self.data.labels is None:
            return {}
        from sklearn.metrics import normalized_mutual_info_score

        out = {}
        for t in (t for t in trials if t.state == optuna.trial.TrialState.COMPLETE):
            with contextlib.suppress(Exception):  # the figure does without this point
                labels = M.noise_as_group(self.labels[t.number] if t.number in self.labels else self.fit_labels(t.params))
                out[t.number] = float(normalized_mutual_info_score(self.data.labels, labels, average_method=M.NMI_AVERAGE))
        return out


def run_study(make_tuner, choose, force: bool):
    """Build a tuner, prepare, work on and choose from its shared study with Optuna's chatter
    quiet: (tuner, chosen trial, finished trials)."""
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
            tuner = make_tuner()
            tuner.prepare(force=force)
            tuner.shared.work(tuner.objective, timeout=tuner.cfg.timeout)
            best = choose(tuner)
            return tuner, best, [t for t in tuner.shared.trials() if t.state.is_finished()]
    finally:
        optuna.logging.set_verbosity(before)


def tune_cell(cell, data, X, clusterers, results_dir=None, storage=None,
              force: bool = False, log=None, **_) -> KChoice:
    """Run (or resume, or join) the cell's study and return the chosen parameters."""
    tuner, best, trials = run_study(lambda: Tuner(cell, data, X, clusterers, storage or default_storage_url(results_dir),
                                                  log=log), lambda tuner: tuner.shared.choose(tuner.cfg.objectives,
                                                                                              tuner.cfg.select), force)
    states, objectives, run_now = [t.state.name for t in trials], tuner.cfg.objectives, len(tuner.shared.run_here)
    counts = {"n_trials": len(trials), "n_trials_complete": states.count("COMPLETE"),
              "n_trials_failed": states.count("FAIL"), "n_trials_pruned": states.count("PRUNED")}
    tuned = {k: v for k, v in best.params.items() if k not in ("k", "pca")}
    params = {"k": trial_k(best), "k_source": "optuna", "objective": "+".join(objectives), "sampler": tuner.sampler_kind,
              **counts, "n_trials_requested": tuner.n_slots, "n_trials_run_now": run_now, "study_name": tuner.shared.name,
              "optuna_storage": redact(tuner.url), "best_trial": best.number,
              "search_space": "; ".join(p.describe() for p in tuner.space), "silhouette_sample": tuner.cfg.silhouette_sample,
              **{f"tuned.{k}": v for k, v in tuned.items()},
              **({"select": tuner.cfg.select} if len(objectives) > 1 else {}),
              **{f"best_{n}": round(float(v), 6) for n, v in zip(objectives, best.values, strict=True)}}
    reduce = None
    if best.params.get("pca"):
        from clusterbench.core.reduce import Reducer

        reduce = Reducer(pca=int(best.params["pca"]), seed=cell.seed)
        params["tuned.pca"] = params["feature_dim"] = int(best.params["pca"])
        params["reducer"] = (f"{cell.reduce.describe()} then " if cell.reduce else "") + f"pca={best.params['pca']} (tuned)"
    tuner.log(f"tuning: chose k={params['k']}" + "".join(f" {n}={v}" for n, v in tuned.items()) + " with "
              + ", ".join(f"{n}={v:.4f}" for n, v in zip(objectives, best.values, strict=True))
              + f" ({counts['n_trials']} trials: {counts['n_trials_failed']} failed, {counts['n_trials_pruned']} pruned; "
              f"{run_now} run now)")
    from clusterbench.k.regret import curve_artifacts, k_regret, sweep_labels

    params["k_estimator"] = "+".join(objectives)  # auto = auto:silhouette; another [tune] objective names itself
    metrics, curve = k_regret(sweep_labels(tuner, trials, best, tuner.directions[0]), data.labels,
                              params["k"], data.n_classes, params["k_estimator"])
    from clusterbench.k.bounds import bound_record

    bound_params, bound_metrics = bound_record(params["k"], tuner.space, f"tuning ({params['k_estimator']})", tuner.log)
    params.update(bound_params)
    metrics.update(bound_metrics)
    artifacts = study_artifacts(tuner, trials, best).update(curve_artifacts(curve))
    return KChoice(overrides={k: v for k, v in best.params.items() if k != "pca"}, params=params, reduce=reduce,
                   metrics=metrics, curve=curve, artifacts=artifacts)


def study_artifacts(tuner: Tuner, trials, best) -> Artifacts:
    """Every trial as a metric history and JSON, the best values, the objective-vs-K figure."""
    from clusterbench.k.figure import objective_figure

    objectives, nmi, steps, rows = tuner.cfg.objectives, tuner.posthoc_nmi(trials), [], []
    for t in trials:
        metrics = {"trial.failed": float(t.state.name == "FAIL"), "trial.pruned": float(t.state.name == "PRUNED"),
                   **({"trial.k": trial_k(t)} if trial_k(t) is not None else {}),
                   **{f"trial.{key}": t.user_attrs[key] for key in ("n_clusters", "noise_fraction", "seconds", *OBJECTIVES)
                      if t.user_attrs.get(key) is not None},
                   **{f"trial.objective.{n}": v for n, v in zip(objectives, t.values or (), strict=False)}}
        steps.append((t.number, metrics))
        rows.append({"number": t.number, "state": t.state.name, "params": dict(t.params), "k": trial_k(t),
                     "values": list(t.values) if t.values else None, **t.user_attrs,
                     **({"nmi_after_the_fact": nmi[t.number]} if t.number in nmi else {})})
    trials_json = {
        "study_name": tuner.shared.name, "storage": redact(tuner.url), "sampler": tuner.sampler_kind,
        "objectives": list(objectives), "directions": tuner.directions, "search_space": [p.describe() for p in tuner.space],
        "best_trial": best.number, "trials": rows,
        "note": "nmi_after_the_fact uses the labels after the study, for the figure only; the objective never saw them"}
    title = (f"{tuner.cell.dataset} / {tuner.cell.embedder} / {tuner.cell.clusterer}: "
             f"{tuner.sampler_kind}, {len(trials)} trials")
    return Artifacts(
        json={"tuning/trials.json": trials_json}, steps=steps,
        metrics={f"tune.best_{n}": v for n, v in zip(objectives, best.values, strict=True)},
        figures={"tuning/objective_vs_k.png": lambda: objective_figure(trials, objectives, tuner.directions, nmi,
                                                                       best.number, title)})
