"""The suite runner: expands cells, embeds each (dataset, embedder) once, clusters, scores,
tracks, and isolates failures so one bad cell never costs the others."""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path

import numpy as np

from clusterbench.core.catalog import registries
from clusterbench.core.contracts import GROUP_COLUMN, Context, EmbedRequest
from clusterbench.core.errors import UserError, one_line_reason
from clusterbench.core.interrupts import STOP_REQUESTED
from clusterbench.core.suite import Cell, Suite
from clusterbench.core.validate import validate_cells as check_cells
from clusterbench.core.validate import validate_suite
from clusterbench.k.kchoice import resolve_k
from clusterbench.run.cache import EmbeddingCache, embedding_key, reduced_key
from clusterbench.run.cell_result import JSON_METRICS, CellResult  # noqa: F401  (re-exported: the runner's result)
from clusterbench.run.environment import git_commit, library_versions
from clusterbench.run.locks import cell_lock, exclusive
from clusterbench.run.perf import peak_host_memory_mb
from clusterbench.run.progress import bars_shown
from clusterbench.run.seeding import seed_everything
from clusterbench.scoring import metrics as M
from clusterbench.track.tracking import (
    CELL_KEY_TAG,
    REASON_TAG,
    ROLE_TAG,
    Tracker,
    check_tracking_server,
    default_tracking_uri,
)


def validate_cells(cells: list[Cell]) -> None:
    """Every name and parameter is checked before anything runs (a typo costs nothing)."""
    check_cells(cells, registries())


