"""The suite runner: checks the suite, runs each cell's stages (:mod:`clusterbench.run.stages`)
and hands every record to the recorder, isolating failures so one bad cell never costs the others."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from clusterbench.core.catalog import registries
from clusterbench.core.contracts import Context
from clusterbench.core.errors import UserError, one_line_reason
from clusterbench.core.faults import StoreFault
from clusterbench.core.interrupts import STOP_REQUESTED
from clusterbench.core.locks import cell_lock, exclusive
from clusterbench.core.suite import Cell, Suite
from clusterbench.core.validate import CheckedSuite, validate_suite
from clusterbench.run import stages
from clusterbench.run.cell_result import JSON_METRICS, CellResult  # noqa: F401  (re-exported: the runner's result)
from clusterbench.run.environment import git_commit, library_versions
from clusterbench.run.progress import bars_shown
from clusterbench.track.recorder import Recorder
from clusterbench.track.tracking import Tracker, check_tracking_server, default_tracking_uri


class Runner:
    revision: str | None = None  # run --revision LABEL (default: the suite repository's git commit)
    calibration: float | None = None  # the last run's calibration seconds (clusterbench.run.calibration)
    revision_tags: dict | None = None  # the last run's revision and dirty flag (clusterbench.run.revision)

    def __init__(self, results_dir: str | Path = "results", tracking_uri: str | None = None, force: bool = False,
                 progress: bool = True, log=None, optuna_storage: str | None = None, explain: int = 0,
                 pictures: bool | None = None, executor=None, fresh: bool = False):
        self.results_dir = Path(results_dir).resolve()
        self.executor = executor  # runs the cells: in this process (None, local) or on a cluster
        self.explain = int(explain)  # run --explain N: a Grad-CAM panel of N images in each cell's run
        self.pictures = pictures  # gallery, contingency, map, sizes per cell; None: as the suite says
        self._pictures_on = pictures is not False
        self.tracking_uri = tracking_uri
        self.force = force
        self.progress = progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.optuna_storage = optuna_storage
        self.recommendations: list[dict] = []  # the last run's, per dataset (clusterbench.run.recommendations)
        # fresh: in a worker, the suite's embedding stage already wrote the cache (reused, --force or not)
        self.inputs = stages.Inputs(self.results_dir, force=force, fresh=fresh)

    # -- the suite ----------------------------------------------------------------------------------
    def _prepare_results_dir(self) -> None:
        try:
            self.results_dir.mkdir(parents=True, exist_ok=True)
            probe = self.results_dir / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as e:
            raise UserError(f"results directory {self.results_dir} is not writable: {e.strerror}") from None

    @staticmethod
    def check(suite: Suite) -> CheckedSuite:
        """The whole suite (specs against their declarations, reducer, K, tuning) before anything runs."""
        from clusterbench.k.config import validate_tune

        return validate_suite(suite, validate_tune=validate_tune, found=registries())

    def run(self, suite: Suite, checked: CheckedSuite | None = None) -> list[CellResult]:
        """Every cell of ``suite`` (``checked``: its cells as :meth:`check` returned them, not checked again)."""
        with bars_shown(self.progress):
            return self._run(suite, checked or self.check(suite))

    def _open(self, suite: Suite) -> Recorder:
        check_tracking_server(self.tracking_uri)  # an unreachable server: one line, before anything is written
        self._prepare_results_dir()
        self.tracking_uri = self.tracking_uri or default_tracking_uri(self.results_dir)
        with exclusive(self.results_dir, "tracking-store"):
            tracker = Tracker(self.tracking_uri, f"clusterbench/{suite.name}", self.results_dir / "mlartifacts")
        recorder = Recorder(tracker, self.log)
        closed = recorder.close_orphans()
        if closed:
            self.log(f"marked {len(closed)} run(s) left RUNNING by a killed process as KILLED")
        return recorder

    def _run(self, suite: Suite, checked: CheckedSuite) -> list[CellResult]:
        STOP_REQUESTED.clear()  # a stop asked of an earlier run in this process is not this run's
        self._pictures_on = suite.pictures if self.pictures is None else self.pictures
        cells = checked.cells
        for cell, reason in checked.skipped:
            self.log(f"skipped {cell.key}: {reason}")
        recorder = self._open(suite)
        done = {} if self.force else recorder.finished_cells()
        from clusterbench.run.calibration import calibration_seconds
        from clusterbench.run.revision import suite_revision

        self.calibration = calibration_seconds()  # speed comparable across machines (clusterbench compare)
        self.revision_tags = suite_revision(suite.source, self.revision)
        parent = recorder.start_suite(suite.name, suite.source, {"suite": suite.name, "n_cells": len(cells),
                                                                 "seeds": suite.seeds, "results_dir": str(self.results_dir)},
                                      {"git_commit": git_commit(), **self.revision_tags},
                                      calibration=self.calibration)
        results = [CellResult(cell, status="skipped", error=reason) for cell, reason in checked.skipped]
        status, self.recommendations = "FAILED", []
        try:
            if self.executor is None:
                ran = (self.claim_and_run(cell, recorder, parent, done) for cell in self._until_stopped(cells))
            else:
                ran = self.executor.run_cells(self._job(recorder, parent), cells, done)
            for i, result in enumerate(ran, 1):
                self.log(f"[{i}/{len(cells)}] {result.cell.key}: {self._summary(result)}")
                results.append(result)
            order = {cell.key: i for i, cell in enumerate(cells)}
            results.sort(key=lambda r: order.get(r.cell.key, -1))  # an executor yields them as they finish
            self.recommendations = self._recommend(results)
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            from clusterbench.k.compare import comparison_artifacts

            recorder.finish_suite(parent, results, status, suite.name, html=self._pictures_on,
                                  artifacts=comparison_artifacts(results),  # every estimator's curve, one figure
                                  recommendations=self.recommendations)
        return results

    def _recommend(self, results: list[CellResult]) -> list[dict]:
        """Per dataset, the configuration the label-free criterion ranks first (a failure here is
        said, and costs no cell)."""
        from clusterbench.run.recommendations import recommendations, summary_line

        def features_of(cell: Cell):
            try:  # in memory, or the cache's copy (cells run by workers, or finished earlier)
                return self.inputs.embed(cell, self.inputs.load(cell)).embedding.features
            except Exception:  # noqa: BLE001 - judged without its embedder's space
                return None

        try:
            found = recommendations(results, features_of)
        except Exception as exc:  # noqa: BLE001 - the cells stand without a recommendation
            self.log(f"recommendation: failed: {one_line_reason(exc)}")
            return []
        for entry in found:
            self.log(summary_line(entry))
        return found

    @staticmethod
    def _until_stopped(cells: list[Cell]):
        for cell in cells:
            if STOP_REQUESTED.is_set():
                raise KeyboardInterrupt
            yield cell

    def _job(self, recorder: Recorder, parent: str):
        """What a worker process needs to run this suite's cells (see :mod:`clusterbench.run.worker`)."""
        from clusterbench.run.job import Job

        return Job(str(self.results_dir), self.tracking_uri, recorder.experiment_name, parent, force=self.force,
                   optuna_storage=self.optuna_storage, explain=self.explain, pictures=self._pictures_on)

    def claim_and_run(self, cell: Cell, recorder: Recorder, parent: str, done: dict,
                      discard_dead: bool = False) -> CellResult:
        """Run the cell unless it finished earlier or another process is running it now. With
        ``discard_dead`` (a retried task), runs of the cell still RUNNING are attempts that died
        with their worker (the lock is ours), and are deleted so the cell is recorded once."""
        with cell_lock(self.results_dir, cell.key) as mine:
            if not mine:
                return CellResult(cell, status="skipped", error="running in another process")
            if discard_dead:
                recorder.delete_unfinished(cell.key)
            prior = done.get(cell.key) or (None if self.force else recorder.finished_run(cell.key))
            if prior is not None:
                return CellResult(cell, params=dict(prior.data.params), metrics=dict(prior.data.metrics),
                                  run_id=prior.info.run_id, cached=True, labels=recorder.labels_of(prior.info.run_id))
            return self.run_cell(cell, recorder, parent)

    @staticmethod
    def _summary(r: CellResult) -> str:
        if r.cached:
            return f"finished earlier (run {r.run_id[:8]}), skipped"
        if r.status == "skipped":
            return f"skipped: {r.error}"
        if r.status != "ok":
            return f"FAILED: {r.error}"
        m = r.metrics
        parts = [f"k={r.params.get('k')}"]
        parts += [f"{k}={m[k]:.3f}" for k in ("nmi", "silhouette") if m.get(k) is not None]
        return "ok " + " ".join(parts)

    # -- one cell -----------------------------------------------------------------------------------
    def run_cell(self, cell: Cell, recorder: Recorder, parent: str) -> CellResult:
        result = CellResult(cell)
        tags = {"git_commit": git_commit(), **{f"version.{k}": v for k, v in library_versions().items()}}
        run_id = result.run_id = recorder.start_cell(cell, parent, tags)
        try:
            self._stages(cell, result, recorder, run_id)
        except KeyboardInterrupt:
            recorder.killed(run_id)
            raise
        except StoreFault as exc:  # the disk or a store, not the cell: the suite stops, finished cells kept
            with contextlib.suppress(Exception):
                recorder.failed(run_id, exc)
            raise
        except Exception as exc:  # noqa: BLE001 - isolation: any failure stays inside its cell
            if STOP_REQUESTED.is_set():  # the interrupt surfaced as another exception
                recorder.killed(run_id)
                raise KeyboardInterrupt from exc
            result.status, result.error = "failed", recorder.failed(run_id, exc)
            return result
        recorder.finished(run_id)
        return result

    def _stages(self, cell: Cell, result: CellResult, recorder: Recorder, run_id: str) -> None:
        data = self.inputs.load(cell)
        recorder.dataset(run_id, cell, data)
        context_for = self.context_for(cell, data, recorder, run_id)
        embedded = self.inputs.embed(cell, data, context_for)
        X = self.inputs.reduce(cell, embedded)
        params = stages.cell_params(cell, data, embedded, X)
        choice = stages.choose_k(cell, data, X, embedded, results_dir=self.results_dir, storage=self.optuna_storage,
                                 force=self.force)
        if choice.reduce is not None:  # a tuned reducer (the PCA dimension Optuna chose)
            X = choice.reduce.fit_transform(X)
        params.update(choice.params)
        result.params, result.k_curve = params, choice.curve
        recorder.params(run_id, params)
        recorder.write(run_id, choice.artifacts)

        def announce(plan: str) -> None:
            self.log(f"{cell.key}: {plan}")
            recorder.tags(run_id, {"cluster.plan": plan})

        fitted = stages.fit(cell, X, choice, context_for, announce)
        result.labels = fitted.labels
        result.metrics = {**stages.score(cell, data, X, fitted), **stages.perf_metrics(embedded, fitted),
                          **choice.metrics}  # K-regret of a labelled cell whose K was estimated
        stats = embedded.embedding.stats
        tags = {"device": stats.device, "k_source": choice.params.get("k_source"), "gpu_name": stats.gpu_name,
                # what the clusterer chose for itself (k-means engine and seeding, ...)
                **{f"cluster.{k}": v for k, v in fitted.outcome.info.items() if isinstance(v, str)}}
        recorder.scores(run_id, result.metrics, tags, stats.to_dict(), stages.assignments(data, fitted.labels))
        if self.explain > 0:
            self._explain(cell, data, recorder, run_id)
        if self._pictures_on:
            space = X if fitted.space is None else fitted.space
            recorder.pictures(run_id, data, space, fitted.labels, cell.seed,
                              f"{cell.dataset} x {cell.embedder} x {cell.clusterer} (seed {cell.seed})")

    def _explain(self, cell: Cell, data, recorder: Recorder, run_id: str) -> None:
        """``run --explain N``: the explain panel (grid PNG, index.html, JSON) as artifacts under
        ``explain/``; an embedder without a classifier head gets a note instead. A failure here
        is logged and tagged, and does not undo the cell's scores."""
        import tempfile

        from clusterbench.explain import check_explainable, explain_artifacts

        embedders = registries().embedders
        try:
            if not data.has_images:
                raise UserError(f"explain: dataset {cell.dataset} holds precomputed features, no images to explain")
            check_explainable(embedders, cell.embedder)
        except UserError as exc:
            recorder.note(run_id, "explain/skipped.txt", f"{exc}\n")
            return
        try:
            with tempfile.TemporaryDirectory() as tmp:
                files = explain_artifacts(embedders.create(cell.embedder), data, self.explain, Path(tmp),
                                          seed=cell.seed, title=f"{cell.embedder} on {cell.dataset}")
                recorder.files(run_id, files, "explain")
        except Exception as exc:  # noqa: BLE001 - the cell's scores stand; the panel is extra
            reason = one_line_reason(exc)
            recorder.tags(run_id, {"clusterbench.explain_error": reason})
            self.log(f"explain {cell.key}: failed: {reason}")

    def context_for(self, cell: Cell, data, recorder: Recorder | None, run_id: str | None):
        """A method's declared ``needs`` -> exactly that (:data:`clusterbench.core.contracts.NEEDS`)."""

        def context(needs: frozenset[str]) -> Context:
            out = Context(seed=cell.seed)
            if "data" in needs:
                out.data = data
            if "work_dir" in needs:
                out.work_dir = str(self.results_dir / "cache" / "work")  # each method keeps its own folder there
            if "log" in needs and recorder is not None:
                out.log_metrics, out.log_figure = recorder.step_loggers(run_id)
            if "grid_k" in needs:
                # the grid's K (--k / suite / number of classes), for methods whose own k means something else
                out.grid_k = cell.k if isinstance(cell.k, int) else data.n_classes
            return out

        return context
