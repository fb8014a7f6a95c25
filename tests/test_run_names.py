"""Run names in the MLflow UI: the suite's run says which suite and when; sibling cells never share
a name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from clusterbench.core.reduce import Reducer
from clusterbench.track.run_names import cell_run_name, grid_suite_name, suite_run_name


def test_suite_run_name_is_the_suite_and_its_local_start_minute():
    assert suite_run_name("quick", datetime(2026, 12, 7, 23, 55, 41)) == "quick 2026-12-07 23:55"
    aware = datetime(2026, 12, 7, 22, 55, tzinfo=UTC)
    assert suite_run_name("quick", aware) == f"quick {aware.astimezone():%Y-%m-%d %H:%M}"
    plus_two = timezone(timedelta(hours=2))
    assert suite_run_name("k", datetime(2026, 12, 8, 0, 55, tzinfo=plus_two)) == suite_run_name("k", aware)


def test_what_tells_siblings_apart_comes_first():
    # MLflow's runs table shows ~18 characters of a name and the dataset in a column of its own
    name = cell_run_name("digits", "pixels", "kmeans", 10, "pca=50", 0)
    assert name == "kmeans · k=10 · pca=50 · s0 · pixels · digits"


def test_defaults_are_left_out():
    assert cell_run_name("digits", "pixels", "hdbscan:min_cluster_size=10", None, None, 0) == \
        "hdbscan:min_cluster_size=10 · s0 · pixels · digits"
    assert cell_run_name("digits", "pixels", "kmeans", "default", "none", None) == "kmeans · pixels · digits"


def test_siblings_differing_only_in_k_have_different_names():
    names = {cell_run_name("digits", "pixels", "kmeans:n_init=5", k, None, 0)
             for k in (2, 10, 20, "auto", "auto:gap", "semantic", None)}
    assert len(names) == 7
    assert "kmeans:n_init=5 · k=auto:gap · s0 · pixels · digits" in names


def test_siblings_differing_only_in_reducer_have_different_names():
    reducers = [None, Reducer.parse("pca=50"), Reducer.parse("pca=256,whiten=true,l2=true"),
                Reducer.parse("pca=50,umap=10"), Reducer.parse("pca=50,umap=10,umap_neighbors=15")]
    names = [cell_run_name("digits", "pixels", "kmeans", 10, r, 0) for r in reducers]
    assert len(set(names)) == len(reducers)
    assert names[2] == "kmeans · k=10 · pca=256+whiten+l2 · s0 · pixels · digits"
    assert all(len(n) <= 120 for n in names)


def test_siblings_differing_only_in_seed_have_different_names():
    names = [cell_run_name("fashion-mnist:limit=2000", "pixels", "kmeans", 10, None, s) for s in range(5)]
    assert len(set(names)) == 5 and names[3].startswith("kmeans · k=10 · s3 · ")


def test_a_k_the_clusterer_fixes_is_not_repeated():
    assert cell_run_name("digits", "pixels", "kmeans:k=7", 7, None, 1) == "kmeans:k=7 · s1 · pixels · digits"


def test_long_specs_are_cut_but_stay_distinct():
    a = "alexnet-deepcluster:epochs=15,heads=3,ema=0.999,crop_min=0.25"
    b = "alexnet-deepcluster:epochs=15,heads=3,ema=0.999,crop_min=0.5"
    na, nb = (cell_run_name("digits", e, "kmeans", 10, None, 0) for e in (a, b))
    assert na != nb and len(na) < 80 and "…" in na


def test_a_command_line_grid_is_named_after_what_it_runs():
    assert grid_suite_name(["digits:limit=300"], ["pixels"], ["kmeans", "agglomerative:linkage=ward"]) == \
        "digits x pixels x kmeans+agglomerative"
    assert grid_suite_name(["digits", "digits:limit=200"], ["pixels"], ["kmeans"]) == "digits x pixels x kmeans"
    many = grid_suite_name([f"dataset-number-{i}" for i in range(6)], ["pixels"], ["kmeans"])
    assert many == "6 datasets x pixels x kmeans"


@pytest.mark.slow
def test_a_grid_run_from_the_command_line_is_named_after_its_grid(run_cli, results_dir):
    from mlflow.tracking import MlflowClient

    from clusterbench.track.tracking import ROLE_TAG, default_tracking_uri

    status, _, err, summary = run_cli("-d", "digits:limit=150", "-e", "pixels", "-c", "kmeans:n_init=1", "--pictures",
                                      "false")
    assert status == 0, err
    assert summary["suite"] == "digits x pixels x kmeans"
    client = MlflowClient(default_tracking_uri(results_dir))
    exp = client.get_experiment_by_name("clusterbench/digits x pixels x kmeans")
    (parent,) = client.search_runs([exp.experiment_id], filter_string=f"tags.`{ROLE_TAG}` = 'suite'")
    assert parent.info.run_name.startswith("digits x pixels x kmeans")
