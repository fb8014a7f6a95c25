"""MLflow 3's UI opens an experiment on its runs table only when the experiment says it holds model
training runs; every clusterbench experiment says so, old ones once they are opened again."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from clusterbench.track.tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, Tracker, mark_experiment_kinds


@pytest.fixture(scope="module")
def uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('kind') / 'mlflow.db'}"


def _kind(uri: str, name: str) -> str | None:
    return MlflowClient(uri).get_experiment_by_name(name).tags.get(EXPERIMENT_KIND_TAG)


def test_a_new_experiment_opens_on_the_runs_table(uri, tmp_path):
    Tracker(uri, "clusterbench/new", tmp_path / "mlartifacts")
    assert EXPERIMENT_KIND_TAG == "mlflow.experimentKind"
    assert _kind(uri, "clusterbench/new") == EXPERIMENT_KIND == "custom_model_development"


def test_an_experiment_made_without_the_tag_gets_it_when_opened(uri, tmp_path):
    MlflowClient(uri).create_experiment("clusterbench/old")
    assert _kind(uri, "clusterbench/old") is None
    tracker = Tracker(uri, "clusterbench/old", tmp_path / "mlartifacts")
    assert _kind(uri, "clusterbench/old") == "custom_model_development"
    assert tracker.experiment_id == MlflowClient(uri).get_experiment_by_name("clusterbench/old").experiment_id


def test_a_kind_set_by_the_user_is_kept(uri, tmp_path):
    MlflowClient(uri).create_experiment("clusterbench/traces", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    Tracker(uri, "clusterbench/traces", tmp_path / "mlartifacts")
    assert _kind(uri, "clusterbench/traces") == "genai_development"


def test_the_ui_marks_old_clusterbench_experiments_only(uri):
    client = MlflowClient(uri)
    client.create_experiment("clusterbench/older")
    client.create_experiment("someone-else")
    client.create_experiment("clusterbench/traced", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    assert mark_experiment_kinds(uri) == ["clusterbench/older"]
    assert _kind(uri, "clusterbench/older") == "custom_model_development"
    assert _kind(uri, "someone-else") is None
    assert _kind(uri, "clusterbench/traced") == "genai_development"
    assert mark_experiment_kinds(uri) == []


def test_a_store_not_there_yet_is_not_created(tmp_path):
    missing = tmp_path / "none" / "mlflow.db"
    assert mark_experiment_kinds(f"sqlite:///{missing}") == []
    assert not missing.exists()
