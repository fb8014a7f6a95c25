"""Choosing K without being told how: the default estimator for unlabelled data and for --k auto,
the warning and the k_at_bound field when K sits at the edge of its range, and K choices a
clusterer cannot use refused before anything runs. Real feature files, real digits, real MLflow."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from clusterbench.cli import main
from clusterbench.k.defaults import DEFAULT_ESTIMATOR


def blobs(path, n_centres: int, per_centre: int, seed: int = 0):
    """Well separated Gaussian blobs in 5-d, no labels: the answer is ``n_centres``."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=20.0, size=(n_centres, 5))
    X = np.concatenate([c + rng.normal(size=(per_centre, 5)) for c in centres]).astype(np.float32)
    np.save(path, X)
    return f"features:path={path}"


@pytest.mark.slow
def test_unlabelled_data_without_k_gets_the_default_estimator_and_an_interior_k(cli, store, tmp_path):
    status, _, err, summary = cli("-d", blobs(tmp_path / "four.npy", 4, 50), "-e", "identity", "-c", "kmeans")
    assert status == 0, err
    (cell,) = summary["cells"]
    p, m = cell["params"], cell["metrics"]
    assert p["k_source"] == f"auto:{DEFAULT_ESTIMATOR} (default: no labels)" and p["k_estimator"] == DEFAULT_ESTIMATOR
    assert p["k"] == 4 and m["n_clusters"] == 4  # four blobs, found
    assert (p["k_min"], p["k_max"]) == (2, 20) and m["k_at_bound"] == 0.0  # 2..N/10, inside it
    assert "k_regret_nmi" not in m and "warning" not in err  # no labels: no regret; inside: no warning
    run = MlflowClient(store).get_run(cell["mlflow_run_id"])
    assert run.data.metrics["k_at_bound"] == 0.0 and run.data.params["k_max"] == "20"


@pytest.mark.slow
def test_a_k_at_the_top_of_its_range_warns_once_and_is_marked_everywhere(cli, store, tmp_path, capsys):
    # 30 points: the default range is 2..max(2, min(50, 30 // 10)) = 2..3, and six blobs want more than 3
    status, _, err, summary = cli("-d", blobs(tmp_path / "six.npy", 6, 5), "-e", "identity", "-c", "kmeans")
    assert status == 0, err
    (cell,) = summary["cells"]
    p, m = cell["params"], cell["metrics"]
    assert (p["k"], p["k_min"], p["k_max"], m["k_at_bound"]) == (3, 2, 3, 1.0)
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: k estimator {DEFAULT_ESTIMATOR} chose k=3, the top of its range 2..3; "
                        "widen it with --tune k_max=N"]
    run = MlflowClient(store).get_run(cell["mlflow_run_id"])
    assert run.data.metrics["k_at_bound"] == 1.0 and (run.data.params["k_min"], run.data.params["k_max"]) == ("2", "3")
    capsys.readouterr()
    assert main(["report", "--tracking-uri", store]) == 0  # no labels, no NMI: ranked by silhouette, unasked
    out = capsys.readouterr().out
    assert "sorted by silhouette" in out or "by silhouette" in out, out[:400]
    assert f"| 3 (top of 2..3) | auto:{DEFAULT_ESTIMATOR} (default: no labels) |" in out


@pytest.mark.slow
def test_the_bottom_of_a_range_says_it_cannot_go_lower(cli, tmp_path):
    # two far-apart blobs: silhouette peaks at K=2, the smallest K there is
    status, _, err, summary = cli("-d", blobs(tmp_path / "two.npy", 2, 30), "-e", "identity", "-c", "kmeans",
                                  "--k", "auto:silhouette", "--tune", "k_max=5")
    assert status == 0, err
    (cell,) = summary["cells"]
    assert cell["params"]["k"] == 2 and cell["metrics"]["k_at_bound"] == 1.0
    assert ("warning: k estimator silhouette chose k=2, the bottom of its range 2..5, the fewest clusters there are"
            in err)


@pytest.mark.slow
def test_labelled_data_without_k_still_uses_the_number_of_classes(cli):
    status, _, err, summary = cli("-d", "digits:limit=300", "-e", "pixels", "-c", "kmeans")
    assert status == 0, err
    p = summary["cells"][0]["params"]
    assert p["k"] == 10 and p["k_source"] == "classes" and "k_at_bound" not in summary["cells"][0]["metrics"]


@pytest.mark.slow
def test_k_auto_is_the_default_estimator_and_an_objective_keeps_the_optuna_study(cli):
    args = ("-d", "digits:limit=400", "-e", "pixels", "-c", "kmeans", "--k", "auto")
    status, _, err, summary = cli(*args, "--tune", "k_max=8")
    assert status == 0, err
    p = summary["cells"][0]["params"]
    assert p["k_source"] == f"auto:{DEFAULT_ESTIMATOR} (default: auto)" and 2 <= p["k"] <= 8
    status, _, err, summary = cli(*args, "--tune", "k_max=8,objective=silhouette", json_name="study.json")
    assert status == 0, err
    p = summary["cells"][0]["params"]
    assert p["k_source"] == "optuna" and p["objective"] == "silhouette" and (p["k_min"], p["k_max"]) == (2, 8)
    status, _, err, summary = cli("-d", "digits:limit=400", "-e", "pixels", "-c", "kmeans", "--k", "auto:silhouette",
                                  "--tune", "k_max=8", json_name="named.json")
    assert status == 0, err  # silhouette stays available by name, as an estimator
    assert summary["cells"][0]["params"]["k_source"] == "auto:silhouette"


@pytest.mark.parametrize("k", ["10", "semantic"])
def test_a_k_the_clusterer_cannot_use_is_refused_before_anything_runs(run_cli, results_dir, k):
    status, _, err, summary = run_cli("-d", "digits", "-e", "pixels", "-c", "hdbscan", "--k", k)
    assert status == 2 and summary is None and err.count("\n") == 1, err
    assert err.startswith(f"clusterbench: error: k={k}: clusterer 'hdbscan' finds its own K and takes none")
    assert not (results_dir / "cache").exists()  # nothing ran


@pytest.mark.parametrize("name", ["quick", "fashion", "k", "seeds", "vid"])
def test_the_bundled_suites_still_validate(name):
    from clusterbench.core.suite import load_suite
    from clusterbench.core.validate import check_cell_specs
    from clusterbench.k.config import validate_tune

    suite = load_suite(name)
    cells = check_cell_specs(suite.cells())  # (the data's files are a run's business)
    validate_tune(suite.tune, cells)  # every cell's K is one its clusterer can use
