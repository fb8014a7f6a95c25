"""What one worker process of a suite does, whichever engine started it: rebuild the runner and
recorder from a :class:`Job` (picklable), then embed a (dataset, embedder), run a cell, or work on
a cell's shared Optuna study — through the same public stages the local runner calls. The results
directory (its content-addressed embedding cache and locks) is the shared filesystem between
workers; MLflow is reached through the tracking URI."""

from __future__ import annotations

from clusterbench.run.job import Job


def _runner(job: Job, fresh: bool = True):
    """The suite's runner in this worker; ``fresh``: the suite's embedding stage already wrote the cache."""
    from clusterbench.run.runner import Runner

    return Runner(job.results_dir, job.tracking_uri, force=job.force, progress=False,
                  optuna_storage=job.optuna_storage, explain=job.explain, pictures=job.pictures, fresh=fresh)


def embed(job: Job, cell) -> str | None:
    """The (dataset, embedder) of ``cell`` into the shared cache; returns None, or why it failed
    (the cells then meet the same failure and record it in their own runs)."""
    from clusterbench.core.catalog import registries
    from clusterbench.core.errors import one_line_reason

    runner = _runner(job, fresh=False)  # this stage is the one that computes (and, with --force, recomputes)
    try:
        data = runner.inputs.load(cell)
        logs = "log" in registries().embedders.traits(cell.embedder).needs
        recorder = job.recorder() if logs else None  # DeepCluster's per-epoch curves need a run of their own here
        run_id = recorder.start_embedding(cell, job.parent_run_id) if recorder is not None else None
        try:
            runner.inputs.embed(cell, data, runner.context_for(cell, data, recorder, run_id))
        finally:
            if recorder is not None:
                recorder.finished(run_id)
    except Exception as exc:  # noqa: BLE001 - the cells record it
        return one_line_reason(exc)
    return None


def run_cell(job: Job, cell, embedded: str | None = None):
    """One cell, recorded once: an earlier attempt of it that died with its worker (found RUNNING
    while this task holds the cell's lock) is discarded before the cell runs again."""
    return _runner(job).claim_and_run(cell, job.recorder(), job.parent_run_id, {}, discard_dead=True)


def work_on_study(job: Job, cell, embedded: str | None = None) -> int:
    """Join the cell's shared Optuna study and run its queued trials; returns how many ran here.
    The cell's own task chooses from the same study, so the trials spread over the workers."""
    from clusterbench.run import stages

    runner = _runner(job)
    try:
        data = runner.inputs.load(cell)
        embedded_here = runner.inputs.embed(cell, data)
        X = runner.inputs.reduce(cell, embedded_here)
        choice = stages.choose_k(cell, data, X, embedded_here, results_dir=runner.results_dir,
                                 storage=job.optuna_storage, force=False)
    except Exception:  # noqa: BLE001 - the cell's own task meets and records any failure
        return 0
    return int(choice.params.get("n_trials_run_now", 0))
