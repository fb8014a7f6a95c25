"""``clusterbench ui``: MLflow's UI sized for one person (one server process, no job runner unless
asked), over a store whose older experiments are tagged to open on their runs table."""

from __future__ import annotations

import os

import pytest
from mlflow.tracking import MlflowClient

from clusterbench.cli import main
from clusterbench.track.tracking import EXPERIMENT_KIND_TAG, default_tracking_uri


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A results directory with a store in it (the UI reads a store; it never creates one)."""
    path = tmp_path_factory.mktemp("ui") / "results"
    path.mkdir()
    MlflowClient(default_tracking_uri(path)).search_experiments()
    return path


@pytest.fixture
def started(monkeypatch):
    """What the command would exec (argv and the job-runner switch), without starting it."""
    monkeypatch.delenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", raising=False)
    seen = {}

    def execv(exe, argv):
        seen.update(argv=argv, jobs=os.environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"])
        monkeypatch.delenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION")  # the real exec leaves this process

    monkeypatch.setattr(os, "execv", execv)
    return seen


def test_one_worker_and_no_job_runner_by_default(started, results, capsys):
    assert main(["ui", "--results", str(results), "--port", "5055"]) == 0
    argv = started["argv"]
    assert argv[argv.index("--workers") + 1] == "1" and started["jobs"] == "false"
    assert "http://127.0.0.1:5055/#/experiments?workflowType=machine_learning" in capsys.readouterr().err


def test_more_workers_and_the_job_runner_when_asked(started, results):
    assert main(["ui", "--results", str(results), "--workers", "3", "--jobs"]) == 0
    argv = started["argv"]
    assert argv[argv.index("--workers") + 1] == "3" and started["jobs"] == "true"


def test_no_workers_is_one_line_exit_2(started, results, capsys):
    assert main(["ui", "--results", str(results), "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("clusterbench: error: --workers 0") and len(err.splitlines()) == 1
    assert not started


def test_older_experiments_are_tagged_when_the_ui_opens_the_store(started, results):
    uri = default_tracking_uri(results)
    client = MlflowClient(uri)
    client.create_experiment("clusterbench/older")
    assert main(["ui", "--results", str(results)]) == 0
    assert client.get_experiment_by_name("clusterbench/older").tags[EXPERIMENT_KIND_TAG] == "custom_model_development"