class Runner:
    def __init__(self, results_dir: str | Path = "results", tracking_uri: str | None = None, force: bool = False,
                 progress: bool = True, log=None, optuna_storage: str | None = None, explain: int = 0,
                 pictures: bool | None = None, executor=None):
        self.results_dir = Path(results_dir).resolve()
        self.executor = executor  # runs the cells: in this process (None, local) or on a cluster
        self.embeddings_fresh = False  # True in a worker: the suite's embedding stage wrote the cache
        self.explain = int(explain)  # run --explain N: a Grad-CAM panel of N images in each cell's run
        self.pictures = pictures  # gallery, contingency, map, sizes per cell; None: as the suite says
        self._pictures_on = pictures is not False
        self.tracking_uri = tracking_uri
        self.force = force
        self.progress = progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.optuna_storage = optuna_storage
        self.cache = EmbeddingCache(self.results_dir / "cache" / "embeddings")
        self.reduced = EmbeddingCache(self.results_dir / "cache" / "reduced")  # UMAP outputs, content-addressed
        self._embedding_keys: dict[tuple[str, str], str] = {}
        self._reduced_now: set[str] = set()  # computed by this run (reused even under --force)
        self._data: dict[str, object] = {}
        self._embeddings: dict[tuple[str, str], object] = {}

    # -- setup ------------------------------------------------------------------------------------
    def _prepare_results_dir(self) -> None:
        try:
            self.results_dir.mkdir(parents=True, exist_ok=True)
            probe = self.results_dir / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as e:
            raise UserError(f"results directory {self.results_dir} is not writable: {e.strerror}") from None

    def run(self, suite: Suite) -> list[CellResult]:
        with bars_shown(self.progress):
            return self._run(suite)

    def _run(self, suite: Suite) -> list[CellResult]:
        STOP_REQUESTED.clear()  # a stop asked of an earlier run in this process is not this run's
        self._pictures_on = suite.pictures if self.pictures is None else self.pictures
        from clusterbench.k.config import validate_tune

        # the whole suite (specs against their declarations, reducer, K, tuning) before anything runs
        cells = validate_suite(suite, validate_tune=validate_tune, found=registries())
        check_tracking_server(self.tracking_uri)  # an unreachable server: one line, before anything is written
        self._prepare_results_dir()
        uri = self.tracking_uri or default_tracking_uri(self.results_dir)
        with exclusive(self.results_dir, "tracking-store"):
            tracker = Tracker(uri, f"clusterbench/{suite.name}", self.results_dir / "mlartifacts")
        closed = tracker.close_orphans()
        if closed:
            self.log(f"marked {len(closed)} run(s) left RUNNING by a killed process as KILLED")
        done = {} if self.force else tracker.finished_cells()
        parent = tracker.start_run(f"{suite.name}", {ROLE_TAG: "suite", "suite_file": suite.source,
                                                     "git_commit": git_commit()})
        tracker.log_params(parent, {"suite": suite.name, "n_cells": len(cells), "seeds": suite.seeds,
                                    "results_dir": str(self.results_dir)})
        results: list[CellResult] = []
        status = "FAILED"
        try:
            if self.executor is None:
                ran = (self._claim_and_run(cell, tracker, parent, done) for cell in self._until_stopped(cells))
            else:
                ran = self.executor.run_cells(self._job(uri, tracker, parent), cells, done)
            for i, result in enumerate(ran, 1):
                self.log(f"[{i}/{len(cells)}] {result.cell.key}: {self._summary(result)}")
                results.append(result)
            order = {cell.key: i for i, cell in enumerate(cells)}
            results.sort(key=lambda r: order[r.cell.key])  # an executor yields them as they finish
            status = "FINISHED"
            from clusterbench.k.compare import log_comparison

            log_comparison(tracker, parent, results)  # every estimator's curve on the same data, one figure
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            counts = {s: sum(r.status == s for r in results) for s in ("ok", "failed", "skipped")}
            tracker.log_metrics(parent, {f"cells_{s}": n for s, n in counts.items()})
            tracker.log_json(parent, "summary.json", {"cells": [r.to_json() for r in results]})
            from clusterbench.track.suite_summary import (
                log_suite_summary,  # aggregates over seeds, report.html
            )

            log_suite_summary(tracker, parent, results, suite.name, html=self._pictures_on, log=self.log)
            tracker.end_run(parent, status)
        return results

    @staticmethod
    def _until_stopped(cells: list[Cell]):
        for cell in cells:
            if STOP_REQUESTED.is_set():
                raise KeyboardInterrupt
            yield cell

    def _job(self, uri: str, tracker: Tracker, parent: str):
        """What a worker process needs to run this suite's cells (see :mod:`clusterbench.run.worker`)."""
        from clusterbench.run.job import Job

        return Job(str(self.results_dir), uri, tracker.experiment_name, parent, force=self.force,
                   optuna_storage=self.optuna_storage, explain=self.explain, pictures=self._pictures_on)

    def _claim_and_run(self, cell: Cell, tracker: Tracker, parent: str, done: dict,
                       discard_dead: bool = False) -> CellResult:
        """Run the cell unless it finished earlier or another process is running it now. With
        ``discard_dead`` (a retried task), runs of the cell still RUNNING are attempts that died
        with their worker (the lock is ours), and are deleted so the cell is recorded once."""
        with cell_lock(self.results_dir, cell.key) as mine:
            if not mine:
                return CellResult(cell, status="skipped", error="running in another process")
            if discard_dead:
                tracker.delete_unfinished(cell.key)
            prior = done.get(cell.key) or (None if self.force else tracker.finished_run(cell.key))
            if prior is not None:
                return CellResult(cell, params=dict(prior.data.params), metrics=dict(prior.data.metrics),
                                  run_id=prior.info.run_id, cached=True)
            return self.run_cell(cell, tracker, parent)

    @staticmethod
    def _summary(r: CellResult) -> str:
        if r.cached:
            return f"finished earlier (run {r.run_id[:8]}), skipped"
        if r.status == "skipped":
            return "skipped: running in another process"
        if r.status != "ok":
            return f"FAILED: {r.error}"
        m = r.metrics
        parts = [f"k={r.params.get('k')}"]
        parts += [f"{k}={m[k]:.3f}" for k in ("nmi", "silhouette") if m.get(k) is not None]
        return "ok " + " ".join(parts)

    # -- one cell ---------------------------------------------------------------------------------
    def run_cell(self, cell: Cell, tracker: Tracker, parent: str) -> CellResult:
        result = CellResult(cell)
        tags = {ROLE_TAG: "cell", CELL_KEY_TAG: cell.key, "dataset": str(cell.dataset), "embedder": str(cell.embedder),
                "clusterer": str(cell.clusterer), "git_commit": git_commit(),
                **{f"version.{k}": v for k, v in library_versions().items()}}
        run_id = tracker.start_run(f"{cell.dataset.name}/{cell.embedder.name}/{cell.clusterer.name}", tags, parent)
        result.run_id = run_id
        try:
            self._execute(cell, result, tracker, run_id)
        except KeyboardInterrupt:
            self._mark_killed(tracker, run_id)
            raise
        except Exception as exc:  # noqa: BLE001 - isolation: any failure stays inside its cell
            if STOP_REQUESTED.is_set():  # the interrupt surfaced as another exception
                self._mark_killed(tracker, run_id)
                raise KeyboardInterrupt from exc
            result.status, result.error = "failed", one_line_reason(exc)
            tracker.set_tags(run_id, {REASON_TAG: result.error})
            if not isinstance(exc, UserError):
                tracker.log_text(run_id, "traceback.txt", traceback.format_exc())
            tracker.end_run(run_id, "FAILED")
            return result
        tracker.end_run(run_id, "FINISHED")
        return result

    @staticmethod
    def _mark_killed(tracker: Tracker, run_id: str) -> None:
        tracker.set_tags(run_id, {REASON_TAG: "interrupted"})
        tracker.end_run(run_id, "KILLED")

    def _execute(self, cell: Cell, result: CellResult, tracker: Tracker, run_id: str) -> None:
        datasets, embedders, clusterers = registries()
        data = self._dataset(cell)
        tracker.log_dataset(run_id, str(cell.dataset), data.fingerprint, str(data.info.get("root") or data.name or cell.dataset),
                            n=len(data))  # the runs table's Dataset column
        embedding, embed_seconds, cached = self._embedding(
            cell, data, context=lambda needs: self._context(cell, data, tracker, run_id, needs))
        seed_everything(cell.seed)
        X = embedding.features
        if cell.reduce is not None:
            X = self._reduce(cell, X)

        params = {f"dataset.{k}": v for k, v in cell.dataset.params.items()}
        params.update({f"embedder.{k}": v for k, v in cell.embedder.params.items()})
        params.update({f"clusterer.{k}": v for k, v in cell.clusterer.params.items()})
        params.update({
            "dataset": str(cell.dataset), "embedder": str(cell.embedder), "clusterer": str(cell.clusterer),
            "seed": cell.seed, "reducer": cell.reduce.describe() if cell.reduce else "none",
            "precision": embedding.stats.precision, "weights": embedding.stats.weights,
            "device": embedding.stats.device, "n_images": len(data), "feature_dim": int(X.shape[1]),
            "n_classes": data.n_classes, "nmi_average": M.NMI_AVERAGE,
            # where the data really came from (resolved paths, files skipped), as the dataset reports it
            **{f"data.{k}": v for k, v in data.info.items() if isinstance(v, str | int | float) and not isinstance(v, bool)},
        })
        if data.info.get("skipped"):
            params["data.skipped"] = len(data.info["skipped"])
            tracker.log_text(run_id, "skipped_files.txt", "\n".join(data.info["skipped"]))

        overrides = cell.seed_override(clusterers)
        choice = resolve_k(cell, data, X, embedding, clusterers, tracker=tracker, run_id=run_id,
                           results_dir=self.results_dir, storage=self.optuna_storage, force=self.force)
        overrides.update(choice.overrides)
        if choice.reduce is not None:  # a tuned reducer (the PCA dimension Optuna chose)
            X = choice.reduce.fit_transform(X)
        params.update(choice.params)
        result.params, result.k_curve = params, choice.curve
        tracker.log_params(run_id, params)

        clusterer = clusterers.create(cell.clusterer, **overrides)
        plan = clusterer.plan(*X.shape)  # what it does differently at this size, said before it starts
        if plan:
            self.log(f"{cell.key}: {plan}")
            tracker.set_tags(run_id, {"cluster.plan": plan})
        context = self._context(cell, data, tracker, run_id, type(clusterer).needs)
        start = time.perf_counter()
        outcome = clusterer.fit(X, context)
        cluster_seconds = time.perf_counter() - start
        labels = np.asarray(outcome.labels)
        if len(labels) != len(X):
            raise UserError(f"{cell.clusterer}: returned {len(labels)} labels for {len(X)} points")
        if len(labels) and (labels < 0).all():
            raise UserError(f"{cell.clusterer}: every point was labelled noise; lower min_cluster_size / min_samples")
        # internal metrics in the space the labels were made in (DeepCluster learns its own)
        scored = M.score(X if outcome.space is None else outcome.space, labels, data.labels, seed=cell.seed)
        groups = data.items.get(GROUP_COLUMN)  # the videos frames were cut from: clusters scored against them too
        if groups is not None and len(groups) == len(labels):
            scored.update(M.group_metrics(labels, groups, GROUP_COLUMN))
        info = outcome.info
        scored.update({f"cluster.{k}": v for k, v in info.items() if isinstance(v, int | float) and not isinstance(v, bool)})
        for name, extra in outcome.extra.items():
            extra_X = X if extra.space is None else extra.space
            scored.update({f"{name}.{k}": v for k, v in M.score(extra_X, extra.labels, data.labels, seed=cell.seed).items()})
        stats = embedding.stats
        scored.update({
            "embed_seconds": embed_seconds,
            "embed_cached": float(cached),
            "throughput_img_per_s": stats.images_per_s,
            "cluster_seconds": cluster_seconds,
            "peak_host_memory_mb": peak_host_memory_mb(),
            "gpu_peak_memory_mb": stats.gpu_peak_memory_mb,
            "flops_per_image": stats.flops_per_image,
            "gflops_per_s": stats.gflops_per_s,
            # how the forward pass ran: the batch size after any out-of-memory halvings, loader workers
            "embed_batch_size": stats.batch_size,
            "embed_oom_backoffs": stats.oom_backoffs if stats.batch_size is not None else None,
            "embed_loader_workers": stats.loader_workers,
            "embed_warmup_seconds": stats.warmup_seconds,
        })
        scored.update(choice.metrics)  # K-regret of a labelled cell whose K was estimated
        result.metrics = scored
        tracker.log_metrics(run_id, scored)
        tracker.set_tags(run_id, {"device": stats.device, "k_source": choice.params.get("k_source"),
                                  **({"gpu_name": stats.gpu_name} if stats.gpu_name else {}),
                                  # what the clusterer chose for itself (k-means engine and seeding, ...)
                                  **{f"cluster.{k}": v for k, v in info.items() if isinstance(v, str)}})
        tracker.log_json(run_id, "metrics.json", scored)
        tracker.log_json(run_id, "embedding_info.json", stats.to_dict())
        columns = {"index": np.arange(len(labels)), "cluster": labels,
                   **({"label": data.labels} if data.labels is not None else {})}
        # per-item metadata (a frame's video and timestamp) beside each assignment
        columns.update({k: v for k, v in data.items.items() if k not in columns and len(v) == len(labels)})
        tracker.log_table_csv(run_id, "assignments.csv", columns)
        if self.explain > 0:
            self._explain(cell, data, tracker, run_id)
        if self._pictures_on:  # gallery, contingency, map, sizes under pictures/ (a failure is tagged, not fatal)
            from clusterbench.track.pictures import log_cell_pictures

            log_cell_pictures(tracker, run_id, data, X if outcome.space is None else outcome.space, labels, seed=cell.seed,
                              title=f"{cell.dataset} x {cell.embedder} x {cell.clusterer} (seed {cell.seed})", log=self.log)

    def _explain(self, cell: Cell, data, tracker: Tracker, run_id: str) -> None:
        """``run --explain N``: the explain panel (grid PNG, index.html, JSON) as artifacts under
        ``explain/``; an embedder without a classifier head gets a note instead. A failure here
        is logged and tagged, and does not undo the cell's scores."""
        import tempfile

        from clusterbench.explain import check_explainable, explain_artifacts

        _, embedders, _ = registries()
        try:
            if not data.has_images:
                raise UserError(f"explain: dataset {cell.dataset} holds precomputed features, no images to explain")
            check_explainable(embedders, cell.embedder)
        except UserError as exc:
            tracker.log_text(run_id, "explain/skipped.txt", f"{exc}\n")
            return
        try:
            with tempfile.TemporaryDirectory() as tmp:
                files = explain_artifacts(embedders.create(cell.embedder), data, self.explain, Path(tmp),
                                          seed=cell.seed, title=f"{cell.embedder} on {cell.dataset}")
                for path in files:
                    tracker.log_file(run_id, path, "explain")
        except Exception as exc:  # noqa: BLE001 - the cell's scores stand; the panel is extra
            reason = one_line_reason(exc)
            tracker.set_tags(run_id, {"clusterbench.explain_error": reason})
            self.log(f"explain {cell.key}: failed: {reason}")

    # -- shared stages (computed once, reused across cells) ---------------------------------------
    def _reduce(self, cell: Cell, X: np.ndarray) -> np.ndarray:
        """The cell's reducer; a UMAP one is seeded by the cell and cached like an embedding (keyed
        by the embedding's key, the reducer and the seed)."""
        import dataclasses

        if not cell.reduce.umap:
            return cell.reduce.fit_transform(X)
        reducer = dataclasses.replace(cell.reduce, seed=cell.seed)
        key = reduced_key(self._embedding_keys[(str(cell.dataset), str(cell.embedder))], reducer.describe(), cell.seed)
        hit = None if self.force and key not in self._reduced_now else self.reduced.load(key)
        if hit is not None:
            return hit.features
        from clusterbench.core.contracts import Embedding, EmbedStats

        features = reducer.fit_transform(X)
        self.reduced.store(key, Embedding(features, EmbedStats(details={"reducer": reducer.describe()})))
        self._reduced_now.add(key)
        return features

    def _dataset(self, cell: Cell):
        key = str(cell.dataset)
        if key not in self._data:
            datasets, _, _ = registries()
            try:
                self._data[key] = datasets.create(cell.dataset).load()
            except Exception as exc:  # noqa: BLE001 - remembered so other cells fail fast with the same reason
                self._data[key] = exc
        value = self._data[key]
        if isinstance(value, Exception):
            raise value
        if len(value) == 0:
            raise UserError(f"dataset {key}: no images")
        return value

    def _embedding(self, cell: Cell, data, context=None):
        key = (str(cell.dataset), str(cell.embedder))
        held = self._embeddings.get(key)
        if isinstance(held, tuple) and cell.requested_k == "semantic" and held[0].logits is None:
            del self._embeddings[key]  # computed for an earlier cell without the classifier's logits
        if key not in self._embeddings:
            try:
                self._embeddings[key] = self._compute_embedding(cell, data, context)
            except Exception as exc:  # noqa: BLE001
                self._embeddings[key] = exc
        value = self._embeddings[key]
        if isinstance(value, Exception):
            raise value
        return value

    def _compute_embedding(self, cell: Cell, data, context=None):
        _, embedders, _ = registries()
        embedder = embedders.create(cell.embedder)
        wants_logits = cell.requested_k == "semantic"
        if wants_logits and not type(embedder).has_classifier:
            raise UserError(f"k=semantic: embedder {cell.embedder.name!r} has no classifier head to predict labels with")
        request = EmbedRequest(with_logits=wants_logits,
                               context=context(type(embedder).needs) if context is not None else Context(seed=cell.seed))
        cache_key = embedding_key(data.fingerprint, str(cell.embedder), embedder.identity())
        self._embedding_keys[(str(cell.dataset), str(cell.embedder))] = cache_key
        cached = type(embedder).cache_features
        start = time.perf_counter()
        hit = None if (self.force and not self.embeddings_fresh) or not cached else self.cache.load(cache_key)
        if hit is not None and not (wants_logits and (hit.logits is None or hit.classes is None)):  # an entry without logits can't serve k=semantic
            return hit, time.perf_counter() - start, True
        embedding = embedder.embed(data, request)
        features = np.ascontiguousarray(embedding.features, dtype=np.float32)
        if features.ndim != 2 or len(features) != len(data):
            raise UserError(f"embedder {cell.embedder}: returned shape {features.shape} for {len(data)} images")
        embedding.features = features
        if cached:
            self.cache.store(cache_key, embedding)
        return embedding, time.perf_counter() - start, False

    def _context(self, cell: Cell, data, tracker: Tracker, run_id: str, needs: frozenset[str]) -> Context:
        """Exactly what the method declared in ``needs`` (:data:`clusterbench.core.contracts.NEEDS`)."""
        context = Context(seed=cell.seed)
        if "data" in needs:
            context.data = data
        if "work_dir" in needs:
            context.work_dir = str(self.results_dir / "cache" / "work")  # each method keeps its own folder there
        if "log" in needs:
            context.log_metrics = lambda metrics, step: tracker.log_metrics(run_id, metrics, step=step)
            context.log_figure = lambda figure, name: tracker.log_figure(run_id, figure, name)
        if "grid_k" in needs:
            # The grid's K (--k / suite / number of classes), for methods whose own k means something else.
            context.grid_k = cell.k if isinstance(cell.k, int) else data.n_classes
        return context
