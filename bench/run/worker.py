"""What one worker process of a suite does, whichever engine started it: rebuild the runner and
tracker from a :class:`Job` (picklable), then embed a (dataset, embedder), run a cell, or work on
a cell's shared Optuna study. The results directory (its content-addressed embedding cache and
locks) is the shared filesystem between workers; MLflow is reached through the tracking URI."""

from __future__ import annotations

from clusterbench.run.job import Job


def _runner(job: Job, fresh: bool = True):
    """The suite's runner in this worker; ``fresh``: the suite's embedding stage already wrote the cache."""
    from clusterbench.run.runner import Runner

    runner = Runner(job.results_dir, job.tracking_uri, force=job.force, progress=False,
                    optuna_storage=job.optuna_storage, explain=job.explain, pictures=job.pictures)
    runner.embeddings_fresh = fresh  # reused, --force or not
    return runner


def embed(job: Job, cell) -> str | None:
    """The (dataset, embedder) of ``cell`` into the shared cache; returns None, or why it failed
    (the cells then meet the same failure and record it in their own runs)."""
    from clusterbench.core.errors import one_line_reason

    runner = _runner(job, fresh=False)  # this stage is the one that computes (and, with --force, recomputes)
    try:
        data = runner._dataset(cell)
        tracker = job.tracker() if _logs_while_embedding(cell) else None
        run_id = None
        if tracker is not None:  # DeepCluster's per-epoch curves need a run of their own here
            from clusterbench.track.tracking import ROLE_TAG

            run_id = tracker.start_run(f"embed {cell.dataset.name}/{cell.embedder.name}",
                                       {ROLE_TAG: "embedding", "dataset": str(cell.dataset),
                                        "embedder": str(cell.embedder)}, job.parent_run_id)
        try:
            runner._embedding(cell, data, context=lambda needs: runner._context(cell, data, tracker, run_id, needs))
        finally:
            if tracker is not None:
                tracker.end_run(run_id, "FINISHED")
    except Exception as exc:  # noqa: BLE001 - the cells record it
        return one_line_reason(exc)
    return None


def _logs_while_embedding(cell) -> bool:
    from clusterbench.core.catalog import registries

    _, embedders, _ = registries()
    return "log" in embedders.get(cell.embedder.name).needs


def run_cell(job: Job, cell, embedded: str | None = None):
    """One cell, recorded once: an earlier attempt of it that died with its worker (found RUNNING
    while this task holds the cell's lock) is discarded before the cell runs again."""
    runner, tracker = _runner(job), job.tracker()
    return runner._claim_and_run(cell, tracker, job.parent_run_id, {}, discard_dead=True)


def work_on_study(job: Job, cell, embedded: str | None = None) -> int:
    """Join the cell's shared Optuna study and run its queued trials; returns how many ran here.
    The cell's own task chooses from the same study, so the trials spread over the workers."""
    from clusterbench.core.catalog import registries
    from clusterbench.k.kchoice import resolve_k

    runner = _runner(job)
    try:
        data = runner._dataset(cell)
        embedding, _, _ = runner._embedding(cell, data)
        X = runner._reduce(cell, embedding.features) if cell.reduce is not None else embedding.features
        choice = resolve_k(cell, data, X, embedding, registries()[2], results_dir=runner.results_dir,
                           storage=job.optuna_storage, force=False)
    except Exception:  # noqa: BLE001 - the cell's own task meets and records any failure
        return 0
    return int(choice.params.get("n_trials_run_now", 0))
